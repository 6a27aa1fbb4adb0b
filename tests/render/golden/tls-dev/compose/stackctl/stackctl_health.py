"""The stack's own health answer, in front of the project's ASGI application (stackctl, verbatim).

The web container's healthcheck asks every server process for HEALTH_PATH every second. This
wrapper answers it itself, before Django: the project's URLconf, middleware and log never see
the probe (an app without such a route would otherwise log `Not Found` twice a second, and an
app with middleware that touches the database or a session would do that work per probe).

Only the probe is answered here: a request that came through nginx (which always sets
X-Forwarded-For) goes to the project, whatever its path, so the project keeps its own routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

HEALTH_PATH = "/.stackctl/health"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HEADERS = [(b"content-type", b"text/plain"), (b"cache-control", b"no-store"), (b"content-length", b"3")]

# The wrapped application daphne serves as `stackctl_health:application` (set by the entrypoint).
application: ASGIApp | None = None


def is_probe(scope: Scope) -> bool:
    """The healthcheck's own request: HEALTH_PATH, straight to the process, not through nginx."""
    if scope.get("type") != "http" or scope.get("path") != HEALTH_PATH:
        return False
    return not any(name.lower() == b"x-forwarded-for" for name, _value in scope.get("headers") or ())


def answering(app: ASGIApp) -> ASGIApp:
    """`app`, with the health probe answered in front of it."""

    async def health(scope: Scope, receive: Receive, send: Send) -> None:
        if is_probe(scope):
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": b"ok\n"})
            return
        await app(scope, receive, send)

    return health
