"""Stack.wait_healthy, with the docker layer stubbed: a scripted sequence of statuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stackctl.config.profile import DEV
from stackctl.core.project import Project
from stackctl.core.stack import ServiceStatus, StackIdentity, StackStatus, StackView
from stackctl.errors import StackUnhealthy


def _status(*services: tuple[str, str, str | None, int]) -> StackStatus:
    return StackStatus(
        "demo",
        "prod",
        [
            ServiceStatus(name, f"demo-{name}-1", state, health, [], None, restarts)
            for name, state, health, restarts in services
        ],
        [],
    )


def _stack(monkeypatch: pytest.MonkeyPatch, statuses: list[StackStatus]) -> tuple[StackView, list[int]]:
    # a running stack needs no config; no client is made: status() is scripted below
    stack = StackView(Project(Path("/nonexistent"), Path("/nonexistent")), DEV, StackIdentity("p-dev", ()))
    calls = [0]
    feed: Iterator[StackStatus] = iter(statuses)

    def status() -> StackStatus:
        calls[0] += 1
        return next(feed)

    monkeypatch.setattr(stack, "status", status)
    monkeypatch.setattr(stack, "tail_logs", lambda name, lines=40: f"logs of {name}")
    monkeypatch.setattr(stack, "service_names", lambda: ["web", "db"])
    monkeypatch.setattr(StackView, "POLL_SECONDS", 0.0)
    return stack, calls


def test_returns_once_every_service_runs_and_passes_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    stack, calls = _stack(
        monkeypatch,
        [
            _status(("web", "running", "starting", 0), ("db", "running", "healthy", 0), ("redis", "running", None, 0)),
            _status(("web", "running", "starting", 0), ("db", "running", "healthy", 0), ("redis", "running", None, 0)),
            _status(("web", "running", "healthy", 0), ("db", "running", "healthy", 0), ("redis", "running", None, 0)),
        ],
    )
    assert stack.wait_healthy(timeout=30).healthy
    assert calls[0] == 3


def test_an_unhealthy_service_fails_at_once_with_its_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    stack, calls = _stack(
        monkeypatch,
        [
            _status(("web", "running", "unhealthy", 0), ("db", "running", "healthy", 0)),
            _status(("web", "running", "healthy", 0), ("db", "running", "healthy", 0)),
        ],
    )
    with pytest.raises(StackUnhealthy) as caught:
        stack.wait_healthy(timeout=30)
    assert "not become healthy: web is unhealthy" in caught.value.message and caught.value.logs == {
        "web": "logs of web"
    }
    assert calls[0] == 1


def test_a_container_restarted_by_its_policy_while_waiting_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # a crash loop shows as "running"/"starting" between restarts: the restart count gives it away
    stack, _ = _stack(
        monkeypatch,
        [
            _status(("web", "running", "starting", 2), ("db", "running", "healthy", 0)),
            _status(("web", "running", "starting", 3), ("db", "running", "healthy", 0)),
        ],
    )
    with pytest.raises(StackUnhealthy, match="not become healthy: web "):
        stack.wait_healthy(timeout=30)


def test_an_exited_service_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    stack, _ = _stack(monkeypatch, [_status(("web", "exited", None, 0), ("db", "running", "healthy", 0))])
    with pytest.raises(StackUnhealthy, match="not become healthy: web "):
        stack.wait_healthy(timeout=30)


def test_still_starting_at_the_deadline_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    starting = _status(("web", "running", "starting", 0), ("db", "running", "healthy", 0))
    stack, _ = _stack(monkeypatch, [starting] * 3)
    with pytest.raises(StackUnhealthy, match=r"did not become healthy within 0s: web"):
        stack.wait_healthy(timeout=0)
