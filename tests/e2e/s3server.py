"""A real S3 server for tests: moto's server mode (moto[server] from PyPI) in a container on
a given Docker network, behind nginx serving HTTPS with a certificate signed by a throwaway CA
made here (the CA's PEM is what S3 clients must trust: PITR_REPO2_S3_CA_FILE).

The image is built from the local Debian base (never a registry image), with Debian's python3
and nginx, and pip installing moto into a venv. pip needs the host's CA bundle where HTTPS
passes through an intercepting proxy: it is given to the build as a BuildKit secret, which
the classic builder has not got, so the image is built through Compose (the engine's
BuildKit) and the bundle never lands in a layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

MOTO_VERSION = "5.2.6"
IMAGE = f"stackctl-test/moto:{MOTO_VERSION}-trixie"
PORT = 9000  # not 443: the test exercises PITR_REPO2_S3_PORT
CERTS = "/etc/moto"
# moto's server is werkzeug's development server: it answers every request with `Connection:
# close` and closes the TLS connection without a close_notify, which pgBackRest (rightly)
# takes for a truncated response ("TLS error ... unexpected eof while reading"). Real stores
# keep connections alive and close them cleanly, so TLS is nginx's, in front of moto on
# loopback, as a self-hosted store is usually run.
NGINX_CONF = f"""\
worker_processes 1;
error_log stderr error;
pid /tmp/nginx.pid;
events {{}}
http {{
    access_log off;
    client_max_body_size 0;
    server {{
        listen {PORT} ssl;
        ssl_certificate {CERTS}/cert.pem;
        ssl_certificate_key {CERTS}/key.pem;
        location / {{
            proxy_pass http://127.0.0.1:5000;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""
DOCKERFILE = f"""\
FROM stackctl/debian:trixie
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv nginx \\
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/moto
RUN --mount=type=secret,id=ca_bundle --mount=type=cache,target=/root/.cache/pip \\
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \\
    /opt/moto/bin/pip install 'moto[server]=={MOTO_VERSION}'
COPY nginx.conf /etc/moto-nginx.conf
CMD ["sh", "-c", "/opt/moto/bin/moto_server -H 127.0.0.1 -p 5000 & exec nginx -c /etc/moto-nginx.conf -g 'daemon off;'"]
"""
# What the test runs in the container with boto3 (moto's own dependency): moto takes any
# credentials, so these are not the stack's.
CLIENT = """\
import sys, json, boto3
s3 = boto3.client("s3", endpoint_url="https://localhost:{port}", verify="{certs}/ca.pem",
                  region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
op, bucket = sys.argv[1], sys.argv[2]
if op == "create":
    s3.create_bucket(Bucket=bucket)
elif op == "list":
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    print(json.dumps(keys))
elif op == "get":
    sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=sys.argv[3])["Body"].read())
"""


def _host_ca_bundle() -> str:
    """The bundle pip trusts on this host (PIP_CERT, else the system's), or /dev/null."""
    for candidate in (os.environ.get("PIP_CERT"), ssl.get_default_verify_paths().cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return "/dev/null"


def build_image(workdir: Path) -> str:
    docker = DockerClient()
    if not docker.image.exists(IMAGE):
        context = workdir / "moto-image"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text(DOCKERFILE)
        (context / "nginx.conf").write_text(NGINX_CONF)
        compose = {
            "services": {"moto": {"image": IMAGE, "build": {"context": ".", "secrets": ["ca_bundle"]}}},
            "secrets": {"ca_bundle": {"file": _host_ca_bundle()}},
        }
        (context / "compose.yml").write_text(json.dumps(compose))
        builder = DockerClient(compose_files=[context / "compose.yml"], compose_project_name="stackctl-test-moto")
        builder.compose.build(["moto"])
    return IMAGE


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(folder: Path, alias: str) -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem): a throwaway CA, and the server's certificate for `alias`
    and localhost signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "key.pem", "csr.pem", "cert.pem"))
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "3", "-subj", "/CN=stackctl test S3 CA",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    _openssl("req", *ec, "-subj", f"/CN={alias}", "-keyout", str(key), "-out", str(csr))
    ext = folder / "san.cnf"
    ext.write_text(
        f"subjectAltName=DNS:{alias},DNS:localhost\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "3", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return ca, cert, key


@dataclass
class S3Server:
    container: str
    alias: str
    ca: Path  # the CA that signed the server's certificate
    port: int = PORT

    def _client(self, *args: str) -> bytes:
        script = CLIENT.format(port=self.port, certs=CERTS)
        done = subprocess.run(
            ["docker", "exec", self.container, "/opt/moto/bin/python", "-c", script, *args],
            capture_output=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise AssertionError(f"S3 {args[0]} failed: {done.stderr.decode()[-2000:]}")
        return done.stdout

    def create_bucket(self, bucket: str) -> None:
        self._client("create", bucket)

    def keys(self, bucket: str) -> list[str]:
        return list(json.loads(self._client("list", bucket)))

    def read(self, bucket: str, key: str) -> bytes:
        return self._client("get", bucket, key)

    def wait_ready(self, seconds: float = 60) -> None:
        deadline, last = time.monotonic() + seconds, ""
        while time.monotonic() < deadline:
            try:
                self._client("list", "-")  # any answer, even NoSuchBucket, over verified TLS
                return
            except AssertionError as exc:
                last = str(exc)
                if "NoSuchBucket" in last:
                    return
            time.sleep(0.5)
        logs = DockerClient().container.logs(self.container, tail=30)
        raise AssertionError(f"moto did not answer in {seconds:.0f}s ({last[-500:]})\n{logs}")

    def remove(self) -> None:
        with contextlib.suppress(DockerException):
            DockerClient().container.remove(self.container, force=True)


@contextlib.contextmanager
def s3_on(network: str, *, workdir: Path, alias: str = "s3") -> Iterator[S3Server]:
    """moto's S3 over HTTPS on `network` as `alias`:PORT, removed at exit (its image stays,
    for the caller to remove)."""
    docker = DockerClient()
    image = build_image(workdir)
    ca, cert, key = make_certs(workdir / "s3-certs", alias)
    name = f"moto-{uuid.uuid4().hex[:8]}"
    docker.container.create(
        image, name=name, labels={"io.stackctl.test": "moto"}, networks=[network], network_aliases=[alias]
    )
    server = S3Server(name, alias, ca)
    try:
        staged = workdir / "s3-staged"
        staged.mkdir(exist_ok=True)
        for path in (ca, cert, key):
            (staged / path.name).write_bytes(path.read_bytes())
        docker.container.copy(staged, (name, CERTS))
        docker.container.start(name)
        server.wait_ready()
        yield server
    finally:
        server.remove()
