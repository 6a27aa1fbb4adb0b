"""ASGI_SERVER=granian on a real engine: the prod stack (TLS on) comes up through `stackctl up
--prod` and its checks, and serves the example's GraphQL, websockets, static files and media
uploads through nginx on the same unix sockets as daphne; the healthcheck passes, the access
log is off, and SIGTERM lets a request that is in flight finish before the container exits."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from tests.e2e.stackenv import Proj, containers, http, make_project, multipart, remove_built_images, sha256

pytestmark = pytest.mark.engine
docker = DockerClient()


@pytest.fixture(scope="module")
def granian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proj]:
    proj = make_project(tmp_path_factory.mktemp("granian"), prod=True, tls=True, extra={"ASGI_SERVER": "granian"})
    try:
        proj.stackctl("up", check=True)  # builds, starts, and runs the prod checks (verify)
        yield proj
    finally:
        proj.stackctl("down", "--volumes", "--yes")
        remove_built_images(proj.name)


def test_the_image_installs_granian_and_the_processes_are_granian_on_uvloop(granian: Proj) -> None:
    dockerfile = (granian.root / "compose" / "Dockerfile.prod").read_text()
    assert "'granian=granian==2.8.9'" in dockerfile
    web = containers(granian, "web")[0]
    assert web.execute(["python", "-c", "import granian; print(granian.__version__)"]).strip() == "2.8.9"
    # two granian servers (WEB_CONCURRENCY=2), each a supervisor and one worker, all on uvloop
    probe = (
        "import os\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    if int(pid) == os.getpid(): continue\n"
        "    try: cmd, maps = open(f'/proc/{pid}/cmdline', 'rb').read(), open(f'/proc/{pid}/maps').read()\n"
        "    except OSError: continue\n"
        "    if b'granian.server' in cmd: print('uvloop' if '/uvloop/' in maps else 'asyncio')\n"
    )
    loops = web.execute(["python", "-c", probe]).split()
    assert len(loops) == 4 and set(loops) == {"uvloop"}, loops
    sockets = web.execute(["sh", "-c", "ls /run/stackctl/current/"]).split()
    assert sockets == ["daphne-8000.sock", "daphne-8001.sock"]


def test_graphql_static_and_the_healthcheck(granian: Proj) -> None:
    assert granian.gql("{ ping }", base=granian.base_tls) == {"ping": "pong"}
    title = f"granian note {os.getpid()}"
    granian.gql(
        'mutation($t: String!) { createNote(title: $t, body: "x") { id } }', {"t": title}, base=granian.base_tls
    )
    assert title in [n["title"] for n in granian.gql("{ notes { title } }", base=granian.base_tls)["notes"]]
    login = http(f"{granian.base_tls}/admin/login/")
    css = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.body)
    assert login.status == 200 and css, login.status
    assert http(f"{granian.base_tls}{css.group(1).decode()}").status == 200
    web = containers(granian, "web")[0]
    assert web.state.health is not None and web.state.health.status == "healthy"
    assert web.execute(["/usr/local/bin/docker-entrypoint.sh", "healthcheck"]) == ""


def test_media_upload_round_trip(granian: Proj) -> None:
    content = b"granian media " * 4000
    body, ctype = multipart("file", "granian.bin", content)
    up = http(f"{granian.base_tls}/upload", data=body, headers={"Content-Type": ctype})
    assert up.status in (200, 201), up.body
    again = http(f"{granian.base_tls}{up.json()['url']}")
    assert again.status == 200 and sha256(again.body) == sha256(content)


def test_websocket_echo_through_nginx(granian: Proj) -> None:
    import websockets

    async def talk() -> list[str]:
        ctx = ssl._create_unverified_context()
        url = f"wss://127.0.0.1:{granian.https_port}/ws/echo"
        async with websockets.connect(url, ssl=ctx, open_timeout=10) as ws:
            replies = []
            for text in ("hello", "granian"):
                await ws.send(text)
                replies.append(await asyncio.wait_for(ws.recv(), 10))
            return replies

    assert asyncio.run(talk()) == ["hello", "granian"]


def test_no_access_log_and_client_address_from_nginx(granian: Proj) -> None:
    marker = f"/healthz?access-log-probe={os.getpid()}"
    for _ in range(3):
        assert http(f"{granian.base_tls}{marker}").status == 200
    logs = docker.container.logs(containers(granian, "web")[0])
    assert "access-log-probe" not in logs, logs[-2000:]
    assert "granian runs 2 processes" in logs, logs[-2000:]


# A POST whose body arrives in two halves, on web's first socket from inside the container: the
# first half before SIGTERM, the second 1.5 s after it. The server has the request in flight
# when the signal comes; it must still answer it, and only then exit.
IN_FLIGHT = r"""
import json, socket, sys, time
body = json.dumps({"query": "{ ping }"}).encode()
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect("/run/stackctl/current/daphne-8000.sock")
head = (f"POST /graphql HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: https\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
s.sendall(head + body[:5])
open("/tmp/in-flight-half-sent", "w").close()  # the test stops web once this is there
time.sleep(float(sys.argv[1]))
s.sendall(body[5:])
reply = b""
while chunk := s.recv(65536):
    reply += chunk
print(reply.split(b"\r\n", 1)[0].decode(), reply.rsplit(b"\r\n\r\n", 1)[-1].decode(), flush=True)
"""


def _exists(container: Any, path: str) -> bool:
    try:
        container.execute(["test", "-e", path])
    except DockerException:
        return False
    return True


def test_sigterm_finishes_the_request_in_flight_then_exits(granian: Proj) -> None:
    web = containers(granian, "web")[0]
    out: list[str] = []

    def client() -> None:
        try:
            out.append(web.execute(["python", "-c", IN_FLIGHT, "3"]))
        except Exception as exc:  # the container went away before answering
            out.append(f"failed: {exc}")

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 15  # until the first half is sent (docker exec and python start first)
    while not _exists(web, "/tmp/in-flight-half-sent"):
        assert time.monotonic() < deadline and thread.is_alive(), out
        time.sleep(0.05)
    started = time.monotonic()
    web.stop(time=20)  # SIGTERM to the entrypoint, which passes it on; SIGKILL only after 20 s
    stopped_after = time.monotonic() - started
    thread.join(30)
    web.reload()
    assert out and "HTTP/1.1 200" in out[0] and '"pong"' in out[0], out
    assert web.state.exit_code == 143, web.state.exit_code  # the entrypoint's own exit on TERM, not a kill
    # it waited for the request's second half, 3 s after the first (less the marker's poll), not for the 20 s
    assert 2.0 < stopped_after < 12, stopped_after
    logs = docker.container.logs(web)
    assert "Traceback" not in logs, logs[-3000:]
    granian.stackctl("up", check=True)  # and the stack comes back
    assert granian.gql("{ ping }", base=granian.base_tls) == {"ping": "pong"}
