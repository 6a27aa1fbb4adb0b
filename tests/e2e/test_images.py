"""The registry-free images on a real engine: tags with true versions, and servers that answer.

Images are built once (existing ones are reused). Every container started here is removed again.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from python_on_whales import Container, DockerClient
from python_on_whales.exceptions import DockerException

from stackctl.adapters.docker import engine_client
from stackctl.core.images import IMAGES, NGINX, POSTGRES, PYTHON, REDIS, ImageResult, build_images
from tests.e2e.stackenv import free_port

pytestmark = pytest.mark.engine

VERSION_TAGS = {
    "debian": r"stackctl/debian:12\.\d+",
    "python": r"stackctl/python:3\.11\.\d+-bookworm",
    "postgres": r"stackctl/postgres:15\.\d+-bookworm",
    "redis": r"stackctl/redis:7\.0\.\d+-bookworm",
    "nginx": r"stackctl/nginx:1\.22\.\d+-bookworm",
}


@pytest.fixture(scope="module")
def client() -> DockerClient:
    return engine_client()


@pytest.fixture(scope="module")
def built() -> list[ImageResult]:
    return build_images(report=lambda _: None)


@pytest.fixture
def start(client: DockerClient, built: list[ImageResult]) -> Iterator[Callable[..., Container]]:
    """Start a detached container from one of the images; each is force-removed afterwards."""
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


def test_every_image_has_its_series_tag_and_a_true_version_tag(client: DockerClient, built: list[ImageResult]) -> None:
    assert [result.name for result in built] == [spec.name for spec in IMAGES]
    for spec, result in zip(IMAGES, built, strict=True):
        assert result.tags[0] == spec.alias
        versions = [tag for tag in result.tags[1:] if re.fullmatch(VERSION_TAGS[spec.name], tag)]
        assert versions, f"{spec.name}: no true-version tag in {result.tags}"
        for tag in (spec.alias, *versions):
            assert client.image.exists(tag), tag
        assert client.image.inspect(spec.alias).id == client.image.inspect(versions[-1]).id
        assert result.size_bytes > 0


def test_postgres_takes_a_password_login_from_the_host(start: Callable[..., Container], client: DockerClient) -> None:
    port = free_port()
    user, database, password = "stackctl_app", "stackctl_db", secrets.token_urlsafe(18)
    container = start(
        POSTGRES.alias,
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
    assert _output(client, container, ["pg_dump", "--version"]).startswith("pg_dump (PostgreSQL) 15.")


def test_postgres_refuses_to_start_without_a_password(start: Callable[..., Container], client: DockerClient) -> None:
    container = start(POSTGRES.alias)
    assert client.container.wait(container) == 1
    assert "superuser password is not specified" in str(client.logs(container))


def test_redis_answers_ping_as_the_redis_user(start: Callable[..., Container], client: DockerClient) -> None:
    container = start(REDIS.alias)
    ping = ["redis-cli", "ping"]
    _wait_until(lambda: _succeeds(client, container, ping), what="redis did not answer")
    assert _output(client, container, ping) == "PONG"
    assert _output(client, container, ["redis-cli", "config", "get", "dir"]).split() == ["dir", "/data"]
    assert re.search(r"^Uid:\s+999\s", _output(client, container, ["cat", "/proc/1/status"]), flags=re.M)


def test_nginx_config_is_valid_and_the_server_runs(start: Callable[..., Container], client: DockerClient) -> None:
    container = start(NGINX.alias)
    client.execute(container, ["nginx", "-t"])  # raises on a bad configuration
    assert client.container.inspect(container.id).state.running
    assert _output(client, container, ["readlink", "/var/log/nginx/access.log"]) == "/dev/stdout"
    assert _output(client, container, ["ls", "/etc/nginx/sites-enabled"]) == ""


def test_python_makes_a_venv_like_the_official_image(client: DockerClient, built: list[ImageResult]) -> None:
    script = "python -m venv /tmp/venv && /tmp/venv/bin/python -c 'import sys; print(sys.prefix)'"
    assert client.run(PYTHON.alias, ["sh", "-c", script], remove=True) == "/tmp/venv"
