"""`up` with bad input: it fails fast, says why, writes nothing and starts nothing it should not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from tests.e2e.stackenv import STACKCTL, make_project, set_env

pytestmark = pytest.mark.engine
docker = DockerClient()


def project_containers(name: str) -> list[object]:
    return docker.container.list(all=True, filters=[("label", f"com.docker.compose.project={name}")])


def test_up_with_invalid_env_writes_nothing_and_starts_nothing(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    set_env(proj.root / ".env", WEB_CONCURRENCY="many", REDIS_URL="http://nope")
    (proj.root / "docker-compose.yml").unlink()
    before = sorted(p for p in proj.root.rglob("*") if p.is_file())
    proc = proj.stackctl("up")
    assert proc.returncode == 1
    assert "WEB_CONCURRENCY [Resources]" in proc.stderr and "REDIS_URL [Cache]: not a redis URL" in proc.stderr
    assert "nothing was written or started" in proc.stderr
    assert sorted(p for p in proj.root.rglob("*") if p.is_file()) == before
    assert project_containers(proj.name) == []


def test_up_when_the_engine_is_down_says_how_to_start_it(tmp_path: Path) -> None:
    proj = make_project(tmp_path)
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "NO_COLOR": "1"}
    proc = subprocess.run([str(STACKCTL), "up"], cwd=proj.root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert "no Docker engine answers" in proc.stderr
    assert "stackctl engine ensure" in proc.stderr


def test_web_that_cannot_start_fails_up_with_its_logs(tmp_path: Path) -> None:
    proj = make_project(tmp_path, extra={"DJANGO_ASGI_APPLICATION": "config.asgi:no_such_app"})
    try:
        proc = proj.stackctl("up", "--timeout", "150", timeout=600)
        assert proc.returncode == 6, proc.stdout + proc.stderr
        assert "did not become healthy" in proc.stderr and "web" in proc.stderr
        assert "--- last log lines of web ---" in proc.stderr
        assert "no_such_app" in proc.stderr  # daphne's own error, from the web logs
    finally:
        proj.stackctl("down", "--volumes", "--yes")
