"""Backups and restores on the real prod stack, through the app: what users trust us with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.e2e.stackenv import STACKCTL, Proj, containers, http, multipart, sha256

pytestmark = pytest.mark.engine

CHECKSUM_SQL = (
    "SELECT count(*) || ':' || coalesce(md5(string_agg(id::text || title || body, ',' ORDER BY id)), '') "
    "FROM notes_note"
)


def psql(proj: Proj, sql: str, db: str | None = None) -> str:
    db_container = containers(proj, "db")[0]
    user, name = proj.env.get("POSTGRES_USER", "django"), db or proj.env.get("POSTGRES_DB", "django")
    return db_container.execute(["psql", "-U", user, "-d", name, "-At", "-c", sql]).strip()


def notes_checksum(proj: Proj) -> str:
    return psql(proj, CHECKSUM_SQL)


def test_status_shows_the_backup_schedule(prod: Proj) -> None:
    status = json.loads(prod.stackctl("status", "--json", check=True).stdout)
    assert status["backups"]["db"]["next_run"], status
    assert "healthy" in status["backups"]


def test_round_trip_rows_and_media(prod: Proj) -> None:
    for i in range(25):
        prod.gql(
            'mutation($t: String!) { createNote(title: $t, body: "kept") { id } }',
            {"t": f"note {i}"},
            base=prod.base_tls,
        )
    content = os.urandom(50_000)
    body, ctype = multipart("file", "round-trip.bin", content)
    media_url = http(f"{prod.base_tls}/upload", data=body, headers={"Content-Type": ctype}).json()["url"]
    before = notes_checksum(prod)

    taken = json.loads(prod.stackctl("backup", "now", "all", "--json", check=True).stdout)
    names = {b["kind"]: b["file"].rsplit("/", 1)[-1] for b in taken}
    listed = json.loads(prod.stackctl("backup", "list", "--json", check=True).stdout)
    assert names["db"] in json.dumps(listed)

    # change and delete, in the database and in the media volume
    psql(prod, "UPDATE notes_note SET title = 'changed' WHERE id % 2 = 0")
    psql(prod, "DELETE FROM notes_note WHERE id % 3 = 0")
    containers(prod, "web")[0].execute(["sh", "-c", "rm -f /srv/media/attachments/*"])
    assert notes_checksum(prod) != before
    assert http(f"{prod.base_tls}{media_url}").status == 404

    refused = prod.stackctl("restore", "db", names["db"])  # no terminal, no --yes
    assert refused.returncode == 9 and "--yes" in refused.stderr
    restored = prod.stackctl("restore", "db", names["db"], "--yes", check=True)
    assert "safety" in (restored.stdout + restored.stderr).lower()
    assert notes_checksum(prod) == before
    prod.stackctl("restore", "media", names["media"], "--yes", check=True)
    again = http(f"{prod.base_tls}{media_url}")
    assert again.status == 200 and sha256(again.body) == sha256(content)
    assert prod.wait_healthy(60)


def test_corrupted_backup_is_refused_and_database_untouched(prod: Proj, tmp_path) -> None:
    taken = json.loads(prod.stackctl("backup", "now", "db", "--json", check=True).stdout)
    entry = taken[0]
    backup = containers(prod, "backup")[0]
    path = entry["file"] if entry["file"].startswith("/") else f"/backups/db/{entry['file']}"
    local = tmp_path / path.rsplit("/", 1)[-1]
    backup.copy_from(path, local)
    backup.copy_from(path + ".sha256", str(local) + ".sha256")
    before = notes_checksum(prod)
    data = bytearray(local.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the middle, checksum sidecar unchanged
    local.write_bytes(bytes(data))
    proc = prod.stackctl("restore", "db", str(local), "--yes")
    assert proc.returncode == 7, proc.stdout + proc.stderr
    assert "checksum" in proc.stderr.lower()
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(bytes(data[: len(data) // 3]))
    proc = prod.stackctl("restore", "db", str(truncated), "--yes")
    assert proc.returncode == 7, proc.stdout + proc.stderr
    assert notes_checksum(prod) == before
    assert prod.wait_healthy(60)


# The moment to interrupt: a statement of the restore runs in the scratch database
# <db>_restore_<ts>, before the swap (the <db>_pre_restore_<ts> left after it does not count).
LOADING_SQL = (
    "SELECT count(*) > 0 FROM pg_stat_activity WHERE state = 'active'"
    " AND datname ~ '_restore_[0-9]+$' AND datname !~ '_pre_restore_'"
)


def test_restore_interrupted_by_killing_the_database_leaves_it_as_it_was(prod: Proj) -> None:
    # enough rows that the restore takes a few seconds
    psql(
        prod,
        "CREATE TABLE IF NOT EXISTS ballast AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1500000) g",
    )
    taken = json.loads(prod.stackctl("backup", "now", "db", "--json", check=True).stdout)
    name = taken[0]["file"].rsplit("/", 1)[-1]
    psql(prod, "DROP TABLE ballast")
    psql(prod, "INSERT INTO notes_note (title, body, created_at) VALUES ('after the backup', 'x', now())")
    before = notes_checksum(prod)

    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [str(STACKCTL), "restore", "db", name, "--yes"],
        cwd=prod.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            loading = psql(prod, LOADING_SQL, db="postgres")
        except Exception:
            loading = "f"
        if loading == "t":
            os.kill(containers(prod, "db")[0].state.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=300)
    assert killed, "the restore finished before the database could be killed: " + out + err
    assert proc.returncode != 0, out + err
    assert prod.wait_healthy(90), prod.stackctl("status").stdout
    assert notes_checksum(prod) == before  # the live database is exactly as it was
