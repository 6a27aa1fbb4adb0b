"""Point-in-time recovery with pgBackRest on a real prod stack: db archives its WAL into the
pgbackrest_repo volume and, through SFTP, into an encrypted second repository on a real sshd
(Debian's openssh-server in a container on the stack's network); restores go to a moment, to
the latest commit after a `kill -9` of db, and from the second repository alone.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from python_on_whales import DockerClient

from tests.e2e.pitrsite import PitrSite, running, stack_network
from tests.e2e.sftpserver import SftpServer, sftp_on
from tests.e2e.stackenv import containers, make_project

pytestmark = pytest.mark.engine
CIPHER = "a-test-passphrase-of-thirty-chars"


@dataclass
class Site(PitrSite):
    sftp: SftpServer


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pitr")
    proj = make_project(
        tmp,
        prod=True,
        extra={
            "PITR_REPO2_TYPE": "sftp",
            "PITR_REPO2_SFTP_HOST": "sftp",
            "PITR_REPO2_SFTP_USER": "pgbackrest",
            "PITR_REPO2_SFTP_PRIVATE_KEY": "./sftp_key",
            "PITR_REPO2_SFTP_KNOWN_HOSTS": "./sftp_known_hosts",
            "PITR_REPO2_PATH": "/home/pgbackrest/repo",
            "PITR_REPO2_CIPHER_PASS": CIPHER,
        },
    )
    with stack_network(proj) as network, sftp_on(network, workdir=tmp) as sftp:
        (proj.root / "sftp_key").write_bytes(sftp.private_key.read_bytes())
        (proj.root / "sftp_known_hosts").write_bytes(sftp.known_hosts.read_bytes())
        made = Site(proj, sftp)
        with running(made):
            yield made


def test_the_window_and_both_repositories_are_listed(site: Site) -> None:
    info = site.info()
    assert info["status"] == "ok"
    assert {b["repo"] for b in info["backups"]} == {1, 2}
    assert info["window"]["start"] <= info["window"]["end"]
    text = site.proj.stackctl("backup", "list")
    assert "recoverable window (pgBackRest)" in text.stdout
    status = site.proj.stackctl("status")
    assert "recoverable window" in status.stdout, status.stdout


def test_a_moment_between_t1_and_t2_gives_t1s_rows_and_not_t2s(site: Site) -> None:
    site.sql("INSERT INTO pitr_probe (id) VALUES (1), (2)")  # t1
    time.sleep(1.5)
    between = _utc_now()
    time.sleep(1.5)
    site.sql("INSERT INTO pitr_probe (id) VALUES (3)")  # t2
    site.sql("UPDATE pitr_probe SET at = now() WHERE id = 1")  # t2 as well
    web_before = containers(site.proj, "web")[0].id
    proc = site.proj.stackctl("restore", "db", "--to", between, "--yes", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["safety_point"].startswith("stackctl-pre-restore-")
    assert site.ids() == [1, 2]
    assert site.proj.wait_healthy(120)
    # web was stopped and started again, not recreated; it serves the restored database
    assert containers(site.proj, "web")[0].id == web_before
    assert site.proj.gql("{ notes(limit: 1) { id } }") is not None

    # the restore was a mistake: back to its safety point, on the timeline the restore left
    listed = site.proj.stackctl("backup", "list")
    assert f"safety point {result['safety_point']}" in listed.stdout, listed.stdout
    proc = site.proj.stackctl("restore", "db", "--to", result["safety_point"], "--yes", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    back = json.loads(proc.stdout)
    assert back["target"] == result["safety_point"] and back["safety_point"] != result["safety_point"]
    assert back["safety_timeline"] == result["safety_timeline"] + 1  # recorded on the restore's timeline
    assert site.ids() == [1, 2, 3]  # t2's rows are back
    # and t2's update of row 1 (made after row 3's insert)
    assert site.sql("SELECT (SELECT at FROM pitr_probe WHERE id = 1) > (SELECT at FROM pitr_probe WHERE id = 3)") == "t"
    assert site.proj.wait_healthy(120)


def test_latest_after_kill_9_loses_no_committed_row(site: Site) -> None:
    before = site.ids()
    site.sql("INSERT INTO pitr_probe (id) VALUES (10), (11)")
    # committed, not yet archived (PITR_ARCHIVE_TIMEOUT is 60 s): only in db's pg_wal
    db = containers(site.proj, "db")[0]
    DockerClient().container.kill(db.name, signal="KILL")
    proc = site.proj.stackctl("restore", "db", "--to", "latest", "--yes", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert site.ids() == [*before, 10, 11]
    assert site.proj.wait_healthy(120)


def test_a_target_outside_the_window_is_refused_with_nothing_changed(site: Site) -> None:
    rows = site.ids()
    started = {c.name: c.state.started_at for c in DockerClient().container.list(
        filters=[("label", f"com.docker.compose.project={site.proj.name}")])}  # fmt: skip
    start = site.info()["window"]["start"]
    for target in ("2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z"):
        proc = site.proj.stackctl("restore", "db", "--to", target, "--yes")
        assert proc.returncode == 7, proc.stdout + proc.stderr
        assert "nothing was changed" in proc.stderr
        assert "recoverable window" in proc.stderr and start in proc.stderr
    proc = site.proj.stackctl("restore", "db", "--to", "2026-12-01 10:00", "--yes")
    assert proc.returncode == 7 and "no time zone" in proc.stderr
    proc = site.proj.stackctl("restore", "db", "--to", "latest", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["dry_run"] is True and {"web", "pgbackrest", "db"} <= set(plan["would_stop"])
    assert site.ids() == rows
    after = {c.name: c.state.started_at for c in DockerClient().container.list(
        filters=[("label", f"com.docker.compose.project={site.proj.name}")])}  # fmt: skip
    assert after == started  # nothing stopped, nothing restarted


def test_the_offsite_repository_is_encrypted_verified_and_restores_alone(site: Site) -> None:
    files = site.sftp.files()
    assert any("/archive/main/" in f for f in files) and any("/backup/main/" in f for f in files)
    info_file = next(f for f in files if f.endswith("/backup/main/backup.info"))
    assert site.sftp.read(info_file).startswith(b"Salted__")  # pgBackRest's aes-256-cbc
    proc = site.proj.stackctl("backup", "verify", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["pgbackrest"]["verified"] == [1, 2]

    site.sql("INSERT INTO pitr_probe (id) VALUES (20)")
    rows = site.ids()
    proc = site.proj.stackctl("restore", "db", "--to", "latest", "--repo", "2", "--yes", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert site.ids() == rows
    db = containers(site.proj, "db")[0]
    conf = str(DockerClient().execute(db.name, ["cat", "/var/lib/postgresql/data/postgresql.auto.conf"]))
    assert "--repo=2" in conf, conf  # the WAL came from repo 2 as well
    assert site.proj.wait_healthy(120)


def test_the_passphrase_is_in_no_log_environment_or_inspect(site: Site) -> None:
    for service in ("db", "pgbackrest", "backup"):
        container = containers(site.proj, service)[0]
        logs = subprocess.run(["docker", "logs", container.name], capture_output=True, text=True, check=True)
        inspect = subprocess.run(["docker", "inspect", container.name], capture_output=True, text=True, check=True)
        for text in (logs.stdout + logs.stderr, inspect.stdout):
            assert CIPHER not in text, service
    status = site.proj.stackctl("status", "--json")
    listed = site.proj.stackctl("backup", "list", "--json")
    assert CIPHER not in status.stdout + status.stderr + listed.stdout + listed.stderr


def test_a_new_host_with_only_the_offsite_repository_gets_every_row_back(site: Site) -> None:
    """The box is lost: every container and volume of the stack is gone (db's data, the local
    repository, the secrets); the encrypted repository on the sshd is what is left."""
    site.sql("INSERT INTO pitr_probe (id) VALUES (30), (31)")
    proc = site.proj.stackctl("backup", "now", "pitr", "--type", "incr", timeout=600)  # its WAL reaches repo 2
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = site.ids()
    docker = DockerClient()
    label = f"com.docker.compose.project={site.proj.name}"
    docker.container.remove(docker.container.list(all=True, filters=[("label", label)]), force=True)
    volumes = docker.volume.list(filters=[("label", label)])
    assert any(v.name.endswith("_postgres_data") for v in volumes) and any(
        v.name.endswith("_pgbackrest_repo") for v in volumes
    )
    docker.volume.remove(volumes)

    # up on the new host: a fresh cluster, which repo 2's backups are not; said at once, with what to run
    proc = site.proj.stackctl("up", timeout=900)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "another cluster's backups are in repo2" in proc.stderr, proc.stderr[-3000:]
    assert "stackctl restore db --to latest --repo 2 --prod" in proc.stderr, proc.stderr[-3000:]

    plan = site.proj.stackctl("restore", "db", "--to", "latest", "--repo", "2", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert json.loads(plan.stdout)["other_cluster"] is True and json.loads(plan.stdout)["reset_repos"] == [1]

    proc = site.proj.stackctl("restore", "db", "--to", "latest", "--repo", "2", "--yes", "--json", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["other_cluster"] is True and result["reset_repos"] == [1]
    assert result["safety_backup"] and "pre-restore" in result["safety_backup"]
    assert site.ids() == rows  # every row committed before the backup, from the off-site repository alone

    # the local repository starts anew for the restored cluster: its stanza, a full backup, the window
    assert site.proj.wait_healthy(300), site.proj.stackctl("status").stdout
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        info = site.info()
        if {r["repo"]: r["backups"] for r in info["repos"]}.get(1):
            break
        time.sleep(3)
    else:
        pytest.fail(f"no full backup in repo 1 after the restore: {info}")
    assert info["cluster_matches"] is True and info["status"] == "ok", info
    site.sql("INSERT INTO pitr_probe (id) VALUES (32)")  # and it archives again: check passes in both
    proc = site.proj.stackctl("backup", "verify", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
