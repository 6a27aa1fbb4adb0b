"""Point-in-time recovery of the prod stack's database with pgBackRest (PITR_ENABLED).

db archives every WAL segment into pgBackRest's repositories (archive_command, at least every
PITR_ARCHIVE_TIMEOUT seconds); the pgbackrest service takes the full and differential backups
(backup/pitrctl.py). This module asks that service for the recoverable window, runs
pgBackRest's check and verify, and restores the cluster to a moment:

  parse and check the target against the window (refused, naming the window, before anything
  changes) -> ask (`confirm`) -> the safety point: a named restore point, then `pgbackrest
  check`, which switches WAL and waits until it is archived (db is started first if it is down,
  after a crash say, so that its crash recovery brings back every commit still in its pg_wal):
  every commit so far is then in the repositories, and the restore can reach it (`--to latest`)
  -> stop every service that writes, then db -> pgBackRest's delta restore (a one-off container
  of the pgbackrest service: files that already match are kept) -> start db, which replays the
  WAL to the target and promotes -> start the rest and wait until healthy.

On a new host (an empty data volume, the off-site repository kept) db holds a cluster of its
own, not the repository's: its content is dumped as a logical `pre-restore` backup instead of
a safety point (which could not be archived there), and the local repository's stanza, which
that cluster's first start made and which holds no backup, is deleted so that it takes the
restored cluster's WAL.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from python_on_whales.exceptions import DockerException

from stackctl.core.backup import SERVICE as BACKUP_SERVICE
from stackctl.core.backup import last_json
from stackctl.core.progress import Report, quiet
from stackctl.core.stack import Stack, StackView
from stackctl.errors import BackupError, RestoreError, StackctlError, stderr_tail

SERVICE = "pgbackrest"
UTC = dt.UTC


@dataclass(frozen=True)
class RecoveryWindow:
    start: str  # ISO 8601 UTC: the end of the oldest backup
    end: str  # the last archived WAL segment (or the newest backup's end)


@dataclass(frozen=True)
class PitrBackup:
    label: str
    type: str  # full, diff, incr
    repo: int
    start: str | None
    stop: str | None
    bytes: int | None  # the database's size
    repo_bytes: int | None  # what it took in the repository


@dataclass(frozen=True)
class PitrInfo:
    status: str | None  # pgBackRest's stanza status ("ok")
    window: RecoveryWindow | None
    last_archived: str | None
    last_archive_failure: str | None
    backups: list[PitrBackup] = field(default_factory=list)
    repos: list[dict[str, Any]] = field(default_factory=list)  # repo, window, backups, system_id
    system_id: int | None = None  # the running cluster's
    source_repo: int | None = None  # the repository a restore would read (the one asked, or the first with backups)
    cluster_matches: bool | None = None  # is the running cluster the source repository's? (None: unknown)
    safety_points: list[dict[str, Any]] = field(default_factory=list)  # name, time, timeline, lsn


@dataclass(frozen=True)
class PitrRestoreResult:
    kind: str
    target: str  # "latest" or the ISO time
    repo: int | None
    window: RecoveryWindow
    safety_point: str  # the restore point's name ("" when db held another cluster)
    safety_time: str
    safety_timeline: int  # the timeline the safety point is on (the restore starts a new one)
    restore_seconds: float  # pgBackRest's restore alone
    seconds: float
    dry_run: bool = False  # nothing was done: the target is in the window, this is what would happen
    would_stop: list[str] = field(default_factory=list)
    other_cluster: bool = False  # db held another cluster than the repository's (a new host)
    safety_backup: str | None = None  # then: the logical dump of what it held
    reset_repos: list[int] = field(default_factory=list)  # repositories whose stanza was made anew


@dataclass(frozen=True)
class RepoCheck:
    checked: list[int]
    verified: list[int]
    seconds: float


def _require(stack: Stack, error: type[StackctlError] = BackupError) -> None:
    if not stack.config.backups.pitr_enabled:
        raise error(
            f"point-in-time recovery is off for {stack.name} (PITR_ENABLED=false in {stack.env.env_file})",
            hint=f"set PITR_ENABLED=true in {stack.env.env_file} and run `{stack.up_command}`",
        )


def _exec(stack: StackView, argv: list[str], *, what: str, error: type[StackctlError] = BackupError) -> dict[str, Any]:
    if stack.status().running(SERVICE) is None:
        raise error(f"the {SERVICE} service of {stack.name} is not running", hint=f"start it: {stack.up_command}")
    try:
        out = stack.client.compose.execute(SERVICE, argv, tty=False)
    except DockerException as exc:
        detail = stderr_tail(exc.stderr, lines=8)
        raise error(f"{what} failed (exit {exc.return_code})\n{detail}".rstrip()) from None
    return last_json(out or "")


def _window(value: Any) -> RecoveryWindow | None:
    if isinstance(value, dict) and value.get("start") and value.get("end"):
        return RecoveryWindow(str(value["start"]), str(value["end"]))
    return None


def pitr_info(stack: StackView, *, repo: int | None = None, error: type[StackctlError] = BackupError) -> PitrInfo:
    """The backups in pgBackRest's repositories and the recoverable window."""
    payload = _exec(
        stack, ["pitrctl.py", "info", *(["--repo", str(repo)] if repo else [])], what="pgbackrest info", error=error
    )
    return PitrInfo(
        status=payload.get("status"),
        window=_window(payload.get("window")),
        last_archived=payload.get("last_archived"),
        last_archive_failure=payload.get("last_archive_failure"),
        backups=[
            PitrBackup(
                str(b.get("label")),
                str(b.get("type")),
                int(b.get("repo") or 1),
                b.get("start"),
                b.get("stop"),
                b.get("bytes"),
                b.get("repo_bytes"),
            )
            for b in payload.get("backups", [])
        ],
        repos=list(payload.get("repos", [])),
        system_id=payload.get("system_id"),
        source_repo=payload.get("source_repo"),
        cluster_matches=payload.get("cluster_matches"),
        safety_points=list(payload.get("safety_points", [])),
    )


def repos_to_reset(everything: PitrInfo, source: PitrInfo) -> list[int]:
    """The repositories that must start anew to take the restored cluster's WAL: those whose
    stanza is another cluster's. One holding that cluster's backups is not emptied: refused."""
    wanted = next((r.get("system_id") for r in source.repos if r.get("repo") == source.source_repo), None)
    if wanted is None:
        return []
    reset = []
    for entry in everything.repos:
        held = entry.get("system_id")
        if held is None or held == wanted:
            continue
        if entry.get("backups"):
            raise RestoreError(
                f"repo{entry['repo']} holds {entry['backups']} backup(s) of another cluster (system id {held}; "
                f"repo{source.source_repo}'s is {wanted}), and could not take the restored cluster's WAL; "
                "nothing was changed",
                hint=f"restore from repo{entry['repo']} instead, or give one of them a path of its own",
            )
        reset.append(int(entry["repo"]))
    return reset


def check_repositories(stack: Stack, report: Report = quiet) -> RepoCheck:
    """pgBackRest's check (archiving reaches every repository) and verify (every file of every
    repository is readable and matches its checksum)."""
    _require(stack)
    started = time.monotonic()
    report("pgbackrest check: switching WAL and waiting until it is archived in every repository")
    checked = _exec(stack, ["pitrctl.py", "check"], what="pgbackrest check")
    report("pgbackrest verify: reading every backup and WAL file of the repositories")
    verified = _exec(stack, ["pitrctl.py", "verify"], what="pgbackrest verify")
    return RepoCheck(
        list(checked.get("repos", [])), list(verified.get("repos", [])), round(time.monotonic() - started, 2)
    )


def pitr_backup(stack: Stack, kind: str, report: Report = quiet) -> list[int]:
    """A pgBackRest backup now (full, diff or incr) in every repository."""
    _require(stack)
    report(f"pgbackrest: {kind} backup")
    return list(
        _exec(stack, ["pitrctl.py", "backup", "--type", kind], what=f"the {kind} pgBackRest backup").get("repos", [])
    )


SAFETY_POINT = re.compile(r"stackctl-pre-restore-\d{8}T\d{6}Z")


def parse_target(text: str) -> dt.datetime | None:
    """None for `latest`; else an aware time (a time zone is required: Z for UTC)."""
    if text.strip().lower() == "latest":
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise RestoreError(
            f"--to {text!r} is neither `latest`, a time nor a safety point",
            hint='give an ISO 8601 time with its zone, e.g. --to "2026-12-01T10:00:00Z", or a safety point\'s '
            "name (stackctl-pre-restore-…, `stackctl backup list` shows them)",
        ) from None
    if moment.tzinfo is None:
        raise RestoreError(
            f"--to {text!r} has no time zone", hint=f'add one, e.g. --to "{moment.isoformat()}Z" for UTC'
        )
    return moment.astimezone(UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


def _parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def restore_to(
    stack: Stack,
    to: str,
    *,
    confirm: Callable[[str], None],
    report: Report = quiet,
    repo: int | None = None,
    timeout: int = 300,
    dry_run: bool = False,
) -> PitrRestoreResult:
    """Recover the whole cluster to `to` (`latest`, or an ISO time with its zone). `dry_run`:
    check the target against the window and say what would stop; change nothing."""
    from stackctl.core.restore import _start, running_writers, safety_backup

    _require(stack, RestoreError)
    started = time.monotonic()
    point_name = to.strip() if SAFETY_POINT.fullmatch(to.strip()) else None
    target = None if point_name else parse_target(to)
    if (repo is not None and repo not in (1, 2)) or (repo == 2 and not stack.config.backups.repo2):
        raise RestoreError(
            f"--repo {repo}: {stack.name} has no such pgBackRest repository",
            hint="repo 1 is the pgbackrest_repo volume; repo 2 the off-site one (PITR_REPO2_TYPE)",
        )
    if not dry_run:
        _running(stack, ["db", SERVICE], report, timeout)
    info = pitr_info(stack, repo=repo, error=RestoreError)
    if info.window is None:
        raise RestoreError(
            f"no pgBackRest backup of {stack.name} yet{f' in repo {repo}' if repo else ''}: nothing to recover from",
            hint="the pgbackrest service takes a full backup when it starts; or run `stackctl backup now pitr`",
        )
    start = _parse_iso(info.window.start)
    now = dt.datetime.now(UTC)
    shown = f"the recoverable window is {info.window.start} to now"
    if target is not None and target < start:
        raise RestoreError(
            f"--to {_iso(target)} is before the recoverable window: {shown} ({info.window.start} is the end of "
            "the oldest backup); nothing was changed",
            hint="pick a time inside the window (`stackctl backup list` shows it), or restore an older logical dump",
        )
    if target is not None and target > now:
        raise RestoreError(
            f"--to {_iso(target)} is in the future: {shown}; nothing was changed",
            hint="pick a time inside the window, or --to latest",
        )
    if point_name:
        _reachable(info, point_name, repo)
    label = point_name or ("latest" if target is None else _iso(target))
    other = info.cluster_matches is False
    everything = pitr_info(stack, error=RestoreError) if repo is not None else info
    reset = repos_to_reset(everything, info)
    writers = running_writers(stack)
    stopped = [*writers, *([BACKUP_SERVICE] if stack.status().running(BACKUP_SERVICE) else [])]
    if dry_run:
        return PitrRestoreResult(
            kind="db", target=label, repo=repo, window=info.window, safety_point="", safety_time="",
            safety_timeline=0, restore_seconds=0.0, seconds=round(time.monotonic() - started, 1), dry_run=True,
            would_stop=[*stopped, SERVICE, "db"], other_cluster=other, reset_repos=reset,
        )  # fmt: skip
    source = f"repo {info.source_repo}" if info.source_repo else "the repositories"
    confirm(
        f"Recover the whole database cluster of {stack.name} to {label}"
        f"{f' from repo {repo}' if repo else ''}? Every change after that moment is undone"
        f" ({shown}; a safety point is recorded first; {', '.join([*stopped, SERVICE, 'db'])} are stopped meanwhile)"
        if not other
        else f"db holds another database cluster than the one backed up in {source} (system id {info.system_id}):"
        f" a new host? Replace it with {source}'s cluster at {label}? What db holds now is dumped to a safety"
        f" backup first; {', '.join([*stopped, SERVICE, 'db'])} are stopped meanwhile"
    )
    name, point, dumped = "", {}, None
    if other:
        dumped = safety_backup(stack, "db", report)
    else:
        name = f"stackctl-pre-restore-{now:%Y%m%dT%H%M%SZ}"
        report(f"recording the safety point {name} and waiting until the WAL is archived")
        point = _exec(stack, ["pitrctl.py", "safety", name], what="the safety point", error=RestoreError)
    window = RecoveryWindow(info.window.start, str(point.get("time") or _iso(now)))
    report(f"stopping {', '.join([*stopped, SERVICE, 'db'])}")
    try:
        if stopped:
            stack.client.compose.stop(stopped)
        stack.client.compose.stop([SERVICE, "db"])
    except DockerException as exc:
        _start(stack, ["db", SERVICE, *stopped], report, timeout, best_effort=True)
        raise RestoreError(f"could not stop the services (exit {exc.return_code}); nothing was restored") from None
    report(f"pgbackrest restore --delta to {label}")
    aim = ["--point", point_name] if point_name else ["--target", "latest" if target is None else _pg_time(target)]
    argv = ["pitrctl.py", "restore", *aim, *(["--repo", str(repo)] if repo else [])]
    argv += [f"--reset-repo={key}" for key in reset]
    try:
        out = stack.client.compose.run(SERVICE, argv, remove=True, dependencies=False, tty=False)
    except DockerException as exc:
        detail = stderr_tail(exc.stderr, lines=10)
        _start(stack, ["db", SERVICE, *stopped], report, timeout, best_effort=True)
        raise RestoreError(
            f"pgBackRest's restore failed (exit {exc.return_code})\n{detail}".rstrip(),
            hint="db was started again on what is in its volume; "
            + (f"the safety point {name} is in the archive" if name else f"its safety backup is {dumped}"),
        ) from None
    restored = last_json(str(out or ""))
    report("starting db: it replays the WAL to the target, then promotes")
    _up(stack, ["db"])
    _wait_promoted(stack, timeout)  # polled: sooner than db's healthcheck interval
    # pgbackrest and backup start without being waited for; the app's services are
    _up(stack, [SERVICE, *([BACKUP_SERVICE] if BACKUP_SERVICE in stopped else [])])
    _start(stack, writers, report, timeout)
    return PitrRestoreResult(
        kind="db",
        target=label,
        repo=repo,
        window=window,
        safety_point=name,
        safety_time=window.end,
        safety_timeline=int(point.get("timeline") or 0),
        restore_seconds=float(restored.get("seconds") or 0),
        seconds=round(time.monotonic() - started, 1),
        other_cluster=other,
        safety_backup=dumped,
        reset_repos=reset,
    )


def _reachable(info: PitrInfo, name: str, repo: int | None) -> None:
    """A safety point can be recovered to from a backup that ended before it."""
    point = next((p for p in info.safety_points if p.get("name") == name), None)
    if point is None:
        known = ", ".join(str(p.get("name")) for p in info.safety_points[-3:]) or "none"
        raise RestoreError(
            f"no safety point {name} is recorded (the last ones: {known}); nothing was changed",
            hint="`stackctl backup list` lists the safety points with their times",
        )
    if not any(b.stop and b.stop < str(point.get("time")) for b in info.backups if repo in (None, b.repo)):
        raise RestoreError(
            f"no backup{f' in repo {repo}' if repo else ''} ended before the safety point {name} ({point.get('time')}):"
            " the retention expired them; nothing was changed",
            hint="restore to a time inside the window instead (`stackctl backup list` shows it)",
        )


def _up(stack: Stack, services: list[str]) -> None:
    try:
        for _line in stack.client.compose.up(services, detach=True, stream_logs=True):
            pass
    except DockerException as exc:
        raise RestoreError(
            f"{', '.join(services)} could not be started after the restore (exit {exc.return_code})",
            hint=f"see `stackctl logs --prod {services[0]}`; then `{stack.up_command}`",
        ) from None


def _pg_time(moment: dt.datetime) -> str:
    """pgBackRest's --target for --type=time: PostgreSQL's timestamptz input."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _running(stack: Stack, services: list[str], report: Report, timeout: int) -> None:
    """Start those of `services` that are down (db after a crash: its own crash recovery runs)."""
    from stackctl.core.restore import _start

    status = stack.status()
    down = [s for s in services if status.running(s) is None]
    if down:
        report(f"{', '.join(down)} not running: starting {'them' if len(down) > 1 else 'it'} first")
        try:
            _start(stack, down, report, timeout)
        except StackctlError as exc:
            raise RestoreError(
                f"{', '.join(down)} could not be started, so no safety point can be recorded; nothing was changed\n"
                f"{exc.message}",
                hint="see `stackctl logs --prod db`",
            ) from None


def _wait_promoted(stack: Stack, timeout: int) -> None:
    """Until postgres has reached the target and left recovery (pg_is_in_recovery() false)."""
    user = stack.config.database.postgres_user
    deadline = time.monotonic() + timeout
    while True:
        try:
            out = stack.client.compose.execute(
                "db", ["psql", "-X", "-At", "-U", user, "-d", "postgres", "-c", "SELECT pg_is_in_recovery()"], tty=False
            )
            if str(out).strip() == "f":
                return
        except DockerException:
            if stack.status().running("db") is None:
                raise RestoreError(
                    "db stopped during the recovery\n" + stack.tail_logs("db"),
                    hint="the target may not be reachable from the backups; see `stackctl logs --prod db`",
                ) from None
        if time.monotonic() > deadline:
            raise RestoreError(f"db was still recovering after {timeout}s", hint="see `stackctl logs --prod db`")
        time.sleep(1)
