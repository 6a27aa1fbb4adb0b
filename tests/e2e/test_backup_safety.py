"""Backup and restore safety (issue 13, part 6 and 7) on a real engine: each data-safety item
and each refusal, with the backup container's own scripts against crafted inputs.

The lab of test_backup_scripts (a db and the backup image on a private network) is shared;
every script runs in a throwaway container of the backup image, as in the prod stack.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from python_on_whales import Container
from python_on_whales.exceptions import DockerException

from tests.e2e import test_backup_scripts as scripts
from tests.e2e.test_backup_scripts import DB_NAME, Lab, Run

# the lab's fixtures, shared with test_backup_scripts (one lab per module)
lab = scripts.lab
seeded = scripts.seeded

pytestmark = pytest.mark.engine

MEDIA_SUMS = (
    "cd /srv/media && find . -path ./.restore-tmp -prune -o -path ./.restore-old -prune -o -type f -print0"
    " | sort -z | xargs -0 -r sha256sum"
)
# The app's migration history, as Django leaves it; the foreign database has another app's.
MIGRATIONS_SQL = """
CREATE TABLE IF NOT EXISTS django_migrations (id serial PRIMARY KEY, app varchar(255) NOT NULL,
  name varchar(255) NOT NULL, applied timestamptz NOT NULL DEFAULT now());
TRUNCATE django_migrations;
INSERT INTO django_migrations (app, name) VALUES
  ('contenttypes', '0001_initial'), ('auth', '0001_initial'), ('{app}', '0001_initial'), ('{app}', '0002_more');
"""


def run_detached(lab: Lab, name: str, *argv: str, **envs: str) -> Container:
    """A backup container running ARGV in the background; removed with the lab."""
    container = lab.client.run(
        lab.tag,
        list(argv),
        detach=True,
        name=f"{lab.network.name}-{name}-{uuid.uuid4().hex[:6]}",
        networks=[lab.network],
        env_files=[lab.env_file],
        envs=envs,
        volumes=[(lab.backups, "/backups"), (lab.media, "/srv/media")],
        pull="never",
    )
    assert isinstance(container, Container)
    lab.containers.append(container)
    return container


def wait_for(probe: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s"
        time.sleep(0.3)


def exit_code(lab: Lab, container: Container, seconds: float = 120) -> int:
    deadline = time.monotonic() + seconds
    while lab.client.container.inspect(container.id).state.running:
        assert time.monotonic() < deadline, "the container did not finish"
        time.sleep(0.5)
    return int(lab.client.container.inspect(container.id).state.exit_code or 0)


def app_db(lab: Lab) -> str:
    """The live database as this app's (a django_migrations history); returns its checksum."""
    lab.sql(MIGRATIONS_SQL.format(app="shop"))
    return lab.checksum()


# -- media: rollback, links ---------------------------------------------------------------------
def test_a_failed_media_swap_leaves_every_live_file_as_it_was(lab: Lab) -> None:
    """Moving the live media aside fails partway (a mount point inside MEDIA_ROOT cannot be
    moved): every live file, the mounted ones included, must be exactly as it was."""
    extra = lab.client.volume.create(f"{lab.network.name}-mnt")
    try:
        volumes = [(lab.backups, "/backups"), (lab.media, "/srv/media"), (extra, "/srv/media/zz-mounted")]

        def run(script: str, user: str = "root") -> Run:  # root: the mounted volume starts root's
            try:
                out = lab.client.run(
                    lab.tag,
                    ["sh", "-c", f"{script} 2>&1"],
                    remove=True,
                    networks=[lab.network],
                    env_files=[lab.env_file],
                    volumes=volumes,
                    user=user,
                    pull="never",
                )
                return Run(0, str(out))
            except DockerException as exc:
                return Run(exc.return_code, (exc.stdout or "") + (exc.stderr or ""))

        seed = (
            "rm -rf /srv/media/* /srv/media/.hidden; mkdir -p /srv/media/a /srv/media/zz-mounted/in"
            " && echo one > /srv/media/a/1.txt && echo two > /srv/media/b.txt"
            " && echo kept > /srv/media/zz-mounted/in/precious.txt && chown -R 1000:1000 /srv/media"
        )
        assert run(seed).code == 0
        made = lab.run("backup_media.sh", "--no-copy").json["file"]
        run("echo changed-after-the-backup > /srv/media/b.txt && echo new > /srv/media/c.txt")
        before = run(MEDIA_SUMS).out
        assert "precious.txt" in before
        failed = run(f"restore_media.sh {made}", user="1000:1000")
        assert failed.code != 0, failed.out
        assert run(MEDIA_SUMS).out == before, failed.out  # nothing deleted, nothing replaced
        left = run("ls -A /srv/media").out.split()
        assert ".restore-old" not in left and ".restore-tmp" not in left, left
    finally:
        lab.run("sh", "-c", "rm -rf /srv/media/* /srv/media/.hidden")
        lab.client.volume.remove(extra)


CRAFT = r"""
import hashlib, io, sys, tarfile
kind, out = sys.argv[1], sys.argv[2]
with tarfile.open(out, "w:gz") as tar:
    data = b"ok"
    info = tarfile.TarInfo("./fine.txt"); info.size = len(data); tar.addfile(info, io.BytesIO(data))
    bad = tarfile.TarInfo("./evil.txt")
    if kind == "symlink":
        bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        bad.type, bad.linkname = tarfile.LNKTYPE, "etc/passwd"
    elif kind == "device":
        bad.type, bad.devmajor, bad.devminor = tarfile.CHRTYPE, 1, 3
    elif kind == "fifo":
        bad.type = tarfile.FIFOTYPE
    elif kind == "outside":
        bad.name, bad.size = "../../backups/evil.txt", 2
    elif kind == "absolute":
        bad.name, bad.size = "/tmp/evil.txt", 2
    tar.addfile(bad, io.BytesIO(b"no") if bad.size else None)
digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
open(out + ".sha256", "w").write(f"{digest}  {out.rsplit('/', 1)[-1]}\n")
"""


KINDS = ["symlink", "hardlink", "device", "fifo", "outside", "absolute"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_media_archive_with_links_or_devices_is_refused(lab: Lab, kind: str) -> None:
    lab.run("sh", "-c", "mkdir -p /srv/media/keep && echo mine > /srv/media/keep/file.txt")
    before = lab.run("sh", "-c", MEDIA_SUMS).out
    name = f"media-20240101T00000{KINDS.index(kind)}Z-{kind}.tar.gz"
    lab.run("python3", "-c", CRAFT, kind, f"/backups/media/{name}")
    checked = lab.run("restore_media.sh", "--check", name, ok=False)
    assert "evil.txt" in checked.out and checked.code == 65, checked.out
    restored = lab.run("restore_media.sh", name, ok=False)
    assert "evil.txt" in restored.out
    assert lab.run("sh", "-c", MEDIA_SUMS).out == before
    assert "evil.txt" not in lab.run("sh", "-c", "ls -A /srv/media /backups").out
    lab.run("rm", "-f", f"/backups/media/{name}", f"/backups/media/{name}.sha256")


# -- retention: hashes, unclassified files, the orphan sweep --------------------------------------
def _folder(lab: Lab) -> str:
    folder = f"/backups/ret-{uuid.uuid4().hex[:8]}"
    lab.run("mkdir", "-p", folder)
    return folder


def _prune(lab: Lab, folder: str, **envs: str) -> Any:
    env = {"DB_BACKUPS_DIR": folder, "DB_BACKUP_RETENTION_DAYS": "1", "DB_BACKUP_KEEP_DAILY": "2"}
    env |= {"DB_BACKUP_KEEP_WEEKLY": "0", "DB_BACKUP_KEEP_MONTHLY": "0", **envs}
    return lab.run("backupctl.py", "prune", "--kind", "db", "--json", envs=env).json


def test_prune_counts_a_backup_as_good_only_when_its_hash_matches(lab: Lab, seeded: str) -> None:
    folder = _folder(lab)
    made = lab.run("backup_db.sh", envs={"DB_BACKUPS_DIR": folder}).json["file"]
    intact = f"{DB_NAME}-20240101T030000Z.dump"
    # two newer backups whose files are damaged, their sidecars those of intact bytes
    script = (
        f"cd {folder} && mv {made} {intact} && sed 's/  .*/  {intact}/' {made}.sha256 > {intact}.sha256"
        f" && rm {made}.sha256 && for d in 02 03; do n={DB_NAME}-202401${{d}}T030000Z.dump;"
        f' head -c 300 {intact} > $n && sed "s/  .*/  $n/" {intact}.sha256 > $n.sha256; done'
    )
    lab.run("sh", "-c", script)
    pruned = _prune(lab, folder)
    assert intact in pruned["kept"], pruned  # the only good one: never pruned for damaged ones
    assert set(pruned["damaged"]) == {f"{DB_NAME}-20240102T030000Z.dump", f"{DB_NAME}-20240103T030000Z.dump"}
    assert intact in lab.files(folder)


def test_prune_never_deletes_a_file_it_cannot_classify(lab: Lab) -> None:
    folder = _folder(lab)
    by_hand = [f"{DB_NAME}-20240101T030000Z.dump", "notes.txt", f"{DB_NAME}-old.dump"]
    lab.run("sh", "-c", f"cd {folder} && " + " && ".join(f"echo x > {n}" for n in by_hand))
    pruned = _prune(lab, folder)
    assert pruned["deleted"] == [], pruned
    assert {n.rsplit("/", 1)[-1] for n in pruned["unclassified"]} == set(by_hand)
    assert set(by_hand) <= set(lab.files(folder))


def test_the_orphan_sweep_spares_a_running_restore(lab: Lab, seeded: str) -> None:
    """A restore waits (for the db lock) with its decrypted copy in its working folder, which
    is made to look hours old: a prune meanwhile must leave it, and the restore then finishes."""
    keygen = lab.run("sh", "-c", "mkdir -p /backups/.credentials && age-keygen -o /backups/.credentials/sweep.key 2>&1")
    recipient = re.search(r"age1[0-9a-z]+", keygen.out)
    assert recipient
    app_db(lab)
    made = lab.run("backup_db.sh", envs={"BACKUP_AGE_RECIPIENTS": recipient.group(0)}).json["file"]
    holder = run_detached(lab, "lock", "flock", "/backups/.lock-db", "sleep", "300")
    wait_for(lambda: lab.run("flock", "-n", "/backups/.lock-db", "true", ok=None).code != 0, "the lock holder")
    restore = run_detached(lab, "restore", "restore_db.sh", made, BACKUP_AGE_IDENTITY="/backups/.credentials/sweep.key")
    plain = made.removesuffix(".age")
    listing = "ls -d /backups/.tmp-restore-*/* 2>/dev/null || true"
    wait_for(lambda: plain in lab.run("sh", "-c", listing).out, "decrypted copy")
    time.sleep(1)  # the restore now waits for the db lock
    lab.run("sh", "-c", "touch -d '3 hours ago' /backups/.tmp-restore-*")
    swept = lab.run("backupctl.py", "prune", "--kind", "db", "--json").json
    assert not any(".tmp-restore-" in o for o in swept["orphans"]), swept
    assert plain in lab.run("sh", "-c", listing).out
    holder.kill()
    code = exit_code(lab, restore)
    assert code == 0, lab.client.container.logs(restore)
    old = Run(0, str(lab.client.container.logs(restore))).json["old_database"]
    lab.run("restore_db.sh", "--drop-old-only", old)


# -- names as options ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["backupctl.py", "verify", "--", "-h"],
        ["backupctl.py", "verify", "--json", "--", "--check"],
        ["restore_db.sh", "--verify", "--", "-h"],
        ["restore_db.sh", "--", "--drop-old"],
        ["restore_media.sh", "--check", "--", "-h"],
    ],
)
def test_a_name_that_looks_like_an_option_is_refused(lab: Lab, argv: list[str]) -> None:
    ran = lab.run(*argv, ok=False)
    assert ran.code in (2, 66) and "never starts with -" in ran.out, ran.out


# -- a dump of another database -------------------------------------------------------------------
def _foreign_dump(lab: Lab, name: str, sql: str) -> None:
    """A valid dump of another database, with a matching sidecar, in /backups/db."""
    script = (
        'set -e; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS other" -c "CREATE DATABASE other"\n'
        f'psql -X -q -v ON_ERROR_STOP=1 -d other <<"SQL"\n{sql}\nSQL\n'
        f"pg_dump -Fc -d other -f /backups/db/{name} && cd /backups/db && sha256sum {name} > {name}.sha256\n"
        'psql -X -q -d postgres -c "DROP DATABASE other"'
    )
    lab.run("sh", "-c", f'export PGHOST=db PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD"; {script}')


@pytest.mark.parametrize(
    ("what", "sql"),
    [
        (
            "another-app",
            MIGRATIONS_SQL.format(app="blog") + "CREATE TABLE blog_post (id int); INSERT INTO blog_post SELECT 1;",
        ),
        ("not-django", "CREATE TABLE items (id int); INSERT INTO items VALUES (1);"),
    ],
)
def test_a_dump_of_another_database_is_refused(lab: Lab, seeded: str, what: str, sql: str) -> None:
    live = app_db(lab)
    before = lab.databases()
    name = f"{DB_NAME}-20240201T00000{len(what) % 10}Z-{what}.dump"
    _foreign_dump(lab, name, sql)
    refused = lab.run("restore_db.sh", name, ok=False)
    assert "not a dump of this app's database" in refused.out and "--allow-foreign" in refused.out, refused.out
    assert lab.checksum() == live and lab.databases() == before
    if what == "another-app":
        forced = lab.run("restore_db.sh", "--allow-foreign", "--drop-old", name).json
        assert forced["app_fits"] is False
        assert lab.sql("SELECT count(*) FROM blog_post") == "1"
    lab.run("rm", "-f", f"/backups/db/{name}", f"/backups/db/{name}.sha256")


def test_an_older_backup_of_this_app_is_accepted(lab: Lab, seeded: str) -> None:
    live = app_db(lab)
    made = lab.run("backup_db.sh").json["file"]
    lab.sql("INSERT INTO django_migrations (app, name) VALUES ('shop', '0003_newer'); DELETE FROM tags")
    restored = lab.run("restore_db.sh", "--drop-old", made).json
    assert restored["app_fits"] is True and lab.checksum() == live


# -- dumps from elsewhere: every pg_dump format, plain and gzipped SQL --------------------------------
@pytest.mark.parametrize(
    ("name", "dump"),
    [
        ("cookiecutter.sql.gz", "pg_dump -d shop | gzip > {path}"),
        ("plain.sql", "pg_dump -d shop > {path}"),
        ("archive.tar", "pg_dump -Ft -d shop -f {path}"),
        ("folder.dir", "pg_dump -Fd -d shop -f {path}"),
        ("custom.backup", "pg_dump -Fc -d shop -f {path}"),
    ],
)
def test_a_dump_from_elsewhere_restores_with_no_checksum(lab: Lab, seeded: str, name: str, dump: str) -> None:
    live = app_db(lab)
    path = f"/backups/incoming/{uuid.uuid4().hex[:6]}-{name}"
    env = 'export PGHOST=db PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD";'
    lab.run("sh", "-c", f"mkdir -p /backups/incoming && {env} {dump.format(path=path)}")
    refused = lab.run("restore_db.sh", path, ok=False)  # no sidecar: refused without the flag
    assert "--no-checksum" in refused.out
    lab.sql("DELETE FROM tags; DELETE FROM items WHERE id > 10")
    restored = lab.run("restore_db.sh", "--no-checksum", "--drop-old", path).json
    assert lab.checksum() == live, restored
    assert restored["checksum"] == "skipped" and restored["app_fits"] is True
    roles = lab.sql("SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname LIKE '%loader%'", "postgres")
    assert roles == "", roles  # the throwaway role of a plain SQL load is gone
    lab.run("rm", "-rf", path)


def test_plain_sql_cannot_run_psql_commands_or_touch_the_live_database(lab: Lab, seeded: str) -> None:
    live = app_db(lab)
    path = "/backups/incoming/crafted.sql"
    crafted = MIGRATIONS_SQL.format(app="shop") + "\\! touch /backups/pwned\nDROP TABLE IF EXISTS items;\n"
    lab.run("sh", "-c", f"mkdir -p /backups/incoming && cat > {path} <<'EOF'\n{crafted}\nEOF")
    lab.run("restore_db.sh", "--no-checksum", path, ok=False)
    crafted = MIGRATIONS_SQL.format(app="shop") + f"\\connect {DB_NAME}\nDROP TABLE items;\n"
    lab.run("sh", "-c", f"cat > {path} <<'EOF'\n{crafted}\nEOF")
    lab.run("restore_db.sh", "--no-checksum", path, ok=False)
    crafted = MIGRATIONS_SQL.format(app="shop") + "DROP DATABASE shop;\nCOPY (SELECT 1) TO PROGRAM 'touch /tmp/x';\n"
    lab.run("sh", "-c", f"cat > {path} <<'EOF'\n{crafted}\nEOF")
    lab.run("restore_db.sh", "--no-checksum", path, ok=False)
    assert lab.checksum() == live
    assert "pwned" not in lab.files("/backups")
    lab.run("rm", "-f", path)


# -- room, the scheduler, off-site copies ------------------------------------------------------
def test_a_restore_without_room_for_the_decrypted_copy_is_refused(lab: Lab, seeded: str) -> None:
    keygen = lab.run("sh", "-c", "mkdir -p /backups/.credentials && age-keygen -o /backups/.credentials/room.key 2>&1")
    recipient = re.search(r"age1[0-9a-z]+", keygen.out)
    assert recipient
    live = app_db(lab)
    made = lab.run("backup_db.sh", envs={"BACKUP_AGE_RECIPIENTS": recipient.group(0)}).json["file"]
    lab.sql("DELETE FROM tags")
    changed = lab.checksum()
    # a backups volume with no room left: a tiny tmpfs as BACKUP_ROOT, the backup beside it
    try:
        fill = (
            f"mkdir -p /small/db && cp /backups/db/{made} /backups/db/{made}.sha256 /small/db/"
            f" && free=$(( $(stat -f -c '%a * %S' /small) )) && size=$(stat -c %s /small/db/{made})"
            " && head -c $((free - size / 2)) /dev/zero > /small/filler"
        )
        out = lab.client.run(
            lab.tag,
            ["sh", "-c", f"{fill} && restore_db.sh {made} 2>&1"],
            remove=True,
            networks=[lab.network],
            env_files=[lab.env_file],
            envs={
                "BACKUP_ROOT": "/small",
                "DB_BACKUPS_DIR": "/small/db",
                "BACKUP_AGE_IDENTITY": "/backups/.credentials/room.key",
            },
            volumes=[(lab.backups, "/backups")],
            tmpfs=["/small:size=4m,uid=1000,gid=1000"],
            pull="never",
        )
        code, text = 0, str(out)
    except DockerException as exc:
        code, text = exc.return_code, (exc.stdout or "") + (exc.stderr or "")
    assert code == 73 and "not enough room" in text, text
    assert lab.checksum() == changed != live


def test_the_scheduler_stops_a_hung_job_and_runs_the_next(lab: Lab, seeded: str) -> None:
    """A dump blocked on a lock is stopped after BACKUP_JOB_TIMEOUT_SECONDS; the media job
    that was due meanwhile then runs."""
    before = lab.files("/backups/db")
    lab.db.execute(
        ["psql", "-U", "shopper", "-d", DB_NAME, "-c", "BEGIN; LOCK TABLE items; SELECT pg_sleep(120)"], detach=True
    )
    try:
        wait_for(lambda: lab.sql(LOCKED_SQL) == "t", "the lock")
        scheduler = run_detached(
            lab,
            "hung",
            "backup_scheduler.py",
            "--run-now",
            "db",
            "--run-now",
            "media",
            DB_BACKUP_CRON="0 0 1 1 *",
            MEDIA_BACKUP_CRON="0 0 1 1 *",
            BACKUP_JOB_TIMEOUT_SECONDS="3",
        )
        logs = lambda: str(lab.client.container.logs(scheduler))  # noqa: E731
        wait_for(lambda: "media: succeeded" in logs(), "the media job after the hung dump", 90)
        assert "db: timed out" in logs() and "db: failed" in logs(), logs()
        assert lab.files("/backups/db") == before  # the partial dump was removed
        scheduler.stop(time=30)
    finally:
        lab.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()",
            "postgres",
        )


LOCKED_SQL = """SELECT count(*) > 0 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE c.relname = 'items' AND l.mode = 'AccessExclusiveLock' AND l.granted"""


def test_a_db_dump_is_copied_off_site(lab: Lab, seeded: str) -> None:
    target = f"/backups/offsite-{uuid.uuid4().hex[:8]}"
    made = lab.run("backup_db.sh", envs={"DB_BACKUP_TARGET": target}).json
    assert made["copied"] is True and made["copied_to"] == target
    checked = lab.run("sh", "-c", f"cd {target} && sha256sum -c {made['file']}.sha256")
    assert f"{made['file']}: OK" in checked.out
    failed = lab.run("backup_db.sh", envs={"DB_BACKUP_TARGET": "rsync://db/offsite"}, ok=False)
    assert failed.code == 3 and failed.json["copied"] is False
    assert failed.json["file"] in lab.files("/backups/db")  # the local dump is kept
