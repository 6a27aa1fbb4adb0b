"""The host outside docker: programs (apt-get, mmdebstrap, dockerd), /etc/os-release, /proc.

This is the only module that touches `subprocess`. Docker itself is never called from here:
every docker call goes through python-on-whales (stackctl.adapters.docker).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from stackctl.errors import StackctlError

STDERR_TAIL_LINES = 15


class HostCommandError(StackctlError):
    """A program on the host failed, could not be found, or ran out of time."""

    def __init__(self, argv: Sequence[str], detail: str, *, hint: str | None = None) -> None:
        self.argv = list(argv)
        super().__init__(f"`{' '.join(self.argv)}` {detail}", hint=hint)


def _tail(data: bytes | None) -> str:
    lines = (data or b"").decode(errors="replace").strip().splitlines()
    return "\n".join(lines[-STDERR_TAIL_LINES:])


def run(
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run one program to completion; raise HostCommandError (command + stderr tail) on failure.

    `env` is added to the current environment. Secrets go through `stdin`, never `argv`:
    argv ends up in error messages.
    """
    full_env = {**os.environ, **env} if env else None
    try:
        done = subprocess.run(list(argv), input=stdin, env=full_env, timeout=timeout, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise HostCommandError(argv, "failed: program not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise HostCommandError(argv, f"did not finish within {timeout:g} s\n{_tail(exc.stderr)}".rstrip()) from exc
    if done.returncode != 0:
        raise HostCommandError(argv, f"failed (exit {done.returncode})\n{_tail(done.stderr)}".rstrip())
    return done


def start_daemon(argv: Sequence[str], *, log_file: Path) -> int:
    """Start a long-running program detached from us (own session, stdin from /dev/null,
    stdout and stderr appended to `log_file`) and return its pid without waiting for it."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_file, "ab") as log, open(os.devnull, "rb") as devnull:
            process = subprocess.Popen(
                list(argv), stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
    except FileNotFoundError as exc:
        raise HostCommandError(argv, "failed: program not found") from exc
    return process.pid


def which(program: str) -> Path | None:
    found = shutil.which(program)
    return Path(found) if found else None


def is_root() -> bool:
    return os.geteuid() == 0


APT_TIMEOUT = 900.0
APT_FAMILY = frozenset({"debian", "ubuntu"})


def apt_install(packages: Sequence[str], *, timeout: float = APT_TIMEOUT) -> None:
    """`apt-get update` then `apt-get install -y PACKAGES`, without prompts."""
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update"], env=env, timeout=timeout)
    run(["apt-get", "install", "-y", *packages], env=env, timeout=timeout)


def is_apt_family(release: Mapping[str, str]) -> bool:
    """True on Debian, Ubuntu and their derivatives (by ID or ID_LIKE in /etc/os-release)."""
    family = {release.get("ID", "")} | set(release.get("ID_LIKE", "").split())
    return bool(family & APT_FAMILY)


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """The KEY=value pairs of /etc/os-release (empty when the file is missing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            pairs[key] = value.strip().strip("\"'")
    return pairs


def process_argv(pid: int) -> list[str] | None:
    """The command line of a live process, or None when there is no such (non-zombie) process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def process_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie child of ours is reaped and counts as gone."""
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"]


def terminate(pid: int) -> None:
    """Send SIGTERM; a process that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def install_file(source: Path, target: Path, *, mode: int = 0o755) -> None:
    """Copy `source` to `target` atomically (temp file in the same folder, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp_name)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
