"""The backup container's scripts on a real engine, without the app stack; first, the
scheduler's timing against a fixed clock, without an engine.

A private network holds a `db` (stackctl/postgres:17-trixie, random password) and the
backup image built from the rendered backup/ folder; every script runs in a throwaway
container of that image with the backups and media volumes mounted and the environment
the rendered docker-compose.prod.yml gives the backup service, as in the prod stack.
Everything a test creates is removed by the fixtures, pass or fail.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import Container, DockerClient, Network, Volume
from python_on_whales.exceptions import DockerException

from stackctl.adapters.docker import engine_client
from stackctl.config.model import (
    BackupsGroup,
    CacheGroup,
    DatabaseGroup,
    DjangoGroup,
    EmailGroup,
    ImagesGroup,
    NginxGroup,
    ResourcesGroup,
    SecurityGroup,
    StackConfig,
    StorageGroup,
)
from tests.render.stackfiles import backup_environment, backup_module

engine = pytest.mark.engine
POSTGRES_IMAGE = os.environ.get("STACKCTL_TEST_POSTGRES_IMAGE", "stackctl/postgres:17-trixie")
BASE_IMAGE = "stackctl/debian:trixie"
DB_NAME = "shop"
CHECKSUM_SQL = """
SELECT md5(coalesce((SELECT string_agg(i::text, ',' ORDER BY id) FROM items i), '') || '|' ||
           coalesce((SELECT string_agg(t::text, ',' ORDER BY id) FROM tags t), ''))
"""
SEED_SQL = """
DROP TABLE IF EXISTS tags, items;
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10, 2), seen timestamptz);
INSERT INTO items (name, price, seen)
  SELECT 'item ' || g, g * 1.25, timestamptz '2024-01-01' + g * interval '1 hour' FROM generate_series(1, 3000) g;
CREATE TABLE tags (id int PRIMARY KEY, item int REFERENCES items (id), tag text);
INSERT INTO tags SELECT g, g, 'tag ' || (g % 7) FROM generate_series(1, 500) g;
-- this app's migration history: a restore refuses a database without one (or with another app's)
DROP TABLE IF EXISTS django_migrations;
CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL,
  applied timestamptz NOT NULL DEFAULT now());
INSERT INTO django_migrations (app, name) VALUES
  ('contenttypes', '0001_initial'), ('auth', '0001_initial'), ('shop', '0001_initial'), ('shop', '0002_more');
"""
SEED_TABLES, SEED_ROWS = 3, 3504


def config() -> StackConfig:
    """A prod config; only what the backup templates read matters here."""
    return StackConfig(
        profile="prod",
        django=DjangoGroup(django_secret_key="x" * 60),
        database=DatabaseGroup(postgres_password="unused", postgres_user="shopper", postgres_db=DB_NAME),
        cache=CacheGroup(),
        storage=StorageGroup(),
        nginx=NginxGroup(),
        security=SecurityGroup(),
        email=EmailGroup(),
        images=ImagesGroup(postgres_image=POSTGRES_IMAGE),
        resources=ResourcesGroup(),
        backups=BackupsGroup(),
    )


# -- the scheduler's timing, on a fixed clock (no engine) ----------------------------------------
scheduler_module = backup_module("backup_scheduler")
T0 = dt.datetime(2024, 3, 1, 2, 59, 30, tzinfo=dt.UTC)


class Rehearsal(scheduler_module.Scheduler):  # type: ignore[misc, name-defined]
    """The real loop on a fake clock: waiting moves the clock on, a job takes TAKES[kind]
    and runs no process, and the loop stops after `runs` jobs. `ran` is (kind, start) per job."""

    def __init__(self, tmp: Path, crons: dict[str, str], takes: dict[str, dt.timedelta], runs: int) -> None:
        self.now = T0
        env = {
            "BACKUP_ROOT": str(tmp),
            "DB_BACKUPS_DIR": str(tmp / "db"),
            "DB_BACKUP_CRON": crons["db"],
            "MEDIA_BACKUP_CRON": crons["media"],
            "DB_BACKUP_RETENTION_DAYS": "30",
            "DB_BACKUP_KEEP_DAILY": "7",
            "DB_BACKUP_KEEP_WEEKLY": "4",
            "DB_BACKUP_KEEP_MONTHLY": "6",
        }
        settings = scheduler_module.Settings.from_env(env)
        jobs = [scheduler_module.Job(kind, crons[kind], [f"{kind}.sh"], T0) for kind in ("db", "media")]
        super().__init__(settings, jobs, finish_seconds=1, clock=lambda: self.now)
        self.takes, self.runs, self.ran = takes, runs, []
        self.stop.wait = self._wait  # type: ignore[method-assign]

    def _wait(self, seconds: float) -> bool:
        self.now += dt.timedelta(seconds=seconds)
        return self.stop.is_set()

    def run_job(self, job: Any) -> None:
        self.ran.append((job.kind, self.now))
        self.now += self.takes[job.kind]
        if len(self.ran) == self.runs:
            self.stop.set()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_a_job_due_while_the_other_runs_is_delayed_not_skipped(tmp_path: Path) -> None:
    rehearsal = Rehearsal(
        tmp_path,
        {"db": "0 3 * * *", "media": "30 3 * * *"},
        {"db": dt.timedelta(minutes=45), "media": dt.timedelta(minutes=5)},
        runs=4,
    )
    assert rehearsal.run() == 0
    assert rehearsal.ran == [
        ("db", at("2024-03-01 03:00")),
        ("media", at("2024-03-01 03:45")),  # 03:30 went by while db ran: it starts when db ends
        ("db", at("2024-03-02 03:00")),
        ("media", at("2024-03-02 03:45")),
    ]
    jobs = {job.kind: job for job in rehearsal.jobs}
    assert (jobs["db"].next_run, jobs["media"].next_run) == (at("2024-03-03 03:00"), at("2024-03-03 03:30"))


def test_times_that_go_by_while_a_job_runs_are_not_caught_up(tmp_path: Path) -> None:
    rehearsal = Rehearsal(
        tmp_path,
        {"db": "*/5 * * * *", "media": "0 0 1 1 *"},
        {"db": dt.timedelta(minutes=12), "media": dt.timedelta(0)},
        runs=3,
    )
    rehearsal.run()
    # 03:05 and 03:10 went by during the first run, 03:20 and 03:25 during the second
    assert rehearsal.ran == [
        ("db", at("2024-03-01 03:00")),
        ("db", at("2024-03-01 03:15")),
        ("db", at("2024-03-01 03:30")),
    ]


def test_run_now_starts_a_job_at_once_then_follows_its_cron(tmp_path: Path) -> None:
    rehearsal = Rehearsal(
        tmp_path,
        {"db": "0 4 * * *", "media": "30 3 * * *"},
        {"db": dt.timedelta(minutes=1), "media": dt.timedelta(minutes=1)},
        runs=3,
    )
    rehearsal.run(run_now=["db"])
    assert rehearsal.ran == [("db", T0), ("media", at("2024-03-01 03:30")), ("db", at("2024-03-01 04:00"))]
    state = json.loads((tmp_path / ".scheduler.json").read_text())
    assert state["jobs"]["db"]["next_run"] == "2024-03-02T04:00:00Z"


# -- the lab: a db and the backup image on a private network --------------------------------------
@dataclass
class Run:
    code: int
    out: str  # stdout and stderr

    @property
    def json(self) -> Any:
        """The last JSON line (the scripts print theirs last; logs are mixed in before it)."""
        lines = [line for line in self.out.splitlines() if line.startswith(("{", "["))]
        assert lines, f"no JSON line in the output:\n{self.out}"
        return json.loads(lines[-1])


@dataclass
class Lab:
    client: DockerClient
    tag: str
    network: Network
    db: Container
    backups: Volume
    media: Volume
    env_file: Path
    password: str
    containers: list[Container] = field(default_factory=list)

    def run(
        self,
        *argv: str,
        envs: dict[str, str] | None = None,
        ok: bool | None = True,
        add_hosts: list[tuple[str, str]] | None = None,
    ) -> Run:
        """Run argv in a fresh backup container; `ok` True/False asserts the outcome.

        The script's stderr (its log) is merged into stdout, which is what gets captured.
        """
        try:
            out = self.client.run(
                self.tag,
                ["sh", "-c", '"$@" 2>&1', "sh", *argv],
                remove=True,
                add_hosts=add_hosts or [],
                networks=[self.network],
                env_files=[self.env_file],
                envs=envs or {},
                volumes=[(self.backups, "/backups"), (self.media, "/srv/media")],
                pull="never",
            )
            result = Run(0, str(out))
        except DockerException as exc:
            result = Run(exc.return_code, (exc.stdout or "") + (exc.stderr or ""))
        assert self.password not in result.out, "the database password leaked into the output"
        if ok is True:
            assert result.code == 0, f"{argv} exited {result.code}\n{result.out}"
        elif ok is False:
            assert result.code != 0, f"{argv} should have failed\n{result.out}"
        return result

    def sql(self, query: str, database: str = DB_NAME) -> str:
        out = self.db.execute(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", "shopper", "-d", database, "-c", query]
        )
        return str(out).strip()

    def checksum(self) -> str:
        return self.sql(CHECKSUM_SQL)

    def databases(self) -> set[str]:
        return set(self.sql("SELECT datname FROM pg_database", "postgres").split())

    def wait_db(self) -> None:
        for _ in range(60):
            try:
                self.db.execute(["pg_isready", "-q", "-h", "127.0.0.1", "-U", "shopper"])
                self.sql("SELECT 1")
                return
            except DockerException:
                time.sleep(1)
        raise AssertionError("the test database did not become ready")

    def files(self, folder: str) -> list[str]:
        return sorted(self.run("ls", "-A", folder).out.split())


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    client = engine_client()
    tmp = tmp_path_factory.mktemp("backup-lab")
    uid = uuid.uuid4().hex[:10]
    tag = f"stackctl-test/backup:{uid}"
    password = secrets.token_urlsafe(24)
    # The prod stack's backup environment (and the db's: the same POSTGRES_* values), plus the password.
    environment = backup_environment(["docker", "compose"], config(), tmp / "stack")
    # the password as a plain variable here (the prod stack passes it as a compose secret file)
    environment = {k: v for k, v in environment.items() if not k.endswith("_FILE")}
    env_file = tmp / "backup.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in {**environment, "POSTGRES_PASSWORD": password}.items()))
    created: list[Any] = []
    try:
        network = client.network.create(f"stackctl-bk-{uid}")
        created.append(network)
        backups, media = (
            client.volume.create(f"stackctl-bk-{uid}-backups"),
            client.volume.create(f"stackctl-bk-{uid}-media"),
        )
        created += [backups, media]
        db = client.run(
            POSTGRES_IMAGE,
            detach=True,
            name=f"stackctl-bk-{uid}-db",
            networks=[network],
            network_aliases=["db"],
            env_files=[env_file],
            pull="never",
        )
        assert isinstance(db, Container)
        client.legacy_build(
            tmp / "stack" / "backup", build_args={"POSTGRES_IMAGE": POSTGRES_IMAGE}, tags=[tag], pull=False
        )
        lab = Lab(client, tag, network, db, backups, media, env_file, password)
        lab.wait_db()
        yield lab
        created = [*lab.containers, db, *created]
    finally:
        _cleanup(client, created, tag, f"stackctl-bk-{uid}")


def _cleanup(client: DockerClient, created: list[Any], tag: str, prefix: str) -> None:
    for container in client.container.list(all=True, filters=[("name", prefix)]):
        container.remove(force=True, volumes=True)
    for thing in created:
        if isinstance(thing, Network):
            client.network.remove(thing)
        elif isinstance(thing, Volume):
            client.volume.remove(thing)
    for image in (tag, f"{tag}-rsyncd"):
        if client.image.exists(image):
            client.image.remove(image, force=True)


@pytest.fixture
def seeded(lab: Lab) -> str:
    """Fresh rows in the live database; returns their checksum."""
    lab.sql(SEED_SQL)
    return lab.checksum()


def _damage(lab: Lab, good: str, how: str) -> str:
    """A damaged copy of a good backup under a backup name, with the good one's sidecar hash."""
    name = good.replace(".dump", f"-{how}.dump")
    half = f"$(( $(stat -c %s {good}) / 2 ))"
    damage = {
        "truncated": f"head -c {half} {good} > {name}",
        "flipped": f"cp {good} {name} && printf '\\377\\000\\377\\000' | dd of={name} bs=1 seek={half} conv=notrunc",
    }[how]
    lab.run("sh", "-c", f"cd /backups/db && {damage} && sed 's/  .*/  {name}/' {good}.sha256 > {name}.sha256")
    return name


# -- the database -----------------------------------------------------------------------------
@engine
def test_db_backup_round_trip(lab: Lab, seeded: str) -> None:
    made = lab.run("backup_db.sh").json
    assert re.fullmatch(rf"{DB_NAME}-\d{{8}}T\d{{6}}Z\.dump", made["file"]) and made["bytes"] > 0
    sidecar = lab.run("cat", f"/backups/db/{made['file']}.sha256").out
    assert sidecar.strip() == f"{made['sha256']}  {made['file']}"
    assert lab.run("cat", "/backups/last-success-db").out.split()[1] == made["file"]

    verified = lab.run("backupctl.py", "verify", made["file"], "--json").json
    assert verified["ok"] and verified["tables"] == SEED_TABLES and verified["rows"] == SEED_ROWS

    lab.sql(
        "DELETE FROM tags WHERE id > 100; UPDATE items SET name = 'changed' WHERE id < 50;"
        " DELETE FROM items WHERE id > 2000"
    )
    assert lab.checksum() != seeded
    restored = lab.run("restore_db.sh", made["file"]).json
    assert lab.checksum() == seeded
    assert restored["tables"] == SEED_TABLES and restored["rows"] == SEED_ROWS
    old = restored["old_database"]
    assert lab.databases() == {"postgres", "template0", "template1", DB_NAME, old}  # no scratch database left
    lab.run("restore_db.sh", "--drop-old-only", "postgres", ok=False)  # only *_pre_restore_* names
    # the previous database dumps as a backup of the live one, without counting as its success
    marked = lab.run("cat", "/backups/last-success-db").out
    assert lab.run("backup_db.sh", "--from-previous", "postgres", ok=False).code == 2
    aside = lab.run("backup_db.sh", "--label", "pre-restore", "--from-previous", old).json
    assert aside["file"].startswith(f"{DB_NAME}-") and aside["file"].endswith("-pre-restore.dump")
    assert lab.run("cat", "/backups/last-success-db").out == marked
    assert lab.run("backupctl.py", "verify", aside["file"], "--json").json["rows"] != SEED_ROWS  # the changed data
    lab.run("restore_db.sh", "--drop-old-only", old)
    assert old not in lab.databases()


@engine
def test_a_backup_in_a_taken_second_waits_for_a_free_name(lab: Lab, seeded: str) -> None:
    # names carry the second: take this second's and the next one's, the script must move on
    taken = (
        "s=$(date -u +%s); for i in 0 1; do"
        f' touch "$DB_BACKUPS_DIR/{DB_NAME}-$(date -u -d "@$((s + i))" +%Y%m%dT%H%M%SZ).dump"; done'
    )
    folder = f"/backups/taken-{uuid.uuid4().hex[:8]}"  # the volume is shared by the module's tests
    ran = lab.run(
        "sh",
        "-c",
        f'mkdir -p "$DB_BACKUPS_DIR" && {taken} && backup_db.sh && ls "$DB_BACKUPS_DIR"',
        envs={"DB_BACKUPS_DIR": folder},
    )
    dumps = sorted(n for n in ran.out.splitlines() if re.fullmatch(rf"{DB_NAME}-\d{{8}}T\d{{6}}Z\.dump", n))
    assert len(dumps) == 3, ran.out
    assert ran.json["file"] == dumps[-1] and ran.json["bytes"] > 0


@engine
@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_damaged_backup_is_refused_and_db_untouched(lab: Lab, seeded: str, how: str) -> None:
    good = lab.run("backup_db.sh", "--label", "good").json["file"]
    lab.sql("DELETE FROM tags")  # the live data differs from the backup
    live, before = lab.checksum(), lab.databases()
    bad = _damage(lab, good, how)
    refused = lab.run("restore_db.sh", bad, ok=False)
    assert "does not match its sha256 sidecar" in refused.out
    lab.run("restore_db.sh", "--check", bad, ok=False)
    # without a sidecar it is refused outright; with --no-checksum, pg_restore's full read catches it
    lab.run("rm", f"/backups/db/{bad}.sha256")
    assert "no .sha256 sidecar" in lab.run("restore_db.sh", bad, ok=False).out
    assert "damaged" in lab.run("restore_db.sh", "--no-checksum", bad, ok=False).out
    assert lab.checksum() == live and lab.databases() == before
    listed = {b["name"]: b for b in lab.run("backupctl.py", "list", "--json").json}
    assert listed[bad]["sha256_ok"] is None and listed[good]["sha256_ok"] is True


@engine
def test_backup_fails_cleanly_while_the_db_is_down(lab: Lab, seeded: str) -> None:
    lab.run("backup_db.sh")
    before = lab.files("/backups/db")
    address = (lab.db.network_settings.networks or {})[lab.network.name].ip_address
    assert address
    lab.db.stop()
    try:
        # `db` pinned to its (now unused) address: no DNS query leaves the engine for it
        failed = lab.run("backup_db.sh", ok=False, add_hosts=[("db", address)])
        assert not any(line.startswith("{") for line in failed.out.splitlines())  # no result: nothing written
        assert lab.files("/backups/db") == before  # no partial file, old backups kept
    finally:
        lab.db.start()
        lab.wait_db()


@engine
def test_age_encrypted_round_trip(lab: Lab, seeded: str) -> None:
    keygen = lab.run("sh", "-c", "mkdir -p /backups/.credentials && age-keygen -o /backups/.credentials/age.key 2>&1")
    recipient = re.search(r"age1[0-9a-z]+", keygen.out)
    assert recipient
    # more tables, so that the parallel restore of a streamed (offset-less) archive is exercised
    lab.sql(
        "".join(f"CREATE TABLE extra{i} AS SELECT g AS id FROM generate_series(1, {i * 100}) g;" for i in range(1, 6))
    )
    made = lab.run("backup_db.sh", envs={"BACKUP_AGE_RECIPIENTS": recipient.group(0)}).json
    assert made["file"].endswith(".dump.age") and made["encrypted"] is True
    header = lab.run("head", "-c", "21", f"/backups/db/{made['file']}").out
    assert header.startswith("age-encryption.org/v1")
    live = lab.checksum()
    lab.sql("DELETE FROM tags; DELETE FROM items WHERE id > 10")
    damaged = lab.checksum()
    assert "BACKUP_AGE_IDENTITY" in lab.run("restore_db.sh", made["file"], ok=False).out
    assert lab.checksum() == damaged
    restored = lab.run(
        "restore_db.sh", "--drop-old", made["file"], envs={"BACKUP_AGE_IDENTITY": "/backups/.credentials/age.key"}
    ).json
    assert lab.checksum() == live and restored["old_dropped"] is True and restored["tables"] == SEED_TABLES + 5
    lab.sql("".join(f"DROP TABLE extra{i};" for i in range(1, 6)))


# -- the media ----------------------------------------------------------------------------------
MEDIA_SEED = (
    "mkdir -p /srv/media/uploads/2024/01 && cd /srv/media"
    " && head -c 300000 /dev/urandom > uploads/2024/01/photo.jpg"
    " && printf 'hello' > 'uploads/a file with spaces.txt' && printf 'x' > .hidden"
)
MEDIA_SUMS = "cd /srv/media && find . -path ./.restore-tmp -prune -o -type f -print0 | sort -z | xargs -0 sha256sum"


@engine
def test_media_round_trip(lab: Lab) -> None:
    lab.run("sh", "-c", MEDIA_SEED)
    sums = lab.run("sh", "-c", MEDIA_SUMS).out
    made = lab.run("backup_media.sh").json
    assert made["file"].endswith(".tar.gz") and made["copied"] is None
    assert lab.run("restore_media.sh", "--check", made["file"]).json["files"] == 3
    lab.run("sh", "-c", "cd /srv/media && rm -r uploads/2024 && printf changed > .hidden && printf new > new.txt")
    assert lab.run("sh", "-c", MEDIA_SUMS).out != sums
    restored = lab.run("restore_media.sh", made["file"]).json
    assert restored["files"] == 3
    assert lab.run("sh", "-c", MEDIA_SUMS).out == sums
    assert ".restore-tmp" not in lab.files("/srv/media") and ".restore-old" not in lab.files("/srv/media")


@engine
def test_damaged_media_archive_is_refused(lab: Lab) -> None:
    lab.run("sh", "-c", MEDIA_SEED)
    made = lab.run("backup_media.sh").json["file"]
    sums = lab.run("sh", "-c", MEDIA_SUMS).out
    bad = made.replace(".tar.gz", "-cut.tar.gz")
    lab.run(
        "sh",
        "-c",
        f"cd /backups/media && head -c 1000 {made} > {bad} && sed 's/  .*/  {bad}/' {made}.sha256 > {bad}.sha256",
    )
    lab.run("restore_media.sh", bad, ok=False)
    lab.run("rm", f"/backups/media/{bad}.sha256")
    lab.run("restore_media.sh", "--no-checksum", bad, ok=False)
    assert lab.run("sh", "-c", MEDIA_SUMS).out == sums


RSYNCD_CONF = "[offsite]\\npath = /srv/offsite\\nread only = false\\nuse chroot = false\\nuid = root\\ngid = root\\n"
RSYNCD_DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends rsync && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /srv/offsite && printf '{RSYNCD_CONF}' > /etc/rsyncd.conf
CMD ["rsync", "--daemon", "--no-detach", "--config=/etc/rsyncd.conf"]
"""


@engine
def test_media_copy_to_an_rsync_daemon(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(RSYNCD_DOCKERFILE)
    image = f"{lab.tag}-rsyncd"
    lab.client.legacy_build(tmp_path, tags=[image], pull=False)
    daemon = lab.client.run(
        image,
        detach=True,
        name=f"{lab.network.name}-rsyncd",
        networks=[lab.network],
        network_aliases=["offsite"],
        pull="never",
    )
    assert isinstance(daemon, Container)
    lab.containers.append(daemon)
    lab.run("sh", "-c", MEDIA_SEED)
    made = lab.run("backup_media.sh", envs={"MEDIA_BACKUP_TARGET": "rsync://offsite/offsite/media/nightly"}).json
    assert made["copied"] is True and made["copied_to"] == "rsync://offsite/offsite/media/nightly"
    checked = daemon.execute(["sh", "-c", f"cd /srv/offsite/media/nightly && sha256sum -c {made['file']}.sha256"])
    assert f"{made['file']}: OK" in str(checked)
    # an unreachable target: exit 3, the local archive is kept
    # (db answers on the network, but not on rsync's port: no lookup leaves the engine)
    failed = lab.run("backup_media.sh", envs={"MEDIA_BACKUP_TARGET": "rsync://db/offsite"}, ok=False)
    assert failed.code == 3 and failed.json["copied"] is False
    assert failed.json["file"] in lab.files("/backups/media")


# -- listing, retention, scheduling ----------------------------------------------------------
@engine
def test_list_and_prune_dry_run(lab: Lab, seeded: str) -> None:
    lab.run("backup_db.sh")
    listed = lab.run("backupctl.py", "list", "--json").json
    assert {"db", "media"} >= {b["kind"] for b in listed} and all(b["bytes"] > 0 for b in listed)
    pruned = lab.run("backupctl.py", "prune", "--dry-run", "--json").json
    assert pruned["dry_run"] is True and pruned["kept"]  # the newest good backup at least
    # a backup without its sidecar (the damaged-file tests leave some) is never deleted, only reported
    unclassified = {path.rsplit("/", 1)[-1] for path in pruned["unclassified"]}
    assert set(pruned["kept"]) | set(pruned["deleted"]) | unclassified >= {b["name"] for b in listed}
    assert unclassified.isdisjoint(pruned["deleted"])


@engine
@pytest.mark.parametrize(
    ("command", "variable", "code"),
    [
        ("backup_db.sh", "POSTGRES_PORT", 78),
        ("backup_media.sh", "MEDIA_BACKUP_TARGET", 78),  # may be empty, not absent
        ("restore_db.sh --check x.dump", "DB_BACKUPS_DIR", 78),
        ("restore_media.sh --check x.tar.gz", "MEDIA_ROOT", 78),
        ("backupctl.py list", "DB_BACKUP_KEEP_WEEKLY", 78),
        ("backupctl.py healthcheck", "DB_BACKUP_CRON", 1),  # a healthcheck's only failure code
        ("backup_scheduler.py", "MEDIA_BACKUP_CRON", 78),
    ],
)
def test_a_missing_setting_is_named(lab: Lab, command: str, variable: str, code: int) -> None:
    """No script has defaults of its own: without a variable it stops and names it."""
    ran = lab.run("sh", "-c", f"unset {variable}; exec timeout 30 {command}", ok=False)
    assert ran.code == code and f"not set: {variable} " in ran.out, ran.out


def _start_scheduler(lab: Lab, name: str, **envs: str) -> Container:
    """The scheduler as the container's command, told to run the db job at once; neither cron
    comes round during a test."""
    scheduler = lab.client.run(
        lab.tag,
        ["backup_scheduler.py", "--run-now", "db"],
        detach=True,
        name=f"{lab.network.name}-{name}",
        networks=[lab.network],
        env_files=[lab.env_file],
        envs={"DB_BACKUP_CRON": "0 0 1 1 *", "MEDIA_BACKUP_CRON": "0 0 1 1 *", **envs},
        volumes=[(lab.backups, "/backups"), (lab.media, "/srv/media")],
        pull="never",
    )
    assert isinstance(scheduler, Container)
    lab.containers.append(scheduler)
    return scheduler


def _wait_for(what: str, probe: Callable[[], str], seconds: float = 60) -> str:
    """Poll PROBE until its text holds WHAT, for SECONDS at the most; returns the last text."""
    deadline = time.monotonic() + seconds
    text = probe()
    while what not in text and time.monotonic() < deadline:
        time.sleep(0.5)
        text = probe()
    assert what in text, f"no {what!r} within {seconds:.0f} s:\n{text}"
    return text


@engine
def test_scheduler_runs_a_job_and_stops_on_sigterm(lab: Lab, seeded: str) -> None:
    scheduler = _start_scheduler(lab, "scheduler")
    logs = _wait_for("db: succeeded", lambda: str(lab.client.container.logs(scheduler)))
    assert lab.password not in logs
    health = json.loads(str(scheduler.execute(["backup_healthcheck.sh"])))  # one JSON line: the status report
    assert health["healthy"] is True and health["db"]["last_success"]
    state = json.loads(str(scheduler.execute(["cat", "/backups/.scheduler.json"])))
    next_new_year = f"{dt.datetime.now(dt.UTC).year + 1}-01-01T00:00:00Z"
    assert state["jobs"]["db"]["last_exit"] == 0 and state["jobs"]["db"]["next_run"] == next_new_year
    assert state["jobs"]["media"]["last_run"] is None  # only the job named by --run-now
    scheduler.stop(time=30)
    assert lab.client.container.inspect(scheduler.id).state.exit_code == 0
    assert "stopped" in str(lab.client.container.logs(scheduler))


LOCKED_SQL = """SELECT count(*) > 0 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE c.relname = 'items' AND l.mode = 'AccessExclusiveLock' AND l.granted"""
DUMP_WAITS_SQL = f"SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = '{DB_NAME}' AND wait_event_type = 'Lock'"


@engine
def test_scheduler_aborts_a_stuck_job_on_sigterm(lab: Lab, seeded: str) -> None:
    """A dump blocked on a lock is stopped after BACKUP_STOP_FINISH_SECONDS: no partial file, exit 0."""
    before = lab.files("/backups/db")
    lab.db.execute(
        ["psql", "-U", "shopper", "-d", DB_NAME, "-c", "BEGIN; LOCK TABLE items; SELECT pg_sleep(150)"], detach=True
    )
    try:
        _wait_for("t", lambda: lab.sql(LOCKED_SQL))
        scheduler = _start_scheduler(lab, "stuck", BACKUP_STOP_FINISH_SECONDS="2")
        _wait_for("t", lambda: lab.sql(DUMP_WAITS_SQL))  # the job is stuck
        scheduler.stop(time=40)
        assert lab.client.container.inspect(scheduler.id).state.exit_code == 0
        logs = str(lab.client.container.logs(scheduler))
        assert "stopping the running job" in logs and "db: failed" in logs and "stopped" in logs
        assert lab.files("/backups/db") == before  # the partial dump was removed
    finally:
        lab.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE '%pg_sleep(150)%' AND pid <> pg_backend_pid()",
            "postgres",
        )
