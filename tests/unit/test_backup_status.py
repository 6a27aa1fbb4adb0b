"""`stackctl status --prod` reads the backup schedule from the backup healthcheck's last output."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, cast

from python_on_whales.exceptions import DockerException

from stackctl.core.backup import backup_status
from stackctl.core.stack import ServiceStatus, Stack, StackStatus


class NoDocker:
    """A stack whose every docker call fails the test: the health log must be enough."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected docker call: {name}")


class DeadCompose:
    """A stack whose `docker compose ps` fails, and which counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.client = self
        self.compose = self
        self.name = "p-prod"

    def ps(self, **_: Any) -> list[Any]:
        self.calls += 1
        raise DockerException(["docker", "compose", "ps"], 1)


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
    entries = backup_status(cast(Stack, NoDocker()), _status(json.dumps(report)))
    assert entries == {
        "backups.healthy": True,
        "backups.db.next_run": "2026-11-25T03:00:00Z",
        "backups.db.last_success": "2h 5m ago",  # from the timestamp, not the stale age
        "backups.media.next_run": "2026-11-25T03:30:00Z",
        "backups.media.last_success": "never",
    }


def test_falls_back_to_the_container_when_the_log_says_nothing_usable() -> None:
    for output in (None, "", "not json", json.dumps({"other": 1})):
        stack = DeadCompose()
        entries = backup_status(cast(Stack, stack), _status(output))
        assert stack.calls == 1, output  # it asked the container instead
        assert list(entries) == ["backups"] and entries["backups"].startswith("unavailable"), entries
