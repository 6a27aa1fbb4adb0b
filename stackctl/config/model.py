"""The settings groups. Each group is one pydantic-settings class; StackConfig holds them all.

Variable names are the contract: a field `django_debug` is the variable `DJANGO_DEBUG`.
Each field's description is what `.env.example` prints above it; `example` is the safe
value it shows; `sensitive` marks secrets (never printed, never in an error).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stackctl.config.appvars import AppVariable
from stackctl.config.fields import (
    AsgiApp,
    CheckIds,
    CommaList,
    Cpus,
    Cron,
    DebianPackages,
    DependencyFile,
    Image,
    Module,
    PathList,
    ProjectName,
    RelativePath,
    Size,
    TimeZone,
)
from stackctl.config.profile import Environment
from stackctl.config.webimage import (
    ASGI_SERVERS,
    FALLBACK_ASGI_APPLICATION,
    OVERLAY_MODULE,
    AsgiServer,
    WebImage,
    dependency_install,
    stack_packages,
)


def var(default: Any = ..., *, doc: str, example: str | None = None, sensitive: bool = False) -> Any:
    extra: dict[str, Any] = {"sensitive": sensitive}
    if example is not None:
        extra["example"] = example
    return Field(default, description=doc, json_schema_extra=extra)


LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory"


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
    asgi_server: AsgiServer = var(
        "daphne",
        doc="The ASGI server of the web container: daphne (the default) or granian (an HTTP server written in Rust), which the image then installs, pinned, unless the project lists it. Either runs WEB_CONCURRENCY processes on the same unix sockets behind nginx; the README's benchmarks compare them.",
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

    @field_validator("asgi_server", mode="before")
    @classmethod
    def _known_server(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in ASGI_SERVERS:
                raise ValueError(
                    f"must be daphne (the default) or granian, not {value!r}: set ASGI_SERVER=daphne or ASGI_SERVER=granian"
                )
        return value


def _url_safe_secret(value: SecretStr | None) -> SecretStr | None:
    """A generated password's alphabet (token_urlsafe): it goes into URLs and config files as is."""
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,}", value.get_secret_value()):
        raise ValueError("must be 16 or more letters, digits, - or _ (e.g. from `openssl rand -hex 24`)")
    return value


class DatabaseGroup(Group):
    title: ClassVar[str] = "Database"
    postgres_user: str = var(
        "django",
        doc="The bundled database's superuser (the db container creates it). The dev app connects as it; in prod only backups and restores do, the app connects as DB_APP_USER.",
    )
    postgres_password: SecretStr = var(doc="Password of POSTGRES_USER.", example="change-me", sensitive=True)
    postgres_db: str = var("django", doc="Database name.")
    postgres_host: str = var("db", doc="Database host; `db` is the bundled postgres service.")
    postgres_port: int = var(5432, doc="Database port.")
    database_url: SecretStr | None = var(
        None,
        doc="Optional full URL (postgres://user:pass@host:port/name). When set it must agree with the POSTGRES_* parts for the bundled db.",
        sensitive=True,
    )
    db_app_user: str = var(
        "django_app",
        doc="Prod: the role the app connects as. It owns POSTGRES_DB and is not a superuser; `stackctl up --prod` creates it, or moves an existing database to it.",
    )
    db_app_password: SecretStr | None = var(
        None,
        doc="Prod: password of DB_APP_USER (letters, digits, - and _); empty: derived from POSTGRES_PASSWORD.",
        sensitive=True,
        example="",
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
    db_backup_keep_monthly: int = var(6, doc="Keep the newest backup of each of the last N calendar months.")
    db_backup_target: str | None = var(
        None,
        doc="Off-site copy of each database dump, the same kinds of target as MEDIA_BACKUP_TARGET; empty: MEDIA_BACKUP_TARGET's.",
        example="",
    )

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

    @field_validator("db_app_user")
    @classmethod
    def _app_user(cls, value: str, info: ValidationInfo) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError("must be a lower-case role name (letters, digits, _)")
        if value == info.data.get("postgres_user"):
            raise ValueError("must differ from POSTGRES_USER, the superuser")
        return value

    @field_validator("db_app_password")
    @classmethod
    def _app_password(cls, value: SecretStr | None) -> SecretStr | None:
        return _url_safe_secret(value)

    @field_validator(
        "db_backup_retention_days", "db_backup_keep_daily", "db_backup_keep_weekly", "db_backup_keep_monthly"
    )
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 or more")
        return value


class CacheGroup(Group):
    title: ClassVar[str] = "Cache"
    redis_url: str = var(
        "redis://redis:6379/0",
        doc="Redis URL for the cache (and tasks). In prod the bundled redis's password (REDIS_PASSWORD) is added to it in web's processes.",
    )
    redis_password: SecretStr | None = var(
        None,
        doc="Prod: the password the bundled redis requires (letters, digits, - and _); empty: derived from POSTGRES_PASSWORD.",
        sensitive=True,
        example="",
    )
    cache_timeout_seconds: int = var(300, doc="Default cache timeout in seconds.")

    @field_validator("redis_password")
    @classmethod
    def _redis_password(cls, value: SecretStr | None) -> SecretStr | None:
        return _url_safe_secret(value)

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
    use_tls: bool = var(False, doc="Serve HTTPS, with the certificate TLS_CERT_SOURCE says, and redirect HTTP to it.")
    tls_cert_path: str = var("./certs/fullchain.pem", doc="Host path of the certificate chain (PEM).")
    tls_key_path: str = var("./certs/privkey.pem", doc="Host path of the private key (PEM).")
    tls_cert_source: Literal["files", "acme"] = var(
        "files",
        doc="Where the certificate comes from: files (TLS_CERT_PATH/TLS_KEY_PATH, made by you) or acme (issued by http-01 for every SERVER_NAME and renewed by the backup container, prod only).",
    )
    acme_directory_url: str = var(
        LETSENCRYPT_DIRECTORY,
        doc=f"The ACME server's directory. Let's Encrypt's staging one, for trying a setup without its rate limits: {LETSENCRYPT_STAGING_DIRECTORY}; any other for a private CA.",
    )
    acme_email: str | None = var(
        None, doc="Optional contact address for the ACME account (the CA's notices).", example=""
    )
    acme_ca_bundle: str | None = var(
        None,
        doc="Optional host path of a PEM bundle to trust for the ACME server's own HTTPS (a private ACME server); the public CAs need none.",
        example="",
    )
    acme_renew_cron: Cron = var(
        "17 4,16 * * *",
        doc="When the backup container checks the certificate (twice a day); it renews within ACME_RENEW_DAYS of expiry.",
    )
    acme_renew_days: int = var(30, doc="Renew a certificate this many days before it expires.")
    nginx_max_upload_size: Size = var("20m", doc="client_max_body_size: the largest upload nginx accepts.")
    tls_terminated_in_front: bool = var(
        False,
        doc="A proxy or load balancer in front of nginx ends TLS, so prod may publish plain HTTP on a public NGINX_BIND_ADDRESS. nginx then sees that proxy's address: the per-address limits below count it as one client unless NGINX_TRUSTED_PROXIES is set.",
    )
    nginx_trusted_proxies: CommaList = var(
        [],
        doc="Comma-separated addresses or networks (10.0.0.0/8) of the proxies in front: nginx takes the client's address from their X-Forwarded-For (set_real_ip_from) and their X-Forwarded-Proto, so limits and logs see real clients. A proxy on this host that connects to 127.0.0.1 reaches nginx from the Docker network's gateway (docker-proxy): list that address. Empty: nginx is the edge and trusts no header.",
        example="",
    )
    # Slow and idle clients (time values: a number with ms, s, m, h or d; bare numbers are seconds).
    nginx_client_header_timeout: str = var(
        "10s", doc="client_header_timeout: a client must send its whole request header within this time (slowloris)."
    )
    nginx_client_body_timeout: str = var(
        "10s", doc="client_body_timeout: the longest pause between two reads of a request body."
    )
    nginx_send_timeout: str = var(
        "10s", doc="send_timeout: the longest pause between two writes to a client that stopped reading."
    )
    nginx_keepalive_timeout: str = var(
        "15s", doc="keepalive_timeout: how long an idle keep-alive connection stays open."
    )
    nginx_keepalive_requests: int = var(1000, doc="keepalive_requests: requests served on one keep-alive connection.")
    nginx_keepalive_time: str = var("1h", doc="keepalive_time: the longest life of one keep-alive connection.")
    nginx_websocket_idle_timeout: str = var(
        "1h",
        doc="How long a websocket may go without a message from the app (proxy_read_timeout) or the client's side accepting one (proxy_send_timeout) before nginx closes it.",
    )
    # Abuse limits, per client address ($binary_remote_addr). Over a limit nginx answers 429.
    nginx_conn_limit_per_ip: int = var(
        100,
        doc="limit_conn: open connections (HTTP/2 streams, websockets) one address may hold at once; 0 turns it off.",
    )
    nginx_login_paths: CommaList = var(
        ["/admin/login/"],
        doc="Comma-separated path prefixes of login forms whose POSTs NGINX_LOGIN_RATE limits.",
        example="/admin/login/",
    )
    nginx_login_rate: str = var("10r/m", doc="limit_req rate of login POSTs per address (r/s or r/m).")
    nginx_login_burst: int = var(5, doc="Login POSTs above NGINX_LOGIN_RATE one address may send at once.")
    nginx_upload_paths: CommaList = var(
        [],
        doc="Comma-separated path prefixes of upload endpoints whose POST, PUT and PATCH requests NGINX_UPLOAD_RATE limits; multipart/form-data bodies are limited on every path.",
        example="/upload",
    )
    nginx_upload_rate: str = var("30r/m", doc="limit_req rate of uploads per address (r/s or r/m).")
    nginx_upload_burst: int = var(10, doc="Uploads above NGINX_UPLOAD_RATE one address may send at once.")

    @field_validator("acme_directory_url")
    @classmethod
    def _directory(cls, value: str) -> str:
        url = urlsplit(value.strip())
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"not an https URL of an ACME directory (e.g. {LETSENCRYPT_DIRECTORY})")
        return value.strip()

    @field_validator("acme_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value.strip()):
            raise ValueError("not an email address (you@example.com)")
        return value.strip() if value else None

    @field_validator("acme_renew_days")
    @classmethod
    def _renew_days(cls, value: int) -> int:
        if not 1 <= value <= 60:
            raise ValueError("must be between 1 and 60 (certificates of public CAs live 90 days or less)")
        return value

    @property
    def acme(self) -> bool:
        return self.use_tls and self.tls_cert_source == "acme"

    @property
    def server_names(self) -> list[str]:
        return self.server_name.split()

    @field_validator("http_port", "https_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("port must be between 1 and 65535")
        return value

    @field_validator(
        "nginx_client_header_timeout",
        "nginx_client_body_timeout",
        "nginx_send_timeout",
        "nginx_keepalive_timeout",
        "nginx_keepalive_time",
        "nginx_websocket_idle_timeout",
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        """An nginx time, 1s to 1d, or 0."""
        match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value.strip())
        if not match:
            raise ValueError("not a time (a number with ms, s, m, h or d, e.g. 10s or 1h)")
        number, unit = int(match[1]), match[2] or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        if seconds > 86400 or (seconds < 1 and seconds != 0):
            raise ValueError("must be between 1s and 1d")
        return f"{number}{unit}"

    @field_validator(
        "nginx_client_header_timeout",
        "nginx_client_body_timeout",
        "nginx_send_timeout",
        "nginx_keepalive_time",
        "nginx_websocket_idle_timeout",
    )
    @classmethod
    def _not_zero(cls, value: str) -> str:
        if re.fullmatch(r"0[a-z]*", value):
            raise ValueError("must be at least 1s (only NGINX_KEEPALIVE_TIMEOUT may be 0, which turns keep-alive off)")
        return value

    @field_validator("nginx_login_rate", "nginx_upload_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        match = re.fullmatch(r"([1-9]\d{0,5})\s*r/([sm])", value.strip())
        if not match:
            raise ValueError("not a request rate (a positive number of requests per second or minute: 10r/m, 5r/s)")
        return f"{match[1]}r/{match[2]}"

    @field_validator("nginx_keepalive_requests", "nginx_login_burst", "nginx_upload_burst", "nginx_conn_limit_per_ip")
    @classmethod
    def _count(cls, value: int, info: ValidationInfo) -> int:
        low = 1 if info.field_name == "nginx_keepalive_requests" else 0
        if not low <= value <= 100000:
            raise ValueError(f"must be between {low} and 100000")
        return value

    @field_validator("nginx_login_paths", "nginx_upload_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not re.fullmatch(r"/[A-Za-z0-9._~%:@/-]*", path):
                raise ValueError(
                    "each path must start with / and hold only letters, digits and . _ ~ % : @ / - (e.g. /admin/login/)"
                )
        return value

    @field_validator("nginx_trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        networks = []
        for item in value:
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8): {item}") from None
            if network.prefixlen == 0:
                raise ValueError("trusting every address lets any client choose the address the limits see")
            networks.append(str(network))
        return networks

    @property
    def binds_loopback(self) -> bool:
        """NGINX_BIND_ADDRESS is a loopback address: nothing off this host reaches nginx."""
        address = self.nginx_bind_address.strip("[]")
        if address == "localhost":
            return True
        try:
            return ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False


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
    django_silenced_checks: CheckIds = var(
        [],
        doc="Comma-separated system check ids the project means to keep (e.g. security.W019 for X_FRAME_OPTIONS = SAMEORIGIN, an app's own hc.api.W002): the overlay adds them to the project's SILENCED_SYSTEM_CHECKS and `up --prod` accepts them, listed as silenced. Other warnings of `check --deploy` are only reported; those guarding DEBUG, SECRET_KEY, ALLOWED_HOSTS, cookies, HSTS and HTTPS, and every error, fail unless listed here.",
        example="",
    )


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
    build_packages: DebianPackages = var(
        [],
        doc="Debian packages the web image's builder stage installs besides its compiler and common headers (build-essential, pkg-config, libpq-dev, libffi-dev, libssl-dev, the Python headers), for requirements that compile: e.g. libxml2-dev libxslt1-dev. Space- or comma-separated; never in the final image.",
        example="",
    )
    runtime_packages: DebianPackages = var(
        [],
        doc="Debian packages the final web image installs besides the shared libraries its compiled requirements link to (found at build time): e.g. gettext or a library loaded at run time. Space- or comma-separated.",
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
    nginx_cpu_limit: Cpus = var("1", doc="CPU limit of nginx in prod.")
    nginx_memory_limit: Size = var("256m", doc="Memory limit of nginx in prod.")
    backup_cpu_limit: Cpus = var(
        "1", doc="CPU limit of the backup container in prod (pg_dump, compression, encryption)."
    )
    backup_memory_limit: Size = var("512m", doc="Memory limit of the backup container in prod.")

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
    backup_job_timeout_seconds: int = var(
        21600,
        doc="The backup scheduler stops a job (dump, archive, off-site copy) that runs longer than this, so a hung one never blocks the next runs.",
    )

    pitr_enabled: bool = var(
        True,
        doc="Prod: point-in-time recovery with pgBackRest. db archives its WAL continuously into a pgBackRest repository (the pgbackrest_repo volume) and the pgbackrest service takes full and differential backups; `stackctl restore db --to latest|TIME` recovers the cluster to a moment.",
    )
    pitr_archive_timeout: int = var(
        60,
        doc="Seconds after which db switches to a new WAL segment so that it is archived: at most this long of commits is only in db's volume (10-3600).",
    )
    pitr_full_cron: Cron = var("30 1 * * 0", doc="When pgBackRest takes a full backup (5-field cron, UTC).")
    pitr_diff_cron: Cron = var(
        "30 1 * * 1-6", doc="When pgBackRest takes a differential backup (changes since the last full)."
    )
    pitr_retention_full: int = var(
        2,
        doc="Full backups pgBackRest keeps per repository, with their differentials and the WAL to recover past them (its repo-retention-full).",
    )
    pitr_repo2_type: Literal["none", "sftp", "s3"] = var(
        "none",
        doc="A second pgBackRest repository off the box: sftp (an SSH server) or s3 (any S3-compatible store). It gets every WAL segment and every backup, encrypted with PITR_REPO2_CIPHER_PASS.",
    )
    pitr_repo2_path: str = var("/pgbackrest", doc="The repository's path on the SFTP server, or in the S3 bucket.")
    pitr_repo2_cipher_pass: SecretStr | None = var(
        None,
        doc="The second repository's encryption passphrase (aes-256-cbc, pgBackRest's own cipher), 20 or more characters; keep a copy off the box: without it that repository cannot be read.",
        sensitive=True,
        example="",
    )
    pitr_repo2_sftp_host: str | None = var(None, doc="sftp: the SSH server's host name or address.", example="")
    pitr_repo2_sftp_port: int = var(22, doc="sftp: the SSH server's port.")
    pitr_repo2_sftp_user: str | None = var(None, doc="sftp: the user pgBackRest logs in as.", example="")
    pitr_repo2_sftp_private_key: str | None = var(
        None,
        doc="sftp: host path of the private key (no passphrase, PEM or OpenSSH format) the user logs in with; it travels in db's secrets volume, never a layer.",
        example="",
    )
    pitr_repo2_sftp_known_hosts: str | None = var(
        None,
        doc="sftp: host path of a known_hosts file with the server's host key (`ssh-keyscan -p PORT HOST`); the key is checked strictly.",
        example="",
    )
    pitr_repo2_s3_bucket: str | None = var(None, doc="s3: the bucket.", example="")
    pitr_repo2_s3_endpoint: str | None = var(
        None, doc="s3: the endpoint host (s3.amazonaws.com, or your store's).", example=""
    )
    pitr_repo2_s3_port: int = var(443, doc="s3: the endpoint's HTTPS port.")
    pitr_repo2_s3_ca_file: str | None = var(
        None,
        doc="s3: host path of a PEM bundle with the CA that signed the endpoint's certificate, for a store with a private CA (pgBackRest's repo2-storage-ca-file); unset, the image's system CAs are trusted. It travels in db's secrets volume.",
        example="",
    )
    pitr_repo2_s3_region: str = var("us-east-1", doc="s3: the region.")
    pitr_repo2_s3_uri_style: Literal["host", "path"] = var(
        "host", doc="s3: bucket in the host name (host) or in the path (path, most self-hosted stores)."
    )
    pitr_repo2_s3_key: SecretStr | None = var(None, doc="s3: the access key.", sensitive=True, example="")
    pitr_repo2_s3_key_secret: SecretStr | None = var(None, doc="s3: the secret access key.", sensitive=True, example="")

    @field_validator("pitr_archive_timeout")
    @classmethod
    def _archive_timeout(cls, value: int) -> int:
        if not 10 <= value <= 3600:
            raise ValueError("must be between 10 and 3600 seconds")
        return value

    @field_validator("pitr_retention_full")
    @classmethod
    def _retention_full(cls, value: int) -> int:
        if not 1 <= value <= 999:
            raise ValueError("must be between 1 and 999")
        return value

    @field_validator("pitr_repo2_sftp_port", "pitr_repo2_s3_port")
    @classmethod
    def _repo2_port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("port must be between 1 and 65535")
        return value

    @field_validator("pitr_repo2_path")
    @classmethod
    def _repo_path(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be an absolute path (e.g. /pgbackrest)")
        return value

    @field_validator("pitr_repo2_cipher_pass")
    @classmethod
    def _cipher_pass(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (len(value.get_secret_value()) < 20 or "\n" in value.get_secret_value()):
            raise ValueError("must be 20 or more characters on one line (e.g. from `openssl rand -base64 30`)")
        return value

    @property
    def repo2(self) -> bool:
        return self.pitr_repo2_type != "none"

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

    @field_validator("backup_job_timeout_seconds")
    @classmethod
    def _job_timeout(cls, value: int) -> int:
        if value < 60:
            raise ValueError("must be 60 seconds or more")
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
    env_name: str | None = None  # a named environment's name (staging); None: the profile's own
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
    # what the env file sets that no group owns: the app's own, passed to web (appvars.py)
    app_variables: tuple[AppVariable, ...] = ()

    @property
    def app_secrets(self) -> tuple[AppVariable, ...]:
        return tuple(v for v in self.app_variables if v.secret)

    @property
    def environment(self) -> Environment:
        return Environment(self.env_name or self.profile, self.profile)

    @property
    def project_name(self) -> str:
        return f"{self.django.stack_name}-{self.environment.name}"

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
            packages=stack_packages(dj.asgi_server),
            stack_dir=dj.stack_dir,
            build_packages=tuple(self.images.build_packages),
            runtime_packages=tuple(self.images.runtime_packages),
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
