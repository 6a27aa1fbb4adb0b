"""deploy's parts without an engine: the lock's holder, release records, the drain's count of
nginx's connections to the old sockets, the rollback target, and the image variable's scope."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from stackctl.core import deploy, releases, switch
from stackctl.core.lock import LockHolder
from stackctl.core.releases import Release, UnknownRelease


def test_lock_holder_round_trips_through_labels() -> None:
    me = LockHolder.me("stackctl deploy")
    again = LockHolder.from_labels(me.labels("site-prod"))
    assert again == me
    assert f"pid {os.getpid()}" in again.describe() and "stackctl deploy" in again.describe()


def test_a_lock_is_stale_only_when_its_process_on_this_host_is_gone() -> None:
    here = socket.gethostname()
    alive = LockHolder("u", here, os.getpid(), "t", "c")
    gone = LockHolder("u", here, 2**22 + 12345, "t", "c")  # above the default pid_max
    elsewhere = LockHolder("u", here + "-other", 2**22 + 12345, "t", "c")
    assert not alive.is_stale() and gone.is_stale() and not elsewhere.is_stale()
    assert not LockHolder.from_labels({}).is_stale()  # unreadable labels: never taken over


def test_release_ids_sort_by_time_and_records_round_trip() -> None:
    early = releases.new_release_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = releases.new_release_id(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert early.startswith("r20260102-030405-") and early < late
    release = Release(early, releases.image_of("site-prod", early), "2026-01-02T03:04:05+00:00", migrations=["a.1"])
    import json

    assert releases.parse_record(json.dumps(release.to_json())) == release
    assert releases.parse_record("not json") is None
    assert releases.parse_record(json.dumps({**release.to_json(), "added_later": 1})) == release


def _release(rid: str) -> Release:
    return Release(rid, f"p-web:{rid}", rid)


def test_find_release_by_id_or_unique_prefix() -> None:
    known = [_release("r2-b"), _release("r2-a"), _release("r1-a")]
    assert releases.find_release(known, "r1").id == "r1-a"
    assert releases.find_release(known, "r2-a").id == "r2-a"
    with pytest.raises(UnknownRelease, match="several releases"):
        releases.find_release(known, "r2")
    with pytest.raises(UnknownRelease, match="no release 'nope' is recorded") as err:
        releases.find_release(known, "nope")
    assert err.value.exit_code == 2 and "r2-b, r2-a, r1-a" in (err.value.hint or "")


def test_the_drain_counts_nginx_side_connections_to_the_old_sockets_only() -> None:
    table = "\n".join(
        [
            "Num       RefCount Protocol Flags    Type St Inode Path",
            "0: 00000003 00000000 00000000 0001 03 12 /run/stackctl/abcdef123456/daphne-8000.sock",  # connected
            "0: 00000003 00000000 00000000 0001 02 13 /run/stackctl/abcdef123456/daphne-8001.sock",  # in the backlog
            "0: 00000003 00000000 00000000 0001 03 14 /run/stackctl/0123456789ab/daphne-8000.sock",  # the new release's
            "0: 00000003 00000000 00000000 0001 03 15",  # nginx's own end: no path
            "0: 00000002 00000000 00010000 0001 01 16 /run/stackctl/abcdef123456/daphne-8000.sock",  # not open
        ]
    )
    assert switch.count_open(table, ["/run/stackctl/abcdef123456/"]) == 2
    assert switch.count_open(table, ["/run/stackctl/abcdef123456/", "/run/stackctl/0123456789ab/"]) == 3
    assert switch.count_open(table, ["/run/stackctl/ffffffffffff/"]) == 0


def test_the_drain_waits_until_no_connection_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = iter([2, 1, 0])
    removed: list[str] = []
    monkeypatch.setattr(switch, "connections", lambda _s, _old: next(seen))
    monkeypatch.setattr(switch, "POLL_SECONDS", 0)
    monkeypatch.setattr(switch, "remove", lambda _s, c: removed.append(c.name))
    old = switch.WebContainer("p-web-1", "abcdef1234567890", "sha256:1", "p-web")
    switch.drain(SimpleNamespace(), [old], seconds=30)  # type: ignore[arg-type]
    assert removed == ["p-web-1"]
    with pytest.raises(StopIteration):
        next(seen)  # polled until 0, no further


def test_the_drain_stops_the_old_release_at_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(switch, "connections", lambda _s, _old: 1)
    monkeypatch.setattr(switch, "POLL_SECONDS", 0.01)
    removed: list[str] = []
    monkeypatch.setattr(switch, "remove", lambda _s, c: removed.append(c.name))
    said: list[str] = []
    old = switch.WebContainer("p-web-1", "abcdef1234567890", "sha256:1", "p-web")
    switch.drain(SimpleNamespace(), [old], seconds=0.05, report=said.append)  # type: ignore[arg-type]
    assert removed == ["p-web-1"] and "1 connection(s) open to the old release" in said[0]


def test_the_web_image_variable_is_set_only_inside_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(switch.IMAGE_VARIABLE, raising=False)
    with switch.web_image("p-web:r1"):
        assert os.environ[switch.IMAGE_VARIABLE] == "p-web:r1"
    assert switch.IMAGE_VARIABLE not in os.environ
    monkeypatch.setenv(switch.IMAGE_VARIABLE, "mine")
    with pytest.raises(RuntimeError), switch.web_image("p-web:r2"):
        raise RuntimeError
    assert os.environ[switch.IMAGE_VARIABLE] == "mine"


def test_rollback_goes_to_the_release_before_the_serving_one(monkeypatch: pytest.MonkeyPatch) -> None:
    known = [_release("r3"), _release("r2"), _release("r1")]
    serving = {"id": "r3"}
    monkeypatch.setattr(releases, "list_releases", lambda _c, _p: known)
    monkeypatch.setattr(releases, "image_present", lambda _c, image: image != "p-web:r1")
    monkeypatch.setattr(deploy, "serving", lambda _s: [])
    monkeypatch.setattr(deploy, "serving_release", lambda _k, _s, _st: serving["id"])
    stack: Any = SimpleNamespace(client=None, name="p")
    target, current, _ = deploy.rollback_target(stack, None)
    assert (target.id, current) == ("r2", "r3")
    with pytest.raises(deploy.StackctlError, match="the one serving already"):
        deploy.rollback_target(stack, "r3")
    serving["id"] = "r2"
    with pytest.raises(UnknownRelease, match="is gone from the engine"):  # r1's image was pruned
        deploy.rollback_target(stack, None)
    serving["id"] = "r1"
    with pytest.raises(UnknownRelease, match="no earlier release"):
        deploy.rollback_target(stack, None)


class _Ctx:
    """What a completion callback reads of typer's context: params, and the root's Application."""

    def __init__(self, app: object, params: dict[str, object]) -> None:
        self.obj, self.params = app, params

    def find_root(self) -> _Ctx:
        return self


def test_rollback_completes_the_recorded_release_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    from stackctl.cli.common import Application
    from stackctl.cli.deploy import release_ids
    from stackctl.console import Console

    asked: list[object] = []

    def stack(_self: Application, _directory: object, env: object, *, warn: bool = True) -> object:
        asked.append(env)
        return SimpleNamespace(client=None, name="site-staging")

    monkeypatch.setattr(Application, "stack", stack)
    monkeypatch.setattr(releases, "list_releases", lambda _c, _p: [_release("r2-b"), _release("r2-a"), _release("r1")])
    ctx: Any = _Ctx(Application(Console()), {"env": "staging", "prod": False, "project_dir": None})
    assert release_ids(ctx, "r2") == ["r2-b", "r2-a"]
    assert release_ids(ctx, "") == ["r2-b", "r2-a", "r1"]
    assert getattr(asked[0], "name", None) == "staging"

    def unreadable(_c: object, _p: object) -> list[Release]:
        raise RuntimeError("no engine")

    monkeypatch.setattr(releases, "list_releases", unreadable)
    assert release_ids(ctx, "") == []  # completion never fails
