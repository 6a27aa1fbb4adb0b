"""The host outside docker: programs (apt-get, mmdebstrap, dockerd), /etc/os-release, /proc.

This is the only module that touches `subprocess`. Docker itself is never called from here:
every docker call goes through python-on-whales (stackctl.adapters.docker).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from stackctl.adapters.files import write_atomic
from stackctl.errors import StackctlError, stderr_tail


class HostCommandError(StackctlError):
    """A program on the host failed, could not be found, or ran out of time."""

    def __init__(self, argv: Sequence[str], detail: str, *, hint: str | None = None) -> None:
        self.argv = list(argv)
        super().__init__(f"`{' '.join(self.argv)}` {detail}", hint=hint)


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
        detail = f"did not finish within {timeout:g} s\n{stderr_tail(exc.stderr)}"
        raise HostCommandError(argv, detail.rstrip()) from exc
    if done.returncode != 0:
        raise HostCommandError(argv, f"failed (exit {done.returncode})\n{stderr_tail(done.stderr)}".rstrip())
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
    write_atomic(target, source.read_bytes(), mode=mode)


REGISTRY_HOST = "registry-1.docker.io"
REGISTRY_FIX = "no image registry answers: run `stackctl images build`, then `stackctl init --local-images`"
# What the engine, BuildKit and compose print when no registry can be reached.
_REGISTRY_FAILURE = re.compile(
    r"no such host|dial tcp|i/o timeout|failed to resolve source metadata|pull access denied"
    r"|TLS handshake timeout|connection refused",
    re.IGNORECASE,
)
# The same words about the engine's own socket or a loopback service mean something else.
_NOT_A_REGISTRY = re.compile(r"docker\.sock|unix://|Cannot connect to the Docker daemon|127\.0\.0\.1|localhost|\[::1\]")
_LOCAL_IMAGE = re.compile(r"\b(?:docker\.io/)?(?P<image>stackctl/[a-z0-9._-]+(?::[A-Za-z0-9._-]+)?)")


def registry_answers(host: str = REGISTRY_HOST, timeout: float = 2.0) -> bool:
    """True when the registry's name resolves within `timeout` seconds.

    Only a DNS lookup, in a daemon thread so that a slow resolver cannot hold us: no
    connection is opened to the registry or to any other address. A host without a route to
    any registry has no name for it either, and that is the signal. A name that resolves does
    not prove that pulls work; registry_failure_hint reads those failures afterwards.
    """
    answers: list[bool] = []

    def lookup() -> None:
        try:
            answers.append(bool(socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)))
        except (OSError, UnicodeError):
            answers.append(False)

    thread = threading.Thread(target=lookup, name="stackctl-registry-lookup", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answers) and answers[0]


def registry_failure_hint(stderr: str) -> str | None:
    """The fix when a docker or compose `stderr` says that no image registry could be reached.

    A missing stackctl/* image (which only `stackctl images build` makes) gets its own fix.
    Lines about the engine's socket or a loopback address are not registry failures.
    """
    failures = [
        line for line in stderr.splitlines() if _REGISTRY_FAILURE.search(line) and not _NOT_A_REGISTRY.search(line)
    ]
    if not failures:
        return None
    for line in failures:
        local = _LOCAL_IMAGE.search(line)
        if local:
            image = local.group("image")
            build = "stackctl images build" + (" --suite bookworm" if image.endswith("bookworm") else "")
            return f"{image} is one of stackctl's own images and is not built on this engine: run `{build}`"
    return REGISTRY_FIX


def port_taken(address: str, port: int) -> bool:
    """Whether a TCP port cannot be bound on this host's `address` (something listens on it,
    or it is privileged for this user)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address or "0.0.0.0", port))
        except OSError:
            return True
    return False
