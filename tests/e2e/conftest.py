"""Fixtures for the real-engine tests, how a parallel run shares them out, and logs on failure.

- `prod`: one prod stack (TLS on) shared by the tests that only look at it; it takes a minute
  to start. It is removed afterwards with its volumes and the images it built.
- Parallel runs: the groups and their order are tests/e2e/scheduling.py's.
- A failed real-engine test carries the last log lines of every container of the stacks it used.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.scheduling import (
    GROUPS_FILE,
    GroupScheduling,
    groups_left,
    is_e2e,
    leave_groups,
    order_by_group,
    share_groups,
)
from tests.e2e.stackenv import Proj, make_project, remove_built_images, stack_logs

_measured: defaultdict[str, float] = defaultdict(float)  # the controller's: seconds per group
_groups: dict[str, str] = {}  # the controller's: {node id: group}


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proj]:
    proj = make_project(tmp_path_factory.mktemp("prod"), prod=True, tls=True)
    proc = proj.stackctl("check")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the prod policy passes with TLS on
    try:  # a stack that failed to come up is removed too, not left restarting
        proj.stackctl("up", check=True)
        yield proj
    finally:
        proj.stackctl("down", "--volumes", "--yes")
        remove_built_images(proj.name)  # the web and backup images `up` built


def pytest_configure(config: pytest.Config) -> None:
    share_groups(config)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> GroupScheduling | None:
    return GroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # a worker of a parallel run: the controller needs the groups
        leave_groups(order_by_group(items))


def _projects_used(item: pytest.Item) -> list[str]:
    """The compose projects of the stacks a test used: its Proj arguments, or a Proj one level down."""
    found: list[str] = []
    for value in getattr(item, "funcargs", {}).values():
        candidates: list[Any] = [value, *(getattr(value, name, None) for name in ("proj", "site", "stack"))]
        for candidate in candidates:
            if isinstance(candidate, Proj) and candidate.name not in found:
                found.append(candidate.name)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.failed and is_e2e(item):
        for project in _projects_used(item):
            report.sections.append((f"engine logs: {project}", stack_logs(project)))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """On the controller of a parallel run: the seconds of each group."""
    if os.environ.get(GROUPS_FILE) and not os.environ.get("PYTEST_XDIST_WORKER"):
        _groups.update(_groups or groups_left())
        if report.nodeid in _groups:
            _measured[_groups[report.nodeid]] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return
    if os.environ.get(GROUPS_FILE):
        Path(os.environ[GROUPS_FILE]).unlink(missing_ok=True)
    if not _measured:
        return
    folder = Path(os.environ.get("TEST_REPORTS", ".test-reports"))
    folder.mkdir(exist_ok=True)
    ordered = dict(sorted(((k, round(v, 1)) for k, v in _measured.items()), key=lambda kv: -kv[1]))
    (folder / "group_seconds.json").write_text(json.dumps(ordered, indent=1) + "\n")
