"""The environment every Python process of the web image starts with (stackctl, verbatim).

The image's venv imports this module at interpreter start-up (a `stackctl.pth` file in its
site-packages), so daphne, manage.py and `docker compose exec web python ...` all see the
same variables. It sets, from the stack's own variables:

- the names projects' settings commonly read at import: SECRET_KEY (from DJANGO_SECRET_KEY),
  DEBUG (from DJANGO_DEBUG, as 1 or 0) and ALLOWED_HOSTS (from DJANGO_ALLOWED_HOSTS);
- DATABASE_URL, built from POSTGRES_USER/PASSWORD/HOST/PORT/DB when the env file sets none;
- the secrets the prod stack passes as files (DJANGO_SECRET_KEY_FILE=/run/secrets/... and
  the like, see SECRET_VARIABLES): each is read into the variable of its name, so that the
  overlay and the project's own settings read them as before;
- REDIS_PASSWORD in REDIS_URL, when the URL is the bundled redis's and names no password.

They exist in these processes only: never in the image, the container's configuration
(`docker inspect`) or any command line. Standard library only; it runs before everything.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from urllib.parse import quote, urlsplit, urlunsplit

TRUE = frozenset({"1", "true", "yes", "on", "y", "ok"})
# The variables that may come as VAR_FILE (stackctl's secrets; see docker-compose.prod.yml).
SECRET_VARIABLES = (
    "DJANGO_SECRET_KEY",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "DATABASE_URL",
    "EMAIL_URL",
    "EMAIL_PASS",
    "SENTRY_DSN",
)
BUNDLED_REDIS_HOST = "redis"


def read_secret_files(environ: MutableMapping[str, str]) -> None:
    """VAR from the file VAR_FILE names, unless VAR is set; an empty file leaves it unset."""
    for name in SECRET_VARIABLES:
        path = environ.get(f"{name}_FILE")
        if not path or environ.get(name):
            continue
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
        if value:
            environ[name] = value
        else:
            environ.pop(name, None)


def redis_url_with_password(url: str, password: str) -> str:
    """`url` with `password` when it is the bundled redis's and carries none."""
    parts = urlsplit(url)
    if parts.hostname != BUNDLED_REDIS_HOST or parts.password or parts.username:
        return url
    return urlunsplit(parts._replace(netloc=f":{quote(password, safe='')}@{parts.netloc}"))


def database_url(environ: MutableMapping[str, str]) -> str | None:
    """DATABASE_URL as set, else the bundled database's from the POSTGRES_* parts (quoted)."""
    if environ.get("DATABASE_URL"):
        return environ["DATABASE_URL"]
    password = environ.get("POSTGRES_PASSWORD")
    if not password:
        return None
    user = quote(environ.get("POSTGRES_USER") or "django", safe="")
    host = environ.get("POSTGRES_HOST") or "db"
    port = environ.get("POSTGRES_PORT") or "5432"
    name = quote(environ.get("POSTGRES_DB") or "django", safe="")
    return f"postgres://{user}:{quote(password, safe='')}@{host}:{port}/{name}"


def set_aliases(environ: MutableMapping[str, str]) -> None:
    read_secret_files(environ)
    if environ.get("REDIS_PASSWORD") and environ.get("REDIS_URL"):
        environ["REDIS_URL"] = redis_url_with_password(environ["REDIS_URL"], environ["REDIS_PASSWORD"])
    if environ.get("DJANGO_SECRET_KEY"):
        environ["SECRET_KEY"] = environ["DJANGO_SECRET_KEY"]
    if environ.get("DJANGO_DEBUG"):
        # 1/0 rather than true/false: `bool(int(...))` and `== "True"` both read it without failing.
        environ["DEBUG"] = "1" if environ["DJANGO_DEBUG"].strip().lower() in TRUE else "0"
    if environ.get("DJANGO_ALLOWED_HOSTS"):
        environ["ALLOWED_HOSTS"] = environ["DJANGO_ALLOWED_HOSTS"]
    url = database_url(environ)
    if url and not environ.get("DATABASE_URL"):
        environ["DATABASE_URL"] = url


set_aliases(os.environ)
