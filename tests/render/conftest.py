"""Session fixtures for the rendered-file tests (helpers live in stackfiles.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.render.stackfiles import find_tool, missing, run


@pytest.fixture(scope="session")
def docker_compose() -> list[str]:
    """`docker compose` (v2), without an engine: `config` only needs the CLI."""
    docker = shutil.which("docker")
    if docker is None:
        missing("the docker CLI")
    assert docker is not None
    probe = run([docker, "compose", "version", "--short"])
    if probe.returncode != 0:
        missing("the docker compose v2 plugin")
    return [docker, "compose"]


@pytest.fixture(scope="session")
def test_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate and key, as fullchain.pem and privkey.pem."""
    openssl = find_tool("openssl")
    certs = tmp_path_factory.mktemp("certs")
    made = run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=example.com", "-addext", "subjectAltName=DNS:example.com",
            "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem"),
        ]
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (certs / "privkey.pem").chmod(0o644)  # read by nginx in the test container only
    return certs
