"""nginx under abuse: the settings of the Nginx group reach nginx.conf, and every variant of
it passes `nginx -t` in both nginx images the stack supports (trixie's 1.26, bookworm's 1.22).
How nginx then behaves (slow clients dropped, floods limited, maintenance) is tested on a
real stack in tests/e2e/test_nginx_abuse.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackctl.core.render import render_set
from tests.render.stackfiles import CASES, Case, load_fixture, own_files

DEV, PROD, TLS_DEV, TLS_PROD, ACME_PROD = CASES

# Every option changed from its default (and the optional ones off).
CUSTOM = {
    "NGINX_CLIENT_HEADER_TIMEOUT": "7",
    "NGINX_CLIENT_BODY_TIMEOUT": "20s",
    "NGINX_SEND_TIMEOUT": "2m",
    "NGINX_KEEPALIVE_TIMEOUT": "0",
    "NGINX_KEEPALIVE_REQUESTS": "50",
    "NGINX_KEEPALIVE_TIME": "10m",
    "NGINX_WEBSOCKET_IDLE_TIMEOUT": "90s",
    "NGINX_CONN_LIMIT_PER_IP": "0",
    "NGINX_LOGIN_PATHS": "/accounts/login/,/api/token.json",
    "NGINX_LOGIN_RATE": "3r/s",
    "NGINX_LOGIN_BURST": "0",
    "NGINX_UPLOAD_PATHS": "",
    "NGINX_UPLOAD_RATE": "2r/m",
    "NGINX_UPLOAD_BURST": "1",
}


def conf(case: Case, tmp_path: Path, **extra: str) -> str:
    cfg = load_fixture(case.env, case.profile, tmp_path, extra=extra)
    name = "nginx/nginx.prod.conf" if case.profile == "prod" else "nginx/nginx.conf"
    return own_files(render_set(cfg))[name][0].decode()


def block(text: str, opening: str) -> str:
    """The body of the first `OPENING {` block in TEXT (braces balanced)."""
    start = text.index(opening + " {") + len(opening) + 2
    depth, end = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    return text[start : end - 1]


def servers(text: str) -> list[str]:
    bodies, rest = [], text
    while "    server {" in rest:
        body = block(rest, "    server")
        bodies.append(body)
        rest = rest[rest.index(body) + len(body) :]
    return bodies


def test_defaults_bound_slow_clients_and_keep_alive(tmp_path: Path) -> None:
    http = block(conf(DEV, tmp_path), "http")
    for directive in (
        "client_header_timeout 10s;",
        "client_body_timeout 10s;",
        "send_timeout 10s;",
        "keepalive_timeout 15s;",
        "keepalive_requests 1000;",
        "keepalive_time 1h;",
        "reset_timedout_connection on;",
    ):
        assert f"\n    {directive}\n" in http, directive
    assert "65s" not in http


def test_every_option_comes_from_the_env_file(tmp_path: Path) -> None:
    text = conf(DEV, tmp_path, **CUSTOM)
    for directive in (
        "client_header_timeout 7s;",
        "client_body_timeout 20s;",
        "send_timeout 2m;",
        "keepalive_timeout 0s;",
        "keepalive_requests 50;",
        "keepalive_time 10m;",
        "limit_req_zone $login_limit_key zone=login:10m rate=3r/s;",
        "limit_req_zone $upload_limit_key zone=uploads:10m rate=2r/m;",
    ):
        assert f"\n    {directive}\n" in text, directive
    (server,) = servers(text)
    assert "limit_req zone=login nodelay;" in server  # burst 0 is nginx's default (and "burst=0" invalid)
    assert "limit_req zone=uploads burst=1 nodelay;" in server
    assert "limit_conn " not in server  # NGINX_CONN_LIMIT_PER_IP=0 turns it off
    websocket = block(server, "location @websocket")
    assert "proxy_read_timeout 90s;" in websocket and "proxy_send_timeout 90s;" in websocket
    login = block(text, "map $uri $login_path")
    # prefixes, dots escaped: /api/tokenXjson is not the login path
    assert re.findall(r'"(~\^[^"]+)" 1;', login) == ["~^/accounts/login/", r"~^/api/token\.json"]
    assert re.findall(r'"(~\^[^"]+)" 1;', block(text, "map $uri $upload_path")) == []


def test_defaults_limit_login_posts_and_uploads_per_address(tmp_path: Path) -> None:
    text = conf(DEV, tmp_path)
    assert "limit_req_zone $login_limit_key zone=login:10m rate=10r/m;" in text
    assert "limit_req_zone $upload_limit_key zone=uploads:10m rate=30r/m;" in text
    assert "limit_conn_zone $binary_remote_addr zone=per_address:10m;" in text
    assert "limit_req_status 429;" in text and "limit_conn_status 429;" in text
    assert re.findall(r'"(~\^[^"]+)" 1;', block(text, "map $uri $login_path")) == ["~^/admin/login/"]
    # only writes count, and only from the client's own address
    assert "11      $binary_remote_addr;" in block(text, 'map "$writes$login_path" $login_limit_key')
    assert re.search(r"\bPOST +1;", block(text, "map $request_method $writes"))
    assert "GET" not in block(text, "map $request_method $writes")
    for server in servers(conf(TLS_PROD, tmp_path / "tls")):
        assert "limit_req zone=login burst=5 nodelay;" in server
        assert "limit_req zone=uploads burst=10 nodelay;" in server
        assert "limit_conn per_address 100;" in server


def test_upload_paths_and_multipart_bodies_are_limited(tmp_path: Path) -> None:
    text = conf(DEV, tmp_path, NGINX_UPLOAD_PATHS="/upload,/files/")
    assert re.findall(r'"(~\^[^"]+)" 1;', block(text, "map $uri $upload_path")) == ["~^/upload", "~^/files/"]
    assert '"~*^multipart/form-data" 1;' in block(text, "map $content_type $multipart_body")
    key = block(text, 'map "$writes$upload_path$multipart_body" $upload_limit_key')
    pattern = re.search(r'"~(\S+)"\s+\$binary_remote_addr;', key)
    assert pattern is not None
    counted = {f"{w}{p}{m}" for w in "01" for p in "01" for m in "01" if re.search(pattern[1], f"{w}{p}{m}")}
    assert counted == {"110", "101", "111"}  # a write to an upload path, or a multipart write anywhere


def test_without_trusted_proxies_nginx_is_the_edge(tmp_path: Path) -> None:
    text = conf(TLS_PROD, tmp_path)
    assert "set_real_ip_from" not in text and "real_ip_header" not in text
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in text
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text


def test_trusted_proxies_give_the_real_client_address(tmp_path: Path) -> None:
    text = conf(PROD, tmp_path, NGINX_TRUSTED_PROXIES="10.0.0.0/8, 2001:db8::/32,192.0.2.7")
    assert re.findall(r"set_real_ip_from (\S+);", text) == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]
    assert "real_ip_header X-Forwarded-For;" in text and "real_ip_recursive on;" in text
    trusted = block(text, "geo $realip_remote_addr $from_trusted_proxy")
    assert re.findall(r"(\S+) 1;", trusted) == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]
    assert "proxy_set_header X-Forwarded-Proto $forwarded_proto;" in text
    proto = block(text, 'map "$from_trusted_proxy:$http_x_forwarded_proto" $forwarded_proto')
    assert "default   $scheme;" in proto  # anyone else's header is ignored


def test_tls_drops_the_dhe_suites(tmp_path: Path) -> None:
    text = conf(TLS_PROD, tmp_path)
    (ciphers,) = re.findall(r"ssl_ciphers (\S+);", text)
    suites = ciphers.split(":")
    assert suites and all(s.startswith("ECDHE-") for s in suites)
    assert not re.search(r"^\s*ssl_dhparam", text, flags=re.M)
    assert re.findall(r"ssl_protocols ([^;]+);", text) == ["TLSv1.2 TLSv1.3"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_dotfiles_media_symlinks_and_maintenance(case: Case, tmp_path: Path) -> None:
    text = conf(case, tmp_path)
    app = servers(text)[-1]  # with TLS the first server only redirects
    assert "location ~ /\\.(?!well-known(/|$)) {\n            return 404;" in app
    media = block(app, "location /media/")
    assert "disable_symlinks on from=$document_root;" in media
    maintenance = "if (-f /run/stackctl/maintenance) {\n                return 503;"
    for route in ("location /graphql", "location /"):
        body = block(app, route)
        assert maintenance in body and "error_page 503 @maintenance;" in body
        # the maintenance check comes before the websocket hand-off
        assert body.index(maintenance) < body.index("return 418;")
    static = next(m for m in re.findall(r"(location /\S*) \{", app) if "$static_cache_control" in block(app, m))
    for served in ("location /media/", static):
        assert "maintenance" not in block(app, served), served
    assert "maintenance" not in block(servers(text)[0], "location = /nginx-health")
    page = block(app, "location @maintenance")
    assert "add_header Retry-After 30 always;" in page and "return 503 '<!doctype html>" in page
    assert ("Strict-Transport-Security" in page) == case.tls


# -- nginx -t in both nginx images --------------------------------------------------------------

IMAGES = ("stackctl/nginx:1.26-trixie", "stackctl/nginx:1.22-bookworm")
# 1.25.1 deprecated `listen ... http2` for an `http2` directive 1.22 does not have.
ALLOWED_WARNINGS = ('the "listen ... http2" directive is deprecated',)
VARIANTS = {
    "dev": (DEV, {}),
    "prod-behind-proxy": (PROD, {}),
    "tls-prod": (TLS_PROD, {}),
    "tls-custom": (TLS_PROD, {**CUSTOM, "NGINX_TRUSTED_PROXIES": "172.16.0.0/12,::1"}),
}


@pytest.mark.engine
@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_nginx_accepts_every_variant(variant: str, image: str, test_certs: Path, tmp_path: Path) -> None:
    from python_on_whales import DockerClient

    from tests.render.stackfiles import missing

    docker = DockerClient()
    if not docker.image.exists(image):
        missing(f"the image {image} (`stackctl images build` makes it)")
    case, extra = VARIANTS[variant]
    path = tmp_path / "nginx.conf"
    path.write_text(conf(case, tmp_path / "stack", **extra))
    output = docker.run(
        image,
        ["sh", "-c", "nginx -t 2>&1"],
        remove=True,
        pull="never",
        volumes=[(path, "/etc/nginx/nginx.conf", "ro"), (test_certs, "/etc/nginx/certs", "ro")],
    )
    assert isinstance(output, str)
    assert "test is successful" in output, output
    problems = [
        line
        for line in output.splitlines()
        if ("[warn]" in line or "[emerg]" in line) and not any(w in line for w in ALLOWED_WARNINGS)
    ]
    assert problems == [], output
