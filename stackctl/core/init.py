"""`stackctl init`: detect the Django project, write env files with fresh secrets, render."""

from __future__ import annotations

import os
import re
import secrets
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from stackctl.adapters.files import read_bytes_or_none
from stackctl.config import GROUPS, load_config
from stackctl.config.loader import LoadedConfig
from stackctl.core.plan import Action, PlannedFile, RenderPlan, apply_plan, plan_files
from stackctl.core.project import Project
from stackctl.core.render import render_set
from stackctl.errors import ConfigProblem, StackctlError

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "site-packages"}
DEPENDENCY_FILES = ("requirements.txt", "requirements/production.txt", "pyproject.toml", "Pipfile.lock")
GITIGNORE_LINES = (".env", ".env.prod", ".env.*.local", "backups/", "certs/privkey.pem")


@dataclass(frozen=True)
class DjangoProject:
    project_dir: str  # relative to the root, POSIX
    settings_module: str
    asgi_application: str
    dependency_file: str  # relative to project_dir


@dataclass
class InitResult:
    detected: DjangoProject
    plan: RenderPlan
    written: list[str] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)


_SETTINGS = re.compile(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""")


def detect(root: Path) -> DjangoProject:
    """Find manage.py (here or one folder down), the settings and ASGI modules, the deps file."""
    looked = []
    candidates = [
        root / "manage.py",
        *sorted(p / "manage.py" for p in root.iterdir() if p.is_dir() and p.name not in SKIP_DIRS),
    ]
    manage = next((c for c in candidates if c.is_file()), None)
    if manage is None:
        raise StackctlError(
            f"no Django project found in {root}: looked for manage.py here and one folder down",
            hint="run `stackctl init` in your project's root (the folder holding manage.py or its parent)",
        )
    app_dir = manage.parent
    match = _SETTINGS.search(manage.read_text(encoding="utf-8", errors="replace"))
    if not match:
        raise StackctlError(
            f"{manage}: no DJANGO_SETTINGS_MODULE default found",
            hint="manage.py should call os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'pkg.settings')",
        )
    settings_module = match.group(1)
    package = settings_module.rsplit(".", 1)[0] if "." in settings_module else ""
    # settings may be a package (config/settings/production.py): walk up to find asgi.py
    asgi_module = None
    parts = package.split(".") if package else []
    while parts:
        candidate = app_dir.joinpath(*parts, "asgi.py")
        looked.append(str(candidate.relative_to(root)))
        if candidate.is_file():
            asgi_module = ".".join([*parts, "asgi"])
            break
        parts.pop()
    if asgi_module is None:
        raise StackctlError(
            f"no asgi.py found next to {settings_module} (looked at {', '.join(looked) or 'nothing'})",
            hint="add an asgi.py exposing `application` (django-admin startproject creates one)",
        )
    dep = None
    for name in DEPENDENCY_FILES:
        if (app_dir / name).is_file():
            dep = name
            break
    if dep is None:
        raise StackctlError(
            f"no dependency file in {app_dir}: looked for {', '.join(DEPENDENCY_FILES)}",
            hint="add a requirements.txt listing Django and daphne",
        )
    rel_dir = app_dir.relative_to(root).as_posix() or "."
    return DjangoProject(rel_dir, settings_module, f"{asgi_module}:application", dep)


CA_BUNDLE_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def host_ca_bundle() -> str | None:
    """The CA bundle this host's Python tools are told to trust (behind a TLS-intercepting
    proxy it is what makes pip work). Builds get it as a BuildKit secret, never a layer."""
    candidates = [os.environ.get(variable) for variable in CA_BUNDLE_VARIABLES]
    candidates.append(ssl.get_default_verify_paths().cafile)  # the system bundle
    return next((path for path in candidates if path and Path(path).is_file()), None)


# What the stack runs: daphne serves the app, a postgres driver reaches the db service.
REQUIRED_PACKAGES = {"daphne": ("daphne",), "a postgres driver": ("psycopg", "psycopg2")}


def missing_packages(root: Path, project: DjangoProject) -> list[ConfigProblem]:
    """Warn when the dependency file does not mention what the stack needs to run."""
    path = root / project.project_dir / project.dependency_file
    text = path.read_text(encoding="utf-8", errors="replace").lower()
    names = set(re.findall(r"[a-z0-9][a-z0-9._-]*", text))
    rel = path.relative_to(root).as_posix()
    return [
        ConfigProblem(
            rel,
            "",
            "",
            f"does not list {label}",
            hint=f"add {candidates[0]} (the web image installs only this file)",
            severity="warning",
        )
        for label, candidates in REQUIRED_PACKAGES.items()
        if not any(name in names or f"{name}[binary]" in text for name in candidates)
    ]


def _values(project: DjangoProject, profile: str, *, local_images: dict[str, str] | None) -> dict[str, str]:
    values = {
        "DJANGO_PROJECT_DIR": project.project_dir,
        "DJANGO_DEPENDENCY_FILE": project.dependency_file,
        "DJANGO_SETTINGS_MODULE": project.settings_module,
        "DJANGO_ASGI_APPLICATION": project.asgi_application,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "DJANGO_DEBUG": "true" if profile == "dev" else "false",
    }
    if profile == "prod":
        values.update({"NGINX_BIND_ADDRESS": "0.0.0.0", "HTTP_PORT": "80", "HTTPS_PORT": "443"})
    values.update(local_images or {})
    bundle = host_ca_bundle()
    if bundle:
        values["BUILD_CA_BUNDLE"] = bundle
    return values


def env_text(values: dict[str, str], *, profile: str) -> str:
    """An env file grouped like .env.example; only variables with a value are written."""
    lines = [
        f"# stackctl {profile} settings. Secrets inside: keep this file out of git (mode 600).",
        "# Every variable is documented in .env.example.",
    ]
    for group in GROUPS.values():
        names = [n.upper() for n in group.model_fields if n.upper() in values]
        if names:
            lines += ["", f"# ---- {group.title} ----"]
            lines += [f"{n}={values[n]}" for n in names]
    return "\n".join(lines) + "\n"


def _stack_name(root: Path) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", root.name.lower()).strip("-_") or "django"


def run_init(
    root: Path,
    *,
    dry_run: bool = False,
    force: bool = False,
    local_images: dict[str, str] | None = None,
) -> InitResult:
    """Detect, validate everything in memory, then write: env files, .gitignore, rendered set."""
    project = Project.at(root)
    detected = detect(project.root)
    env_files: dict[str, tuple[bytes, int]] = {}
    loaded: dict[str, LoadedConfig] = {}
    for profile in ("dev", "prod"):
        path = project.env_file(profile)
        existing = read_bytes_or_none(path)
        if existing is None:
            values = _values(detected, profile, local_images=local_images)
            values["STACK_NAME"] = _stack_name(project.root)
            content = env_text(values, profile=profile).encode()
            env_files[path.name] = (content, 0o600)
            # validate the new file before anything is written
            tmp = _scratch(path.name, content)
            try:
                loaded[profile] = load_config(tmp, profile=profile, label=str(path))
            finally:
                tmp.unlink(missing_ok=True)
        else:
            env_files[path.name] = (existing, 0o600)
            loaded[profile] = load_config(path, profile=profile)
    rendered: dict[str, tuple[bytes, int]] = {}
    for profile in ("dev", "prod"):
        rendered.update(render_set(loaded[profile].config))
    plan = plan_files(project.root, rendered)
    # env files are never overwritten and .gitignore is merged, so neither can conflict
    merged = {**env_files, ".gitignore": (_gitignore(project.root), 0o644)}
    for name, (content, mode) in merged.items():
        on_disk = read_bytes_or_none(project.root / name)
        action = Action.CREATE if on_disk is None else (Action.IDENTICAL if on_disk == content else Action.OVERWRITE)
        plan.files.insert(0, PlannedFile(name, action, content, mode))
    warnings = loaded["dev"].warnings + loaded["prod"].warnings + missing_packages(project.root, detected)
    result = InitResult(detected, plan, warnings=warnings)
    if dry_run:
        return result
    result.written = [f.path for f in apply_plan(plan, force=force)]
    return result


def _scratch(name: str, content: bytes) -> Path:
    """A private temp copy of a generated env file (mode 600), used only to validate it."""
    fd, tmp = tempfile.mkstemp(prefix=f"{name}.", suffix=".check")
    with open(fd, "wb") as handle:
        handle.write(content)
    return Path(tmp)


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
