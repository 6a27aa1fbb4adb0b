"""The environment every Python process of the web image starts with (stackctl, verbatim).

The image's venv imports this module at interpreter start-up (a `stackctl.pth` file in its
site-packages), so daphne, manage.py and `docker compose exec web python ...` all see the
same variables. It sets, from the stack's own variables:

- the names projects' settings commonly read at import: SECRET_KEY (from DJANGO_SECRET_KEY),
  DEBUG (from DJANGO_DEBUG, as 1 or 0) and ALLOWED_HOSTS (from DJANGO_ALLOWED_HOSTS);
- DATABASE_URL, built from POSTGRES_USER/PASSWORD/HOST/PORT/DB when the env file sets none.

They exist in these processes only: never in the image, the container's configuration
(`docker inspect`) or any command line. Standard library only; it runs before everything.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from urllib.parse import quote

TRUE = frozenset({"1", "true", "yes", "on", "y", "ok"})


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
