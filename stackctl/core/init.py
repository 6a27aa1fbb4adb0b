"""`stackctl init`: detect the Django project, write env files with fresh secrets, render.

Everything is decided and validated in memory first (detection, layout, images, both env
files, every rendered file), then written at once; a failure writes nothing.
"""

from __future__ import annotations

import os
import posixpath
import re
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from stackctl.adapters.files import read_bytes_or_none
from stackctl.config import GROUPS, load_config
from stackctl.config.loader import LoadedConfig, parse_env
from stackctl.config.profile import Profile, environment_of
from stackctl.config.webimage import (
    COMPANIONS,
    FALLBACK_ASGI_APPLICATION,
    OVERLAY_SETTINGS,
    STACK_PACKAGES,
    OverriddenSetting,
    StackPackage,
)
from stackctl.core.detect import DjangoProject, detect_project
from stackctl.core.detect_django import django_python_bound, find_django
from stackctl.core.detect_env import required_reads, settings_files
from stackctl.core.images import IMAGE_VARIABLES, local_image_env, official_image_env
from stackctl.core.layout import ENV_HEADER, ImageChoice, choose_layout
from stackctl.core.localimages import build_commands
from stackctl.core.plan import Action, PlannedFile, RenderPlan, apply_plan, plan_files
from stackctl.core.project import Project
from stackctl.core.python_choice import choose_python, python_candidates
from stackctl.core.render import render_set
from stackctl.errors import ConfigProblem

GITIGNORE_LINES = (
    ".env",
    ".env.prod",
    ".env.*.local",
    "backups/",
    "certs/privkey.pem",
    ".stackctl/cache/",
    ".stackctl/secrets/",
)
LOCK_OF_KIND = {"poetry": "poetry.lock", "uv": "uv.lock", "pipenv": "Pipfile.lock"}


@dataclass(frozen=True)
class ImageSelection:
    mode: str  # "local" or "official"
    reason: str  # why: the flag, or whether a registry answered
    env: dict[str, str]  # PYTHON_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, NGINX_IMAGE
    python_source: str | None  # the file(s) the Python requirement came from
    python_why: str = ""  # which file asked for which Python, what was chosen and why
    build_commands: tuple[str, ...] = ()  # what builds the local images chosen, suite included


@dataclass
class InitResult:
    detected: DjangoProject
    plan: RenderPlan
    stack_dir: str  # "." or "stack"
    in_the_way: list[str]
    images: ImageSelection
    overlay: list[OverriddenSetting]  # empty when DJANGO_SETTINGS_OVERLAY is off
    added_packages: list[StackPackage]  # what the image adds because the project does not list it
    asgi_fallback: bool
    written: list[str] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)


CA_BUNDLE_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def host_ca_bundle() -> str | None:
    """The CA bundle this host's Python tools are told to trust (behind a TLS-intercepting
    proxy it is what makes pip work). Builds get it as a BuildKit secret, never a layer."""
    candidates = [os.environ.get(variable) for variable in CA_BUNDLE_VARIABLES]
    candidates.append(ssl.get_default_verify_paths().cafile)  # the system bundle
    return next((path for path in candidates if path and Path(path).is_file()), None)


def select_images(
    detected: DjangoProject, choice: ImageChoice, *, root: Path | None = None, python: str | None = None
) -> ImageSelection:
    """Local images (from `stackctl images build`) or the official ones; the Python image is
    the one python_choice picks: within the hard bounds (the project's files and the Pythons
    its Django supports, read under `root`), nearest to `python` or to its preferences."""
    if choice == "auto":
        from stackctl.adapters.host import registry_answers

        local = not registry_answers()
        reason = "no image registry answers" if local else "an image registry answers"
    else:
        local = choice == "local"
        reason = f"--{choice}-images"
    django = django_python_bound(find_django(root, detected.dependencies)) if root else None
    python_choice = choose_python(
        detected.python,
        python_candidates(local=local),
        extra_bounds=(django,) if django else (),
        explicit=python,
        kind="local" if local else "official",
    )
    env = local_image_env() if local else official_image_env()
    env["PYTHON_IMAGE"] = python_choice.image
    sources = [*detected.python.sources, *(p.source for p in detected.python.preferences)]
    return ImageSelection(
        "local" if local else "official",
        reason,
        env,
        ", ".join(sources) or None,
        python_choice.why,
        tuple(build_commands(env.values())) if local else (),
    )


def dependency_values(detected: DjangoProject) -> dict[str, str]:
    """DJANGO_DEPENDENCY_FILE (the lock, or the requirements file the install starts from) and
    DJANGO_DEPENDENCY_INCLUDES (every other file it reads), relative to DJANGO_PROJECT_DIR."""
    deps, base = detected.dependencies, detected.project_dir
    lock = deps.entry
    if deps.kind in LOCK_OF_KIND:
        lock = next((f for f in deps.files if posixpath.basename(f) == LOCK_OF_KIND[deps.kind]), deps.entry)
    folder = posixpath.dirname(lock)
    companions = {posixpath.normpath(posixpath.join(folder, name)) for name in COMPANIONS.get(deps.kind, ())}
    includes = [f for f in deps.files if f != lock and f not in companions]
    return {
        "DJANGO_DEPENDENCY_FILE": posixpath.relpath(lock, base),
        "DJANGO_DEPENDENCY_INCLUDES": ",".join(posixpath.relpath(f, base) for f in includes),
    }


def added_packages(detected: DjangoProject) -> list[StackPackage]:
    return [p for p in STACK_PACKAGES if not detected.has_package(*p.provided_by)]


def _values(detected: DjangoProject, profile: Profile, images: ImageSelection, project: Project) -> dict[str, str]:
    settings = detected.settings.prod if profile == "prod" else detected.settings.dev
    values = {
        "STACK_NAME": _stack_name(project.source),
        "STACK_DIR": project.root.relative_to(project.source).as_posix() or ".",
        "DJANGO_PROJECT_DIR": detected.project_dir,
        **dependency_values(detected),
        "DJANGO_SETTINGS_MODULE": settings,
        "DJANGO_ASGI_APPLICATION": detected.asgi_application or FALLBACK_ASGI_APPLICATION,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "DJANGO_DEBUG": "true" if profile == "dev" else "false",
        **images.env,
    }
    for optional in ("DJANGO_DEPENDENCY_INCLUDES", "STACK_DIR"):
        if values[optional] in ("", "."):
            del values[optional]
    if profile == "prod":
        # Loopback until TLS is set up: prod refuses plain HTTP on a public address unless
        # TLS_TERMINATED_IN_FRONT says a proxy in front ends it.
        values.update({"NGINX_BIND_ADDRESS": "127.0.0.1", "HTTP_PORT": "80", "HTTPS_PORT": "443"})
    if profile == "prod":
        # the app's own database role and redis's password (see core/secretfiles.py)
        values.update({"DB_APP_PASSWORD": secrets.token_urlsafe(24), "REDIS_PASSWORD": secrets.token_urlsafe(24)})
    bundle = host_ca_bundle()
    if bundle:
        values["BUILD_CA_BUNDLE"] = bundle
    values.update(former_alias_values(detected, project, profile, values))
    return values


def _missing_aliases(
    detected: DjangoProject, project: Project, profile: Profile, label: str, text: str
) -> list[ConfigProblem]:
    """A kept env file without a name its settings require that earlier stacks set themselves."""
    have = {name for name, value in parse_env(text).items() if value}
    placeholders = {"DJANGO_SECRET_KEY": "x", "POSTGRES_PASSWORD": "x", "DB_APP_PASSWORD": "x"}
    return [
        ConfigProblem(
            label,
            name,
            "",
            "the project's settings read it at import with no default, and the stack does not set it",
            hint=f"add {name}=... to {label} (see the README: the app's own variables)",
            severity="warning",
        )
        for name in former_alias_values(detected, project, profile, placeholders)
        if name not in have
    ]


def former_alias_values(
    detected: DjangoProject, project: Project, profile: Profile, values: dict[str, str]
) -> dict[str, str]:
    """SECRET_KEY, DEBUG, ALLOWED_HOSTS and DATABASE_URL, those the settings read with no
    default (detect_env.py): the stack adds none of them, so the env file states them."""
    settings = detected.settings.prod if profile == "prod" else detected.settings.dev
    reads = required_reads(settings_files(project.source / detected.project_dir, settings))
    debug = profile == "dev"
    own: dict[str, str] = {}
    for read in reads.values():
        if read.name == "SECRET_KEY":
            own[read.name] = values["DJANGO_SECRET_KEY"]
        elif read.name == "DEBUG":
            own[read.name] = str(int(debug)) if read.as_int else str(debug)
        elif read.name == "ALLOWED_HOSTS":
            own[read.name] = ",".join(GROUPS["django"].model_fields["django_allowed_hosts"].default)
        elif read.name == "DATABASE_URL":
            # the bundled database, as the role the app connects as (prod: DB_APP_USER)
            db = {name: field.default for name, field in GROUPS["database"].model_fields.items()}
            user, password = (
                (db["db_app_user"], values["DB_APP_PASSWORD"])
                if profile == "prod"
                else (db["postgres_user"], values["POSTGRES_PASSWORD"])
            )
            where = f"{db['postgres_host']}:{db['postgres_port']}/{db['postgres_db']}"
            own[read.name] = f"postgres://{user}:{quote(password, safe='')}@{where}"
    return own


def env_text(values: dict[str, str], *, profile: str) -> str:
    """An env file grouped like .env.example; only variables with a value are written."""
    lines = [
        f"{ENV_HEADER}{profile} settings. Secrets inside: keep this file out of git (mode 600).",
        "# Every variable is documented in .env.example.",
    ]
    for group in GROUPS.values():
        names = [n.upper() for n in group.model_fields if n.upper() in values]
        if names:
            lines += ["", f"# ---- {group.title} ----"]
            lines += [f"{n}={values[n]}" for n in names]
    known = {n.upper() for group in GROUPS.values() for n in group.model_fields}
    own = [n for n in values if n not in known]
    if own:
        lines += ["", "# ---- The app's own (passed to web as written; see .env.example) ----"]
        lines += [f"{n}={values[n]}" for n in own]
    return "\n".join(lines) + "\n"


def with_images(text: str, images: dict[str, str]) -> str:
    """`text` with only its image lines set to `images` (missing ones appended)."""
    for name in IMAGE_VARIABLES:
        line = f"{name}={images[name]}"
        text, found = re.subn(rf"^{name}=.*$", line.replace("\\", "\\\\"), text, flags=re.M)
        if not found:
            text = text + ("" if text.endswith("\n") or not text else "\n") + line + "\n"
    return text


def _stack_name(root: Path) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", root.name.lower()).strip("-_") or "django"


def run_init(
    root: Path, *, dry_run: bool = False, force: bool = False, images: ImageChoice = "auto", python: str | None = None
) -> InitResult:
    """Detect, validate everything in memory, then write: env files, .gitignore, rendered set.

    Existing env files are kept; with `images` "local" or "official", or `python` (X.Y, the
    Python image chosen explicitly), only their image lines are rewritten."""
    layout = choose_layout(root.resolve())
    project = layout.project
    detected = detect_project(project.source)
    selection = select_images(detected, images, root=project.source, python=python)
    env_files: dict[str, tuple[bytes, int]] = {}
    loaded: dict[Profile, LoadedConfig] = {}
    kept_warnings: list[ConfigProblem] = []
    profiles: tuple[Profile, ...] = ("dev", "prod")
    for profile in profiles:
        path = project.env_file(environment_of(profile))
        existing = read_bytes_or_none(path)
        if existing is None:
            text = env_text(_values(detected, profile, selection, project), profile=profile)
        else:
            text = existing.decode("utf-8", errors="replace")
            text = with_images(text, selection.env) if images != "auto" or python else text
            kept_warnings += _missing_aliases(detected, project, profile, path.name, text)
        env_files[path.name] = (text.encode(), 0o600)
        loaded[profile] = load_config(path, profile=profile, text=text)  # validated before anything is written
    rendered: dict[str, tuple[bytes, int]] = {}
    for profile in profiles:
        rendered.update(render_set(loaded[profile].config))
    plan = plan_files(project.root, rendered)
    _add_unrendered(plan, project, env_files)
    overlay_on = loaded["prod"].config.django.django_settings_overlay
    result = InitResult(
        detected,
        plan,
        stack_dir=project.root.relative_to(project.source).as_posix() or ".",
        in_the_way=list(layout.in_the_way),
        images=selection,
        overlay=list(OVERLAY_SETTINGS) if overlay_on else [],
        added_packages=added_packages(detected),
        asgi_fallback=detected.asgi_application is None,
        warnings=loaded["dev"].warnings + loaded["prod"].warnings + kept_warnings,
    )
    if not dry_run:
        result.written = [f.path for f in apply_plan(plan, force=force)]
    return result


def _add_unrendered(plan: RenderPlan, project: Project, env_files: dict[str, tuple[bytes, int]]) -> None:
    """The env files, the layout marker and .gitignore: never conflicts (env files keep their
    secrets, .gitignore is merged; in a stack folder, a .gitignore of its own)."""
    marker, marker_text = project.source_marker()
    extra = {**env_files, marker: (marker_text, 0o644), ".gitignore": (_gitignore(project.root), 0o644)}
    for name, (content, mode) in extra.items():
        on_disk = read_bytes_or_none(project.root / name)
        action = Action.CREATE if on_disk is None else (Action.IDENTICAL if on_disk == content else Action.OVERWRITE)
        plan.files.insert(0, PlannedFile(name, action, content, mode))


def _gitignore(root: Path) -> bytes:
    current = (read_bytes_or_none(root / ".gitignore") or b"").decode("utf-8", errors="replace")
    present = {line.strip() for line in current.splitlines()}
    missing = [line for line in GITIGNORE_LINES if line not in present]
    if not missing:
        return current.encode()
    block = "\n# stackctl: secrets and local state\n" + "\n".join(missing) + "\n"
    if current and not current.endswith("\n"):
        current += "\n"
    return (current + block).encode()
