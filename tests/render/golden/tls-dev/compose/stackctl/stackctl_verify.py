"""Print the settings in effect in the web container as one JSON line (stackctl, verbatim).

`python -m stackctl_verify` in /app: it loads Django as daphne does (it imports the module
of DJANGO_ASGI_APPLICATION, whose import may choose the settings), then reports what
stackctl compares with the env file: DEBUG, the default database, STATIC_ROOT and
MEDIA_ROOT, whether SECRET_KEY is insecure (never the key itself) and the messages of
`manage.py check --deploy` (silenced ones too, marked: stackctl names those that
DJANGO_SILENCED_CHECKS silenced), and the routes stackctl lists (`python -m stackctl_verify routes`:
only those). Only the JSON line goes to stdout; whatever Django or the
project logs meanwhile goes to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

# Django's own rule for an insecure SECRET_KEY (check security.W009).
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
SECRET_KEY_INSECURE_PREFIX = "django-insecure-"


def insecure(key: object) -> bool:
    text = key if isinstance(key, str) else ""
    return (
        not text
        or len(text) < SECRET_KEY_MIN_LENGTH
        or len(set(text)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or text.startswith(SECRET_KEY_INSECURE_PREFIX)
    )


def load_django() -> None:
    app = os.environ.get("DJANGO_ASGI_APPLICATION", "")
    if app:
        importlib.import_module(app.partition(":")[0])
    import django

    django.setup()


def report() -> dict[str, Any]:
    load_django()
    from django.conf import settings
    from django.core import checks
    from django.db import connections

    default = settings.DATABASES.get("default", {})
    found = checks.run_checks(include_deployment_checks=True)
    messages = [m for m in found if m.level >= checks.WARNING]
    return {
        "settings_module": settings.SETTINGS_MODULE,
        "overlay": bool(getattr(settings, "STACKCTL_OVERLAY", False)),
        "debug": bool(settings.DEBUG),
        "database": {
            "vendor": connections["default"].vendor if default else "",
            "engine": str(default.get("ENGINE", "")),
            "host": str(default.get("HOST", "")),
            "name": str(default.get("NAME", "")),
        },
        "static_root": str(settings.STATIC_ROOT or ""),
        "media_root": str(settings.MEDIA_ROOT or ""),
        "secret_key_insecure": insecure(getattr(settings, "SECRET_KEY", "")),
        "checks": [
            {
                "id": m.id or "",
                "level": _level(m.level),
                "msg": str(m.msg),
                "hint": str(m.hint or ""),
                "silenced": m.is_silenced(),
            }
            for m in messages
        ],
        "sentry": str(getattr(settings, "STACKCTL_SENTRY", "off")),
        "routes": listed_routes(),
    }


def listed_routes() -> dict[str, str]:
    """routes(), or none when the URLconf cannot be resolved: the settings report stands alone."""
    try:
        return routes()
    except Exception as exc:  # an URLconf that fails to import: the app's error, not this report's
        print(f"stackctl_verify: no routes: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {}


def routes() -> dict[str, str]:
    """The paths the app really routes, of those stackctl lists (`up`, `status`): GraphQL's
    (/graphql or /graphql/, when the view found there is a GraphQL one, not a catch-all) and
    the admin's index (wherever the URLconf mounts it), resolved against the URLconf in effect."""
    from django.apps import apps
    from django.urls import NoReverseMatch, Resolver404, resolve, reverse

    found: dict[str, str] = {}
    for path in ("/graphql", "/graphql/"):
        try:
            match = resolve(path)
        except Resolver404:
            continue
        view = getattr(match.func, "view_class", match.func)
        names = (match.route, match.url_name, getattr(view, "__module__", ""), getattr(view, "__qualname__", ""))
        if any("graphql" in str(name or "").lower() for name in names):
            found["graphql"] = path
            break
    if apps.is_installed("django.contrib.admin"):
        try:
            found["admin"] = reverse("admin:index")
        except NoReverseMatch:  # an admin app without its URLs
            return found
    return found


def _level(level: int) -> str:
    from django.core import checks

    names = {checks.CRITICAL: "CRITICAL", checks.ERROR: "ERROR", checks.WARNING: "WARNING"}
    return names.get(level, str(level))


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # logs printed to stdout go to stderr
    if sys.argv[1:] == ["routes"]:  # only the routes (`stackctl up` of a dev-kind stack)
        load_django()
        payload = routes()
    else:
        payload = report()
    out.write(json.dumps(payload, sort_keys=True) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
