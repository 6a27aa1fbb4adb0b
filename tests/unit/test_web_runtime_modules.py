"""The web image's run-time modules, outside a container: stackctl_health answers the probe in
front of the app (only the probe), stackctl_static finds the package a refused write went to,
and stackctl_env's exit hook closes open psycopg-pool pools."""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stackctl.core.render import templates_dir

MODULES = templates_dir() / "compose" / "stackctl"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"under_test_{name}", MODULES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


health = _load("stackctl_health")
static = _load("stackctl_static")


def _call(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "GET", "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    return sent


async def _project(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"the project's"})


def test_the_probe_is_answered_without_the_project() -> None:
    sent = _call(health.answering(_project), health.HEALTH_PATH)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok\n"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/healthz", []),  # the project's own route stays the project's
        ("/", []),
        (health.HEALTH_PATH, [(b"X-Forwarded-For", b"203.0.113.9")]),  # through nginx: the project's
    ],
)
def test_everything_else_goes_to_the_project(path: str, headers: list[tuple[bytes, bytes]]) -> None:
    sent = _call(health.answering(_project), path, headers)
    assert sent[0]["status"] == 404 and sent[1]["body"] == b"the project's"


def test_the_healthcheck_asks_the_path_the_wrapper_answers() -> None:
    entrypoint = (templates_dir() / "compose" / "entrypoint.sh.j2").read_text()
    assert f"GET {health.HEALTH_PATH} HTTP/1.0" in entrypoint


def test_package_root_is_the_top_level_folder_under_a_path_entry(tmp_path: Path, monkeypatch: Any) -> None:
    site = tmp_path / "site-packages"
    (site / "theme" / "static").mkdir(parents=True)
    app = tmp_path / "app"
    (app / "proj" / "deep").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(app), str(site), str(tmp_path)])
    assert static.package_root(str(site / "theme" / "static" / "gen.css")) == str(site / "theme")
    assert static.package_root(str(app / "proj" / "deep" / "x" / "y.css")) == str(app / "proj")
    # the longest entry wins: site-packages, not tmp_path
    assert static.package_root(str(site / "theme" / "new")) == str(site / "theme")
    assert static.package_root("/elsewhere/file.css") is None


def test_read_only_package_only_for_refused_writes(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "theme").mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    target = str(tmp_path / "theme" / "generated")
    assert static.read_only_package(OSError(errno.EROFS, "Read-only file system", target)) == str(tmp_path / "theme")
    assert static.read_only_package(OSError(errno.EACCES, "Permission denied", target)) == str(tmp_path / "theme")
    assert static.read_only_package(OSError(errno.ENOSPC, "No space left on device", target)) is None
    assert static.read_only_package(OSError(errno.EROFS, "Read-only file system")) is None


def test_the_exit_hook_closes_open_pools(tmp_path: Path) -> None:
    # a stand-in psycopg_pool whose pool, left open, would hold the exit (as its finalizer does)
    (tmp_path / "psycopg_pool.py").write_text(
        textwrap.dedent(
            """
            class ConnectionPool:
                def __init__(self):
                    self._closed = False
                def close(self, timeout=5.0):
                    self._closed = True
                    print("closed", timeout, flush=True)
            """
        )
    )
    code = (
        f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(MODULES)!r}]\n"
        "import stackctl_env, psycopg_pool\n"
        "pool = psycopg_pool.ConnectionPool()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert done.stdout.split() == ["closed", "1.0"], done.stdout + done.stderr
