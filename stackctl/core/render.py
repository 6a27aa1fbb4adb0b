"""Render the stack's files from a validated StackConfig, in memory.

Two sets: the dev set is rendered from `.env`, the prod set from `.env.prod` (and, for each
named environment, from `.env.NAME` into files named `.NAME.` where prod's say `.prod.`:
docker-compose.staging.yml, nginx/nginx.staging.conf...). Values that
differ from machine to machine (image names, published ports, the build CA bundle) stay
compose `${VARIABLES}` read from the same env file, so the rendered files do not change
when only they do.

Only files named `*.j2` are templates (copier's `templates_suffix`): Jinja renders them and
the suffix is dropped. Every other file under templates/ is copied byte for byte.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from stackctl import __version__
from stackctl.config.model import GROUPS, StackConfig
from stackctl.config.profile import Environment

TEMPLATE_SUFFIX = ".j2"

# Fields whose value in .env.example is the project's own, not a generic example.
PROJECT_FIELDS = {
    "stack_dir",
    "django_project_dir",
    "django_dependency_file",
    "django_settings_module",
    "django_asgi_application",
}


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the stack's folder, POSIX separators
    template: str  # relative to the templates folder; copied as is unless it ends in .j2
    mode: int = 0o644
    flat_only: bool = False  # only when the stack's folder is the project root (STACK_DIR=.)

    @property
    def is_template(self) -> bool:
        return self.template.endswith(TEMPLATE_SUFFIX)


NGINX_TEMPLATE = "nginx/nginx.conf.j2"
DEV_SET: tuple[Artifact, ...] = (
    Artifact("docker-compose.yml", "docker-compose.yml.j2"),
    Artifact("compose/Dockerfile", "compose/Dockerfile.j2"),
    Artifact("compose/entrypoint.sh", "compose/entrypoint.sh.j2", 0o755),
    # The build context's own .dockerignore, for compatibility: BuildKit reads the next one
    # instead, and in the nested layout the context's is the project's (never written).
    Artifact(".dockerignore", "dockerignore.j2", flat_only=True),
    Artifact("compose/Dockerfile.dockerignore", "dockerignore.j2"),
    Artifact("nginx/nginx.conf", NGINX_TEMPLATE),
    Artifact(".env.example", "env.example.j2"),
    Artifact("compose/stackctl/stackctl_settings.py", "compose/stackctl/stackctl_settings.py"),
    Artifact("compose/stackctl/stackctl_env.py", "compose/stackctl/stackctl_env.py"),
    Artifact("compose/stackctl/stackctl_asgi.py", "compose/stackctl/stackctl_asgi.py"),
    Artifact("compose/stackctl/stackctl_verify.py", "compose/stackctl/stackctl_verify.py"),
    Artifact("compose/stackctl/stackctl_build.py", "compose/stackctl/stackctl_build.py"),
    Artifact("compose/stackctl/stackctl_migrations.py", "compose/stackctl/stackctl_migrations.py"),
    Artifact("compose/stackctl/stackctl_packages.py", "compose/stackctl/stackctl_packages.py"),
    Artifact("compose/stackctl/stackctl_health.py", "compose/stackctl/stackctl_health.py"),
    Artifact("compose/stackctl/stackctl_manage.py", "compose/stackctl/stackctl_manage.py"),
    Artifact("compose/stackctl/stackctl_static.py", "compose/stackctl/stackctl_static.py"),
)
SHARED_MODULES: tuple[Artifact, ...] = tuple(a for a in DEV_SET if a.path.startswith("compose/stackctl/"))


def _prod_static(env: Environment) -> tuple[Artifact, ...]:
    """The prod kind's own files, named after the environment: `.prod.` for prod, `.staging.`
    for staging."""
    x = env.suffix
    return (
        Artifact(f"docker-compose{x}.yml", "docker-compose.prod.yml.j2"),
        Artifact(f"compose/Dockerfile{x}", "compose/Dockerfile.j2"),
        Artifact(f"compose/Dockerfile{x}.dockerignore", "dockerignore.j2"),
        Artifact(f"compose/entrypoint{x}.sh", "compose/entrypoint.sh.j2", 0o755),
        Artifact(f"nginx/nginx{x}.conf", NGINX_TEMPLATE),
        *SHARED_MODULES,
    )


def templates_dir() -> Path:
    """`templates/` in a checkout, or the copy inside an installed wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("stackctl's templates folder is missing from the installation")


def _backup_set(root: Path) -> tuple[Artifact, ...]:
    """Every file under templates/backup/ goes to backup/: the .j2 ones rendered (suffix
    dropped), the others copied."""
    found = []
    for path in sorted((root / "backup").rglob("*")):
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            out = rel.removesuffix(TEMPLATE_SUFFIX)
            executable = out.endswith((".sh", ".py"))
            found.append(Artifact(out, rel, 0o755 if executable else 0o644))
    return tuple(found)


def artifacts_for(env: Environment, stack_dir: str = ".") -> tuple[Artifact, ...]:
    """The files of one environment's set, for a stack in STACK_DIR of the project root."""
    found = DEV_SET if env.profile == "dev" else _prod_static(env) + _backup_set(templates_dir())
    return tuple(a for a in found if stack_dir == "." or not a.flat_only)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


@dataclass(frozen=True)
class EnvEntry:
    name: str
    doc: str
    value: str
    sensitive: bool


def _example_value(cfg: StackConfig, group_key: str, field: str) -> str:
    info = GROUPS[group_key].model_fields[field]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if field in PROJECT_FIELDS:
        value: Any = getattr(getattr(cfg, group_key), field)
    elif "example" in extra:
        return str(extra["example"])
    else:
        value = info.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def env_example_groups(cfg: StackConfig) -> list[tuple[str, list[EnvEntry]]]:
    groups = []
    for key, group_cls in GROUPS.items():
        entries = []
        for field, info in group_cls.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            entries.append(
                EnvEntry(
                    name=field.upper(),
                    doc=info.description or "",
                    value=_example_value(cfg, key, field),
                    sensitive=bool(extra.get("sensitive")),
                )
            )
        groups.append((group_cls.title, entries))
    return groups


def _context(cfg: StackConfig) -> dict[str, Any]:
    return {
        "cfg": cfg,
        "profile": cfg.profile,
        "env": cfg.environment,
        "env_groups": env_example_groups(cfg),
        "stackctl_version": __version__,
    }


def nginx_conf(cfg: StackConfig) -> bytes:
    """cfg's nginx.conf (what nginx/nginx<suffix>.conf holds), rendered in memory."""
    return _environment().get_template(NGINX_TEMPLATE).render(_context(cfg)).encode("utf-8")


def render_set(cfg: StackConfig) -> dict[str, tuple[bytes, int]]:
    """Render the set of cfg's environment to {relative path: (content, mode)}. Nothing is written."""
    env = _environment()
    context = _context(cfg)
    context["nginx_conf_digest"] = hashlib.sha256(nginx_conf(cfg)).hexdigest()[:16]
    rendered: dict[str, tuple[bytes, int]] = {}
    for artifact in artifacts_for(cfg.environment, cfg.django.stack_dir):
        if artifact.is_template:
            content = env.get_template(artifact.template).render(context).encode("utf-8")
        else:
            content = (templates_dir() / artifact.template).read_bytes()
        rendered[artifact.path] = (content, artifact.mode)
    return rendered
