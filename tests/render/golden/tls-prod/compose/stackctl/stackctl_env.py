"""The environment every Python process of the web image starts with (stackctl, verbatim).

The image's venv imports this module at interpreter start-up (a `stackctl.pth` file in its
site-packages), so daphne, manage.py and `docker compose exec web python ...` all see the
same variables. It adds no name the env file does not set: the project's own settings import
with the variables it was given, as they would under its own environment. It only delivers
what the prod stack passes as files:

- stackctl's secrets (DJANGO_SECRET_KEY_FILE=/run/secrets/... and the like, see
  SECRET_VARIABLES): each is read into the variable of its name;
- the app's own secret-looking variables (STACKCTL_APP_SECRETS names them; each is the file
  /run/secrets/app_NAME), read into NAME likewise;
- REDIS_PASSWORD in REDIS_URL, when the URL is the bundled redis's and names no password.

They exist in these processes only: never in the image, the container's configuration
(`docker inspect`) or any command line. DATABASE_URL's fallback from the POSTGRES_* parts
(`database_url`) is for the overlay, which calls it; it is never set here. Standard library
only; it runs before everything.

It also closes psycopg-pool connection pools (Django's `OPTIONS["pool"]`, or the project's
own) when the interpreter exits normally (`close_connection_pools`, an atexit hook). A pool
left open is closed by its finalizer during the interpreter's shutdown, when its worker
threads can no longer run: it then waits 5 s for each of them ("couldn't stop thread ...
within 5.0 seconds"), 20 s for a default pool, at the end of every manage command and every
server process. atexit runs while they still can, so they stop at once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from urllib.parse import quote, urlsplit, urlunsplit

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
# The app's own secrets: names in APP_SECRETS_VARIABLE, each in SECRETS_DIR/app_NAME.
APP_SECRETS_VARIABLE = "STACKCTL_APP_SECRETS"
SECRETS_DIR = "/run/secrets"
BUNDLED_REDIS_HOST = "redis"


def _secret_files(environ: MutableMapping[str, str]) -> Iterator[tuple[str, str]]:
    for name in SECRET_VARIABLES:
        path = environ.get(f"{name}_FILE")
        if path:
            yield name, path
    for name in (environ.get(APP_SECRETS_VARIABLE) or "").split(","):
        if name.strip():
            yield name.strip(), os.path.join(SECRETS_DIR, f"app_{name.strip()}")


def read_secret_files(environ: MutableMapping[str, str]) -> None:
    """VAR from its file, unless VAR is set; an empty file leaves it unset."""
    for name, path in _secret_files(environ):
        if environ.get(name):
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


def deliver(environ: MutableMapping[str, str]) -> None:
    """The secret files into their variables; the redis password into the bundled redis's URL."""
    read_secret_files(environ)
    if environ.get("REDIS_PASSWORD") and environ.get("REDIS_URL"):
        environ["REDIS_URL"] = redis_url_with_password(environ["REDIS_URL"], environ["REDIS_PASSWORD"])


def close_connection_pools() -> None:
    """Close every open psycopg-pool pool of this process while its threads can still stop."""
    if "psycopg_pool" not in sys.modules:
        return
    db = sys.modules.get("django.db")
    if db is not None:
        for connection in db.connections.all(initialized_only=True):
            close_pool = getattr(connection, "close_pool", None)
            if close_pool is not None:
                # an exit hook must not turn an exit into a traceback
                with contextlib.suppress(Exception):
                    close_pool()
    import gc

    pool_class = getattr(sys.modules["psycopg_pool"], "ConnectionPool", None)
    if pool_class is None:
        return
    for obj in gc.get_objects():
        if isinstance(obj, pool_class) and not getattr(obj, "_closed", True):
            with contextlib.suppress(Exception):
                obj.close(timeout=1.0)


deliver(os.environ)
atexit.register(close_connection_pools)
