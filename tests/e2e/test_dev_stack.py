"""The dev stack on a real engine: GraphQL, static files by nginx, media that survive, websockets."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stackenv import Proj, containers, http, make_project, multipart, sha256

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proj]:
    proj = make_project(tmp_path_factory.mktemp("dev"))
    try:  # a stack that failed to come up is removed too, not left restarting
        proj.stackctl("up", check=True)
        yield proj
    finally:
        proj.stackctl("down", "--volumes", "--yes")


def test_graphql_query_and_mutation_through_nginx(dev: Proj) -> None:
    created = dev.gql(
        "mutation($t: String!, $b: String!) { createNote(title: $t, body: $b) { id title } }",
        {"t": "e2e note", "b": "through nginx"},
    )["createNote"]
    notes = dev.gql("{ notes { id title } }")["notes"]
    assert {"id": created["id"], "title": "e2e note"} in notes
    resp = http(f"{dev.base}/graphql", data=b'{"query": "{ ping }"}', headers={"Content-Type": "application/json"})
    assert resp.headers.get("server") == "nginx"  # server_tokens off: no version
    assert resp.json() == {"data": {"ping": "pong"}}


def test_status_json_reports_healthy_services(dev: Proj) -> None:
    import json

    proc = dev.stackctl("status", "--json", check=True)
    status = json.loads(proc.stdout)
    assert status["healthy"] is True
    assert {s["service"] for s in status["services"]} == {"web", "db", "redis", "nginx"}
    assert all(s["health"] == "healthy" for s in status["services"])
    assert status["urls"][1] == f"{dev.base}/graphql"


def test_static_files_come_from_nginx_with_cache_headers_and_gzip(dev: Proj) -> None:
    login = http(f"{dev.base}/admin/login/")
    assert login.status == 200
    css = re.search(rb'href="(/static/admin/css/base(\.[0-9a-f]{12})?\.css)"', login.body)
    assert css, "the admin page links its stylesheet"
    url = f"{dev.base}{css.group(1).decode()}"
    resp = http(url, headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.headers.get("content-encoding") == "gzip"
    # dev runs with DEBUG on, so names are not hashed: a short cache (prod tests the hashed case)
    assert "max-age=" in resp.headers.get("cache-control", "")
    # nginx, not Django: with web stopped, static still answers while the app does not
    containers(dev, "web")[0].stop()
    try:
        assert http(url).status == 200
        assert http(f"{dev.base}/healthz", timeout=30).status in (502, 503, 504)
    finally:
        dev.stackctl("up", "--no-build", check=True)


def test_media_upload_survives_down_and_up(dev: Proj, tmp_path: Path) -> None:
    content = b"stackctl media " * 1000
    body, ctype = multipart("file", "proof.bin", content)
    up = http(f"{dev.base}/upload", data=body, headers={"Content-Type": ctype})
    assert up.status in (200, 201), up.body
    media_url = up.json()["url"]
    assert http(f"{dev.base}{media_url}").body == content
    dev.stackctl("down", check=True)
    dev.stackctl("up", check=True)
    again = http(f"{dev.base}{media_url}")
    assert again.status == 200 and sha256(again.body) == sha256(content)


def test_websocket_echo_through_nginx(dev: Proj) -> None:
    import websockets

    async def talk() -> list[str]:
        async with websockets.connect(f"ws://127.0.0.1:{dev.http_port}/ws/echo", open_timeout=10) as ws:
            replies = []
            for text in ("hello", "stackctl"):
                await ws.send(text)
                replies.append(await asyncio.wait_for(ws.recv(), 10))
            return replies

    assert asyncio.run(talk()) == ["hello", "stackctl"]


def test_logs_and_manage(dev: Proj) -> None:
    logs = dev.stackctl("logs", "web", "--tail", "50", check=True)
    assert "daphne" in logs.stdout.lower() or "listening" in logs.stdout.lower(), logs.stdout[-2000:]
    shown = dev.stackctl("manage", "showmigrations", "notes", check=True)
    assert "[X] 0001_initial" in shown.stdout
