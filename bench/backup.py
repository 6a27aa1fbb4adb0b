"""Section `backup`: stackctl's backup and restore on ~1 GB of generated rows vs cookiecutter-django's
`pg_dump | gzip` / `gunzip | psql` and a raw plain-SQL dump (the ceiling), plus what-ifs for restore.

Every alternative runs in the stack's backup container (same pg_dump/psql, same network path to
db as stackctl's own scripts). Timings are wall-clock seconds of the command seen from the host.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from bench.host import BenchError, load_average, log
from bench.lab import Lab, WebSetup

TABLES = 4
WORK = "/backups/bench"
# libpq from the container's own environment (the password never reaches argv).
PG_ENV = (
    'export PGPASSWORD="${POSTGRES_PASSWORD:-$(cat "$POSTGRES_PASSWORD_FILE")}"'
    ' PGHOST="$POSTGRES_HOST" PGPORT="$POSTGRES_PORT" PGUSER="$POSTGRES_USER"'
)


def generate_sql(rows_per_table: int) -> str:
    """TABLES event tables, each with a primary key and a secondary index; md5 payloads (half-compressible)."""
    return f"""
\\set ON_ERROR_STOP 1
SELECT format('DROP TABLE IF EXISTS bench_events_%s', t) FROM generate_series(1, {TABLES}) t \\gexec
SELECT format('CREATE TABLE bench_events_%s (id bigint PRIMARY KEY, account_id integer NOT NULL,
    kind text NOT NULL, payload text NOT NULL, created_at timestamptz NOT NULL)', t)
  FROM generate_series(1, {TABLES}) t \\gexec
SELECT format($q$INSERT INTO bench_events_%s
    SELECT g, (g * 7919) %% 100000, (ARRAY['view', 'click', 'buy', 'share'])[1 + g %% 4],
           md5(g::text) || md5((g * 31 + %s)::text) || md5((g * 17)::text),
           timestamptz '2024-01-01' + g * interval '1 second'
      FROM generate_series(1::bigint, {rows_per_table}) g$q$, t, t)
  FROM generate_series(1, {TABLES}) t \\gexec
SELECT format('CREATE INDEX ON bench_events_%s (account_id, created_at)', t) FROM generate_series(1, {TABLES}) t \\gexec
ANALYZE;
CHECKPOINT;
"""


class Backups:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        env = lab.defaults
        self.user = env.get("POSTGRES_USER", "django")
        self.db = env.get("POSTGRES_DB", "django")

    def sh(self, script: str, *, what: str, timeout: float = 1800) -> tuple[float, str]:
        """Run a bash script in the backup container; returns (seconds, stdout)."""
        full = f"set -euo pipefail; {PG_ENV}; mkdir -p {WORK}; {script}"
        ran = self.lab.compose("exec", "-T", "backup", "bash", "-c", full, timeout=timeout)
        log(f"  {what}: {ran.seconds:.1f} s")
        return round(ran.seconds, 2), ran.stdout

    def psql_db(self, sql: str, *, timeout: float = 1800) -> str:
        argv = ("exec", "-T", "db", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", self.user, "-d", self.db)
        return self.lab.compose(*argv, stdin=sql, timeout=timeout).stdout

    def size(self, path: str) -> int:
        return int(self.sh(f"stat -c %s {shlex.quote(path)}", what=f"size of {path}")[1].strip())

    def rows_in(self, database: str) -> int:
        union = " + ".join(f"(SELECT count(*) FROM bench_events_{t})" for t in range(1, TABLES + 1))
        out = self.sh(f"psql -X -At -d {shlex.quote(database)} -c {shlex.quote('SELECT ' + union)}", what="count")[1]
        return int(out.strip().splitlines()[-1])

    def restore_into_scratch(self, what: str, load: str, expected_rows: int) -> float:
        """createdb an empty scratch database, load it with `load` ($DB names it), check, drop it."""
        scratch = "bench_scratch"
        self.sh(f"dropdb --if-exists {scratch}; createdb -T template0 {scratch}", what="create scratch db")
        seconds, _ = self.sh(f"DB={scratch}; {load}", what=what)
        rows = self.rows_in(scratch)
        self.sh(f"dropdb {scratch}", what="drop scratch db")
        if rows != expected_rows:
            raise BenchError(f"{what}: restored {rows} rows, expected {expected_rows}")
        return seconds


# `restore db`'s phases and restore_db.sh's steps in the order they run (`--json` sorts its keys)
ORDER = (
    *("check", "stop", "restore", "app_role", "start", "safety_backup", "drop_old"),
    *("integrity", "load", "count", "checksum", "app_check", "swap", "drop"),
)


def _in_order(seconds: dict[str, float]) -> dict[str, float]:
    return dict(sorted(seconds.items(), key=lambda item: ORDER.index(item[0]) if item[0] in ORDER else len(ORDER)))


def _seconds_line(seconds: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()) or "-"


def _stackctl_json(lab: Lab, *args: str) -> tuple[float, Any]:
    ran = lab.stackctl(*args, "--json", timeout=1800)
    return round(ran.seconds, 2), json.loads(ran.stdout)


def _generate(lab: Lab, b: Backups, r: dict[str, Any], rows_per_table: int) -> int:
    """The bench database: TABLES x rows_per_table generated rows; returns how many rows it holds."""
    log(f"generating {TABLES} x {rows_per_table} rows with generate_series")
    ran = lab.compose(
        "exec",
        "-T",
        "db",
        "psql",
        "-X",
        "-q",
        "-U",
        b.user,
        "-d",
        b.db,
        stdin=generate_sql(rows_per_table),
        timeout=1800,
    )
    r["generate_seconds"] = round(ran.seconds, 2)
    r["database_bytes"] = int(b.psql_db("SELECT pg_database_size(current_database());").strip())
    expected = b.rows_in(b.db)
    r["rows"] = expected
    log(f"  database: {r['database_bytes'] / 1e6:.0f} MB, {expected} generated rows")
    return expected


def run_restore_section(lab: Lab, *, rows_per_table: int, rounds: int) -> dict[str, Any]:
    """`stackctl restore db` of one backup of the bench database, end to end, ROUNDS times: the
    wall time, each phase (the command's --json `phases`) and restore_db.sh's own steps, and the
    median. The short way to the restore figures, without the backup section's comparisons."""
    lab.apply(WebSetup())
    b = Backups(lab)
    r: dict[str, Any] = {"tables": TABLES, "rows_per_table": rows_per_table}
    expected = _generate(lab, b, r, rows_per_table)
    wall, payload = _stackctl_json(lab, "backup", "now", "db")
    dump = payload[0]
    r["backup_cli_seconds"], r["bytes"] = wall, dump["bytes"]
    log(f"  stackctl backup now db: {wall:.1f} s, {dump['bytes'] / 1e6:.0f} MB")
    runs: list[dict[str, Any]] = []
    for number in range(1, rounds + 1):
        load = load_average()
        wall, result = _stackctl_json(lab, "restore", "db", dump["file"], "--yes")
        phases = _in_order(result.get("phases", {}))
        steps = _in_order(result.get("restore_steps", {}))
        runs.append({"seconds": wall, "load_before": load, "phases": phases, "script_steps": steps})
        log(f"  restore db, run {number}: {wall:.1f} s (load {load})")
        log(f"    phases: {_seconds_line(phases)}")
        log(f"    restore_db.sh's steps: {_seconds_line(steps)}")
        if b.rows_in(b.db) != expected:
            raise BenchError("stackctl restore db did not bring back every generated row")
    r["runs"] = runs
    r["restore_cli_seconds_median"] = sorted(run["seconds"] for run in runs)[len(runs) // 2]
    log(f"  median of {len(runs)}: {r['restore_cli_seconds_median']:.1f} s")
    return r


def run_section(lab: Lab, *, rows_per_table: int) -> dict[str, Any]:
    lab.apply(WebSetup())
    b = Backups(lab)
    r: dict[str, Any] = {"tables": TABLES, "rows_per_table": rows_per_table}
    expected = _generate(lab, b, r, rows_per_table)

    # -- stackctl ------------------------------------------------------------------------------
    wall, payload = _stackctl_json(lab, "backup", "now", "db")
    dump = payload[0]
    log(f"  stackctl backup now db: {wall:.1f} s, {dump['bytes'] / 1e6:.0f} MB")
    path = f"/backups/db/{dump['file']}"
    st: dict[str, Any] = {"backup_cli_seconds": wall, "backup_script_seconds": dump["seconds"], "bytes": dump["bytes"]}
    st["sha256_seconds"], _ = b.sh(f"sha256sum {path} >/dev/null", what="sha256 of the dump (integrity step)")
    st["read_through_seconds"], _ = b.sh(
        f"pg_restore -f /dev/null {path}", what="pg_restore read-through (integrity step)"
    )
    for jobs in (2, 1, 4):
        st[f"pg_restore_j{jobs}_seconds"] = b.restore_into_scratch(
            f"pg_restore -j {jobs} into an empty db",
            f'pg_restore --no-owner --exit-on-error -j {jobs} -d "$DB" {path}',
            expected,
        )
    seconds, out = b.sh(f"restore_db.sh --drop-old {dump['file']}", what="restore_db.sh (checks, scratch, swap)")
    script = json.loads(out.strip().splitlines()[-1])
    st["restore_script_wall_seconds"] = seconds
    st["restore_script_seconds"] = script["seconds"]
    st["restore_script_steps"] = _in_order(script.get("steps", {}))
    log(f"    its steps: {_seconds_line(st['restore_script_steps'])}")
    # after restore_db.sh alone, whose database belongs to the superuser: the command hands it to
    # the app's role (a bare restore_db.sh as the last restore would leave web without access)
    st["restore_cli_load_before"] = load_average()
    wall, result = _stackctl_json(lab, "restore", "db", dump["file"], "--yes")
    st["restore_cli_seconds"] = wall
    st["restore_cli_reported_seconds"] = result.get("seconds")
    # each phase's seconds as the command measured them (its --json `phases`; the safety backup
    # runs while web starts, so the two overlap), and restore_db.sh's own steps within `restore`
    st["restore_cli_phases"] = _in_order(result.get("phases", {}))
    st["restore_cli_script_steps"] = _in_order(result.get("restore_steps", {}))
    log(f"  stackctl restore db (check, stop web, restore, start web while dumping the old db, drop it): {wall:.1f} s")
    log(f"    phases: {_seconds_line(st['restore_cli_phases'])}")
    log(f"    restore_db.sh's steps: {_seconds_line(st['restore_cli_script_steps'])}")
    if b.rows_in(b.db) != expected:
        raise BenchError("stackctl restore db did not bring back every generated row")
    r["stackctl"] = st

    # -- cookiecutter-django: pg_dump | gzip, gunzip | psql ---------------------------------------------
    cc: dict[str, Any] = {}
    cc["backup_seconds"], _ = b.sh(f'pg_dump -d "$POSTGRES_DB" | gzip > {WORK}/cc.sql.gz', what="pg_dump | gzip")
    cc["bytes"] = b.size(f"{WORK}/cc.sql.gz")
    cc["restore_seconds"] = b.restore_into_scratch(
        "gunzip | psql into an empty db",
        f'gunzip -c {WORK}/cc.sql.gz | psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null',
        expected,
    )
    b.sh(f"rm -f {WORK}/cc.sql.gz", what="remove")
    r["cookiecutter"] = cc

    # -- raw plain SQL (the ceiling for a single stream) -----------------------------------------------
    raw: dict[str, Any] = {}
    raw["backup_seconds"], _ = b.sh(f'pg_dump -d "$POSTGRES_DB" -f {WORK}/raw.sql', what="pg_dump plain SQL")
    raw["bytes"] = b.size(f"{WORK}/raw.sql")
    raw["restore_seconds"] = b.restore_into_scratch(
        "psql -f raw.sql into an empty db",
        f'psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f {WORK}/raw.sql >/dev/null',
        expected,
    )
    b.sh(f"rm -f {WORK}/raw.sql", what="remove")
    r["raw_plain"] = raw

    # -- what-if: custom format at compression level 1 ---------------------------------------------------
    z1: dict[str, Any] = {}
    z1["backup_seconds"], _ = b.sh(f'pg_dump -Fc -Z 1 -d "$POSTGRES_DB" -f {WORK}/z1.dump', what="pg_dump -Fc -Z 1")
    z1["bytes"] = b.size(f"{WORK}/z1.dump")
    z1["pg_restore_j2_seconds"] = b.restore_into_scratch(
        "pg_restore -j 2 (Z1) into an empty db",
        f'pg_restore --no-owner --exit-on-error -j 2 -d "$DB" {WORK}/z1.dump',
        expected,
    )
    b.sh(f"rm -f {WORK}/z1.dump", what="remove")
    r["custom_z1"] = z1

    # -- pgBackRest (PITR_ENABLED, the default): a full backup, then two restores --------------------
    pb: dict[str, Any] = {}
    wall, _ = _stackctl_json(lab, "backup", "now", "pitr", "--type", "full")
    pb["backup_cli_seconds"] = wall
    log(f"  stackctl backup now pitr --type full: {wall:.1f} s")
    # the restore step alone, into an empty folder of a one-off pgbackrest container (the lost-volume case)
    ran = lab.compose(
        "run", "--rm", "--no-deps", "-T", "pgbackrest", "sh", "-c",
        "rm -rf /tmp/scratch && mkdir -m 0700 /tmp/scratch"
        " && pgbackrest restore --pg1-path=/tmp/scratch --type=immediate >/dev/null && du -sb /tmp/scratch",
        timeout=1800,
    )  # fmt: skip
    pb["restore_empty_seconds"] = round(ran.seconds, 2)
    pb["restored_bytes"] = int(ran.stdout.split()[0])
    log(f"  pgbackrest restore into an empty folder: {ran.seconds:.1f} s")
    wall, result = _stackctl_json(lab, "restore", "db", "--to", "latest", "--yes")
    pb["restore_cli_seconds"] = wall
    pb["restore_step_seconds"] = result.get("restore_seconds")
    log(f"  stackctl restore db --to latest (safety point, stops, delta restore, replay, starts): {wall:.1f} s")
    if b.rows_in(b.db) != expected:
        raise BenchError("stackctl restore db --to latest did not bring back every generated row")
    r["pgbackrest"] = pb
    return r
