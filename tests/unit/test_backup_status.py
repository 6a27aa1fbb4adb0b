"""`stackctl status --prod` reads the backup schedule from the backup healthcheck's last output."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, cast

from stackctl.core.backup import BackupSchedule, ScheduleEntry, backup_status
from stackctl.core.stack import ServiceStatus, Stack, StackStatus
from stackctl.errors import DockerCommandError


class NoDocker:
    """A stack whose every docker call fails the test: the health log must be enough."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected docker call: {name}")


class DeadEngine:
    """A stack whose container listing fails, and which counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.name = "p-prod"

    def status(self) -> StackStatus:
        self.calls += 1
        raise DockerCommandError("docker ps failed (exit 1)")


def _status(output: str | None, state: str = "running") -> StackStatus:
    backup = ServiceStatus("backup", "p-backup-1", state, "healthy", [], output)
    return StackStatus("p", "prod", [backup], [])


def test_reads_the_health_log_and_recomputes_ages() -> None:
    last = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2, minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = {
        "healthy": True,
        "db": {"next_run": "2026-11-25T03:00:00Z", "last_success": last, "last_success_age_seconds": 1},
        "media": {"next_run": "2026-11-25T03:30:00Z", "last_success": None, "last_success_age_seconds": None},
    }
    schedule = backup_status(cast(Stack, NoDocker()), _status(json.dumps(report)))
    assert schedule.healthy is True and schedule.error is None
    assert schedule.db is not None and schedule.media is not None
    assert schedule.db.next_run == "2026-11-25T03:00:00Z" and schedule.db.last_success == last
    # the age comes from the timestamp, not from the stale age the healthcheck printed
    assert schedule.db.last_success_age_seconds is not None
    assert abs(schedule.db.last_success_age_seconds - (2 * 3600 + 5 * 60)) <= 5
    assert schedule.media == ScheduleEntry(
        next_run="2026-11-25T03:30:00Z", last_success=None, last_success_age_seconds=None
    )


def test_the_schedule_is_typed_data_for_json() -> None:
    """`status --json` carries ISO times and seconds, never a display string like "2h 5m ago"."""
    last = "2026-11-24T03:00:05Z"
    report = {"healthy": False, "db": {"next_run": "2026-11-25T03:00:00Z", "last_success": last}, "media": {}}
    schedule = backup_status(cast(Stack, NoDocker()), _status(json.dumps(report)))
    payload = json.loads(json.dumps(dataclasses.asdict(schedule)))
    assert payload["db"]["last_success"] == last
    assert isinstance(payload["db"]["last_success_age_seconds"], int)
    assert "ago" not in json.dumps(payload)


def test_falls_back_to_the_container_when_the_log_says_nothing_usable() -> None:
    for output in (None, "", "not json", json.dumps({"other": 1})):
        stack = DeadEngine()
        schedule = backup_status(cast(Stack, stack), _status(output))
        assert stack.calls == 1, output  # it asked the container instead
        assert schedule == BackupSchedule(healthy=None, error="docker ps failed (exit 1)"), schedule
