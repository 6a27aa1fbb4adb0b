"""Settings of the example project, read only from the process environment.

The container gets its environment from compose; no file is read here. Every
variable but DJANGO_SECRET_KEY and POSTGRES_PASSWORD has a default, an empty
value counts as unset, and variables this module does not know are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

REDIS_CACHE_BACKEND = "django.core.cache.backends.redis.RedisCache"

env = environ.Env()
# Empty means unset (as in stackctl's env files). Every "$" is escaped so that
# django-environ never reads a value starting with "$" (a generated secret
# key or password may) as a reference to another variable; escape_proxy
# turns the escapes back into "$".
env.ENVIRON = {name: value.replace("$", "\\$") for name, value in os.environ.items() if value}
env.escape_proxy = True


def _comma_list(name: str, default: list[str]) -> list[str]:
    return [item.strip() for item in env.list(name, default=default) if item.strip()]


# --- Core -------------------------------------------------------------------

SECRET_KEY: str = env.str("DJANGO_SECRET_KEY")
DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = _comma_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _comma_list("CSRF_TRUSTED_ORIGINS", [])

TIME_ZONE: str = env.str("DJANGO_TIME_ZONE", default="UTC")
LANGUAGE_CODE: str = env.str("DJANGO_LANGUAGE_CODE", default="en-us")
USE_I18N = True
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Benchmarks only (bench/, with requirements-bench.txt installed): serve the collected static
# files from the application with WhiteNoise, to compare with nginx. Off unless set.
if env.bool("USE_WHITENOISE", default=False):
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

# --- Database -----------------------------------------------------------------


def _postgres_url() -> str:
    """DATABASE_URL built from the POSTGRES_* parts, each part URL-quoted."""
    user = quote(env.str("POSTGRES_USER", default="django"), safe="")
    password = quote(env.str("POSTGRES_PASSWORD"), safe="")
    host = env.str("POSTGRES_HOST", default="db")
    port = env.int("POSTGRES_PORT", default=5432)
    name = quote(env.str("POSTGRES_DB", default="django"), safe="")
    return f"postgres://{user}:{password}@{host}:{port}/{name}"


def _database() -> dict[str, Any]:
    if "DATABASE_URL" in env:
        config: dict[str, Any] = env.db("DATABASE_URL")
    else:
        config = env.db_url_config(_postgres_url())
    # 0 by default: under ASGI each concurrent request runs in a thread of its own, and a
    # persistent connection opened there is never reused nor closed (Django's docs say to
    # disable persistent connections under ASGI); 97 stayed open after 120 requests.
    config["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    config["CONN_HEALTH_CHECKS"] = True
    if config["ENGINE"] == "django.db.backends.postgresql":
        # Fail a readiness probe quickly instead of hanging on an unreachable host.
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
        # A connection pool per process (psycopg-pool) instead of a new connection, with its
        # scram-sha-256 handshake, for every request: 2-4x the GraphQL req/s in bench/.
        # DB_POOL=false turns it off; DB_POOL_MAX_SIZE connections per daphne process.
        if env.bool("DB_POOL", default=True):
            config["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
            # With CONN_HEALTH_CHECKS, Django has the pool check each connection it hands out,
            # so one killed with the database (a restart, a restore) is replaced, not used.
            config["OPTIONS"]["pool"] = {"min_size": 2, "max_size": env.int("DB_POOL_MAX_SIZE", default=8)}
    return config


DATABASES = {"default": _database()}

# --- Cache ----------------------------------------------------------------------


def _cache() -> dict[str, Any]:
    url: str = env.str("REDIS_URL", default="redis://redis:6379/0")
    is_redis = url.startswith(("redis://", "rediss://"))
    config: dict[str, Any] = env.cache_url_config(url, backend=REDIS_CACHE_BACKEND if is_redis else None)
    config["TIMEOUT"] = env.int("CACHE_TIMEOUT_SECONDS", default=300)
    if is_redis:
        options = config.setdefault("OPTIONS", {})
        options.setdefault("socket_connect_timeout", 5)
        options.setdefault("socket_timeout", 5)
    return config


CACHES = {"default": _cache()}

# --- Static and media files --------------------------------------------------------

STATIC_URL: str = env.str("STATIC_URL", default="/static/")
STATIC_ROOT: str = env.str("STATIC_ROOT", default="/srv/static")
MEDIA_URL: str = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT: str = env.str("MEDIA_ROOT", default="/srv/media")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
        )
    },
}

# --- Security ---------------------------------------------------------------------

SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes inside the container speak plain HTTP to daphne; never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$"]
SESSION_COOKIE_SECURE: bool = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE: bool = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD: bool = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("SECURE_PROXY_SSL_HEADER", default=False) else None
)
USE_X_FORWARDED_HOST = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# --- Email -------------------------------------------------------------------------


def _email() -> dict[str, Any]:
    if "EMAIL_URL" in env:
        parsed: dict[str, Any] = env.email_url("EMAIL_URL")
        return {
            "EMAIL_BACKEND": parsed["EMAIL_BACKEND"],
            "EMAIL_HOST": parsed.get("EMAIL_HOST") or "localhost",
            "EMAIL_PORT": parsed.get("EMAIL_PORT") or 25,
            "EMAIL_HOST_USER": parsed.get("EMAIL_HOST_USER") or "",
            "EMAIL_HOST_PASSWORD": parsed.get("EMAIL_HOST_PASSWORD") or "",
            "EMAIL_USE_TLS": bool(parsed.get("EMAIL_USE_TLS", False)),
            "EMAIL_USE_SSL": bool(parsed.get("EMAIL_USE_SSL", False)),
        }
    if "EMAIL_HOST" in env:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": env.str("EMAIL_HOST"),
            "EMAIL_PORT": env.int("EMAIL_PORT", default=587),
            "EMAIL_HOST_USER": env.str("EMAIL_USER", default=""),
            "EMAIL_HOST_PASSWORD": env.str("EMAIL_PASS", default=""),
            "EMAIL_USE_TLS": env.bool("EMAIL_USE_TLS", default=True),
            "EMAIL_USE_SSL": False,
        }
    return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}


_EMAIL = _email()
EMAIL_BACKEND: str = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST: str = _EMAIL.get("EMAIL_HOST", "localhost")
EMAIL_PORT: int = _EMAIL.get("EMAIL_PORT", 25)
EMAIL_HOST_USER: str = _EMAIL.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD: str = _EMAIL.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS: bool = _EMAIL.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL: bool = _EMAIL.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="webmaster@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Logging -----------------------------------------------------------------------

LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO").upper()

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
            "level": LOG_LEVEL,
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # At DEBUG this logger prints every SQL statement with its parameters.
        "django.db.backends": {"level": "INFO"},
    },
}
