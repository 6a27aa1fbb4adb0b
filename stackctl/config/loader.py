"""Read one .env file, validate every group, and collect every problem before failing once."""

from __future__ import annotations

import difflib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError

from stackctl.config.appvars import app_variables, is_app_variable
from stackctl.config.model import GROUPS, Group, StackConfig, is_sensitive, variable_names
from stackctl.config.policy import cross_checks, prod_policy
from stackctl.config.profile import Profile
from stackctl.errors import ConfigError, ConfigProblem

# A name this close to a variable of stackctl's is likely a misspelling of it (POSTGRES_PASWORD);
# farther, it is the app's own (DB_PASSWORD) and passed to web without a warning.
TYPO_CUTOFF = 0.9


@dataclass(frozen=True)
class LoadedConfig:
    config: StackConfig
    env_file: Path
    warnings: list[ConfigProblem] = field(default_factory=list)


def read_env_text(path: Path, label: str, env_name: str | None = None) -> str:
    """The text of an env file, or a ConfigError saying why it cannot be read."""
    if not path.exists():
        init = f"stackctl init --env {env_name}" if env_name and env_name not in ("dev", "prod") else "stackctl init"
        raise ConfigError(
            [ConfigProblem(label, "", "", "file not found", hint=f"run `{init}` or create it from .env.example")]
        )
    if not path.is_file():
        raise ConfigError([ConfigProblem(label, "", "", "is not a file")])
    if not os.access(path, os.R_OK):
        raise ConfigError(
            [ConfigProblem(label, "", "", "file is not readable", hint=f"chmod 600 {label} as its owner")]
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(label, "", "", "file is not UTF-8 text")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(label, "", "", f"cannot read file: {exc.strerror}")]) from None


def parse_env(text: str) -> dict[str, str | None]:
    """KEY=value pairs as docker compose reads them (no interpolation)."""
    return dict(dotenv_values(stream=io.StringIO(text), interpolate=False))


def _problems_from(exc: ValidationError, *, file: str, group: str, raw: dict[str, str | None]) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_input=False):
        name = str(error["loc"][0]).upper() if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        value = None if is_sensitive(name) else raw.get(name)
        hint = _hint_for(name, error["type"])
        problems.append(ConfigProblem(file, name, group, message, value=value, hint=hint))
    return problems


def _hint_for(name: str, kind: str) -> str | None:
    if kind == "missing":
        return f"add {name}=... (see .env.example)"
    if kind.startswith("bool"):
        return f"set {name} to true or false"
    if kind.startswith("int"):
        return f"set {name} to a whole number"
    if kind == "literal_error":
        return None
    return None


def _unknown(raw: dict[str, str | None], file: str) -> list[ConfigProblem]:
    """Warnings for names stackctl does not own that are not the app's own either (its
    STACKCTL_ namespace, a name compose cannot pass), or look like a misspelt variable of its."""
    known = variable_names()
    problems = []
    for name in raw:
        if name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), list(known), n=1, cutoff=TYPO_CUTOFF)
        if close:
            hint = f"did you mean {close[0]}?"
            problems.append(ConfigProblem(file, name, "", "unknown variable", hint=hint, severity="warning"))
        elif not is_app_variable(name):
            hint = "remove it, or check the spelling against .env.example"
            problems.append(ConfigProblem(file, name, "", "unknown variable", hint=hint, severity="warning"))
    return problems


def load_config(
    env_file: Path,
    *,
    profile: Profile = "dev",
    env_name: str | None = None,
    text: str | None = None,
    label: str | None = None,
    policy: bool = True,
) -> LoadedConfig:
    """Validate an env file into a StackConfig. Raises ConfigError listing every problem.

    `text` is the file's content when it is not on disk yet (`init` validates fresh secrets
    before writing them); `env_file` still names it in problems, and relative paths in it
    (TLS files, the CA bundle) resolve against its folder, the project. `label` overrides the
    name problems show. `env_name` names a named environment of kind `profile` (staging: its
    files and compose project). `policy=False` skips the production policy (to render documentation
    from .env.example).
    """
    label = label or str(env_file)
    raw = parse_env(read_env_text(env_file, label, env_name) if text is None else text)
    problems: list[ConfigProblem] = _unknown(raw, label)
    # Empty values count as unset, as compose and pydantic-settings' env_ignore_empty treat them.
    values = {name.lower(): value for name, value in raw.items() if value not in (None, "")}
    groups: dict[str, Group] = {}
    for key, group_cls in GROUPS.items():
        # only the group's own fields: never pydantic-settings' init options (`_env_file`...)
        mine: dict[str, Any] = {name: values[name] for name in group_cls.model_fields if name in values}
        try:
            groups[key] = group_cls(**mine)
        except ValidationError as exc:
            problems.extend(_problems_from(exc, file=label, group=group_cls.title, raw=raw))
    config: StackConfig | None = None
    if len(groups) == len(GROUPS):
        own = app_variables(raw, set(variable_names()))
        config = StackConfig(profile=profile, env_name=env_name, app_variables=own, **groups)
        problems.extend(cross_checks(config, label))
        if profile == "prod" and policy:
            problems.extend(prod_policy(config, label, base_dir=env_file.parent))
    if config is None or any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    return LoadedConfig(config=config, env_file=env_file, warnings=problems)
