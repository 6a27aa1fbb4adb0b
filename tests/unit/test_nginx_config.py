"""The Nginx group's abuse settings and the prod rule on plain HTTP: every bad value is named
with its variable and a readable reason; prod refuses plain HTTP on a public address unless
the env file says TLS ends in front of nginx."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.config import load_config
from stackctl.errors import ConfigError

GOOD = """
DJANGO_SECRET_KEY=s3cr3t-Value-That-Must-Never-Show-Up-0123456789-abcdefghij
POSTGRES_PASSWORD=pw-s3cr3t-Value-That-Must-Never-Show-Up
"""


def load(tmp_path: Path, extra: str = "", profile: str = "dev"):  # type: ignore[no-untyped-def]
    path = tmp_path / (".env.prod" if profile == "prod" else ".env")
    path.write_text(GOOD + extra)
    return load_config(path, profile=profile)  # type: ignore[arg-type]


def errors(tmp_path: Path, extra: str, profile: str = "dev") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, extra, profile)
    return [p.render() for p in info.value.problems if p.severity == "error"]


def test_defaults(tmp_path: Path) -> None:
    ngx = load(tmp_path).config.nginx
    assert (ngx.nginx_client_header_timeout, ngx.nginx_client_body_timeout, ngx.nginx_send_timeout) == (
        "10s",
        "10s",
        "10s",
    )
    assert (ngx.nginx_keepalive_timeout, ngx.nginx_keepalive_requests, ngx.nginx_keepalive_time) == ("15s", 1000, "1h")
    assert ngx.nginx_websocket_idle_timeout == "1h"
    assert ngx.nginx_conn_limit_per_ip == 100
    assert (ngx.nginx_login_paths, ngx.nginx_login_rate, ngx.nginx_login_burst) == (["/admin/login/"], "10r/m", 5)
    assert (ngx.nginx_upload_paths, ngx.nginx_upload_rate, ngx.nginx_upload_burst) == ([], "30r/m", 10)
    assert ngx.nginx_trusted_proxies == [] and not ngx.tls_terminated_in_front


def test_values_are_normalised(tmp_path: Path) -> None:
    ngx = load(
        tmp_path,
        "NGINX_CLIENT_HEADER_TIMEOUT=7\nNGINX_SEND_TIMEOUT= 2m \nNGINX_LOGIN_RATE=3 r/s\n"
        "NGINX_TRUSTED_PROXIES=10.1.2.3/8, 192.0.2.7,2001:db8::/32\nNGINX_UPLOAD_PATHS=/upload, /api/files/\n"
        "NGINX_KEEPALIVE_TIMEOUT=0\n",
    ).config.nginx
    assert ngx.nginx_client_header_timeout == "7s" and ngx.nginx_send_timeout == "2m"
    assert ngx.nginx_login_rate == "3r/s"
    assert ngx.nginx_trusted_proxies == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    assert ngx.nginx_upload_paths == ["/upload", "/api/files/"]
    assert ngx.nginx_keepalive_timeout == "0s"  # keep-alive off


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "NGINX_CLIENT_HEADER_TIMEOUT=soon",
            "NGINX_CLIENT_HEADER_TIMEOUT [Nginx]: not a time (a number with ms, s, m, h or d",
        ),
        ("NGINX_CLIENT_HEADER_TIMEOUT=0", "NGINX_CLIENT_HEADER_TIMEOUT [Nginx]: must be at least 1s"),
        ("NGINX_CLIENT_BODY_TIMEOUT=500ms", "NGINX_CLIENT_BODY_TIMEOUT [Nginx]: must be between 1s and 1d"),
        ("NGINX_SEND_TIMEOUT=2d", "NGINX_SEND_TIMEOUT [Nginx]: must be between 1s and 1d"),
        ("NGINX_WEBSOCKET_IDLE_TIMEOUT=0s", "NGINX_WEBSOCKET_IDLE_TIMEOUT [Nginx]: must be at least 1s"),
        ("NGINX_KEEPALIVE_TIME=-1", "NGINX_KEEPALIVE_TIME [Nginx]: not a time"),
        ("NGINX_KEEPALIVE_REQUESTS=0", "NGINX_KEEPALIVE_REQUESTS [Nginx]: must be between 1 and 100000"),
        ("NGINX_CONN_LIMIT_PER_IP=-5", "NGINX_CONN_LIMIT_PER_IP [Nginx]: must be between 0 and 100000"),
        ("NGINX_CONN_LIMIT_PER_IP=many", "NGINX_CONN_LIMIT_PER_IP [Nginx]"),
        ("NGINX_LOGIN_RATE=10/m", "NGINX_LOGIN_RATE [Nginx]: not a request rate"),
        ("NGINX_UPLOAD_RATE=0r/s", "NGINX_UPLOAD_RATE [Nginx]: not a request rate"),
        ("NGINX_UPLOAD_RATE=5r/h", "NGINX_UPLOAD_RATE [Nginx]: not a request rate"),
        ("NGINX_LOGIN_BURST=-1", "NGINX_LOGIN_BURST [Nginx]: must be between 0 and 100000"),
        ("NGINX_LOGIN_PATHS=admin/login/", "NGINX_LOGIN_PATHS [Nginx]: each path must start with /"),
        ('NGINX_UPLOAD_PATHS=/up"; deny all; "', "NGINX_UPLOAD_PATHS [Nginx]: each path must start with /"),
        ("NGINX_UPLOAD_PATHS=/a b", "NGINX_UPLOAD_PATHS [Nginx]: each path must start with /"),
        ("NGINX_TRUSTED_PROXIES=proxy.local", "NGINX_TRUSTED_PROXIES [Nginx]: not an IP address or network"),
        ("NGINX_TRUSTED_PROXIES=0.0.0.0/0", "NGINX_TRUSTED_PROXIES [Nginx]: trusting every address"),
        ("NGINX_TRUSTED_PROXIES=::/0", "NGINX_TRUSTED_PROXIES [Nginx]: trusting every address"),
        ("TLS_TERMINATED_IN_FRONT=maybe", "TLS_TERMINATED_IN_FRONT [Nginx]"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, line: str, expected: str) -> None:
    found = errors(tmp_path, line + "\n")
    assert len(found) == 1 and expected in found[0], found


def test_every_bad_value_is_reported_at_once(tmp_path: Path) -> None:
    found = errors(tmp_path, "NGINX_SEND_TIMEOUT=x\nNGINX_LOGIN_RATE=x\nNGINX_UPLOAD_PATHS=x\n")
    assert [f.split(": ")[1].split(" ")[0] for f in found] == [
        "NGINX_SEND_TIMEOUT",
        "NGINX_LOGIN_RATE",
        "NGINX_UPLOAD_PATHS",
    ]


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.10", "::", "2001:db8::1", "example.com"])
def test_prod_refuses_plain_http_on_a_public_address(tmp_path: Path, address: str) -> None:
    found = errors(tmp_path, f"NGINX_BIND_ADDRESS={address}\n", profile="prod")
    assert len(found) == 1, found
    assert f"NGINX_BIND_ADDRESS [Nginx]: prod would serve plain HTTP on a public address (got '{address}')" in found[0]
    assert "TLS_TERMINATED_IN_FRONT=true" in found[0] and "USE_TLS=true" in found[0]


def test_dev_may_serve_plain_http_anywhere(tmp_path: Path) -> None:
    load(tmp_path, "NGINX_BIND_ADDRESS=0.0.0.0\n")


def test_tls_in_front_allows_a_public_address(tmp_path: Path) -> None:
    loaded = load(tmp_path, "NGINX_BIND_ADDRESS=0.0.0.0\nTLS_TERMINATED_IN_FRONT=true\n", profile="prod")
    assert [w.variable for w in loaded.warnings if w.group == "Nginx"] == []


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_plain_http_on_loopback_is_only_a_warning(tmp_path: Path, address: str) -> None:
    loaded = load(tmp_path, f"NGINX_BIND_ADDRESS={address}\n", profile="prod")
    assert [(w.variable, w.message) for w in loaded.warnings if w.group == "Nginx"] == [
        ("USE_TLS", "prod serves plain HTTP (on loopback only)")
    ]


def test_tls_on_needs_no_front_proxy(tmp_path: Path) -> None:
    found = errors(tmp_path, "NGINX_BIND_ADDRESS=0.0.0.0\nUSE_TLS=true\n", profile="prod")
    assert not any("NGINX_BIND_ADDRESS" in f for f in found)  # only the TLS rules (cert files, HSTS...)


def test_init_publishes_prod_on_loopback_until_tls_is_set_up(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    root = tmp_path / "shop"
    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "example", root / "example", ignore=shutil.ignore_patterns("__pycache__"))
    result = cli("init", cwd=root)
    assert result.code == 0, result.err
    assert "NGINX_BIND_ADDRESS=127.0.0.1" in (root / ".env.prod").read_text().splitlines()
    # what prod policy says about it: a warning naming both ways to publish it
    loaded = load_config(root / ".env.prod", profile="prod")
    (plain,) = [w for w in loaded.warnings if w.variable == "USE_TLS"]
    assert plain.severity == "warning" and "TLS_TERMINATED_IN_FRONT=true" in (plain.hint or "")
