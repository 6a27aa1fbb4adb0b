"""`stackctl manage` on a web that is not running: said plainly, before or after docker's own
126/137 (the docker layer stubbed: scripted container states, an exec that fails)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from stackctl.config import load_config
from stackctl.config.profile import PROD
from stackctl.core.project import Project
from stackctl.core.stack import ServiceStatus, Stack, StackStatus
from stackctl.errors import CommandExited, ServiceNotRunning

KEY = "k8Jd0-Qa_zP3xR7vN2mL5tY9wB4cF6hG1jK0sD8eU3iO7pA2qZ5xC9vB1nM4lT6r"
ENV = f"STACK_NAME=shop\nDJANGO_SECRET_KEY={KEY}\nPOSTGRES_PASSWORD=pw-3kd9Qm2Lx8\n"
CRASH = """\
web-1  | Traceback (most recent call last):
web-1  |   File "/app/shop/settings.py", line 9, in <module>
web-1  |     SECRET = os.environ["SHOP_SIGNING_KEY"]
web-1  | KeyError: 'SHOP_SIGNING_KEY'
web-1  | entrypoint: daphne exited with 1
"""


@dataclass
class Containers:
    error: DockerException | None = None
    calls: list[list[str]] = field(default_factory=list)

    def execute(self, container: str, command: list[str], **_: Any) -> Iterator[tuple[str, bytes]]:
        self.calls.append(command)
        if self.error is not None:
            raise self.error
        return iter([("stdout", b"ok\n")])


@dataclass
class Client:
    container: Containers


def _stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, states: list[ServiceStatus], error: Any = None) -> Stack:
    (tmp_path / ".env.prod").write_text(ENV)
    config = load_config(tmp_path / ".env.prod", profile="prod").config
    stack = Stack(Project.at(tmp_path), PROD, config=config)
    feed = iter(states)
    monkeypatch.setattr(stack, "status", lambda: StackStatus("shop-prod", "prod", [next(feed)], []))
    monkeypatch.setattr(stack, "tail_logs", lambda name, lines=40: CRASH)
    stack._client = Client(Containers(error))  # type: ignore[assignment]
    return stack


def web(
    state: str, *, restarts: int = 0, code: int | None = 0, oom: bool = False, health: str | None = None
) -> ServiceStatus:
    return ServiceStatus("web", "shop-prod-web-1", state, health, [], None, restarts, code, oom)


def test_a_restarting_web_is_said_so_with_its_exception_and_no_exec(tmp_path: Path, monkeypatch) -> None:
    stack = _stack(tmp_path, monkeypatch, [web("restarting", restarts=4, code=1)])
    with pytest.raises(ServiceNotRunning) as caught:
        list(stack.manage(["migrate"], tty=False))
    error = caught.value
    assert error.exit_code == 6
    assert error.message.startswith(
        "web of shop-prod is restarting (exited 4 times; last exit 1): run `stackctl logs web --prod`"
    )
    assert error.message.endswith("KeyError: 'SHOP_SIGNING_KEY'")
    assert "set SHOP_SIGNING_KEY in .env.prod" in (error.hint or "")
    assert stack.client.container.calls == []  # type: ignore[attr-defined]


def test_a_web_running_between_two_restarts_of_a_crash_loop_is_restarting(tmp_path: Path, monkeypatch) -> None:
    stack = _stack(tmp_path, monkeypatch, [web("running", restarts=5, code=1, health="starting")])
    with pytest.raises(ServiceNotRunning) as caught:
        list(stack.manage(["migrate"], tty=False))
    assert caught.value.message.startswith("web of shop-prod is restarting (exited 5 times; last exit 1)")
    assert stack.client.container.calls == []  # type: ignore[attr-defined]


def test_a_web_restarted_once_and_healthy_again_runs_manage(tmp_path: Path, monkeypatch) -> None:
    stack = _stack(tmp_path, monkeypatch, [web("running", restarts=1, code=137, health="healthy")])
    assert list(stack.manage(["check"], tty=False)) == [("stdout", b"ok\n")]


def test_an_exited_web_killed_for_memory_says_so(tmp_path: Path, monkeypatch) -> None:
    stack = _stack(tmp_path, monkeypatch, [web("exited", code=137, oom=True)])
    with pytest.raises(ServiceNotRunning) as caught:
        list(stack.manage(["shell"], tty=False))
    assert "web of shop-prod has exited (last exit 137, killed for memory: raise WEB_MEMORY_LIMIT" in (
        caught.value.message
    )


def test_dockers_126_from_a_web_that_stopped_meanwhile_is_the_state_not_the_raw_message(
    tmp_path: Path, monkeypatch
) -> None:
    error = DockerException(["docker", "exec"], 126, b"", b"cannot exec in a stopped state: unknown")
    stack = _stack(tmp_path, monkeypatch, [web("running"), web("restarting", restarts=1, code=1)], error)
    with pytest.raises(ServiceNotRunning) as caught:
        list(stack.manage(["migrate"], tty=False))
    message = caught.value.message
    assert message.startswith("web of shop-prod is restarting (exited 1 time; last exit 1) (while manage.py ran)")
    assert "cannot exec" not in message


def test_a_137_while_web_kept_running_explains_the_code(tmp_path: Path, monkeypatch) -> None:
    error = DockerException(["docker", "exec"], 137, b"", b"")
    stack = _stack(tmp_path, monkeypatch, [web("running"), web("running")], error)
    with pytest.raises(CommandExited) as caught:
        list(stack.manage(["rebuild_index"], tty=False))
    assert caught.value.exit_code == 137
    assert caught.value.message.startswith("manage.py exited 137: it was killed (SIGKILL")


def test_manage_py_own_failure_is_its_own_code_and_nothing_of_ours(tmp_path: Path, monkeypatch) -> None:
    error = DockerException(["docker", "exec"], 2, b"", b"")
    stack = _stack(tmp_path, monkeypatch, [web("running"), web("running")], error)
    with pytest.raises(CommandExited) as caught:
        list(stack.manage(["nosuchcommand"], tty=False))
    assert caught.value.exit_code == 2 and caught.value.message == ""


def test_a_running_web_runs_manage(tmp_path: Path, monkeypatch) -> None:
    stack = _stack(tmp_path, monkeypatch, [web("running")])
    assert list(stack.manage(["check"], tty=False)) == [("stdout", b"ok\n")]
    assert stack.client.container.calls == [["python", "-m", "stackctl_manage", "check"]]  # type: ignore[attr-defined]


def test_the_cli_prints_the_state_and_exits_non_zero(cli, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".env.prod").write_text(ENV)
    states = iter([web("restarting", restarts=2, code=1)])
    monkeypatch.setattr(Stack, "status", lambda self: StackStatus("shop-prod", "prod", [next(states)], []))
    monkeypatch.setattr(Stack, "tail_logs", lambda self, name, lines=40: CRASH)
    result = cli("manage", "--prod", "migrate", cwd=tmp_path)
    assert result.code == 6
    assert "error: web of shop-prod is restarting (exited 2 times; last exit 1)" in result.err
    assert "KeyError: 'SHOP_SIGNING_KEY'" in result.err
    assert KEY not in result.out + result.err
