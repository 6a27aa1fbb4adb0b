"""Point-in-time recovery's second repository on S3, against a real S3 server: moto's, over
HTTPS on a non-default port with a certificate from a throwaway CA (PITR_REPO2_S3_CA_FILE,
PITR_REPO2_S3_PORT), in a container on the stack's network. Both repositories get their first
full backup, the bucket holds the encrypted repository, a restore from it alone brings the
rows back, and no secret shows in a log or `docker inspect`.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from python_on_whales import DockerClient

from tests.e2e.pitrsite import PitrSite, running, stack_network
from tests.e2e.s3server import S3Server, s3_on
from tests.e2e.stackenv import containers, make_project

pytestmark = pytest.mark.engine
CIPHER = f"s3-test-passphrase-{secrets.token_hex(12)}"
S3_KEY = "AKIASTACKCTLE2E0"
S3_SECRET = f"s3-secret-{secrets.token_hex(16)}"
BUCKET = "stackctl-pitr"
REPO_PATH = "/stack/pgbackrest"


@dataclass
class Site(PitrSite):
    s3: S3Server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pitr-s3")
    proj = make_project(
        tmp,
        prod=True,
        extra={
            "PITR_REPO2_TYPE": "s3",
            "PITR_REPO2_S3_BUCKET": BUCKET,
            "PITR_REPO2_S3_ENDPOINT": "s3",
            "PITR_REPO2_S3_PORT": "9000",
            "PITR_REPO2_S3_URI_STYLE": "path",
            "PITR_REPO2_S3_CA_FILE": "./s3-ca.pem",
            "PITR_REPO2_S3_KEY": S3_KEY,
            "PITR_REPO2_S3_KEY_SECRET": S3_SECRET,
            "PITR_REPO2_PATH": REPO_PATH,
            "PITR_REPO2_CIPHER_PASS": CIPHER,
        },
    )
    # moto's image (s3server.IMAGE) is kept, like stackctl's own images: removing it here could
    # pull it from under another test of a parallel run; the next run reuses it.
    with stack_network(proj) as network, s3_on(network, workdir=tmp, alias="s3") as s3:
        (proj.root / "s3-ca.pem").write_bytes(s3.ca.read_bytes())
        s3.create_bucket(BUCKET)
        made = Site(proj, s3)
        with running(made):
            yield made


def test_the_bucket_holds_the_encrypted_repository(site: Site) -> None:
    info = site.info()
    assert info["status"] == "ok"
    assert {b["repo"] for b in info["backups"]} == {1, 2}
    keys = site.s3.keys(BUCKET)
    prefix = REPO_PATH.lstrip("/") + "/"
    assert all(k.startswith(prefix) for k in keys), keys[:5]
    assert any(k.startswith(f"{prefix}archive/main/") for k in keys)
    assert f"{prefix}backup/main/backup.info" in keys, keys
    assert site.s3.read(BUCKET, f"{prefix}backup/main/backup.info").startswith(b"Salted__")  # aes-256-cbc
    assert site.s3.read(BUCKET, f"{prefix}archive/main/archive.info").startswith(b"Salted__")


def test_no_secret_is_in_a_log_or_inspect(site: Site) -> None:
    for service in ("db", "pgbackrest"):
        container = containers(site.proj, service)[0]
        logs = subprocess.run(["docker", "logs", container.name], capture_output=True, text=True, check=True)
        inspect = subprocess.run(["docker", "inspect", container.name], capture_output=True, text=True, check=True)
        for text in (logs.stdout + logs.stderr, inspect.stdout):
            for secret in (S3_SECRET, S3_KEY, CIPHER):
                assert secret not in text, service
        env = container.config.env
        assert any(e == "PGBACKREST_REPO2_STORAGE_CA_FILE=/run/secrets/pitr_repo2_ca" for e in env), env


def test_restore_from_the_s3_repository_alone_brings_the_rows_back(site: Site) -> None:
    site.sql("INSERT INTO pitr_probe (id) VALUES (1), (2), (3)")
    rows = site.ids()
    proc = site.proj.stackctl("restore", "db", "--to", "latest", "--repo", "2", "--yes", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for secret in (S3_SECRET, CIPHER):
        assert secret not in proc.stdout + proc.stderr
    assert site.ids() == rows == [1, 2, 3]
    db = containers(site.proj, "db")[0]
    conf = str(DockerClient().execute(db.name, ["cat", "/var/lib/postgresql/data/postgresql.auto.conf"]))
    assert "--repo=2" in conf, conf  # the WAL came from the S3 repository as well
    assert site.proj.wait_healthy(120)
