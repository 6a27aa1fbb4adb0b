#!/usr/bin/env python3
"""pitrctl.py: the pgbackrest service's main process and stackctl's door to pgBackRest.

  serve                  create the stanza, take a first full backup in every repository
                         that has none, then full and differential backups on PITR_FULL_CRON
                         and PITR_DIFF_CRON (one at a time, never caught up), each repository
                         in turn (PITR_REPOS)
  health                 the healthcheck: its state as JSON; exit 1 until the stanza exists,
                         or when the last backup failed
                         (a repository holding another cluster's backups, as on a new host
                         with only the off-site repository: said at once, never retried)
  info [--repo N]        the backups and the recoverable window, as JSON
  backup --type T        a backup now (full, diff or incr) in every repository, or --repo N
  safety NAME            a safety point: pg_create_restore_point(NAME), then `pgbackrest
                         check` (which switches WAL and waits until the segment is archived):
                         every commit so far is then in the repositories. Its time and
                         timeline are kept in SAFETY_POINTS (info lists them)
  check | verify         pgBackRest's check (archiving works), verify (every file in the
                         repositories is readable and sound)
  restore --target T     (db stopped) pgBackRest's delta restore of PGDATA to T (`latest`:
                         the end of the archive; else a time "YYYY-mm-dd HH:MM:SS.ffffff+00"),
                         from --repo N or the best repository; postgres replays the WAL to T
                         at its next start, then promotes. --reset-repo R first deletes repo
                         R's stanza (one with no backup, made for another cluster), so that it
                         takes the restored cluster's WAL.
  restore --point NAME   the same, to a safety point: on its own timeline (which the restore
                         after it left), from the newest backup that ended before it

pgBackRest does the work (WAL handling, backups, restores, retention, encryption); this only
schedules it and reports JSON. Its options come from PGBACKREST_* variables and the secrets
file PGBACKREST_CONFIG names (the compose file states them). It runs as postgres (uid 999):
pgBackRest reads PGDATA and reaches postgres through the socket in /var/run/postgresql.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backupctl import UTC, iso, next_runs

STATE = Path(os.environ.get("PITR_STATE", "/tmp/pitrctl-state.json"))
# the safety points, beside the local repository (which outlives the containers)
SAFETY_POINTS = Path(os.environ.get("PGBACKREST_REPO1_PATH", "/var/lib/pgbackrest")) / "stackctl-safety-points.json"
SOCKET = os.environ.get("PGBACKREST_PG1_SOCKET_PATH", "/var/run/postgresql")
EX_CONFIG = 78


def log(text: str) -> None:
    print(f"{iso(dt.datetime.now(UTC))} pitrctl: {text}", file=sys.stderr, flush=True)


def repos() -> list[int]:
    return [int(r) for r in os.environ.get("PITR_REPOS", "1").split()]


def pgbackrest(args: Sequence[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """pgbackrest ARGS; its output captured (it never prints a secret)."""
    return subprocess.run(["pgbackrest", *args], capture_output=True, text=True, timeout=timeout, check=False)


def tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def psql(sql: str) -> str:
    user = os.environ.get("PGBACKREST_PG1_USER", "postgres")
    done = subprocess.run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", SOCKET, "-U", user, "-d", "postgres", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(tail(done.stderr, 3) or f"psql exited {done.returncode}")
    return done.stdout.strip()


# -- state (for health) -----------------------------------------------------------------------
def read_state() -> dict[str, Any]:
    try:
        value = json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_state(**changes: Any) -> None:
    state = read_state()
    state.update(changes)
    temp = STATE.with_name(f".{STATE.name}.tmp")
    temp.write_text(json.dumps(state))
    temp.replace(STATE)


# -- info and window --------------------------------------------------------------------------
def _epoch(value: Any) -> str | None:
    return iso(dt.datetime.fromtimestamp(value, UTC)) if isinstance(value, int | float) else None


def cluster_id() -> int | None:
    """The running cluster's system identifier (None when postgres does not answer)."""
    try:
        return int(psql("SELECT system_identifier FROM pg_control_system()"))
    except (RuntimeError, subprocess.TimeoutExpired, ValueError):
        return None


def stanza_info(repo: int | None = None) -> dict[str, Any]:
    done = pgbackrest(["info", "--output=json", *([f"--repo={repo}"] if repo else [])], timeout=120)
    if done.returncode:
        raise RuntimeError(tail(done.stderr or done.stdout) or f"pgbackrest info exited {done.returncode}")
    stanzas = json.loads(done.stdout or "[]")
    return stanzas[0] if stanzas else {}


def repo_system_ids(stanza: dict[str, Any]) -> dict[int, int]:
    """Each repository's cluster: the system id of its newest database entry."""
    newest: dict[int, tuple[int, int]] = {}
    for entry in stanza.get("db", []):
        key, number = int(entry.get("repo-key", 1)), int(entry.get("id", 0))
        if "system-id" in entry and (key not in newest or number >= newest[key][0]):
            newest[key] = (number, int(entry["system-id"]))
    return {key: system_id for key, (_, system_id) in newest.items()}


def info(repo: int | None = None) -> dict[str, Any]:
    """The stanza's backups (per repository) and the recoverable window: from the end of the
    oldest backup to the last archived WAL segment (pg_stat_archiver; the newest backup's end
    when postgres cannot say, or when the running cluster is not the repository's). Each
    repository's system id, and whether the running cluster is that one."""
    stanza = stanza_info(repo)
    backups = [
        {
            "label": b.get("label"),
            "type": b.get("type"),
            "repo": (b.get("database") or {}).get("repo-key", 1),
            "start": _epoch((b.get("timestamp") or {}).get("start")),
            "stop": _epoch((b.get("timestamp") or {}).get("stop")),
            "bytes": (b.get("info") or {}).get("size"),
            "repo_bytes": ((b.get("info") or {}).get("repository") or {}).get("delta"),
        }
        for b in stanza.get("backup", [])
    ]
    last_archived: str | None = None
    failed: str | None = None
    try:
        row = psql(
            "SELECT coalesce(to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
            " coalesce(to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
            " FROM pg_stat_archiver"
        )
        archived, failed_at = [*row.split("|"), ""][:2]
        last_archived = archived or None
        failed = failed_at or None
    except (RuntimeError, subprocess.TimeoutExpired):
        pass
    status = stanza.get("status") or {}
    system = cluster_id()
    ids = repo_system_ids(stanza)
    source = repo or next((b["repo"] for b in sorted(backups, key=lambda b: b["repo"])), None)
    # None: unknown (postgres down, or no stanza there yet)
    matches = None if system is None or ids.get(source or 0) is None else ids[source or 0] == system

    def window(key: int | None) -> dict[str, Any] | None:
        own = [b for b in backups if key is None or b["repo"] == key]
        stops = sorted(b["stop"] for b in own if b["stop"])
        if not stops:
            return None
        archived = last_archived if matches is not False else None  # another cluster's archiver
        end = max(x for x in (stops[-1], archived) if x)
        return {"start": stops[0], "end": end}

    keys = sorted({b["repo"] for b in backups} | set([repo] if repo else repos()))
    return {
        "safety_points": safety_points(),
        "stanza": stanza.get("name"),
        "status": status.get("message"),
        "status_code": status.get("code"),
        "backups": backups,
        "last_archived": last_archived,
        "last_archive_failure": failed,
        "window": window(repo),
        "system_id": system,
        "source_repo": source,
        "cluster_matches": matches,
        "repos": [
            {
                "repo": key,
                "window": window(key),
                "backups": sum(b["repo"] == key for b in backups),
                "system_id": ids.get(key),
            }
            for key in keys
        ],
    }


# -- jobs -------------------------------------------------------------------------------------
def run_backup(kind: str, repo: int, timeout: float | None) -> tuple[bool, str]:
    log(f"{kind} backup to repo{repo}: started")
    started = time.monotonic()
    try:
        done = pgbackrest(["backup", f"--type={kind}", f"--repo={repo}"], timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"{kind} backup to repo{repo}: stopped after {timeout:.0f}s (BACKUP_JOB_TIMEOUT_SECONDS)")
        return False, "timed out"
    if done.returncode:
        message = tail(done.stderr or done.stdout)
        log(f"{kind} backup to repo{repo}: failed (exit {done.returncode})\n{message}")
        return False, message
    log(f"{kind} backup to repo{repo}: done in {time.monotonic() - started:.1f}s")
    return True, ""


class OtherCluster(RuntimeError):
    """A repository holds the backups of another cluster than the running one."""


MISMATCH = 28  # pgBackRest: "backup and archive info files exist but do not match the database"


def other_cluster(error: str) -> OtherCluster:
    """What to do when the repositories back up another cluster: on a new host (an empty data
    volume, the off-site repository kept), restore from it; else point it elsewhere."""
    system = cluster_id()
    try:
        ids = repo_system_ids(stanza_info())
    except (RuntimeError, subprocess.TimeoutExpired, ValueError):
        ids = {}
    others = sorted(key for key, value in ids.items() if system is not None and value != system)
    if not others:
        return OtherCluster(error)
    which = others[-1]
    return OtherCluster(
        f"another cluster's backups are in repo{which} (system id {ids[which]}; this database cluster is "
        f"{system}). On a new host, bring the data back with `restore db --to latest --repo {which}`; "
        f"otherwise give repo{which} a path of its own (PITR_REPO2_PATH for repo2)"
    )


def stanza_create(deadline: float) -> None:
    """Until postgres answers (or the deadline): `pgbackrest stanza-create`, which does nothing
    to a stanza that exists and matches. A repository with another cluster's stanza fails at once."""
    said = 0.0
    while True:
        done = pgbackrest(["stanza-create"], timeout=300)
        if done.returncode == 0:
            log("stanza main: ready")
            return
        error = tail(done.stderr or done.stdout)
        if done.returncode == MISMATCH:
            raise other_cluster(error)
        if time.monotonic() > deadline:
            raise RuntimeError(error)
        write_state(ready=False, error=f"stanza-create failed (retrying): {error.splitlines()[-1:] or ''}")
        if time.monotonic() - said > 30:  # the reason in the logs, which `up` shows when unhealthy
            log(f"stanza-create failed, retrying:\n{error}")
            said = time.monotonic()
        time.sleep(2)


def has_backup(repo: int) -> bool:
    try:
        return bool(stanza_info(repo).get("backup"))
    except (RuntimeError, subprocess.TimeoutExpired, ValueError):
        return False


class Stop(Exception):
    pass


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise Stop


def serve() -> int:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    timeout = float(os.environ.get("BACKUP_JOB_TIMEOUT_SECONDS", "21600"))
    crons = {
        "full": os.environ.get("PITR_FULL_CRON", "30 1 * * 0"),
        "diff": os.environ.get("PITR_DIFF_CRON", "30 1 * * 1-6"),
    }
    write_state(ready=False, since=iso(dt.datetime.now(UTC)))
    try:
        try:
            stanza_create(time.monotonic() + 600)
        except RuntimeError as exc:
            write_state(ready=False, error=f"stanza-create failed: {exc}")
            log(str(exc) if isinstance(exc, OtherCluster) else f"stanza-create failed:\n{exc}")
            while True:  # unhealthy, and says why, until restarted
                time.sleep(3600)
        write_state(ready=True, error=None)
        for repo in repos():
            if not has_backup(repo):
                ok, message = run_backup("full", repo, timeout)
                write_state(
                    last={
                        "type": "full",
                        "repo": repo,
                        "ok": ok,
                        "at": iso(dt.datetime.now(UTC)),
                        "error": message or None,
                    }
                )
        now = dt.datetime.now(UTC)
        due = {kind: next_runs(cron, now, 1)[0] for kind, cron in crons.items()}
        write_state(next={kind: iso(when) for kind, when in due.items()})
        refresh_window()
        while True:
            kind = min(due, key=lambda k: (due[k], k != "full"))
            wait = (due[kind] - dt.datetime.now(UTC)).total_seconds()
            if wait > 0:
                time.sleep(min(wait, 30))
                refresh_window()
                continue
            # a full and a differential due at once: the full alone
            now = dt.datetime.now(UTC)
            for other in due:
                if due[other] <= now:
                    due[other] = next_runs(crons[other], now, 1)[0]
            results = [run_backup(kind, repo, timeout) for repo in repos()]
            failed = [m for ok, m in results if not ok]
            write_state(
                last={
                    "type": kind,
                    "ok": not failed,
                    "at": iso(dt.datetime.now(UTC)),
                    "error": failed[0] if failed else None,
                },
                next={k: iso(v) for k, v in due.items()},
            )
    except Stop:
        log("stopping")
        return 0


def refresh_window() -> None:
    """The recoverable window in the state (what `stackctl status` shows, from the health log)."""
    try:
        found = info()
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        write_state(window=None, info_error=str(exc).splitlines()[-1:])
        return
    write_state(
        window=found["window"],
        last_archived=found["last_archived"],
        last_archive_failure=found["last_archive_failure"],
        info_error=None,
    )


def health() -> int:
    state = read_state()
    print(json.dumps(state))
    if not state.get("ready"):
        return 1
    last = state.get("last") or {}
    return 0 if last.get("ok", True) else 1


def reset_repos(keys: Sequence[int]) -> None:
    """Delete the stanza of each of `keys` (postgres stopped): repositories with no backup that
    another cluster's stanza-create made. stanza-create makes them again for the restored one."""
    if not keys:
        return
    for command in (["stop"], *[["stanza-delete", f"--repo={key}", "--force"] for key in keys], ["start"]):
        done = pgbackrest(command, timeout=300)
        if done.returncode:
            raise RuntimeError(f"pgbackrest {' '.join(command)} failed:\n{tail(done.stderr or done.stdout)}")
        if command[0] == "stanza-delete":
            log(f"{command[1][2:]}: the stanza of another cluster (no backup in it) deleted")


def safety_points() -> list[dict[str, Any]]:
    try:
        value = json.loads(SAFETY_POINTS.read_text())
    except (OSError, ValueError):
        return []
    return [p for p in value if isinstance(p, dict)] if isinstance(value, list) else []


def _point_args(name: str, repo: int | None) -> list[str]:
    """pgBackRest's arguments for a restore to the safety point NAME: its timeline, and the
    newest backup that ended before it (a later one may be on the timeline a restore began)."""
    point = next((p for p in safety_points() if p.get("name") == name), None)
    if point is None:
        raise ValueError(f"no safety point {name!r} is recorded here")
    ended = [b for b in info(repo)["backups"] if b["stop"] and b["stop"] < point["time"]]
    if not ended:
        raise ValueError(f"no backup ended before the safety point {name} ({point['time']})")
    newest = max(ended, key=lambda b: b["stop"])
    return [
        "--type=name", f"--target={name}", f"--target-timeline={point['timeline']}",
        "--target-action=promote", f"--set={newest['label']}",
    ]  # fmt: skip


def restore(target: str, repo: int | None, reset: Sequence[int] = (), point: str | None = None) -> dict[str, Any]:
    reset_repos(reset)
    args = ["restore", "--delta"]
    if point:
        args += _point_args(point, repo)
    elif target == "latest":  # to the end of the archive, then promote (postgres' default)
        args.append("--type=default")
    else:
        args += ["--type=time", f"--target={target}", "--target-action=promote"]
    if repo:
        args.append(f"--repo={repo}")
    started = time.monotonic()
    done = pgbackrest(args)
    if done.returncode:
        raise RuntimeError(tail(done.stderr or done.stdout, 10) or f"pgbackrest restore exited {done.returncode}")
    return {"target": target, "repo": repo, "seconds": round(time.monotonic() - started, 2)}


def safety(name: str) -> dict[str, Any]:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a restore point's name is letters, digits, - and _: {name!r}")
    at = iso(dt.datetime.now(UTC))  # before the point: a backup that ended earlier can reach it
    lsn = psql(f"SELECT pg_create_restore_point('{name}')")
    # the timeline the point's WAL is written on (pg_control_checkpoint() lags behind a promotion
    # until the next checkpoint): the first 8 hex digits of its segment's name
    timeline = int(psql(f"SELECT pg_walfile_name('{lsn}')")[:8] or "0", 16)
    done = pgbackrest(["check"], timeout=300)
    if done.returncode:
        raise RuntimeError(tail(done.stderr or done.stdout))
    point = {"name": name, "lsn": lsn, "timeline": timeline, "time": at}
    kept = [p for p in safety_points() if p.get("name") != name][-49:]  # the last 50
    temp = SAFETY_POINTS.with_name(f".{SAFETY_POINTS.name}.tmp")
    temp.write_text(json.dumps([*kept, point]))
    temp.replace(SAFETY_POINTS)
    return point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pitrctl.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve")
    sub.add_parser("health")
    p_info = sub.add_parser("info")
    p_info.add_argument("--repo", type=int)
    p_backup = sub.add_parser("backup")
    p_backup.add_argument("--type", choices=("full", "diff", "incr"), default="incr")
    p_backup.add_argument("--repo", type=int)
    p_safety = sub.add_parser("safety")
    p_safety.add_argument("name")
    sub.add_parser("check")
    sub.add_parser("verify")
    p_restore = sub.add_parser("restore")
    p_restore.add_argument("--target", default="latest")
    p_restore.add_argument("--point")
    p_restore.add_argument("--repo", type=int)
    p_restore.add_argument("--reset-repo", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    if args.command == "health":
        return health()
    try:
        if args.command == "info":
            payload: dict[str, Any] = info(args.repo)
        elif args.command == "backup":
            timeout = float(os.environ.get("BACKUP_JOB_TIMEOUT_SECONDS", "21600"))
            results = []
            for repo in [args.repo] if args.repo else repos():
                ok, message = run_backup(args.type, repo, timeout)
                if not ok:
                    raise RuntimeError(f"{args.type} backup to repo{repo} failed: {message}")
                results.append(repo)
            payload = {"type": args.type, "repos": results}
        elif args.command == "safety":
            payload = safety(args.name)
        elif args.command in ("check", "verify"):
            started = time.monotonic()
            checked = []
            # check: every repository at once; verify: one at a time
            for repo in repos() if args.command == "verify" else [0]:
                done = pgbackrest([args.command, *([f"--repo={repo}"] if repo else [])], timeout=3600)
                if done.returncode:
                    where = f" (repo{repo})" if repo else ""
                    raise RuntimeError(f"pgbackrest {args.command}{where} failed:\n{tail(done.stderr or done.stdout)}")
                checked.extend([repo] if repo else repos())
            payload = {"command": args.command, "repos": checked, "seconds": round(time.monotonic() - started, 2)}
        else:
            payload = restore(args.target, args.repo, args.reset_repo, args.point)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        print(f"pitrctl {args.command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
