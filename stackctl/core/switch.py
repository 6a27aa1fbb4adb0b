"""The zero-downtime switch on the stack's engine: start a release's web container beside the
serving one, wait for its health, point nginx at it, drain the old one, stop it.

How traffic moves: every web container serves on sockets in its own folder of the `sockets`
volume (/run/stackctl/<container id>/), and nginx's upstream follows the symlink
/run/stackctl/current at every connect (one request per upstream connection, no upstream
keep-alive). The new container renames a new symlink over `current` (atomic: every connect
nginx makes finds the old sockets or the new), and the next request goes to the new release.
nginx is not reloaded: a reload replaces its workers, and the old workers close their idle
client keep-alive connections, so a client sending on one at that moment gets no answer
(measured: 8 keep-alive clients and 20 reloads, 160 failed requests). The old container is
stopped once no connection to its sockets is left (websockets included), or after the drain
bound.

Where those connections are counted: a unix socket accepted by daphne belongs to the network
namespace of the process that connected, nginx's, so nginx's /proc/net/unix lists them, with
the path of the socket they reached; the web container's lists only its listening sockets.
(Counting there found none, and the old release was stopped under in-flight requests.)

Every docker call goes through the stack's python-on-whales client; the web image a compose
call starts is chosen by STACKCTL_WEB_IMAGE, which the compose file interpolates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from python_on_whales.exceptions import DockerException

from stackctl.core.progress import Report, quiet
from stackctl.core.stack import SHOWN_LOG_LINES, ServiceStatus, _failure
from stackctl.errors import DockerCommandError, StackctlError, StackUnhealthy, stderr_tail

if TYPE_CHECKING:
    from stackctl.core.stack import Stack

IMAGE_VARIABLE = "STACKCTL_WEB_IMAGE"
ENTRYPOINT = "/usr/local/bin/docker-entrypoint.sh"
SOCKET_ROOT = "/run/stackctl"
MAINTENANCE_FILE = f"{SOCKET_ROOT}/maintenance"
POLL_SECONDS = 0.2
# the St column of /proc/net/unix: 03 connected, 02 accepted by the kernel but not yet by daphne
UNIX_OPEN = frozenset({"02", "03"})


@contextmanager
def web_image(image: str | None) -> Iterator[None]:
    """Compose calls in the block start (and build) `image` for web. The variable is compose's
    interpolation input only (never a container's environment), set for this process's
    docker calls and restored after."""
    before = os.environ.get(IMAGE_VARIABLE)
    if image is not None:
        os.environ[IMAGE_VARIABLE] = image
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(IMAGE_VARIABLE, None)
        else:
            os.environ[IMAGE_VARIABLE] = before


@dataclass(frozen=True)
class WebContainer:
    name: str
    id: str
    image_id: str
    image: str  # the name it was started from

    @property
    def socket_dir(self) -> str:
        return f"{SOCKET_ROOT}/{self.id[:12]}"


def web_containers(stack: Stack, *, running: bool = True) -> list[WebContainer]:
    names = [
        s.container for s in stack.status().services if s.service == "web" and (s.state == "running" or not running)
    ]
    found = []
    for name in names:
        try:
            c = stack.client.container.inspect(name)
        except DockerException:
            continue
        found.append(WebContainer(name, c.id, str(c.image or ""), str((c.config.image if c.config else "") or "")))
    return found


def start_beside(stack: Stack, image: str, serving: list[WebContainer], report: Report = quiet) -> WebContainer:
    """One more web container, of `image`, beside the serving ones (which compose keeps)."""
    before = {c.name for c in web_containers(stack, running=False)}
    report(f"starting {image} beside {', '.join(c.name for c in serving) or 'nothing'}")
    try:
        with web_image(image):
            for _line in stack.client.compose.up(
                ["web"],
                detach=True,
                recreate=False,
                dependencies=False,
                scales={"web": len(before) + 1},
                stream_logs=True,
            ):
                pass
    except DockerException as exc:
        raise DockerCommandError(
            f"docker compose up of the new release failed (exit {exc.return_code})\n{stderr_tail(exc.stderr)}"
        ) from None
    new = [c for c in web_containers(stack, running=False) if c.name not in before]
    if len(new) != 1:
        raise StackctlError(f"expected one new web container, found {len(new)}")
    return new[0]


def _status_of(stack: Stack, name: str) -> ServiceStatus | None:
    return next((s for s in stack.status().services if s.container == name), None)


def wait_ready(stack: Stack, new: WebContainer, *, timeout: float) -> None:
    """Until `new` passes its healthcheck; fails at once when it exits, is restarted or turns
    unhealthy (StackUnhealthy with its logs)."""
    deadline = time.monotonic() + timeout
    # `new` was just created, so any restart at all is a failure. (Counting from the first
    # status read missed a release that failed and was restarted before that read: the
    # deploy then waited for a second failed start.)
    restarts = 0
    while True:
        status = _status_of(stack, new.name)
        if status is None:
            raise StackUnhealthy(f"the new web container {new.name} disappeared")
        if status.state == "running" and status.health == "healthy":
            return
        why = _failure(status, restarts)
        if why or time.monotonic() >= deadline:
            reason = why or f"is not healthy within {timeout:.0f}s"
            raise StackUnhealthy(
                f"the new release {reason}",
                logs={f"web (new release, {new.name})": container_logs(stack, new.name)},
            )
        time.sleep(POLL_SECONDS)


def start_and_gate(
    stack: Stack, image: str, old: list[WebContainer], *, timeout: float, report: Report = quiet
) -> WebContainer:
    """A web container of `image` beside `old`, healthy; when it is not, it is removed (the old
    ones keep serving, nothing is switched) and the failure raised."""
    new = start_beside(stack, image, old, report)
    report(f"waiting for {new.name} to be healthy")
    try:
        wait_ready(stack, new, timeout=timeout)
    except StackctlError as exc:
        report(f"removing {new.name}; the old release keeps serving, nothing was switched")
        remove(stack, new, stop_seconds=2)
        if isinstance(exc, StackUnhealthy):
            exc.hint = "the old release keeps serving; fix the release, then deploy again"
        raise
    return new


def replace_serving(
    stack: Stack, image: str, old: list[WebContainer], *, timeout: float, drain_seconds: float, report: Report = quiet
) -> tuple[WebContainer, float, float]:
    """The zero-downtime switch from `old` to a new container of `image`: start beside, health
    gate, switch nginx, drain, stop the old. Returns the new container, the time.monotonic()
    at which nginx had switched, and the drain's seconds."""
    new = start_and_gate(stack, image, old, timeout=timeout, report=report)
    report(f"switching nginx to {new.name}")
    switch_to(stack, new)
    switched = time.monotonic()
    return new, switched, drain(stack, old, seconds=drain_seconds, report=report)


def stale_serving(stack: Stack) -> list[WebContainer]:
    """The healthy web containers nginx serves from, when a plain `compose up` would recreate
    them (a new image or configuration); [] when nothing serves or nothing would change."""
    from stackctl.adapters.docker import compose_would_recreate

    status = stack.status()
    if status.running("nginx") is None:
        return []
    healthy = {s.container for s in status.services if s.service == "web" and s.health == "healthy"}
    serving = [c for c in web_containers(stack) if c.name in healthy]
    if not serving or not compose_would_recreate(stack.client, "web"):
        return []
    return serving


def container_logs(stack: Stack, name: str, lines: int = SHOWN_LOG_LINES) -> str:
    try:
        return str(stack.client.container.logs(name, tail=lines))
    except DockerException:
        return "(no logs available)"


def remove(stack: Stack, container: WebContainer, *, stop_seconds: int = 10) -> None:
    """Stop (SIGTERM: its entrypoint removes its socket folder), then remove."""
    with suppress(DockerException):
        stack.client.container.stop(container.name, time=stop_seconds)
    with suppress(DockerException):
        stack.client.container.remove(container.name, force=True)


def switch_to(stack: Stack, new: WebContainer) -> None:
    """Rename `current` to the new container's sockets: nginx's next connect goes there."""
    try:
        stack.client.container.execute(new.name, [ENTRYPOINT, "switch"])
    except DockerException as exc:
        raise DockerCommandError(f"could not switch nginx to {new.name}\n{stderr_tail(exc.stderr)}") from None


def connections(stack: Stack, old: list[WebContainer]) -> int | None:
    """nginx's open connections to the sockets of the `old` containers, from its network
    namespace's /proc/net/unix; None when nginx is not running or cannot be read."""
    nginx = stack.status().running("nginx")
    if nginx is None:
        return None
    try:
        table = str(stack.client.container.execute(nginx.container, ["cat", "/proc/net/unix"]))
    except DockerException:
        return None
    return count_open(table, [c.socket_dir + "/" for c in old])


def count_open(table: str, prefixes: list[str]) -> int:
    count = 0
    for line in table.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and parts[5] in UNIX_OPEN and parts[7].startswith(tuple(prefixes)):
            count += 1
    return count


def drain(stack: Stack, old: list[WebContainer], *, seconds: float, report: Report = quiet) -> float:
    """Wait until nginx has no connection left to the old containers' sockets (at most
    `seconds`), then stop and remove them. Returns the seconds waited."""
    started = time.monotonic()
    deadline = started + seconds
    left = connections(stack, old)
    while left and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        left = connections(stack, old)
    waited = time.monotonic() - started
    if left:
        report(
            f"drain: {seconds:.0f}s passed with {left} connection(s) open to the old release "
            "(websockets or slow requests); they are closed with it"
        )
    for c in old:
        report(f"stopping {c.name}")
        remove(stack, c)
    return waited


def maintenance(stack: Stack, container: WebContainer, *, on: bool) -> None:
    """The maintenance page (nginx answers 503 while the file exists in the sockets volume)."""
    command = ["touch", MAINTENANCE_FILE] if on else ["rm", "-f", MAINTENANCE_FILE]
    try:
        stack.client.container.execute(container.name, command)
    except DockerException as exc:
        raise DockerCommandError(
            f"could not turn the maintenance page {'on' if on else 'off'}\n{stderr_tail(exc.stderr)}"
        ) from None


def tag_as_default(stack: Stack, image: str) -> None:
    """Tag the serving release as `<project>-web` too, so that a later plain compose up
    (a restore starting web again) runs the same code."""
    with suppress(DockerException):
        stack.client.image.tag(image, stack.default_web_image)
