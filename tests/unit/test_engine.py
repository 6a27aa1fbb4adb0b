"""ensure_engine and stop_engine against a stubbed host: nothing here touches the real machine."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stackctl.adapters import host
from stackctl.core import engine
from stackctl.errors import EngineError

COMPOSE = "Docker Compose version v2.40.3"
DEBIAN = {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
REAL_START_DAEMON, REAL_TERMINATE = host.start_daemon, host.terminate


def _forbidden(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"host.{name} must not be called here (args={args!r})")

    return call


@pytest.fixture(autouse=True)
def quiet_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every host action fails the test unless a test allows it; state lives under tmp_path."""
    for name in ("run", "apt_install", "start_daemon", "install_file", "terminate"):
        monkeypatch.setattr(host, name, _forbidden(name))
    monkeypatch.setattr(host, "which", lambda program: Path(f"/usr/bin/{program}"))
    monkeypatch.setattr(host, "os_release", lambda: dict(DEBIAN))
    monkeypatch.setattr(host, "is_root", lambda: True)
    monkeypatch.setattr(engine, "POLL_INTERVAL", 0.0)
    monkeypatch.setenv("STACKCTL_STATE_DIR", str(tmp_path / "state"))
    yield


def _answers(monkeypatch: pytest.MonkeyPatch, *replies: bool) -> None:
    """engine_answers() gives these replies in turn, then keeps the last one."""
    queue = list(replies)
    monkeypatch.setattr(engine, "engine_answers", lambda client=None: queue.pop(0) if len(queue) > 1 else queue[0])


def _compose(monkeypatch: pytest.MonkeyPatch, *replies: str | None) -> None:
    queue = list(replies)
    monkeypatch.setattr(engine, "compose_version", lambda client: queue.pop(0) if len(queue) > 1 else queue[0])


def test_running_engine_with_compose_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _answers(monkeypatch, True)
    _compose(monkeypatch, COMPOSE)
    said: list[str] = []

    report = engine.ensure_engine(said.append)

    assert report.changed is False
    assert report.pid is None and report.log_file is None
    assert report.compose_version == COMPOSE
    assert said == report.steps == [f"engine already running ({COMPOSE})"]
    assert not engine.pid_file().exists()


@pytest.mark.parametrize(
    "release",
    [{"ID": "fedora", "PRETTY_NAME": "Fedora Linux 40"}, {}],
    ids=["fedora", "no-os-release"],
)
def test_no_engine_outside_debian_is_an_engine_error(monkeypatch: pytest.MonkeyPatch, release: dict[str, str]) -> None:
    _answers(monkeypatch, False)
    _compose(monkeypatch, None)
    monkeypatch.setattr(host, "os_release", lambda: release)

    with pytest.raises(EngineError) as caught:
        engine.ensure_engine(lambda _: None)

    assert "only on Debian or Ubuntu" in caught.value.message
    assert caught.value.hint is not None
    assert "install Docker Engine" in caught.value.hint and "Compose v2 plugin" in caught.value.hint
    assert caught.value.exit_code == 4


def test_missing_compose_outside_debian_names_only_compose(monkeypatch: pytest.MonkeyPatch) -> None:
    _answers(monkeypatch, True)
    _compose(monkeypatch, None)
    monkeypatch.setattr(host, "os_release", lambda: {"ID": "arch"})

    with pytest.raises(EngineError) as caught:
        engine.ensure_engine(lambda _: None)

    assert caught.value.hint is not None
    assert "Compose v2 plugin" in caught.value.hint and "install Docker Engine" not in caught.value.hint


def test_debian_without_root_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _answers(monkeypatch, False)
    _compose(monkeypatch, None)
    monkeypatch.setattr(host, "is_root", lambda: False)

    with pytest.raises(EngineError, match="needs root"):
        engine.ensure_engine(lambda _: None)


def test_bare_debian_host_gets_engine_plugin_and_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No dockerd, no compose plugin; the daemon answers on the third poll.
    _answers(monkeypatch, False, False, False, True)
    _compose(monkeypatch, None, None, COMPOSE)
    installed = {"dockerd": False}
    monkeypatch.setattr(
        host, "which", lambda p: Path(f"/usr/bin/{p}") if p != "dockerd" or installed["dockerd"] else None
    )
    calls: list[tuple[str, Any]] = []

    def apt_install(packages: list[str], **_: Any) -> None:
        calls.append(("apt_install", list(packages)))
        installed["dockerd"] = True

    binary = tmp_path / "compose" / "docker-compose"
    monkeypatch.setattr(host, "apt_install", apt_install)
    monkeypatch.setattr(engine, "compose_binary", lambda: binary)
    monkeypatch.setattr(host, "install_file", lambda src, dst, **_: calls.append(("install_file", (src, dst))))

    def start_daemon(argv: list[str], *, log_file: Path) -> int:
        calls.append(("start", (argv, log_file)))
        return 4242

    monkeypatch.setattr(host, "start_daemon", start_daemon)
    monkeypatch.setattr(host, "process_alive", lambda pid: True)

    report = engine.ensure_engine(lambda _: None)

    assert calls == [
        ("apt_install", ["docker.io"]),
        ("install_file", (binary, engine.PLUGIN_PATH)),
        ("start", (["dockerd"], engine.DOCKERD_LOG)),
    ]
    assert report.changed is True
    assert report.pid == 4242 and report.log_file == engine.DOCKERD_LOG
    assert report.compose_version == COMPOSE
    assert engine.pid_file() == tmp_path / "state" / "dockerd.pid"
    assert engine.pid_file().read_text().strip() == "4242"


def test_daemon_that_never_answers_names_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    _answers(monkeypatch, False)
    _compose(monkeypatch, COMPOSE)
    monkeypatch.setattr(host, "start_daemon", lambda argv, log_file: 4242)
    monkeypatch.setattr(host, "process_alive", lambda pid: True)
    monkeypatch.setattr(engine, "START_TIMEOUT", -1.0)

    with pytest.raises(EngineError) as caught:
        engine.ensure_engine(lambda _: None)

    assert caught.value.hint == f"see {engine.DOCKERD_LOG}"


def test_stop_without_state_file_changes_nothing() -> None:
    said: list[str] = []

    report = engine.stop_engine(said.append)

    assert report.changed is False and report.pid is None
    assert said == report.steps
    assert "did not start" in said[0]


def test_stop_leaves_a_process_that_is_not_dockerd_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # The recorded pid now belongs to another program (here: this test's own process).
    engine.pid_file().parent.mkdir(parents=True)
    engine.pid_file().write_text(f"{os.getpid()}\n")

    report = engine.stop_engine(lambda _: None)

    assert report.changed is False
    assert not engine.pid_file().exists()  # the stale record goes; the process stays
    assert host.process_alive(os.getpid())


def test_stop_terminates_the_dockerd_stackctl_started(monkeypatch: pytest.MonkeyPatch) -> None:
    engine.pid_file().parent.mkdir(parents=True)
    engine.pid_file().write_text("4242\n")
    alive = iter([True, True, False])
    signalled: list[int] = []
    monkeypatch.setattr(host, "process_argv", lambda pid: ["dockerd"] if pid == 4242 else None)
    monkeypatch.setattr(host, "process_alive", lambda pid: next(alive))
    monkeypatch.setattr(host, "terminate", signalled.append)

    report = engine.stop_engine(lambda _: None)

    assert signalled == [4242]
    assert report.changed is True and report.pid == 4242
    assert not engine.pid_file().exists()


def test_stop_signals_a_real_process_named_dockerd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A copy of `sleep` named dockerd stands in for the daemon: real pid file, real SIGTERM, real /proc.
    sleep = shutil.which("sleep")
    assert sleep is not None
    fake = tmp_path / "bin" / "dockerd"
    fake.parent.mkdir()
    shutil.copy(sleep, fake)
    monkeypatch.setattr(host, "terminate", REAL_TERMINATE)
    pid = REAL_START_DAEMON([str(fake), "60"], log_file=tmp_path / "dockerd.log")
    deadline = time.monotonic() + 5  # /proc shows the new command line only once exec completes
    while host.process_argv(pid) != [str(fake), "60"] and time.monotonic() < deadline:
        time.sleep(0.01)
    engine.pid_file().parent.mkdir(parents=True)
    engine.pid_file().write_text(f"{pid}\n")

    report = engine.stop_engine(lambda _: None)

    assert report.changed is True and report.pid == pid
    assert not host.process_alive(pid)
    assert not engine.pid_file().exists()
