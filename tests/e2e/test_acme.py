"""ACME certificates against a real ACME server: pebble from Debian's package, in a container on
the stack's network, its issuing root fetched from its management API.

One prod stack with TLS_CERT_SOURCE=acme for SERVER_NAME "shop.test www.shop.test" (nginx's
aliases on the stack's network, so pebble's http-01 check reaches nginx's port 80):
- the first `up --prod` ends with nginx serving pebble's certificate (openssl s_client, verified
  against pebble's root);
- `up` again asks the CA for nothing;
- `certs renew --force` changes the serial nginx serves while a 20 ms HTTPS probe (a new TLS
  connection each request, and kept-alive ones) sees no failure;
- with pebble stopped, `certs renew --force` fails naming the reason and the fix, and nginx
  still serves the certificate it had.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import DockerClient

from tests.e2e.acmeserver import Pebble, pebble_on
from tests.e2e.stackenv import Proj, make_project, remove_built_images

pytestmark = pytest.mark.engine

DOMAINS = ("shop.test", "www.shop.test")


@dataclass
class Site:
    proj: Proj
    pebble: Pebble
    roots: Path  # pebble's issuing root (PEM), from its management API
    up: dict[str, Any] = field(default_factory=dict)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.roots))
        return ctx


def served(site: Site, name: str = DOMAINS[0]) -> dict[str, str]:
    """What nginx serves for `name` (SNI) on its loopback HTTPS port, as openssl s_client sees it."""
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{site.proj.https_port}", "-servername", name,
         "-CAfile", str(site.roots), "-verify_hostname", name, "-showcerts"],
        input="", capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    leaf = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", proc.stdout, flags=re.S)
    assert leaf, proc.stdout + proc.stderr
    info = subprocess.run(
        ["openssl", "x509", "-noout", "-serial", "-issuer", "-ext", "subjectAltName"],
        input=leaf[0], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    verify = re.search(r"Verify return code: (\d+) \(([^)]*)\)", proc.stdout)
    return {
        "serial": re.search(r"serial=(\w+)", info)[0].split("=")[1],  # type: ignore[index]
        "issuer": info.split("issuer=", 1)[1].splitlines()[0].strip(),
        "names": ",".join(re.findall(r"DNS:([^,\s]+)", info)),
        "verify": f"{verify[1]} {verify[2]}" if verify else "none",
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("acme")
    proj = make_project(
        tmp,
        prod=True,
        tls=True,
        extra={
            "TLS_CERT_SOURCE": "acme",
            "SERVER_NAME": " ".join(DOMAINS),
            "ACME_DIRECTORY_URL": "https://pebble:14000/dir",
            "ACME_CA_BUNDLE": "./pebble-ca.pem",
            "ACME_EMAIL": "ops@shop.test",
            "DJANGO_ALLOWED_HOSTS": ",".join((*DOMAINS, "localhost", "127.0.0.1")),
            "CSRF_TRUSTED_ORIGINS": f"https://{DOMAINS[0]}",
        },
    )
    docker = DockerClient()
    # The stack's own network, made first (with compose's labels, so `up` adopts it) for pebble
    # to join before the first `up` asks it for a certificate.
    network = f"{proj.name}_default"
    docker.network.create(
        network, labels={"com.docker.compose.project": proj.name, "com.docker.compose.network": "default"}
    )
    try:
        with pebble_on(network, workdir=tmp) as pebble:
            (proj.root / "pebble-ca.pem").write_bytes(pebble.ca_bundle.read_bytes())
            roots = tmp / "pebble-roots.pem"
            roots.write_text(pebble.roots())
            made = Site(proj, pebble, roots)
            try:
                proc = proj.stackctl("up", "--json", timeout=900)
                assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
                made.up = json.loads(proc.stdout)
                yield made
            finally:
                pebble.remove()
                proj.stackctl("down", "--volumes", "--yes")
    finally:
        if docker.network.exists(network):
            docker.network.remove(network)
        remove_built_images(proj.name)


def test_first_up_serves_the_certificate_pebble_issued(site: Site) -> None:
    cert = site.up["certificate"]
    assert cert["action"] == "issued", cert
    seen = served(site)
    assert "Pebble" in seen["issuer"], seen
    assert seen["verify"] == "0 ok", seen  # the chain nginx sends verifies against pebble's root
    assert set(seen["names"].split(",")) == set(DOMAINS)
    assert served(site, DOMAINS[1])["serial"] == seen["serial"]
    assert seen["serial"].upper() == cert["status"]["serial"].upper()
    status = json.loads(site.proj.stackctl("certs", "status", "--json", check=True).stdout)
    assert status["ok"] and not status["temporary"] and status["last_error"] is None
    assert "Pebble" in status["issuer"] and status["last_success"] and status["next_check"]
    # http-01 went through the webroot volume nginx serves; the private key is the workers' group's only
    mode = subprocess.run(
        ["docker", "compose", "-p", site.proj.name, "exec", "-T", "backup", "stat", "-L", "-c", "%a %g",
         "/nginx-certs/current/privkey.pem"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert mode == ["640", "101"]
    # the backup scheduler has the renewal check on ACME_RENEW_CRON, and `status` reports it
    scheduler = json.loads(
        subprocess.run(
            ["docker", "compose", "-p", site.proj.name, "exec", "-T", "backup", "cat", "/backups/.scheduler.json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert scheduler["jobs"]["certs"]["cron"] == "17 4,16 * * *"
    assert status["next_check"] == scheduler["jobs"]["certs"]["next_run"]


def test_up_again_asks_the_ca_for_nothing(site: Site) -> None:
    before = served(site)["serial"]
    proc = site.proj.stackctl("up", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cert = json.loads(proc.stdout)["certificate"]
    assert cert["action"] == "none" and cert["reason"] is None, cert
    assert served(site)["serial"] == before
    dry = json.loads(site.proj.stackctl("certs", "renew", "--dry-run", "--json", check=True).stdout)
    assert (dry["action"], dry["reason"]) == ("none", None)
    forced = json.loads(site.proj.stackctl("certs", "renew", "--dry-run", "--force", "--json", check=True).stdout)
    assert forced["action"] == "would-ask-the-ca" and served(site)["serial"] == before
    # `status` reads the backup healthcheck's last report (every 15 s): by the next one it has pebble's
    deadline, text = time.monotonic() + 40, ""
    while time.monotonic() < deadline and not re.search(r"certificate: ok; serial \w+ from .*Pebble", text):
        time.sleep(2)
        text = site.proj.stackctl("status", check=True).stdout
    assert re.search(r"certificate: ok; serial \w+ from .*Pebble", text), text


@dataclass
class TlsProbe:
    """HTTPS GETs of GraphQL every 20 ms on a new TLS connection each (a handshake each: the
    certificate nginx serves is read anew), and on two kept-alive connections."""

    port: int
    ctx: ssl.SSLContext
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    serials: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _fresh(self) -> None:
        request = f"GET /graphql?query=%7B%20ping%20%7D HTTP/1.1\r\nHost: {DOMAINS[0]}\r\nConnection: close\r\n\r\n"
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                with raw, self.ctx.wrap_socket(raw, server_hostname=DOMAINS[0]) as tls:
                    serial = str((tls.getpeercert() or {}).get("serialNumber"))
                    self.serials[serial] = self.serials.get(serial, 0) + 1
                    tls.sendall(request.encode())
                    data = b""
                    while chunk := tls.recv(65536):
                        data += chunk
                if not data.startswith(b"HTTP/1.1 200") or b"pong" not in data:
                    self.failures.append(f"new connection: {data[:120]!r}")
            except Exception as exc:
                self.failures.append(f"new connection: {type(exc).__name__}: {exc}")
            self.sent += 1
            time.sleep(max(0.0, 0.02 - (time.monotonic() - started)))

    def _kept(self) -> None:
        port, ctx = self.port, self.ctx

        class Conn(http.client.HTTPSConnection):
            def connect(self) -> None:  # to loopback, with the site's name as SNI and for the check
                raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                self.sock = ctx.wrap_socket(raw, server_hostname=DOMAINS[0])

        conn: Conn | None = None
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                conn = conn or Conn(DOMAINS[0], port, timeout=10, context=ctx)
                conn.request("GET", "/graphql?query=%7B%20ping%20%7D")
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200 or b"pong" not in body:
                    self.failures.append(f"kept-alive: {resp.status} {resp.getheaders()} {body[-300:]!r}")
                if (resp.getheader("Connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as exc:
                self.failures.append(f"kept-alive: {type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            self.sent += 1
            time.sleep(max(0.0, 0.02 - (time.monotonic() - started)))

    def __enter__(self) -> TlsProbe:
        self.threads = [threading.Thread(target=self._fresh, daemon=True)]
        self.threads += [threading.Thread(target=self._kept, daemon=True) for _ in range(2)]
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(1.0)
        self.stop.set()
        for thread in self.threads:
            thread.join(20)


def test_forced_renewal_changes_the_served_serial_with_no_failed_request(site: Site) -> None:
    before = served(site)["serial"]
    with TlsProbe(site.proj.https_port, site.context()) as probe:
        proc = site.proj.stackctl("certs", "renew", "--force", "--json", timeout=300)
        time.sleep(1.0)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["action"] == "issued" and result["reason"] == "forced (--force)"
    after = served(site)
    assert after["serial"] != before and "Pebble" in after["issuer"] and after["verify"] == "0 ok"
    print(f"renewal under the probe: {probe.sent} requests, {len(probe.failures)} failed, serials {probe.serials}")
    assert probe.sent > 100
    assert probe.failures == [], probe.failures[:10]
    assert len(probe.serials) == 2, probe.serials  # new connections saw the old, then the new one


def test_ca_down_renewal_fails_clearly_and_the_stack_keeps_its_certificate(site: Site) -> None:
    before = served(site)
    site.pebble.stop()
    try:
        proc = site.proj.stackctl("certs", "renew", "--force", timeout=300)
        assert proc.returncode == 10, proc.stdout + proc.stderr
        assert "ca-unreachable" in proc.stderr and "ACME_DIRECTORY_URL" in proc.stderr, proc.stderr
        assert "keeps serving the certificate it had" in proc.stderr
        assert served(site)["serial"] == before["serial"]
        status = site.proj.stackctl("certs", "status", "--json")
        report = json.loads(status.stdout)
        assert report["last_error"]["reason"] == "ca-unreachable"
        assert report["healthy"], report  # years left: a failed renewal is no emergency yet
    finally:
        site.pebble.start()


def test_first_up_without_a_reachable_ca_serves_the_temporary_certificate_and_says_why(
    tmp_path: Path,
) -> None:
    proj = make_project(
        tmp_path,
        prod=True,
        tls=True,
        extra={
            "TLS_CERT_SOURCE": "acme",
            "SERVER_NAME": "shop.test",
            "ACME_DIRECTORY_URL": "https://no-such-ca.test:14000/dir",
            "DJANGO_ALLOWED_HOSTS": "shop.test,localhost,127.0.0.1",
        },
    )
    try:
        proc = proj.stackctl("up", timeout=900)
        assert proc.returncode == 10, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert "the stack is up, but the CA did not issue a certificate for shop.test (ca-unreachable)" in proc.stderr
        assert "temporary self-signed certificate" in proc.stderr and "ACME_DIRECTORY_URL" in proc.stderr
        leaf = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{proj.https_port}", "-servername", "shop.test"],
            input="", capture_output=True, text=True, timeout=20, check=False,
        ).stdout  # fmt: skip
        assert "stackctl temporary certificate" in leaf
        status = proj.stackctl("certs", "status", "--json")
        report = json.loads(status.stdout)
        assert status.returncode == 1 and report["temporary"] and report["last_error"]["reason"] == "ca-unreachable"
        assert report["healthy"]  # served, renewing is retried: no reason to hold `up` on the backup service
        assert proj.wait_healthy(60)
        # `status` reads the backup healthcheck's report (every 15 s): the failure shows by the next one
        deadline, text = time.monotonic() + 40, ""
        while time.monotonic() < deadline and "certificate: PROBLEM" not in text:
            time.sleep(2)
            text = proj.stackctl("status").stdout
        assert "certificate: PROBLEM: a temporary self-signed certificate is served and the CA did not" in text, text
    finally:
        proj.stackctl("down", "--volumes", "--yes")
        remove_built_images(proj.name)
