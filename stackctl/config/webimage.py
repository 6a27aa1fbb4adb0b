"""What the web image holds besides the project's code, as data: the packages the stack adds
when the project lacks them, the pinned tools of the locked installs, how the project's
dependencies are installed, and what the settings overlay overrides.

Templates read it through `StackConfig.web_image`; `init` can print STACK_PACKAGES and
OVERLAY_SETTINGS. The files themselves (overlay, verify script, ...) are static files in
templates/compose/stackctl/, copied to IMAGE_DIR in the image.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

# Where the image keeps stackctl's own modules; on PYTHONPATH, outside the project's /app.
IMAGE_DIR = "/opt/stackctl"
OVERLAY_MODULE = "stackctl_settings"  # DJANGO_SETTINGS_MODULE when DJANGO_SETTINGS_OVERLAY is on
BASE_SETTINGS_VARIABLE = "STACKCTL_BASE_SETTINGS"  # names the project's own module for the overlay
VERIFY_MODULE = "stackctl_verify"  # prints the settings in effect as one JSON line
# DJANGO_ASGI_APPLICATION for a project without an asgi.py: the image's own module serves
# django.core.asgi.get_asgi_application(); nothing is added to the project.
FALLBACK_ASGI_APPLICATION = "stackctl_asgi:application"

DependencyKind = Literal["requirements", "poetry", "uv", "pipenv", "pep621"]
# DJANGO_DEPENDENCY_FILE's name decides the kind; any other name ending in .txt is a requirements file.
KIND_OF_FILE: dict[str, DependencyKind] = {
    "poetry.lock": "poetry",
    "uv.lock": "uv",
    "Pipfile.lock": "pipenv",
    "pyproject.toml": "pep621",
}
# What each locked install reads besides the lock, from the lock's folder.
COMPANIONS: dict[DependencyKind, tuple[str, ...]] = {
    "requirements": (),
    "poetry": ("pyproject.toml",),
    "uv": ("pyproject.toml",),
    "pipenv": ("Pipfile",),
    "pep621": (),
}
# The tools of the locked installs, pinned; each runs from a throwaway venv in the builder stage.
BUILD_TOOLS: dict[DependencyKind, str] = {
    "poetry": "poetry==2.5.1",
    "uv": "uv==0.13.9",
    "pipenv": "pipenv==2026.10.3",
}


@dataclass(frozen=True)
class StackPackage:
    """A package the stack needs: installed by the image only when none of `provided_by` is
    installed after the project's own install, so that a project's own pin always wins."""

    requirement: str
    provided_by: tuple[str, ...]
    why: str

    @property
    def build_argument(self) -> str:
        """`dist,dist=requirement`, as the image's build helper reads it."""
        return f"{','.join(self.provided_by)}={self.requirement}"


# Current releases that support Python 3.11 to 3.13 and Django 5.2 and 6.0.
STACK_PACKAGES: tuple[StackPackage, ...] = (
    StackPackage("daphne==4.2.3", ("daphne",), "serves the ASGI application"),
    StackPackage(
        "psycopg[binary]==3.3.9", ("psycopg", "psycopg2", "psycopg2-binary"), "the postgres driver of the db service"
    ),
    StackPackage("redis==8.1.0", ("redis",), "Django's RedisCache client, for the redis service"),
    StackPackage("django-environ==0.14.0", ("django-environ",), "the settings overlay reads the environment with it"),
)

# ASGI_SERVER: daphne by default; granian (a Rust HTTP server, wheels on PyPI) is installed
# only when chosen, the same way (a project's own granian pin wins).
AsgiServer = Literal["daphne", "granian"]
ASGI_SERVERS: tuple[str, ...] = ("daphne", "granian")
GRANIAN = StackPackage("granian==2.8.9", ("granian",), "serves the ASGI application (ASGI_SERVER=granian)")


def stack_packages(server: AsgiServer = "daphne") -> tuple[StackPackage, ...]:
    """The packages the image adds for this ASGI server: daphne stays (the example and many
    projects import it, and `runserver` uses it), granian comes on top when it serves."""
    return (*STACK_PACKAGES, GRANIAN) if server == "granian" else STACK_PACKAGES


@dataclass(frozen=True)
class OverriddenSetting:
    """One setting the overlay sets, and the variables it comes from."""

    setting: str
    variables: str
    note: str = ""


OVERLAY_SETTINGS: tuple[OverriddenSetting, ...] = (
    OverriddenSetting("SECRET_KEY", "DJANGO_SECRET_KEY"),
    OverriddenSetting("DEBUG", "DJANGO_DEBUG"),
    OverriddenSetting("ALLOWED_HOSTS", "DJANGO_ALLOWED_HOSTS"),
    OverriddenSetting("CSRF_TRUSTED_ORIGINS", "CSRF_TRUSTED_ORIGINS"),
    OverriddenSetting(
        "DATABASES['default']",
        "DATABASE_URL or POSTGRES_USER/PASSWORD/DB/HOST/PORT",
        "keeps the project's CONN_MAX_AGE, CONN_HEALTH_CHECKS, ATOMIC_REQUESTS, AUTOCOMMIT, "
        "and its OPTIONS when it was postgres",
    ),
    OverriddenSetting(
        "CACHES['default']",
        "REDIS_URL, CACHE_TIMEOUT_SECONDS",
        "RedisCache; keeps the project's KEY_PREFIX, VERSION, KEY_FUNCTION",
    ),
    OverriddenSetting("STATIC_URL, STATIC_ROOT", "STATIC_URL, STATIC_ROOT", "the static volume nginx serves"),
    OverriddenSetting("MEDIA_URL, MEDIA_ROOT", "MEDIA_URL, MEDIA_ROOT", "the media volume nginx serves"),
    OverriddenSetting(
        "SECURE_SSL_REDIRECT, SECURE_HSTS_*, SESSION_COOKIE_SECURE, CSRF_COOKIE_SECURE, SECURE_PROXY_SSL_HEADER",
        "the Security group",
    ),
    OverriddenSetting(
        "EMAIL_*, DEFAULT_FROM_EMAIL",
        "EMAIL_URL, or EMAIL_HOST/PORT/USER/PASS/USE_TLS",
        "only when EMAIL_URL or EMAIL_HOST is set",
    ),
    OverriddenSetting("LOGGING", "LOG_LEVEL", "keeps the project's loggers; adds a stdout handler on the root logger"),
    OverriddenSetting(
        "TIME_ZONE, LANGUAGE_CODE", "DJANGO_TIME_ZONE, DJANGO_LANGUAGE_CODE", "only when set in the env file"
    ),
    OverriddenSetting(
        "(error reporting)",
        "SENTRY_DSN, SENTRY_ENVIRONMENT, SENTRY_RELEASE",
        "sentry-sdk with its Django integration, when the project installs it",
    ),
)


def dependency_kind(dependency_file: str) -> DependencyKind:
    return KIND_OF_FILE.get(posixpath.basename(dependency_file), "requirements")


def in_context(project_dir: str, path: str) -> str:
    """A path relative to DJANGO_PROJECT_DIR, as a normalised path relative to the build
    context (the project root): "example" + "../constraints.txt" -> "constraints.txt"."""
    return posixpath.normpath(posixpath.join(project_dir, path))


def escapes_context(project_dir: str, path: str) -> bool:
    normal = in_context(project_dir, path)
    return normal == ".." or normal.startswith("../") or normal.startswith("/")


@dataclass(frozen=True)
class DependencyInstall:
    """How the builder stage installs the project's dependencies into /opt/venv.

    Every file in `files` (relative to the build context) is copied to the same path under
    /build before the install, so that includes between them resolve as they do on disk;
    the install then runs in /build/`workdir` on `entry` (relative to `workdir`).
    """

    kind: DependencyKind
    workdir: str
    entry: str
    files: tuple[str, ...]
    tool: str | None


def dependency_install(project_dir: str, dependency_file: str, includes: list[str]) -> DependencyInstall:
    kind = dependency_kind(dependency_file)
    lock = in_context(project_dir, dependency_file)
    if kind == "requirements":
        # pip reads `-r`/`-c` relative to the including file, local paths relative to the
        # working directory: the project folder, as when the team runs pip there.
        workdir, entry = posixpath.normpath(project_dir), posixpath.relpath(lock, posixpath.normpath(project_dir))
    else:
        workdir, entry = posixpath.dirname(lock) or ".", posixpath.basename(lock)
    companions = [posixpath.normpath(posixpath.join(workdir, name)) for name in COMPANIONS[kind]]
    files: list[str] = []
    for path in [*(in_context(project_dir, i) for i in includes), *companions, lock]:
        if path not in files:
            files.append(path)
    return DependencyInstall(kind, workdir, entry, tuple(files), BUILD_TOOLS.get(kind))


# What the builder stage installs for requirements that compile (no wheel for the image's
# Python): a C toolchain, pkg-config and the headers the common ones need (psycopg2: libpq;
# cffi, cryptography: libffi, openssl), plus the Python headers when the base image lacks
# them (Debian's python3: python3.X-dev; the official images ship theirs). One RUN whose text
# never depends on the project, so the layer is built once per base image and then cached.
BUILD_TOOLCHAIN: tuple[str, ...] = ("build-essential", "pkg-config", "libpq-dev", "libffi-dev", "libssl-dev")
# Where the builder writes the Debian packages whose shared libraries the venv's compiled
# extensions link to and the base image lacks; the final stage installs exactly those.
RUNTIME_LIBRARIES_FILE = "/opt/stackctl-build/runtime-packages"


@dataclass(frozen=True)
class WebImage:
    """Everything the web image's Dockerfile and the compose file need beyond the groups."""

    settings_module: str  # DJANGO_SETTINGS_MODULE in the container
    base_settings: str | None  # STACKCTL_BASE_SETTINGS (the project's module) when the overlay is on
    install: DependencyInstall
    packages: tuple[StackPackage, ...] = STACK_PACKAGES
    image_dir: str = IMAGE_DIR
    verify_module: str = VERIFY_MODULE
    stack_dir: str = "."  # STACK_DIR: the stack's folder, relative to the build context
    build_packages: tuple[str, ...] = ()  # BUILD_PACKAGES: the builder's, on top of BUILD_TOOLCHAIN
    runtime_packages: tuple[str, ...] = ()  # RUNTIME_PACKAGES: the final image's, on top of the libraries found
    toolchain: tuple[str, ...] = BUILD_TOOLCHAIN
    runtime_libraries_file: str = RUNTIME_LIBRARIES_FILE

    @property
    def build_context(self) -> str:
        """The project root as compose sees it from the stack's folder (its project
        directory): "." in the flat layout, one ".." per folder of STACK_DIR otherwise."""
        return build_context(self.stack_dir)

    @property
    def stack_prefix(self) -> str:
        """What turns a path of the stack's folder into one of the build context: "" in the
        flat layout, "stack/" for STACK_DIR=stack."""
        return "" if self.stack_dir == "." else f"{self.stack_dir}/"


def build_context(stack_dir: str) -> str:
    """The way up from the stack's folder to the project root: "." for ".", ".." for
    "stack", "../.." for "deploy/stack"."""
    if stack_dir == ".":
        return "."
    return "/".join(".." for _ in stack_dir.split("/"))
