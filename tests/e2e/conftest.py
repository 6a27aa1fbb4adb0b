"""One prod stack (TLS on) shared by the prod and prod-backup tests: it takes a minute to start.
It is removed afterwards with its volumes and the images it built."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stackenv import Proj, make_project, remove_built_images


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
