"""`stackctl backup` / `stackctl restore` and their core on a real engine.

A small prod compose project stands in for the app: the real rendered backup/ folder, with
the environment the rendered docker-compose.prod.yml gives the backup service, a `db` from
stackctl/postgres:17-trixie and a `web` that only idles and is healthy, so that the
restore's stop / start / wait-healthy steps are exercised without building Django. The
project's built image is removed with it.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackctl.config import load_config
from stackctl.config.profile import PROD
from stackctl.core import backup as core
from stackctl.core.project import Project
from stackctl.core.restore import restore_db
from stackctl.core.stack import Stack
from stackctl.errors import Aborted, BackupError, RestoreError
from tests.render.stackfiles import backup_environment

pytestmark = pytest.mark.engine

POSTGRES_IMAGE = "stackctl/postgres:17-trixie"


def compose_file(backup_env: dict[str, str]) -> str:
    return f"""
services:
  db:
    image: {POSTGRES_IMAGE}
    pull_policy: never
    env_file: [.env.prod]
    volumes: [pgdata:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-U", "shopper"]
      interval: 2s
      retries: 30
  web:
    # the real web image runs as uid 1000 too; backup starts first so that its image
    # (with /srv/media owned by 1000) seeds the media volume
    image: stackctl/debian:trixie
    pull_policy: never
    user: "1000:1000"
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    volumes: ["media:/srv/media"]
    # unhealthy while /srv/media/.unhealthy exists (a test makes a restore end on a sick app)
    healthcheck: {{test: ["CMD", "sh", "-c", "! test -e /srv/media/.unhealthy"], interval: 2s, retries: 2}}
    depends_on: {{db: {{condition: service_healthy}}, backup: {{condition: service_started}}}}
  backup:
    build: {{context: ./backup, args: {{POSTGRES_IMAGE: {POSTGRES_IMAGE}}}}}
    env_file: [.env.prod]
    environment: {json.dumps(backup_env)}
    volumes: ["backups:/backups", "media:/srv/media"]
    depends_on: {{db: {{condition: service_healthy}}}}
    stop_grace_period: 60s
    healthcheck: {{test: ["CMD", "backup_healthcheck.sh"], interval: 5s}}
volumes: {{pgdata: {{}}, backups: {{}}, media: {{}}}}
"""


CHECKSUM = "SELECT md5(coalesce(string_agg(n::text, ',' ORDER BY n), '')) FROM numbers"
MIGRATIONS = (
    "CREATE TABLE django_migrations (id serial PRIMARY KEY, app text, name text, applied timestamptz DEFAULT now());"
    " INSERT INTO django_migrations (app, name) VALUES ('numbers', '0001_initial')"
)
TABLES, ROWS = 2, 1001  # numbers and django_migrations


class Proj:
    def __init__(self, root: Path) -> None:
        self.root = root
        loaded = load_config(root / ".env.prod", profile="prod")
        self.stack = Stack(Project.at(root), PROD, config=loaded.config)

    def sql(self, query: str) -> str:
        out = self.stack.client.compose.execute(
            "db",
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", "shopper", "-d", "shop", "-c", query],
            tty=False,
        )
        return str(out).strip()

    def wait_web_healthy(self, seconds: float) -> None:
        """Until web's own healthcheck says healthy (started again if it stopped)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            web = self.stack.client.compose.ps(services=["web"], all=True)
            if not web or web[0].state.status != "running":
                self.stack.client.compose.up(["web"], detach=True)
            elif web[0].state.health and web[0].state.health.status == "healthy":
                return
            time.sleep(1)
        raise AssertionError(f"web is not healthy again within {seconds:.0f} s")

    def web_started_at(self) -> str:
        web = self.stack.client.compose.ps(services=["web"])[0]
        return f"{web.state.status} {web.state.started_at}"


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proj]:
    root = tmp_path_factory.mktemp("backup-cli")
    (root / ".env.prod").write_text(
        f"STACK_NAME=bk{uuid.uuid4().hex[:8]}\nDJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"POSTGRES_USER=shopper\nPOSTGRES_PASSWORD={secrets.token_urlsafe(24)}\nPOSTGRES_DB=shop\n"
        f"POSTGRES_IMAGE={POSTGRES_IMAGE}\n"
    )
    (root / ".env.prod").chmod(0o600)
    p = Proj(root)
    rendered = tmp_path_factory.mktemp("backup-cli-rendered")
    backup_env = backup_environment(["docker", "compose"], p.stack.config, rendered)
    # the password from .env.prod here (the prod stack mounts it as a compose secret file instead)
    backup_env = {k: v for k, v in backup_env.items() if not k.endswith("_FILE") and k != "POSTGRES_PASSWORD"}
    shutil.copytree(rendered / "backup", root / "backup")
    # the whole project in the prod file, whether the prod stack reads it alone or on top of the base
    (root / "docker-compose.prod.yml").write_text(compose_file(backup_env))
    (root / "docker-compose.yml").write_text("services: {}\n")
    try:
        p.stack.client.compose.up(detach=True, wait=True, wait_timeout=300, build=True)
        p.sql("CREATE TABLE numbers (n int PRIMARY KEY); INSERT INTO numbers SELECT generate_series(1, 1000)")
        p.sql(MIGRATIONS)  # this app's history: a restore refuses a database without one
        p.stack.client.compose.execute("web", ["sh", "-c", "mkdir -p /srv/media/a && echo one > /srv/media/a/1.txt"])
        yield p
    finally:
        p.stack.client.compose.down(volumes=True, remove_orphans=True, remove_images="local", timeout=10)


def test_backup_now_list_verify_prune(proj: Proj, cli: Any) -> None:
    result = cli("backup", "now", "all", "-C", str(proj.root), "--json")
    assert result.code == 0, result.output
    made = json.loads(result.out)
    assert [m["kind"] for m in made] == ["db", "media"] and all(m["bytes"] > 0 for m in made)

    listed = cli("backup", "list", "-C", str(proj.root), "--json")
    payload = json.loads(listed.out)
    names = {b["name"]: b for b in payload["backups"]}
    # this hand-written stack has no pgbackrest service: the dumps are listed all the same, and why
    # pgBackRest's part is missing is said
    assert payload["pitr"] is None and "pgbackrest service" in payload["pitr_error"]
    assert {m["file"] for m in made} <= set(names) and all(names[m["file"]]["sha256_ok"] for m in made)

    verified = core.verify_backup(proj.stack, made[0]["file"])
    assert (verified.kind, verified.checksum, verified.tables, verified.rows) == ("db", "ok", TABLES, ROWS)
    media = cli("backup", "verify", made[1]["file"], "-C", str(proj.root))
    assert media.code == 0 and "1 files" in media.err and "did not run" in media.err

    pruned = core.prune_backups(proj.stack, dry_run=True)
    assert pruned.dry_run and set(pruned.kept) >= {m["file"] for m in made}
    status = core.backup_status(proj.stack)
    assert status.healthy is True and status.db is not None and status.db.next_run


def test_restore_without_terminal_or_yes_refuses(proj: Proj, cli: Any) -> None:
    name = core.backup_now(proj.stack, "db")[0].file
    before = proj.web_started_at()
    result = cli("restore", "db", name, "-C", str(proj.root))
    assert result.code == 9 and "--yes" in result.err
    assert proj.web_started_at() == before  # nothing was stopped


def test_restore_db_round_trip_from_a_host_file(proj: Proj, tmp_path: Path) -> None:
    made = core.backup_now(proj.stack, "db")[0]
    container = core.backup_container(proj.stack)
    for suffix in ("", ".sha256"):  # a copy on the host, as after an off-site download
        proj.stack.client.copy((container, f"/backups/db/{made.file}{suffix}"), tmp_path / f"{made.file}{suffix}")
    expected = proj.sql(CHECKSUM)
    proj.sql("DELETE FROM numbers WHERE n > 10")
    questions: list[str] = []
    steps: list[str] = []
    result = restore_db(proj.stack, tmp_path / made.file, confirm=questions.append, report=steps.append)
    assert proj.sql(CHECKSUM) == expected
    assert (result.tables, result.rows, result.old_database) == (TABLES, ROWS, None)  # old database dropped
    assert result.safety_backup and "pre-restore" in result.safety_backup and questions and "shop" in questions[0]
    # the safety backup holds the database as it was just before: 10 rows, dumped from the
    # previous database after the swap, while web started
    assert core.verify_backup(proj.stack, result.safety_backup).rows == 10 + 1
    assert any(step.startswith("stopping web") for step in steps) and any("starting web" in s for s in steps)
    assert proj.stack.client.compose.ps(services=["web"])[0].state.health.status == "healthy"  # type: ignore[union-attr]
    assert proj.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'shop\\_%'") == "0"


def test_an_app_unhealthy_on_the_restored_db_keeps_the_previous_one(proj: Proj) -> None:
    name = core.backup_now(proj.stack, "db")[0].file
    proj.sql("DELETE FROM numbers WHERE n > 20")
    proj.stack.client.compose.execute("backup", ["touch", "/srv/media/.unhealthy"], tty=False)
    try:
        with pytest.raises(RestoreError) as caught:
            restore_db(proj.stack, name, confirm=lambda _: None, timeout=20)
        kept = re.search(r"kept as (shop_pre_restore_\d{14})", caught.value.message)
        assert kept, caught.value.message
        assert proj.sql(f"SELECT count(*) FROM pg_database WHERE datname = '{kept.group(1)}'") == "1"
        assert proj.sql("SELECT count(*) FROM numbers") == "1000"  # the restore itself went through
    finally:
        proj.stack.client.compose.execute("backup", ["rm", "-f", "/srv/media/.unhealthy"], tty=False)
        # web keeps running, unhealthy until its next probes pass: `compose up --wait` would fail
        # at once on the unhealthy state it still reports, so wait for the probes themselves
        proj.wait_web_healthy(90)
    core.run_script(proj.stack, ["restore_db.sh", "--drop-old-only", kept.group(1)], what="drop")


def test_refused_confirmation_and_damaged_file_change_nothing(proj: Proj, tmp_path: Path) -> None:
    name = core.backup_now(proj.stack, "db")[0].file
    proj.sql("DELETE FROM numbers WHERE n > 500")
    live, before = proj.sql(CHECKSUM), proj.web_started_at()

    def refuse(question: str) -> None:
        raise Aborted("aborted: nothing was changed")

    with pytest.raises(Aborted):
        restore_db(proj.stack, name, confirm=refuse)
    damaged = tmp_path / "shop-20000101T000000Z.dump"
    damaged.write_bytes(b"PGDMP" + b"\0" * 100)
    with pytest.raises(RestoreError, match="sidecar"):
        restore_db(proj.stack, damaged, confirm=lambda q: None)
    assert proj.sql(CHECKSUM) == live and proj.web_started_at() == before


def test_restore_media_with_cli(proj: Proj, cli: Any) -> None:
    archive = core.backup_now(proj.stack, "media")[0].file
    proj.stack.client.compose.execute("web", ["sh", "-c", "rm -rf /srv/media/a && echo two > /srv/media/2.txt"])
    result = cli("restore", "media", archive, "--yes", "-C", str(proj.root), "--json")
    assert result.code == 0, result.output
    assert json.loads(result.out)["files"] == 1
    listing = proj.stack.client.compose.execute("web", ["find", "/srv/media", "-type", "f"], tty=False)
    assert str(listing).split() == ["/srv/media/a/1.txt"]


def test_a_name_that_looks_like_an_option_is_refused(proj: Proj, cli: Any) -> None:
    for argv in (["backup", "verify"], ["restore", "db", "--yes"], ["restore", "media", "--yes"]):
        result = cli(*argv, "-C", str(proj.root), "--", "-h")
        assert result.code != 0 and "never starts with -" in result.err, (argv, result.output)
        assert "checksum ok" not in result.output


def test_restore_db_from_a_plain_and_a_gzipped_sql_dump(proj: Proj, cli: Any, tmp_path: Path) -> None:
    """Dumps taken elsewhere (`pg_dump > x.sql`, cookiecutter-django's `pg_dump | gzip`): no
    sidecar, so --no-checksum; still read through, and this app's."""
    expected = proj.sql(CHECKSUM)
    rows = int(proj.sql("SELECT count(*) FROM numbers")) + 1  # and the migration row
    for name, command in (
        ("plain.sql", "pg_dump -U shopper -d shop"),
        ("cookie.sql.gz", "pg_dump -U shopper -d shop | gzip"),
    ):
        dump = proj.stack.client.compose.execute("db", ["sh", "-c", f"{command} | base64 -w0"], tty=False)
        (tmp_path / name).write_bytes(__import__("base64").b64decode(str(dump)))
        proj.sql("DELETE FROM numbers WHERE n > 100")
        refused = cli("restore", "db", str(tmp_path / name), "--yes", "-C", str(proj.root))
        assert refused.code == 7 and "--no-checksum" in refused.err, refused.output
        result = cli("restore", "db", str(tmp_path / name), "--no-checksum", "--yes", "-C", str(proj.root), "--json")
        assert result.code == 0, result.output
        assert proj.sql(CHECKSUM) == expected
        assert json.loads(result.out)["rows"] == rows


def test_an_encrypted_backup_verifies_with_the_identity_on_a_tmpfs(proj: Proj, tmp_path: Path) -> None:
    """The age identity reaches the container through exec's stdin, onto /dev/shm (docker cp
    cannot write to a tmpfs), and is gone afterwards."""
    execute = proj.stack.client.compose.execute
    key = str(execute("backup", ["age-keygen"], tty=False))
    recipient = re.search(r"age1[0-9a-z]+", key)
    assert recipient
    identity = tmp_path / "age.key"
    identity.write_text(key)
    out = execute(
        "backup", ["backup_db.sh", "--no-copy"], envs={"BACKUP_AGE_RECIPIENTS": recipient.group(0)}, tty=False
    )
    made = core.last_json(str(out))["file"]
    assert made.endswith(".dump.age")
    with pytest.raises(BackupError, match="BACKUP_AGE_IDENTITY"):
        core.verify_backup(proj.stack, made)
    seen: list[str] = []
    real = core.run_script

    def spy(stack: Any, argv: list[str], **kwargs: Any) -> Any:
        where = kwargs.get("envs", {}).get("BACKUP_AGE_IDENTITY", "")
        seen.append(str(execute("backup", ["stat", "-f", "-c", "%T", where], tty=False)).strip())
        return real(stack, argv, **kwargs)

    core.run_script = spy  # type: ignore[assignment]
    try:
        verified = core.verify_backup(proj.stack, made, identity=identity)
    finally:
        core.run_script = real  # type: ignore[assignment]
    assert verified.tables == TABLES and seen == ["tmpfs"]
    assert str(execute("backup", ["ls", "-A", "/dev/shm"], tty=False)).strip() == ""
    assert key.split("AGE-SECRET-KEY-")[1][:20] not in str(execute("backup", ["env"], tty=False))


def test_staging_follows_host_links_only_on_the_host_and_never_collides(proj: Proj, tmp_path: Path) -> None:
    made = core.backup_now(proj.stack, "db")[0].file
    container = core.backup_container(proj.stack)
    for suffix in ("", ".sha256"):
        proj.stack.client.copy((container, f"/backups/db/{made}{suffix}"), tmp_path / f"{made}{suffix}")
    link = tmp_path / "link" / made
    link.parent.mkdir()
    link.symlink_to(tmp_path / made)  # and its sidecar, a link too
    (link.parent / f"{made}.sha256").symlink_to(tmp_path / f"{made}.sha256")
    assert core.verify_backup(proj.stack, link).checksum == "ok"  # the link's target was copied
    # a directory-format dump holding a link is refused before the backup user touches it
    folder = tmp_path / "dump.dir"
    folder.mkdir()
    (folder / "toc.dat").symlink_to("/etc/passwd")
    with pytest.raises(BackupError, match="a link or a special file"):
        core.verify_backup(proj.stack, folder)
    # each run stages into a folder of its own, removed afterwards
    with core.staged(proj.stack, tmp_path / made) as first, core.staged(proj.stack, tmp_path / made) as second:
        assert first != second and "/incoming/stage-" in first
    left = proj.stack.client.compose.execute("backup", ["ls", "-A", "/backups/incoming"], tty=False)
    assert "stage-" not in str(left)
