"""The settings groups. Each group is one pydantic-settings class; StackConfig holds them all.

Variable names are the contract: a field `django_debug` is the variable `DJANGO_DEBUG`.
Each field's description is what `.env.example` prints above it; `example` is the safe
value it shows; `sensitive` marks secrets (never printed, never in an error).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stackctl.config.fields import (
    AsgiApp,
    CommaList,
    Cpus,
    Cron,
    DependencyFile,
    Image,
    Module,
    PathList,
    ProjectName,
    RelativePath,
    Size,
    TimeZone,
)
from stackctl.config.webimage import (
    FALLBACK_ASGI_APPLICATION,
    OVERLAY_MODULE,
    WebImage,
    dependency_install,
)


def var(default: Any = ..., *, doc: str, example: str | None = None, sensitive: bool = False) -> Any:
    extra: dict[str, Any] = {"sensitive": sensitive}
    if example is not None:
        extra["example"] = example
    return Field(default, description=doc, json_schema_extra=extra)


class Group(BaseSettings):
    """A settings group read from one .env file (never from the process environment)."""

    title: ClassVar[str] = ""
    model_config = SettingsConfigDict(
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
        case_sensitive=False,
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, dotenv_settings)


class DjangoGroup(Group):
    title: ClassVar[str] = "Django"
    stack_name: ProjectName = var(
        "django",
        doc="Compose project name prefix; the dev stack runs as NAME-dev, prod as NAME-prod.",
        example="myproject",
    )
    stack_dir: RelativePath = var(
        ".",
        doc="This stack's folder, relative to the project root (the web image's build context): `.`, or `stack` when `stackctl init` put the stack in a folder of its own because the project has files of its own in the way.",
    )
    django_project_dir: RelativePath = var(
        ".",
        doc="Folder holding manage.py, relative to the project root (the web image's build context; with STACK_DIR=. that is this file's folder).",
    )
    django_dependency_file: DependencyFile = var(
        "requirements.txt",
        doc="Dependency file the image installs, relative to DJANGO_PROJECT_DIR; its name picks the tool: a requirements file (*.txt, pip -r), poetry.lock (poetry sync), uv.lock (uv sync --locked), Pipfile.lock (pipenv, hashes required) or pyproject.toml alone ([project].dependencies). An out-of-date lock fails the build.",
    )
    django_dependency_includes: PathList = var(
        [],
        doc="Comma-separated other files or folders the install reads (`-r`/`-c` includes, a README poetry wants), relative to DJANGO_PROJECT_DIR; copied before the install.",
        example="",
    )
    django_settings_module: Module = var(
        "config.settings", doc="The project's settings module (the overlay imports it first)."
    )
    django_settings_overlay: bool = var(
        True,
        doc="Run under stackctl's settings overlay, which imports DJANGO_SETTINGS_MODULE and then sets SECRET_KEY, DEBUG, ALLOWED_HOSTS, DATABASES, CACHES, STATIC/MEDIA, the security flags, email and LOGGING from these variables. false runs the project's own settings module unmodified (it must read them itself).",
    )
    django_asgi_application: AsgiApp = var(
        "config.asgi:application",
        doc=f"The ASGI application daphne serves; {FALLBACK_ASGI_APPLICATION} when the project has no asgi.py (the image's own).",
    )
    django_secret_key: SecretStr = var(
        doc="Django SECRET_KEY. At least 50 random characters in prod.",
        example="change-me-to-50-or-more-random-characters",
        sensitive=True,
    )
    django_debug: bool = var(False, doc="Django DEBUG. Must be off in prod.")
    django_allowed_hosts: CommaList = var(
        ["localhost", "127.0.0.1"],
        doc="Comma-separated host names Django serves (ALLOWED_HOSTS). Never * in prod.",
        example="localhost,127.0.0.1",
    )
    django_time_zone: TimeZone = var("UTC", doc="TIME_ZONE, an IANA name.")
    django_language_code: str = var("en-us", doc="LANGUAGE_CODE.")
    csrf_trusted_origins: CommaList = var(
        [], doc="Comma-separated origins with scheme, e.g. https://example.com.", example="http://localhost"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = var(
        "INFO", doc="Log level of Django and daphne."
    )
    sentry_dsn: SecretStr | None = var(
        None,
        doc="Optional Sentry DSN: errors are reported with sentry-sdk's Django integration when the project installs sentry-sdk (else a warning is logged).",
        sensitive=True,
    )
    sentry_environment: str | None = var(None, doc="Sentry environment name (sentry-sdk's default: production).")
    sentry_release: str | None = var(None, doc="Sentry release name, e.g. a version or git commit.")

    @field_validator("stack_dir", mode="before")
    @classmethod
    def _inside_the_project(cls, value: Any) -> Any:
        if isinstance(value, str) and ".." in value.split("/"):
            raise ValueError("must be . or a folder inside the project root (no ..)")
        return value

    @field_validator("sentry_dsn")
    @classmethod
    def _dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError("not a Sentry DSN (https://public-key@o0.ingest.sentry.io/0)")
        return value

    @field_validator("csrf_trusted_origins")
    @classmethod
    def _origins_have_scheme(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError(f"origin {origin!r} needs a scheme and a host, e.g. https://example.com")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class DatabaseGroup(Group):
    title: ClassVar[str] = "Database"
    postgres_user: str = var("django", doc="Database role the app uses (also creates it in the db container).")
    postgres_password: SecretStr = var(doc="Password of POSTGRES_USER.", example="change-me", sensitive=True)
    postgres_db: str = var("django", doc="Database name.")
    postgres_host: str = var("db", doc="Database host; `db` is the bundled postgres service.")
    postgres_port: int = var(5432, doc="Database port.")
    database_url: SecretStr | None = var(
        None,
        doc="Optional full URL (postgres://user:pass@host:port/name). When set it must agree with the POSTGRES_* parts for the bundled db.",
        sensitive=True,
    )
    db_backups_dir: str = var("/backups/db", doc="Where database backups are kept inside the backups volume.")
    db_backup_cron: Cron = var(
        "0 3 * * *", doc="When the backup container dumps the database (5-field cron, container time UTC)."
    )
    db_backup_retention_days: int = var(
        30, doc="Backups older than this many days are deleted, except those kept by the daily/weekly counts."
    )
    db_backup_keep_daily: int = var(7, doc="Keep the newest backup of each of the last N days.")
    db_backup_keep_weekly: int = var(4, doc="Keep the newest backup of each of the last M ISO weeks.")

    @field_validator("postgres_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("port must be between 1 and 65535")
        return value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"postgres", "postgresql", "pgsql", "postgis"} or not parts.hostname:
            raise ValueError("not a postgres URL (postgres://user:password@host:5432/name)")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError("the URL's port is not a number") from exc
        return value

    @field_validator("db_backup_retention_days", "db_backup_keep_daily", "db_backup_keep_weekly")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 or more")
        return value


class CacheGroup(Group):
    title: ClassVar[str] = "Cache"
    redis_url: str = var("redis://redis:6379/0", doc="Redis URL for the cache (and tasks).")
    cache_timeout_seconds: int = var(300, doc="Default cache timeout in seconds.")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
            raise ValueError("not a redis URL (redis://redis:6379/0)")
        return value


class StorageGroup(Group):
    title: ClassVar[str] = "Storage"
    static_url: str = var("/static/", doc="STATIC_URL; nginx serves it from the static volume.")
    static_root: str = var("/srv/static", doc="STATIC_ROOT inside the containers (the static volume).")
    media_url: str = var("/media/", doc="MEDIA_URL; nginx serves it from the media volume.")
    media_root: str = var("/srv/media", doc="MEDIA_ROOT inside the containers (the media volume).")
    media_backup_target: str | None = var(
        None,
        doc="Optional off-site copy of media archives: a local path (/mnt/backup), an rsync target (rsync://host/module/path or user@host:/path) or an rclone remote (rclone:remote:path).",
        example="",
    )
    media_backup_cron: Cron = var(
        "30 3 * * *", doc="When the backup container archives the media volume (5-field cron)."
    )

    @field_validator("static_url", "media_url")
    @classmethod
    def _url_path(cls, value: str) -> str:
        if not (value.startswith("/") and value.endswith("/")) or value == "/":
            raise ValueError("must be a path that starts and ends with '/', e.g. /static/")
        return value

    @field_validator("static_root", "media_root")
    @classmethod
    def _abs(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path inside the container")
        return value.rstrip("/") or "/"


class NginxGroup(Group):
    title: ClassVar[str] = "Nginx"
    server_name: str = var("localhost", doc="nginx server_name (space-separated names).")
    nginx_bind_address: str = var("127.0.0.1", doc="Host address nginx publishes on; 0.0.0.0 for every interface.")
    http_port: int = var(8080, doc="Host port for HTTP.")
    https_port: int = var(8443, doc="Host port for HTTPS (used when USE_TLS is on).")
    use_tls: bool = var(False, doc="Serve HTTPS with TLS_CERT_PATH/TLS_KEY_PATH and redirect HTTP to it.")
    tls_cert_path: str = var("./certs/fullchain.pem", doc="Host path of the certificate chain (PEM).")
    tls_key_path: str = var("./certs/privkey.pem", doc="Host path of the private key (PEM).")
    nginx_max_upload_size: Size = var("20m", doc="client_max_body_size: the largest upload nginx accepts.")

    @field_validator("http_port", "https_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("port must be between 1 and 65535")
        return value


class SecurityGroup(Group):
    title: ClassVar[str] = "Security"
    secure_ssl_redirect: bool = var(
        False, doc="Django SECURE_SSL_REDIRECT (nginx already redirects when USE_TLS is on)."
    )
    session_cookie_secure: bool = var(False, doc="SESSION_COOKIE_SECURE: send the session cookie over HTTPS only.")
    csrf_cookie_secure: bool = var(False, doc="CSRF_COOKIE_SECURE: send the CSRF cookie over HTTPS only.")
    secure_hsts_seconds: int = var(0, doc="SECURE_HSTS_SECONDS; 31536000 (a year) in prod with TLS.")
    secure_hsts_include_subdomains: bool = var(False, doc="SECURE_HSTS_INCLUDE_SUBDOMAINS.")
    secure_hsts_preload: bool = var(False, doc="SECURE_HSTS_PRELOAD.")
    secure_proxy_ssl_header: bool = var(True, doc="Trust X-Forwarded-Proto from nginx (SECURE_PROXY_SSL_HEADER).")


class EmailGroup(Group):
    title: ClassVar[str] = "Email"
    email_url: SecretStr | None = var(
        None, doc="Optional email URL (smtp+tls://user:pass@host:587). Wins over the parts below.", sensitive=True
    )
    email_host: str | None = var(None, doc="SMTP host; empty prints mail to the console.", example="")
    email_port: int = var(587, doc="SMTP port.")
    email_user: str | None = var(None, doc="SMTP user.", example="")
    email_pass: SecretStr | None = var(None, doc="SMTP password.", sensitive=True, example="")
    email_use_tls: bool = var(True, doc="Use STARTTLS.")
    default_from_email: str = var("webmaster@localhost", doc="DEFAULT_FROM_EMAIL.")

    @field_validator("email_url")
    @classmethod
    def _email_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        scheme = urlsplit(value.get_secret_value()).scheme
        known = {"smtp", "smtps", "smtp+tls", "smtp+ssl", "consolemail", "filemail", "memorymail", "dummymail"}
        if scheme not in known:
            raise ValueError("not an email URL (smtp+tls://user:password@host:587)")
        return value


class ImagesGroup(Group):
    title: ClassVar[str] = "Images"
    python_image: Image = var(
        "python:3.13-slim-trixie",
        doc="Base image of the web image (Debian trixie with Python 3.13); `stackctl init` picks one whose Python the project allows.",
    )
    postgres_image: Image = var(
        "postgres:17-trixie", doc="PostgreSQL server image; the backup image is built on it so pg_dump matches."
    )
    redis_image: Image = var("redis:8-trixie", doc="Redis server image.")
    nginx_image: Image = var("nginx:stable-trixie", doc="nginx image.")
    build_ca_bundle: str | None = var(
        None,
        doc="Optional host path of a CA bundle for pip behind a TLS-intercepting proxy; passed as a build secret, never a layer.",
        example="",
    )


class ResourcesGroup(Group):
    title: ClassVar[str] = "Resources"
    web_concurrency: int = var(2, doc="daphne processes in the web container (nginx balances over them).")
    web_cpu_limit: Cpus = var("2", doc="CPU limit of web in prod.")
    web_memory_limit: Size = var("1g", doc="Memory limit of web in prod.")
    db_cpu_limit: Cpus = var("2", doc="CPU limit of db in prod.")
    db_memory_limit: Size = var("1g", doc="Memory limit of db in prod.")
    redis_memory_limit: Size = var("256m", doc="Memory limit of redis in prod.")

    @field_validator("web_concurrency")
    @classmethod
    def _workers(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise ValueError("must be between 1 and 64")
        return value


class BackupsGroup(Group):
    title: ClassVar[str] = "Backups"
    backup_age_recipients: CommaList = var(
        [], doc="Optional age public keys (comma-separated); when set, backups are encrypted at rest.", example=""
    )
    backup_compress_level: int = var(
        1,
        doc="Compression level of database dumps (pg_dump custom format) and media archives (gzip), 0-9; the default's figures are in the README's benchmarks.",
    )

    @field_validator("backup_age_recipients")
    @classmethod
    def _age(cls, value: list[str]) -> list[str]:
        for key in value:
            if not key.startswith("age1"):
                raise ValueError("an age recipient starts with age1 (see `age-keygen -y`)")
        return value

    @field_validator("backup_compress_level")
    @classmethod
    def _level(cls, value: int) -> int:
        if not 0 <= value <= 9:
            raise ValueError("must be between 0 and 9")
        return value


GROUPS: dict[str, type[Group]] = {
    "django": DjangoGroup,
    "database": DatabaseGroup,
    "cache": CacheGroup,
    "storage": StorageGroup,
    "nginx": NginxGroup,
    "security": SecurityGroup,
    "email": EmailGroup,
    "images": ImagesGroup,
    "resources": ResourcesGroup,
    "backups": BackupsGroup,
}


class StackConfig(BaseModel):
    """Every group, validated. Templates see only this object."""

    model_config = ConfigDict(frozen=True)

    profile: Literal["dev", "prod"]
    django: DjangoGroup
    database: DatabaseGroup
    cache: CacheGroup
    storage: StorageGroup
    nginx: NginxGroup
    security: SecurityGroup
    email: EmailGroup
    images: ImagesGroup
    resources: ResourcesGroup
    backups: BackupsGroup

    @property
    def project_name(self) -> str:
        return f"{self.django.stack_name}-{self.profile}"

    @property
    def web_ports(self) -> list[int]:
        return [8000 + i for i in range(self.resources.web_concurrency)]

    @property
    def web_image(self) -> WebImage:
        dj = self.django
        return WebImage(
            settings_module=OVERLAY_MODULE if dj.django_settings_overlay else dj.django_settings_module,
            base_settings=dj.django_settings_module if dj.django_settings_overlay else None,
            install=dependency_install(dj.django_project_dir, dj.django_dependency_file, dj.django_dependency_includes),
            stack_dir=dj.stack_dir,
        )


def variable_names() -> dict[str, str]:
    """Every known variable name mapped to its group key."""
    return {name.upper(): key for key, group in GROUPS.items() for name in group.model_fields}


def is_sensitive(variable: str) -> bool:
    key = variable_names().get(variable.upper())
    if key is None:
        return True  # unknown: treat as secret, never echo
    info = GROUPS[key].model_fields[variable.lower()]
    extra = info.json_schema_extra
    return bool(isinstance(extra, dict) and extra.get("sensitive"))
