"""How the real-engine tests are shared out in a parallel run (pytest-xdist, `--dist loadgroup`).

Every test belongs to a group, and a group runs whole on one worker, so that what a fixture
builds is built once:
- the tests that use a session fixture (`prod`, `remote_host`) share that fixture's group;
- the other tests of a module share the module's group, one per parameter of a
  module-scoped parametrized fixture (each real project, each Debian suite).

Groups start longest first, from the seconds kept in group_seconds.json, so that no long group
starts last. Each parallel run writes what it measured to $TEST_REPORTS/group_seconds.json:
copy that file over this one to refresh it.

xdist's own loadgroup reads `xdist_group` marks by rewriting node ids, which pytest 9 no longer
allows, so the controller gets the groups from the workers through a file instead: each
worker writes {node id: group} when it has collected (the same on every worker), and
GroupScheduling reads it when it shares out the work.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

HERE = Path(__file__).resolve().parent
GROUP_SECONDS = HERE / "group_seconds.json"
SHARED = {"prod": "prod", "remote_host": "remote"}  # session fixtures -> the group of their users
UNKNOWN_GROUP_SECONDS = 120.0  # a group not measured yet starts among the long ones
GROUPS_FILE = "STACKCTL_TEST_GROUPS_FILE"  # where the workers leave {node id: group}


def group_of(item: pytest.Item) -> str:
    for fixture, group in SHARED.items():
        if fixture in item.fixturenames:
            return group
    module = Path(str(item.path)).stem
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return module
    defs = item._fixtureinfo.name2fixturedefs  # type: ignore[attr-defined]
    scoped = [
        str(value)
        for name, value in callspec.params.items()
        if name in defs and defs[name][-1].scope in ("module", "package", "session")
    ]
    return f"{module}[{'-'.join(scoped)}]" if scoped else module


def is_e2e(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


def order_by_group(items: list[pytest.Item]) -> dict[str, str]:
    """Put each group's tests together, longest group first (pytest's order kept inside a
    group, tests of other folders last); returns {node id: group}."""
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        if is_e2e(item):
            groups.setdefault(group_of(item), []).append(item)
    seconds = json.loads(GROUP_SECONDS.read_text()) if GROUP_SECONDS.exists() else {}
    ordered = sorted(groups, key=lambda group: -float(seconds.get(group, UNKNOWN_GROUP_SECONDS)))
    others = [item for item in items if not is_e2e(item)]
    items[:] = [item for group in ordered for item in groups[group]] + others
    return {item.nodeid: group for group in ordered for item in groups[group]}


def share_groups(config: pytest.Config) -> None:
    """On the controller of a loadgroup run: name the file the workers leave their groups in."""
    if config.getvalue("dist") == "loadgroup" and not hasattr(config, "workerinput"):
        handle, path = tempfile.mkstemp(prefix="stackctl-test-groups-", suffix=".json")
        os.close(handle)
        os.environ[GROUPS_FILE] = path  # the workers, started after this, inherit it


def leave_groups(groups: dict[str, str]) -> None:
    """On a worker: write {node id: group} for the controller (atomically: every worker writes it)."""
    path = os.environ.get(GROUPS_FILE)
    if path:
        staged = f"{path}.{os.getpid()}"
        Path(staged).write_text(json.dumps(groups))
        os.replace(staged, path)


def groups_left() -> dict[str, str]:
    path = os.environ.get(GROUPS_FILE)
    if not path or not Path(path).stat().st_size:
        return {}
    return dict(json.loads(Path(path).read_text()))


class GroupScheduling(LoadScopeScheduling):
    """LoadScopeScheduling whose scope is the test's group (a test without one is its own)."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self._groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:
            self._groups = groups_left()
        return self._groups.get(nodeid, nodeid)
