"""Does the app answer a real request? web's healthcheck is answered by the stack itself
(stackctl_health: it never touches the project's URLconf, middleware or log), so a web that
fails every request is still healthy. `up` asks `GET /` once, inside web, through the socket
nginx uses (the TCP port without one), with the headers nginx sends, and a 5xx fails `up`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from python_on_whales.exceptions import DockerException

if TYPE_CHECKING:
    from stackctl.core.stack import Stack

# Run by web's own Python (-I -S: nothing of the project's is imported): the status code.
ASK = r"""
import os, socket
host = (os.environ.get("DJANGO_ALLOWED_HOSTS") or "localhost").split(",")[0].strip().lstrip(".")
host = "localhost" if host in ("", "*") else host
path = os.path.join(os.environ.get("STACKCTL_SOCKET_DIR") or "/run/stackctl", "current", "daphne-8000.sock")
if os.path.exists(path):
    conn = socket.socket(socket.AF_UNIX)
    conn.settimeout(60)
    conn.connect(path)
else:
    conn = socket.create_connection(("127.0.0.1", 8000), timeout=60)
with conn:
    conn.sendall(
        f"GET / HTTP/1.0\r\nHost: {host}\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n".encode()
    )
    print(conn.makefile("rb").readline(200).split()[1].decode())
"""


def app_status(stack: Stack) -> tuple[int | None, str]:
    """The HTTP status web's app answers `GET /` with, or None and why it did not answer."""
    # by container name, not `compose exec web` (container 1): after a deploy's switch the
    # serving container has another number
    web = stack.running_service("web")  # else: exited, restarting, with its last exception
    try:
        out = str(stack.client.container.execute(web.container, ["python", "-I", "-S", "-c", ASK], tty=False))
    except DockerException as exc:
        lines = (exc.stderr or exc.stdout or "").strip().splitlines()
        return None, lines[-1] if lines else f"exit {exc.return_code}"
    text = out.strip().splitlines()[-1] if out.strip() else ""
    return (int(text), "") if text.isdigit() else (None, f"no HTTP status line ({text[:80]!r})")
