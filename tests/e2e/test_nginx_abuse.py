"""nginx under abuse, on a real prod stack: slow and idle clients are dropped, floods of login
POSTs and uploads get 429 while the rest of the site answers, one address cannot hold more
connections than NGINX_CONN_LIMIT_PER_IP, idle websockets are closed, dotfiles and symlinks
in the media volume are never served, and the maintenance file turns the application's
routes into a 503 page while static files, media and /nginx-health still work. Behind
trusted proxies (nginx alone in its image), the limits count each client, not the proxy.

Every load here is bounded in requests and time, and goes to loopback only."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.e2e.stackenv import Proj, containers, http, make_project, multipart, remove_built_images

pytestmark = pytest.mark.engine

CONN_LIMIT = 8
UPLOAD_BURST = 3
LOGIN_BURST = 5  # the default
MAINTENANCE = "/run/stackctl/maintenance"


@pytest.fixture(scope="module")
def abuse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proj]:
    """A prod stack (plain HTTP on loopback) with the default timeouts and login limit, and
    small connection and upload limits so that a bounded test can reach them."""
    proj = make_project(
        tmp_path_factory.mktemp("abuse"),
        prod=True,
        extra={
            "NGINX_CONN_LIMIT_PER_IP": str(CONN_LIMIT),
            "NGINX_UPLOAD_PATHS": "/upload",
            "NGINX_UPLOAD_BURST": str(UPLOAD_BURST),
            "NGINX_WEBSOCKET_IDLE_TIMEOUT": "5s",
        },
    )
    try:  # a stack that failed to come up is removed too, not left restarting
        proj.stackctl("up", check=True)
        yield proj
    finally:
        proj.stackctl("down", "--volumes", "--yes")
        remove_built_images(proj.name)  # the web and backup images `up` built


def web_exec(proj: Proj, *command: str) -> str:
    (web,) = containers(proj, "web")
    return str(web.execute(list(command)))


def closed(sock: socket.socket, wait: float) -> bool:
    """True when the peer closed or reset SOCK; False when it is still open after WAIT s."""
    sock.settimeout(wait)
    try:
        while sock.recv(4096):
            pass  # a response (nginx sends none on a header timeout), then the close
        return True
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_slow_header_client_is_dropped_within_20_s(abuse: Proj) -> None:
    start = time.monotonic()
    slow = socket.create_connection(("127.0.0.1", abuse.http_port), timeout=5)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    # twenty more clients: one line of a header each, and one that sends nothing at all
    others = [socket.create_connection(("127.0.0.1", abuse.http_port), timeout=5) for _ in range(20)]
    for sock in others[1:]:
        sock.sendall(b"POST /admin/login/ HTTP/1.1\r\n")
    dropped = False
    served_meanwhile = False
    try:
        while time.monotonic() - start < 20:
            try:
                slow.sendall(b"X-Slow: 1\r\n")  # a header line a second, never the blank line
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            if closed(slow, 1):
                dropped = True
                break
            if not served_meanwhile:  # the slow clients do not keep others out
                served_meanwhile = http(f"{abuse.base}/healthz", timeout=5).status == 200
        assert dropped, "a client trickling its header was still connected after 20 s"
        assert served_meanwhile
        left = 20 - (time.monotonic() - start)
        still_open = [i for i, sock in enumerate(others) if not closed(sock, max(left, 0.1))]
        assert still_open == [], f"clients {still_open} (0 sent nothing) were still connected after 20 s"
    finally:
        for sock in [slow, *others]:
            sock.close()


def test_login_flood_gets_429_while_other_pages_answer(abuse: Proj) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    statuses = []
    for i in range(30):
        resp = http(f"{abuse.base}/admin/login/", data=b"username=admin&password=guess", headers=form)
        statuses.append(resp.status)
        if i % 6 == 5:  # during the flood: the app, the login page itself, static files
            assert http(f"{abuse.base}/healthz").status == 200
            assert http(f"{abuse.base}/admin/login/").status == 200  # GETs are not counted
            assert http(f"{abuse.base}/static/admin/css/base.css").status == 200
    assert statuses[0] == 403  # Django's own answer (no CSRF token): the first POSTs pass
    passed = [s for s in statuses if s != 429]
    # the burst and one at the rate (10/min); a second one if the loop took over 6 s
    assert LOGIN_BURST + 1 <= len(passed) <= LOGIN_BURST + 2, statuses
    assert set(passed) == {403}, statuses
    assert statuses[-1] == 429
    limited = http(f"{abuse.base}/admin/login/", data=b"username=admin&password=guess", headers=form)
    assert limited.status == 429 and b"Too Many Requests" in limited.body


def test_upload_flood_gets_429_and_other_writes_pass(abuse: Proj) -> None:
    statuses = []
    for i in range(12):
        body, ctype = multipart("file", f"flood-{i}.txt", b"x" * 100)
        statuses.append(http(f"{abuse.base}/upload", data=body, headers={"Content-Type": ctype}).status)
    passed = [s for s in statuses if s != 429]
    assert set(passed) == {201} and UPLOAD_BURST + 1 <= len(passed) <= UPLOAD_BURST + 2, statuses
    assert statuses[-1] == 429
    # the same address's multipart body on another path counts against the same limit
    body, ctype = multipart("file", "elsewhere.txt", b"y")
    assert http(f"{abuse.base}/attachments", data=body, headers={"Content-Type": ctype}).status == 429
    # a JSON API write is not an upload
    graphql = http(f"{abuse.base}/graphql", data=b'{"query": "{ ping }"}', headers={"Content-Type": "application/json"})
    assert graphql.status == 200 and graphql.json() == {"data": {"ping": "pong"}}


def test_one_address_holds_at_most_the_connection_limit(abuse: Proj) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{abuse.http_port}/ws/echo"
    with ExitStack() as held:
        first = held.enter_context(connect(url, open_timeout=10))
        for _ in range(CONN_LIMIT - 1):
            held.enter_context(connect(url, open_timeout=10))
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=10)
        assert refused.value.response.status_code == 429
        first.close()
        deadline = time.monotonic() + 10
        while True:  # nginx counts the closed one out as soon as it has seen the close
            try:
                again = held.enter_context(connect(url, open_timeout=10))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline, "a freed connection slot stayed taken"
                time.sleep(0.2)
        again.send("still here")
        assert again.recv(timeout=10) == "still here"


def test_idle_websocket_is_closed(abuse: Proj) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{abuse.http_port}/ws/echo", open_timeout=10) as ws:
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        # NGINX_WEBSOCKET_IDLE_TIMEOUT=5s, daphne's own keep-alive ping comes after 20 s
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=15)


def test_dotfiles_are_refused_except_well_known(abuse: Proj) -> None:
    web_exec(
        abuse, "sh", "-c", "printf secret > /srv/media/.hidden && mkdir -p /srv/media/d && printf s > /srv/media/d/.env"
    )
    for path in ("/.env", "/.git/config", "/media/.hidden", "/media/d/.env", "/static/.gitignore", "/admin/.htpasswd"):
        resp = http(f"{abuse.base}{path}")
        assert resp.status == 404 and b"secret" not in resp.body, path
        assert b"<center>nginx</center>" in resp.body, path  # nginx's own page: never proxied
    # /.well-known/ reaches the app (Django's 404 here, not nginx's)
    known = http(f"{abuse.base}/.well-known/security.txt")
    assert known.status == 404 and b"<center>nginx</center>" not in known.body


def test_symlinks_in_media_are_not_followed(abuse: Proj) -> None:
    web_exec(
        abuse,
        "sh",
        "-c",
        "printf plain > /srv/media/plain.txt && ln -sf /etc/passwd /srv/media/evil.txt"
        " && ln -sfn /etc /srv/media/etcdir",
    )
    assert http(f"{abuse.base}/media/plain.txt").body == b"plain"
    for path in ("/media/evil.txt", "/media/etcdir/passwd"):
        resp = http(f"{abuse.base}{path}")
        # 403 for the link itself, 404 for a path through a linked folder
        assert resp.status in (403, 404) and b"root:" not in resp.body, (path, resp.status)


def test_maintenance_file_turns_app_routes_into_503(abuse: Proj) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    web_exec(abuse, "sh", "-c", "printf media > /srv/media/during.txt")
    assert http(f"{abuse.base}/healthz").status == 200
    web_exec(abuse, "touch", MAINTENANCE)
    try:
        for path in ("/", "/healthz", "/admin/login/", "/graphql"):
            resp = http(f"{abuse.base}{path}")
            assert resp.status == 503, path
            assert resp.headers.get("retry-after") == "30", path
            assert resp.headers["content-type"].startswith("text/html")
            assert b"Down for maintenance" in resp.body and resp.headers.get("cache-control") == "no-store"
        post = http(
            f"{abuse.base}/graphql", data=b'{"query": "{ ping }"}', headers={"Content-Type": "application/json"}
        )
        assert post.status == 503
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{abuse.http_port}/ws/echo", open_timeout=10)
        assert refused.value.response.status_code == 503
        # what nginx serves itself still works
        assert http(f"{abuse.base}/static/admin/css/base.css").status == 200
        assert http(f"{abuse.base}/media/during.txt").body == b"media"
        health = http(f"{abuse.base}/nginx-health")
        assert (health.status, health.body) == (200, b"ok\n")
    finally:
        web_exec(abuse, "rm", "-f", MAINTENANCE)
    # no reload: the next request sees the file gone
    assert http(f"{abuse.base}/healthz").status == 200


# -- behind trusted proxies: nginx alone, in its image, with the rendered prod config ----------

EDGE_IMAGE = "stackctl/nginx:1.26-trixie"


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx.prod.conf for a stack behind proxies on Docker's private networks, served by nginx
    alone (no web: what it proxies answers 502). Yields its base URL on loopback."""
    from python_on_whales import DockerClient

    from stackctl.config import load_config
    from stackctl.core.render import render_set
    from tests.e2e.stackenv import free_port

    folder = tmp_path_factory.mktemp("edge")
    env = folder / ".env.prod"
    env.write_text(
        "DJANGO_SECRET_KEY=edge-test-only-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ\n"
        "POSTGRES_PASSWORD=edge-test-only\nNGINX_BIND_ADDRESS=0.0.0.0\nTLS_TERMINATED_IN_FRONT=true\n"
        # docker-proxy hands loopback connections to nginx from the bridge's gateway address
        "NGINX_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16\n"
    )
    conf = folder / "nginx.conf"
    conf.write_bytes(render_set(load_config(env, profile="prod").config)["nginx/nginx.prod.conf"][0])
    (folder / "sockets").mkdir()
    port = free_port()
    container = DockerClient().run(
        EDGE_IMAGE,
        detach=True,
        pull="never",
        publish=[(f"127.0.0.1:{port}", 80)],
        volumes=[(conf, "/etc/nginx/nginx.conf", "ro"), (folder / "sockets", "/run/stackctl", "ro")],
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if http(f"http://127.0.0.1:{port}/nginx-health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        container.remove(force=True)  # type: ignore[union-attr]


def test_limits_count_each_client_behind_a_trusted_proxy(behind_proxy: str) -> None:
    def login(client: str) -> int:
        return http(
            f"{behind_proxy}/admin/login/",
            data=b"username=admin&password=guess",
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": f"{client}, 10.0.0.9"},
        ).status

    first = [login("203.0.113.5") for _ in range(LOGIN_BURST + 4)]
    # allowed ones reach the (absent) app: 502; then nginx's own 429
    assert first[: LOGIN_BURST + 1] == [502] * (LOGIN_BURST + 1) and first[-1] == 429, first
    # another client behind the same proxy is not held back by the first one's flood
    assert login("203.0.113.6") == 502
