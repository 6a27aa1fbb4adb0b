"""One deploy lock per stack, on the stack's own engine: a created (never started) container
named `<project>-deploy-lock`. The engine refuses a second container of that name, so taking
the lock is atomic wherever the client runs, and the lock lives where the stack does.

Its labels name the holder (user, client host, process id, since when, what it runs). A lock
whose holder ran on this client host and whose process is gone is stale and taken over; any
other is waited for, up to a timeout, then reported with its holder.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from stackctl.core.progress import Report, quiet
from stackctl.errors import ConflictError, DockerCommandError, stderr_tail

LABEL = "io.stackctl.deploy-lock"
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class LockHolder:
    user: str
    host: str
    pid: int
    since: str  # ISO 8601, UTC
    command: str

    @classmethod
    def me(cls, command: str) -> LockHolder:
        return cls(_user(), socket.gethostname(), os.getpid(), datetime.now(UTC).isoformat(timespec="seconds"), command)

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> LockHolder:
        pid = labels.get(f"{LABEL}.pid", "0")
        return cls(
            labels.get(f"{LABEL}.user", "?"),
            labels.get(f"{LABEL}.host", "?"),
            int(pid) if pid.isdigit() else 0,
            labels.get(f"{LABEL}.since", "?"),
            labels.get(f"{LABEL}.command", "?"),
        )

    def labels(self, project: str) -> dict[str, str]:
        return {
            LABEL: project,
            f"{LABEL}.user": self.user,
            f"{LABEL}.host": self.host,
            f"{LABEL}.pid": str(self.pid),
            f"{LABEL}.since": self.since,
            f"{LABEL}.command": self.command,
        }

    def describe(self) -> str:
        return f"{self.user}@{self.host} (pid {self.pid}, `{self.command}`, since {self.since})"

    def is_stale(self) -> bool:
        """Held by a process of this client host that no longer runs."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def lock_name(project: str) -> str:
    return f"{project}-deploy-lock"


def holder(client: DockerClient, project: str) -> LockHolder | None:
    """Who holds the stack's deploy lock, or None."""
    name = lock_name(project)
    try:
        if not client.container.exists(name):
            return None
        labels = client.container.inspect(name).config.labels or {}
    except DockerException:
        return None
    return LockHolder.from_labels(labels)


def _try_take(client: DockerClient, project: str, image: str, me: LockHolder) -> bool:
    try:
        client.container.create(image, ["true"], name=lock_name(project), labels=me.labels(project))
    except DockerException as exc:
        if "already in use" in (exc.stderr or "") or "Conflict" in (exc.stderr or ""):
            return False
        raise DockerCommandError(f"could not take the deploy lock\n{stderr_tail(exc.stderr)}") from None
    return True


def release_lock(client: DockerClient, project: str) -> None:
    with suppress(DockerException):
        client.container.remove(lock_name(project), force=True)


@contextmanager
def deploy_lock(
    client: DockerClient, project: str, *, image: str, command: str, timeout: float, report: Report = quiet
) -> Iterator[LockHolder]:
    """Hold the stack's deploy lock for the block. `image` is any local image (the marker
    container is created, never started). Waits up to `timeout` seconds for another holder;
    then raises ConflictError naming it."""
    me = LockHolder.me(command)
    deadline = time.monotonic() + timeout
    said = False
    while not _try_take(client, project, image, me):
        other = holder(client, project)
        if other is not None and other.is_stale():
            report(f"the deploy lock of {project} was left by {other.describe()}, which no longer runs: taking it over")
            release_lock(client, project)
            continue
        if time.monotonic() >= deadline:
            who = other.describe() if other else "another deploy"
            raise ConflictError(
                f"another deploy of {project} holds the lock: {who}",
                hint="wait for it to finish (or pass a longer --lock-timeout); if its process is gone, "
                f"remove the lock: docker rm {lock_name(project)}",
            )
        if not said:
            report(f"waiting for the deploy lock, held by {other.describe() if other else 'another deploy'}")
            said = True
        time.sleep(POLL_SECONDS)
    try:
        yield me
    finally:
        release_lock(client, project)
