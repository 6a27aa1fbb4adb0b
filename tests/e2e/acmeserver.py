"""A real ACME server for tests: pebble from Debian's `pebble` package, in a container on a
given Docker network (never a registry image: it is built from the local Debian base).

Debian's package ships no certificate for pebble's own HTTPS listener, so one is made here,
signed by a throwaway CA whose PEM is what ACME clients must trust (their ACME_CA_BUNDLE).
Pebble validates http-01 on port 80 of each name, resolved by the container's resolver:
Docker's DNS, where the stack's nginx has its SERVER_NAME names as aliases.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

SUITE = "trixie"
IMAGE = f"stackctl-test/pebble:{SUITE}"
DOCKERFILE = """\
ARG SUITE=trixie
FROM stackctl/debian:${SUITE}
RUN apt-get update && apt-get install -y --no-install-recommends pebble && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/usr/bin/pebble"]
"""


def build_image(workdir: Path, suite: str = SUITE) -> str:
    docker = DockerClient()
    tag = f"stackctl-test/pebble:{suite}"
    if not docker.image.exists(tag):
        context = workdir / "pebble-image"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text(DOCKERFILE)
        docker.legacy_build(context, tags=[tag], build_args={"SUITE": suite}, pull=False)
    return tag


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_listener_certs(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem): a CA, and pebble's listener certificate for `pebble` and
    `localhost` signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "key.pem", "csr.pem", "cert.pem"))
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "3", "-subj", "/CN=stackctl test ACME listener CA",
             "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    _openssl("req", *ec, "-subj", "/CN=pebble", "-keyout", str(key), "-out", str(csr))
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=DNS:pebble,DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "3", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    key.chmod(0o644)  # read by pebble, which runs as root in its container anyway
    return ca, cert, key


@dataclass
class Pebble:
    container: str
    ca_bundle: Path  # the CA that signed pebble's listener certificate
    management_port: int  # 15000, published on 127.0.0.1
    directory_url: str = "https://pebble:14000/dir"  # as containers on the network see it

    def _get(self, path: str) -> str:
        ctx = ssl.create_default_context(cafile=str(self.ca_bundle))
        url = f"https://localhost:{self.management_port}{path}"
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
        with opener.open(url.replace("localhost", "127.0.0.1"), timeout=10) as resp:  # IP SAN
            return str(resp.read().decode())

    def roots(self) -> str:
        """pebble's issuing root (PEM), from its management API."""
        return self._get("/roots/0")

    def wait_ready(self, seconds: float = 30) -> None:
        deadline, last = time.monotonic() + seconds, ""
        while time.monotonic() < deadline:
            try:
                if "BEGIN CERTIFICATE" in self.roots():
                    return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.3)
        logs = DockerClient().container.logs(self.container, tail=30)
        raise AssertionError(f"pebble did not answer in {seconds:.0f}s ({last})\n{logs}")

    def stop(self) -> None:
        DockerClient().container.stop(self.container, time=2)

    def start(self) -> None:
        docker = DockerClient()
        docker.container.start(self.container)
        port = docker.container.inspect(self.container).network_settings.ports["15000/tcp"][0]["HostPort"]
        self.management_port = int(port)
        self.wait_ready()

    def remove(self) -> None:
        with contextlib.suppress(DockerException):
            DockerClient().container.remove(self.container, force=True)


@contextlib.contextmanager
def pebble_on(network: str, *, workdir: Path, alias: str = "pebble", suite: str = SUITE) -> Iterator[Pebble]:
    """pebble running on `network` as `alias`, removed at exit."""
    docker = DockerClient()
    image = build_image(workdir, suite)
    ca, cert, key = make_listener_certs(workdir / "pebble-listener")
    config = workdir / "pebble-config.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": "0.0.0.0:14000",
                    "managementListenAddress": "0.0.0.0:15000",
                    "certificate": "/pebble/cert.pem",
                    "privateKey": "/pebble/key.pem",
                    "httpPort": 80,
                    "tlsPort": 443,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    name = f"pebble-{uuid.uuid4().hex[:8]}"
    docker.container.create(
        image,
        ["-config", "/pebble/config.json"],
        name=name,
        envs={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        labels={"io.stackctl.test": "pebble"},
        publish=[("127.0.0.1:0", 15000)],
        networks=[network],
        network_aliases=[alias],
    )
    server = Pebble(name, ca, 0)
    try:
        _copy_in(docker, name, {"cert.pem": cert, "key.pem": key, "config.json": config})
        server.start()
        yield server
    finally:
        server.remove()


def _copy_in(docker: DockerClient, container: str, files: dict[str, Path]) -> None:
    """The files into /pebble/ of the created container (docker cp of a folder)."""
    staging = next(iter(files.values())).parent / f"pebble-files-{container}"
    staging.mkdir(exist_ok=True)
    for name, path in files.items():
        (staging / name).write_bytes(path.read_bytes())
        (staging / name).chmod(0o644)
    docker.copy(staging, (container, "/pebble"))
