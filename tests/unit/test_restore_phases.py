"""restore db|media (stackctl/core/restore.py) against a recorded stack: the order of the steps,
each phase's time in its progress line and in RestoreResult.phases (and in `--json`), the
safety dump running while web starts, and the previous database dropped only after it."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from stackctl.core import restore as restoring
from stackctl.core.restore import RestoreResult, restore_db, restore_media
from stackctl.errors import RestoreError

OLD = "shop_pre_restore_20261207120000"
STEPS = {"integrity": 0.5, "load": 20.0, "count": 2.0, "checksum": 0.0, "app_check": 0.1, "swap": 0.1}
ROLE_OUTPUT = "stackctl-role owner=shop_app had_role=t\nstackctl-tables superuser_owned=4\n"


@dataclass
class Container:
    service: str
    state: str = "running"
    container: str = ""


@dataclass
class Status:
    services: list[Container]

    def running(self, service: str) -> Container | None:
        return next((c for c in self.services if c.service == service and c.state == "running"), None)


@dataclass
class Recorder:
    """What the stack was asked to do, in order, with the thread-safe means to hold the dump."""

    calls: list[str] = field(default_factory=list)
    dump_fails: bool = False
    release_dump: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, call: str) -> None:
        with self.lock:
            self.calls.append(call)


class FakeCompose:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def execute(self, service: str, argv: list[str], tty: bool = False, envs: dict[str, str] | None = None) -> str:
        script = argv[0]
        if service == "db" and argv[:2] == ["sh", "-c"] and argv[3] == "stackctl-dbroles":
            self.rec.note("app_role")
            return ROLE_OUTPUT
        if service == "db":
            self.rec.note("room")
            return "10000000 1000\n"
        if script in ("restore_db.sh", "restore_media.sh") and {"--check", "--precheck"} & set(argv):
            self.rec.note("precheck" if "--precheck" in argv else "check")
            return json.dumps({"file": argv[-1], "checksum": "ok", "bytes": 100}) + "\n"
        if script == "restore_db.sh" and argv[1] == "--drop-old-only":
            self.rec.note(f"drop {argv[2]}")
            return json.dumps({"dropped": argv[2]}) + "\n"
        if script == "restore_db.sh":
            self.rec.note("restore")
            payload = {"file": argv[-1], "tables": 4, "rows": 5, "old_database": OLD, "steps": STEPS}
            return json.dumps(payload, sort_keys=True) + "\n"  # as backupctl.py emit prints it
        if script == "restore_media.sh":
            self.rec.note("restore")
            return json.dumps({"file": argv[-1], "files": 3}) + "\n"
        if script in ("backup_db.sh", "backup_media.sh"):
            self.rec.note(f"dump {' '.join(argv[1:])}")
            if "--from-previous" in argv:
                assert self.rec.release_dump.wait(5), "the safety dump was never released"
                if self.rec.dump_fails:
                    raise DockerException(argv, 1, b"", b"pg_dump: error: connection lost")
            self.rec.note("dumped")
            return json.dumps({"file": "shop-20261207T120001Z-pre-restore.dump", "bytes": 9, "seconds": 0.1}) + "\n"
        raise AssertionError(f"unexpected exec in {service}: {argv}")

    def stop(self, services: list[str]) -> None:
        self.rec.note(f"stop {','.join(services)}")

    def up(self, services: list[str], **_: Any) -> list[str]:
        self.rec.note(f"up {','.join(services)}")
        return []


class FakeStack:
    name = "shop"

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.client = SimpleNamespace(compose=FakeCompose(rec))
        self.config = SimpleNamespace(database=SimpleNamespace(postgres_db="shop", db_app_user="shop_app"))
        self.env = SimpleNamespace(command=lambda rest: f"stackctl {rest} --prod")

    def status(self) -> Status:
        return Status([Container(s, container=f"shop-prod-{s}-1") for s in ("backup", "db", "nginx", "web")])

    def wait_healthy(self, *, timeout: int, services: list[str]) -> None:
        # web becomes healthy while the safety dump is held: it ends only after this
        self.rec.note(f"healthy {','.join(services)}")
        self.rec.release_dump.set()


def _restore(rec: Recorder, steps: list[str]) -> RestoreResult:
    return restore_db(FakeStack(rec), "shop-20261201T000000Z.dump", confirm=lambda _: None, report=steps.append)  # type: ignore[arg-type]


def test_each_phase_says_how_long_it_took_and_is_in_the_result() -> None:
    rec, steps = Recorder(), []
    result = _restore(rec, steps)
    assert list(result.phases) == ["check", "stop", "restore", "app_role", "start", "safety_backup", "drop_old"]
    assert all(isinstance(s, float) and s >= 0 for s in result.phases.values())
    assert list(result.restore_steps.items()) == list(STEPS.items())  # in the order the script runs them
    for start in ("checked shop-", "stopped web in", "restored shop-", "handed the restored", "web healthy in",
                  "safety backup shop-", f"dropped the previous database {OLD} in"):  # fmt: skip
        line = next((line for line in steps if line.startswith(start)), "")
        assert re.search(r" in \d+\.\d s", line), (start, steps)
    restored = next(line for line in steps if line.startswith("restored "))
    assert restored.endswith("(integrity 0.5 s, load 20.0 s, count 2.0 s, checksum 0.0 s, app_check 0.1 s, swap 0.1 s)")
    assert (result.tables, result.rows, result.old_database) == (4, 5, None)


def test_the_safety_dump_runs_while_web_starts_and_the_drop_waits_for_it() -> None:
    rec = Recorder()
    _restore(rec, [])
    calls = rec.calls
    # the db's check is the restore's own first step alone: no full read when the checksum vouches
    assert calls[:4] == ["precheck", "room", "stop web", "restore"] and calls[4] == "app_role"
    dump = next(i for i, c in enumerate(calls) if c.startswith("dump ") and "--from-previous" in c)
    assert calls[dump] == f"dump --label pre-restore --from-previous {OLD} --no-copy --no-prune"
    # web was started and became healthy while the dump was held, and the drop came after the dump
    assert calls.index("up web") < calls.index("dumped") and calls.index("healthy web") < calls.index("dumped")
    assert calls.index("dumped") < calls.index(f"drop {OLD}") == len(calls) - 1


def test_a_failed_safety_dump_keeps_the_previous_database_and_says_when_it_failed() -> None:
    rec, steps = Recorder(dump_fails=True), []
    result = _restore(rec, steps)
    assert result.safety_backup is None and result.old_database == OLD
    assert not any(c.startswith("drop ") for c in rec.calls)
    assert "safety_backup" in result.phases and "drop_old" not in result.phases
    assert any(line.startswith(f"warning: the safety backup of {OLD} failed after ") for line in steps)


def test_web_unhealthy_on_the_restored_database_keeps_the_previous_one() -> None:
    rec = Recorder()
    stack = FakeStack(rec)

    def unhealthy(*, timeout: int, services: list[str]) -> None:
        rec.release_dump.set()
        raise RestoreError("web did not become healthy within 1s")

    stack.wait_healthy = unhealthy  # type: ignore[method-assign]
    with pytest.raises(RestoreError, match=f"kept as {OLD}"):
        restore_db(stack, "shop-20261201T000000Z.dump", confirm=lambda _: None)  # type: ignore[arg-type]
    assert not any(c.startswith("drop ") for c in rec.calls)


def test_media_phases_take_the_safety_archive_before_the_restore() -> None:
    rec, steps = Recorder(), []
    rec.release_dump.set()
    result = restore_media(FakeStack(rec), "media-20261201T000000Z.tar.gz", confirm=lambda _: None, report=steps.append)  # type: ignore[arg-type]
    assert list(result.phases) == ["check", "stop", "safety_backup", "restore", "start"]
    assert rec.calls == [
        "check",
        "stop web",
        "dump --label pre-restore --no-copy",
        "dumped",
        "restore",
        "up web",
        "healthy web",
    ]
    assert result.files == 3 and result.restore_steps == {}


def test_restore_db_json_includes_the_phases(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    phases = {"check": 1.5, "stop": 1.2, "restore": 28.0, "app_role": 0.4, "start": 4.0, "safety_backup": 9.5}
    made = RestoreResult(
        kind="db", file="x.dump", seconds=41.0, safety_backup="s.dump", tables=4, rows=5, phases=phases
    )
    monkeypatch.setattr("stackctl.cli.backup._stack", lambda *_: None)
    monkeypatch.setattr(restoring, "restore_db", lambda *_, **__: made)
    result = cli("restore", "db", "x.dump", "--yes", "--json")
    assert result.code == 0, result.output
    assert json.loads(result.out)["phases"] == phases


def test_phases_end_at_a_given_time() -> None:
    phases = restoring.Phases()
    began = time.monotonic() - 2.0
    assert phases.end("start", began) == "2.0 s"
    assert phases.end("safety_backup", began, began + 9.46) == "9.5 s"
    assert phases.seconds == {"start": pytest.approx(2.0, abs=0.05), "safety_backup": 9.46}
