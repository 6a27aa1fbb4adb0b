"""The one place the harness runs commands, plus what it records about the host."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STACKCTL = REPO / ".venv" / "bin" / "stackctl"


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message holds the command and the tail of its output."""


@dataclass(frozen=True)
class Ran:
    argv: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    stdin: str | None = None,
    check: bool = True,
) -> Ran:
    """Run one command with a hard timeout; time it; raise BenchError when `check` and it fails."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120", **(env or {})}
    started = time.monotonic()
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=full_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {timeout:.0f}s: {shlex.join(argv)}") from exc
    ran = Ran(list(argv), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BenchError(f"exit {proc.returncode}: {shlex.join(argv)}\n{tail}")
    return ran


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def host_info() -> dict[str, object]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    docker = run(["docker", "version", "--format", "{{.Server.Version}} {{.Client.Version}}"], check=False)
    server, _, client = docker.stdout.strip().partition(" ")
    compose = run(["docker", "compose", "version", "--short"], check=False).stdout.strip()
    wrk = run(["wrk", "-v"], check=False)
    return {
        "nproc": os.cpu_count(),
        "memory_bytes": mem_kib * 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker_server": server,
        "docker_client": client,
        "compose": compose,
        "wrk": (wrk.stdout + wrk.stderr).strip().splitlines()[0] if (wrk.stdout + wrk.stderr).strip() else "",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def ca_bundle() -> str | None:
    """The host's CA bundle, for pip inside builds behind a TLS-intercepting proxy (see TESTBED.md)."""
    import ssl

    for candidate in (os.environ.get("PIP_CERT"), ssl.get_default_verify_paths().cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return None
