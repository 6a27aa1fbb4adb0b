"""The settings the stack runs the project under (stackctl's settings overlay, verbatim).

DJANGO_SETTINGS_MODULE=stackctl_settings in the web container. It imports the project's own
settings module (named by STACKCTL_BASE_SETTINGS, the env file's DJANGO_SETTINGS_MODULE),
keeps every setting of it, then sets from the environment, read with django-environ, what
the stack decides: SECRET_KEY, DEBUG, ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS; the default
database on the db service and the default cache on redis; STATIC_ROOT/MEDIA_ROOT on the
volumes nginx serves; the security flags, and the check ids of DJANGO_SILENCED_CHECKS
appended to the project's SILENCED_SYSTEM_CHECKS; email (when configured); LOGGING to stdout; and
error reporting with Sentry (when SENTRY_DSN is set). An empty variable counts as unset.

It reads nothing but the environment, which compose fills from the validated env file, and
the secrets the prod stack passes as files (/run/secrets/*, named by DJANGO_SECRET_KEY_FILE
and the like), which stackctl_env reads into the variables of their names. The project's
module imports first, with the environment as the env file wrote it (nothing is added for
it): every setting above is set after that import. A project's own postgres engine (a
subclass of Django's backend, postgis included) is kept; only its connection changes.
DJANGO_SETTINGS_OVERLAY=false runs the project's own settings module instead.
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
from typing import Any

import environ
import stackctl_env
from django.core.exceptions import ImproperlyConfigured

stackctl_env.deliver(os.environ)  # again, for an interpreter started without site (-S)
_base = importlib.import_module(os.environ["STACKCTL_BASE_SETTINGS"])
globals().update({name: getattr(_base, name) for name in dir(_base) if name.isupper()})

_env = environ.Env()
# Every "$" is escaped so that django-environ never reads a value starting with "$" (a
# generated secret may) as a reference to another variable; escape_proxy turns them back.
_env.ENVIRON = {name: value.replace("$", "\\$") for name, value in os.environ.items() if value}
_env.escape_proxy = True

_POSTGRES_ENGINES = ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis")
_REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
STACKCTL_OVERLAY = True  # stackctl_verify reports it

# --- Core ----------------------------------------------------------------------------------

SECRET_KEY: str = _env.str("DJANGO_SECRET_KEY")
DEBUG: bool = _env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = [h.strip() for h in _env.list("DJANGO_ALLOWED_HOSTS", default=[]) if h.strip()]
CSRF_TRUSTED_ORIGINS: list[str] = [o.strip() for o in _env.list("CSRF_TRUSTED_ORIGINS", default=[]) if o.strip()]
if "DJANGO_TIME_ZONE" in _env:
    TIME_ZONE: str = _env.str("DJANGO_TIME_ZONE")
if "DJANGO_LANGUAGE_CODE" in _env:
    LANGUAGE_CODE: str = _env.str("DJANGO_LANGUAGE_CODE")

# --- Database: the db service (or DATABASE_URL) --------------------------------------------

# What of the project's own default database still makes sense on postgres.
_KEPT_DATABASE_KEYS = ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "ATOMIC_REQUESTS", "AUTOCOMMIT")


def is_postgres_engine(engine: object) -> bool:
    """Django's postgres or postgis backend, or a project's own subclass of either (metrics
    and retry wrappers): the `DatabaseWrapper` of ENGINE's `base` module, as Django loads it."""
    if not isinstance(engine, str) or not engine:
        return False
    if engine in _POSTGRES_ENGINES:
        return True
    if engine.startswith("django."):
        return False  # Django's other backends: sqlite, MySQL, Oracle
    try:
        from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper

        wrapper = importlib.import_module(f"{engine}.base").DatabaseWrapper
    except Exception as exc:  # whatever stops it loading here, it is replaced, and said so
        logging.getLogger("stackctl").warning(
            "DATABASES['default']['ENGINE'] = %r could not be loaded (%s: %s), so the stack's postgres engine "
            "replaces it: make %s.base importable before django.setup() to keep it",
            engine,
            type(exc).__name__,
            exc,
            engine,
        )
        return False
    return isinstance(wrapper, type) and issubclass(wrapper, PostgresWrapper)


def _database(project: dict[str, Any]) -> dict[str, Any]:
    url = stackctl_env.database_url(dict(os.environ))
    if url is None:
        raise ImproperlyConfigured("set POSTGRES_PASSWORD (or DATABASE_URL) in the env file")
    config: dict[str, Any] = _env.db_url_config(url)
    was_postgres = is_postgres_engine(project.get("ENGINE"))
    if was_postgres:
        config["ENGINE"] = project["ENGINE"]  # postgis stays postgis, the project's own stays its own
    for key in _KEPT_DATABASE_KEYS:
        if key in project:
            config[key] = project[key]
    if was_postgres:
        # sqlite's or MySQL's OPTIONS (timeout, init_command, ...) would break the driver
        config["OPTIONS"] = {**project.get("OPTIONS", {}), **config.get("OPTIONS", {})}
        if "DISABLE_SERVER_SIDE_CURSORS" in project:
            config["DISABLE_SERVER_SIDE_CURSORS"] = project["DISABLE_SERVER_SIDE_CURSORS"]
    return config


_databases: dict[str, Any] = dict(globals().get("DATABASES") or {})
DATABASES = {**_databases, "default": _database(dict(_databases.get("default") or {}))}

# --- Cache: the redis service ---------------------------------------------------------------


def _cache(project: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "BACKEND": _REDIS_CACHE,
        "LOCATION": _env.str("REDIS_URL", default="redis://redis:6379/0"),
        "TIMEOUT": _env.int("CACHE_TIMEOUT_SECONDS", default=300),
    }
    for key in ("KEY_PREFIX", "VERSION", "KEY_FUNCTION"):
        if key in project:
            config[key] = project[key]
    if project.get("BACKEND") == _REDIS_CACHE and "OPTIONS" in project:
        config["OPTIONS"] = project["OPTIONS"]
    return config


_caches: dict[str, Any] = dict(globals().get("CACHES") or {})
CACHES = {**_caches, "default": _cache(dict(_caches.get("default") or {}))}

# --- Static and media files: the volumes nginx serves ---------------------------------------

STATIC_URL: str = _env.str("STATIC_URL", default="/static/")
STATIC_ROOT: str = _env.str("STATIC_ROOT", default="/srv/static")
MEDIA_URL: str = _env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT: str = _env.str("MEDIA_ROOT", default="/srv/media")

# --- Security ---------------------------------------------------------------------------------

SECURE_SSL_REDIRECT: bool = _env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE: bool = _env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE: bool = _env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS: int = _env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = _env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD: bool = _env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if _env.bool("SECURE_PROXY_SSL_HEADER", default=True) else None
)
# The project's own silenced checks stay; the env file's are added (deliberate warnings).
_silenced: list[str] = list(globals().get("SILENCED_SYSTEM_CHECKS") or [])
_listed = [ident.strip() for ident in _env.list("DJANGO_SILENCED_CHECKS", default=[]) if ident.strip()]
SILENCED_SYSTEM_CHECKS = _silenced + [ident for ident in _listed if ident not in _silenced]

# --- Email: only when the env file configures it -----------------------------------------------

if "EMAIL_URL" in _env:
    globals().update({k: v for k, v in _env.email_url("EMAIL_URL").items() if k.startswith("EMAIL_")})
elif "EMAIL_HOST" in _env:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST: str = _env.str("EMAIL_HOST")
    EMAIL_PORT: int = _env.int("EMAIL_PORT", default=587)
    EMAIL_HOST_USER: str = _env.str("EMAIL_USER", default="")
    EMAIL_HOST_PASSWORD: str = _env.str("EMAIL_PASS", default="")
    EMAIL_USE_TLS: bool = _env.bool("EMAIL_USE_TLS", default=True)
if "EMAIL_URL" in _env or "EMAIL_HOST" in _env:
    DEFAULT_FROM_EMAIL: str = _env.str("DEFAULT_FROM_EMAIL", default="webmaster@localhost")
    SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Logging: the project's loggers, and everything on stdout at LOG_LEVEL ------------------------

LOG_LEVEL: str = _env.str("LOG_LEVEL", default="INFO").upper()


def _logging(project: dict[str, Any] | None) -> dict[str, Any]:
    config = copy.deepcopy(project) if project else {"version": 1, "disable_existing_loggers": False}
    handlers = config.setdefault("handlers", {})
    root = config.setdefault("root", {})
    own = [handlers.get(name, {}) for name in root.get("handlers", [])]
    if not any(h.get("class") == "logging.StreamHandler" for h in own):
        config.setdefault("formatters", {})["stackctl"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
        handlers["stackctl_console"] = {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "stackctl",
        }
        root["handlers"] = [*root.get("handlers", []), "stackctl_console"]
    root["level"] = LOG_LEVEL
    return config


LOGGING = _logging(globals().get("LOGGING"))

# --- Error reporting ---------------------------------------------------------------------------

STACKCTL_SENTRY = "off"  # off, on, or missing (SENTRY_DSN set, sentry-sdk not installed)
if "SENTRY_DSN" in _env:
    try:
        import sentry_sdk
        from sentry_sdk.integrations.django import DjangoIntegration
    except ImportError:
        STACKCTL_SENTRY = "missing"
        logging.getLogger("stackctl").warning(
            "SENTRY_DSN is set but the project does not install sentry-sdk, so errors are not reported: "
            "add sentry-sdk to the project's dependencies"
        )
    else:
        STACKCTL_SENTRY = "on"
        sentry_sdk.init(
            dsn=_env.str("SENTRY_DSN"),
            integrations=[DjangoIntegration()],
            environment=_env.str("SENTRY_ENVIRONMENT", default=None),
            release=_env.str("SENTRY_RELEASE", default=None),
            send_default_pii=False,
        )
