"""The registry-free images on a real engine, for both suites: tags with true versions, servers
that answer and report the suite's versions, and a postgres that refuses another major
version's data directory without touching it.

Images are built once per suite (existing ones are reused). Every container started here is
removed again.
"""

from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from python_on_whales import Container, DockerClient
from python_on_whales.exceptions import DockerException

from stackctl.adapters.docker import engine_client
from stackctl.core.images import (
    SUITES,
    ImageResult,
    ImageSpec,
    Suite,
    SuiteImages,
    build_images,
    images_for,
    postgres_data_mismatch_hint,
)
from tests.e2e.stackenv import free_port

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def client() -> DockerClient:
    return engine_client()


@pytest.fixture(scope="module", params=sorted(SUITES, reverse=True))  # trixie, then bookworm
def suite(request: pytest.FixtureRequest) -> Suite:
    return SUITES[request.param]


@pytest.fixture(scope="module")
def built(suite: Suite) -> list[ImageResult]:
    return build_images(suite=suite.name, report=lambda _: None)


@pytest.fixture(scope="module")
def images(suite: Suite, built: list[ImageResult]) -> SuiteImages:
    return images_for(suite.name)


@pytest.fixture
def start(client: DockerClient) -> Iterator[Callable[..., Container]]:
    """Start a detached container; each is force-removed afterwards."""
    started: list[Container] = []

    def run(image: str, **kwargs: Any) -> Container:
        name = f"stackctl-test-images-{uuid.uuid4().hex[:10]}"
        container = client.run(image, detach=True, name=name, **kwargs)
        assert isinstance(container, Container)
        started.append(container)
        return container

    yield run
    for container in started:
        client.container.remove(container, force=True, volumes=True)


def _wait_until(check: Callable[[], bool], *, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g} s")
        time.sleep(0.5)


def _output(client: DockerClient, container: Container, argv: list[str]) -> str:
    return str(client.execute(container, argv)).strip()


def _succeeds(client: DockerClient, container: Container, argv: list[str]) -> bool:
    try:
        client.execute(container, argv)
    except DockerException:
        return False
    return True


def _reports(client: DockerClient, spec: ImageSpec, *argv: str) -> str:
    """What a program of the image prints (stdout and stderr), run without the image's entrypoint."""
    return str(client.run(spec.alias, ["-c", f"{' '.join(argv)} 2>&1"], entrypoint="sh", remove=True)).strip()


def test_every_image_has_its_series_tag_and_a_true_version_tag(
    client: DockerClient, images: SuiteImages, built: list[ImageResult], suite: Suite
) -> None:
    assert [result.name for result in built] == [spec.name for spec in images.all]
    for spec, result in zip(images.all, built, strict=True):
        assert result.tags[0] == spec.alias
        versions = [tag for tag in result.tags[1:] if spec.is_version_tag(tag)]
        assert versions, f"{spec.name}: no true-version tag in {result.tags}"
        pattern = re.escape(spec.version_tag).replace(re.escape("{version}"), re.escape(spec.series) + r"\.\d+")
        assert all(re.fullmatch(pattern, tag) for tag in versions), versions
        for tag in (spec.alias, *versions):
            assert client.image.exists(tag), tag
        assert client.image.inspect(spec.alias).id == client.image.inspect(versions[-1]).id
        assert result.size_bytes > 0
    assert images.base.alias == f"stackctl/debian:{suite.name}"


def test_the_servers_report_the_suites_versions(client: DockerClient, images: SuiteImages, suite: Suite) -> None:
    assert _reports(client, images.base, "cat", "/etc/debian_version").startswith(f"{suite.debian}.")
    assert _reports(client, images.python, "python", "--version") == f"Python {suite.python}"
    assert _reports(client, images.postgres, "postgres", "-V").startswith(f"postgres (PostgreSQL) {suite.postgres}.")
    assert re.search(rf"\bv={re.escape(suite.redis)}\.\d+ ", _reports(client, images.redis, "redis-server", "-v"))
    assert _reports(client, images.nginx, "nginx", "-v").startswith(f"nginx version: nginx/{suite.nginx}.")


def test_postgres_takes_a_password_login_from_the_host_and_restarts_on_its_own_data(
    start: Callable[..., Container], client: DockerClient, images: SuiteImages, suite: Suite
) -> None:
    port = free_port()
    user, database, password = "stackctl_app", "stackctl_db", secrets.token_urlsafe(18)
    container = start(
        images.postgres.alias,
        publish=[(f"127.0.0.1:{port}", 5432)],
        envs={"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": database},
    )
    # Over TCP: the entrypoint's temporary init server listens on the socket only.
    ready = ["pg_isready", "-h", "127.0.0.1", "-U", user, "-d", database]
    _wait_until(lambda: _succeeds(client, container, ready), what="postgres was not ready")

    dsn = f"host=127.0.0.1 port={port} user={user} dbname={database} connect_timeout=10"
    with psycopg.connect(dsn, password=password) as conn:
        row = conn.execute("select current_user, current_database()").fetchone()
    assert row == (user, database)

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn, password=password + "-wrong")

    top = _output(client, container, ["cat", "/proc/1/status"])
    assert re.search(r"^Uid:\s+999\s", top, flags=re.M), "postgres must run as uid 999, not root"
    assert _output(client, container, ["pg_dump", "--version"]).startswith(f"pg_dump (PostgreSQL) {suite.postgres}.")

    # Its own major version's data directory is started again, not refused.
    assert _output(client, container, ["cat", "/var/lib/postgresql/data/PG_VERSION"]) == suite.postgres
    client.container.restart(container)
    _wait_until(lambda: _succeeds(client, container, ready), what="postgres did not come back")
    with psycopg.connect(dsn, password=password) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_postgres_refuses_to_start_without_a_password(
    start: Callable[..., Container], client: DockerClient, images: SuiteImages
) -> None:
    container = start(images.postgres.alias)
    assert client.container.wait(container) == 1
    assert "superuser password is not specified" in str(client.logs(container))


def test_redis_answers_ping_as_the_redis_user(
    start: Callable[..., Container], client: DockerClient, images: SuiteImages
) -> None:
    container = start(images.redis.alias)
    ping = ["redis-cli", "ping"]
    _wait_until(lambda: _succeeds(client, container, ping), what="redis did not answer")
    assert _output(client, container, ping) == "PONG"
    assert _output(client, container, ["redis-cli", "config", "get", "dir"]).split() == ["dir", "/data"]
    assert re.search(r"^Uid:\s+999\s", _output(client, container, ["cat", "/proc/1/status"]), flags=re.M)


def test_nginx_config_is_valid_and_the_server_runs(
    start: Callable[..., Container], client: DockerClient, images: SuiteImages
) -> None:
    container = start(images.nginx.alias)
    client.execute(container, ["nginx", "-t"])  # raises on a bad configuration
    assert client.container.inspect(container.id).state.running
    assert _output(client, container, ["readlink", "/var/log/nginx/access.log"]) == "/dev/stdout"
    assert _output(client, container, ["ls", "/etc/nginx/sites-enabled"]) == ""


def test_python_makes_a_venv_like_the_official_image(client: DockerClient, images: SuiteImages) -> None:
    script = "python -m venv /tmp/venv && /tmp/venv/bin/python -c 'import sys; print(sys.prefix)'"
    assert client.run(images.python.alias, ["sh", "-c", script], remove=True) == "/tmp/venv"


# -- a data directory of another major version -----------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, int, bytes | None]]:
    """Every path under `root` (itself too): mode, owner, group, mtime and the bytes of files."""
    entries = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        content = path.read_bytes() if path.is_file() else None
        entries[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, content)
    return entries


def test_postgres_17_refuses_a_postgres_15_data_directory_and_leaves_it_untouched(
    start: Callable[..., Container], client: DockerClient, tmp_path: Path
) -> None:
    build_images(suite="trixie", report=lambda _: None)
    pgdata = tmp_path / "pgdata"
    (pgdata / "base" / "1").mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("15\n")
    (pgdata / "base" / "1" / "1259").write_bytes(os.urandom(8192))
    (pgdata / "postgresql.conf").write_text("# written by PostgreSQL 15\n")
    pgdata.chmod(0o755)  # the entrypoint would chmod 0700 and chown to 999 if it went on
    before = _snapshot(pgdata)

    container = start(
        images_for("trixie").postgres.alias,
        volumes=[(str(pgdata), "/var/lib/postgresql/data")],
        envs={"POSTGRES_PASSWORD": secrets.token_urlsafe(12)},
    )
    assert client.container.wait(container) == 1
    logs = str(client.logs(container))
    assert "database files are incompatible with server" in logs
    assert "initialized by PostgreSQL version 15, which is not compatible with this version 17." in logs
    for step in ("`stackctl backup now db`", "`stackctl restore db`", "pg_upgrade"):
        assert step in logs
    assert "ready to accept connections" not in logs and "initdb" not in logs

    assert _snapshot(pgdata) == before
    hint = postgres_data_mismatch_hint(logs)
    assert hint and "PostgreSQL 15 files and the server is PostgreSQL 17" in hint
