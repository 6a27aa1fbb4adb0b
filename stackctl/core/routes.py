"""The URLs `up` and `status` list: the stack's root, then the paths the app really routes
(GraphQL's, the admin's), as `up` found them in web against the URLconf in effect
(stackctl_verify's `routes`). `up` remembers them per environment; `status` reads them back,
so an app without GraphQL is never shown a /graphql URL, and one whose admin lives at
/backoffice/ is shown that.
"""

from __future__ import annotations

import contextlib
import json

from stackctl.adapters.files import write_atomic
from stackctl.config.profile import Environment
from stackctl.core.project import STATE_DIR, Project

LISTED = ("graphql", "admin")  # in this order, after the root


def _path(env: Environment) -> str:
    return f"{STATE_DIR}/cache/routes-{env.name}.json"


def route_urls(base: str, routes: dict[str, str]) -> list[str]:
    """The root URL `base` (ending in /), then each listed route the app has."""
    if not base:
        return []
    root = base.rstrip("/")
    return [base, *(f"{root}/{routes[name].lstrip('/')}" for name in LISTED if routes.get(name))]


def known_routes(project: Project, env: Environment) -> dict[str, str]:
    """The routes `up` found last time, or none (never brought up, unreadable)."""
    try:
        payload = json.loads((project.root / _path(env)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(payload, dict):
        return {}
    return {k: v for k, v in payload.items() if k in LISTED and isinstance(v, str) and v.startswith("/")}


def remember_routes(project: Project, env: Environment, routes: dict[str, str]) -> None:
    """Best effort: a project folder that cannot be written to lists the root URL only."""
    with contextlib.suppress(OSError):
        text = json.dumps({k: v for k, v in routes.items() if k in LISTED}, indent=2, sort_keys=True) + "\n"
        write_atomic(project.root / _path(env), text.encode(), mode=0o644)
