"""Restore the prod stack's database or media from a backup, without risking the live data.

The order: check the backup (restore_db.sh --precheck, restore_media.sh --check: checksum,
decryption, readable; a db archive that a matching checksum vouches for is only listed, as
the restore reads all of it into a scratch database before anything is swapped) -> ask
(`confirm`, which raises Aborted when refused) -> stop the services that write (web and any
other app service) -> (media) safety archive labelled `pre-restore` -> restore_*.sh ->
start the writers again and wait until healthy, (db) meanwhile dump the previous database,
which the swap left aside untouched, as the `pre-restore` safety backup (zstd where pg_dump
has it; retention is left to the next backup) -> (db) drop it once the dump is sealed.
If anything fails before the restore is done, the writers are started again before the error
propagates; a failed safety dump keeps the previous database instead of dropping it.

Each phase's wall-clock time ends its progress line ("stopped web in 1.2 s") and is kept in
RestoreResult.phases, so that a slow restore says where its time went.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from python_on_whales.exceptions import DockerException

from stackctl.core.backup import (
    SERVICE,
    BackupResult,
    Kind,
    age_identity,
    backup_container,
    run_script,
    staged,
    take_backup,
)
from stackctl.core.progress import Report, quiet
from stackctl.core.stack import Stack
from stackctl.errors import BackupError, RestoreError, StackctlError

# Services that do not write app data; every other running service is stopped meanwhile.
NOT_WRITERS = frozenset({"db", "redis", "nginx", SERVICE, "pgbackrest"})
SAFETY_LABEL = "pre-restore"
# restore_db.sh's own steps, in the order it runs them (its JSON line sorts its keys)
SCRIPT_STEPS = ("integrity", "load", "count", "checksum", "app_check", "swap", "drop")


@dataclass(frozen=True)
class RestoreResult:
    kind: Kind
    file: str
    seconds: float
    safety_backup: str | None  # the pre-restore backup (db: None if it failed; the old database is kept)
    tables: int | None = None  # db
    rows: int | None = None  # db
    files: int | None = None  # media
    old_database: str | None = None  # db: the previous database, when it could not be dropped
    # each phase's wall-clock seconds, in the order they ended: check, stop, (media: safety_backup),
    # restore, (db: app_role), start, (db: safety_backup, dumped while start runs; drop_old)
    phases: dict[str, float] = field(default_factory=dict)
    restore_steps: dict[str, float] = field(default_factory=dict)  # db: restore_db.sh's own steps


class Phases:
    """The seconds each phase of one restore took, in the order they ended."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def end(self, name: str, started: float, ended: float | None = None) -> str:
        """Record NAME as having run from STARTED to ENDED (time.monotonic() values; ENDED: now).
        Returns "6.1 s", for the progress line."""
        self.seconds[name] = round((time.monotonic() if ended is None else ended) - started, 2)
        return f"{self.seconds[name]:.1f} s"


def restore_db(
    stack: Stack,
    file: str | Path,
    *,
    confirm: Callable[[str], None],
    report: Report = quiet,
    identity: Path | None = None,
    timeout: int = 180,
    no_checksum: bool = False,
    allow_foreign: bool = False,
) -> RestoreResult:
    """Replace POSTGRES_DB with the content of FILE (a host path or a backup name).

    FILE is a pg_dump archive (custom, tar or directory format) or plain SQL, maybe gzipped.
    `no_checksum` accepts one without a .sha256 sidecar (a dump from elsewhere); it is still
    read through and must be this app's database, unless `allow_foreign`."""
    db = stack.config.database.postgres_db
    unchecked = " It has no checksum to vouch for it." if no_checksum else ""
    return _restore(
        stack,
        "db",
        file,
        question=lambda name, writers: (
            f"Replace the database {db!r} of {stack.name} with {name}?{unchecked}"
            f" (the current one is kept aside until its safety backup is written{_stopping(writers)})"
        ),
        confirm=confirm,
        report=report,
        identity=identity,
        timeout=timeout,
        flags=[*(["--no-checksum"] if no_checksum else []), *(["--allow-foreign"] if allow_foreign else [])],
    )


def restore_media(
    stack: Stack,
    file: str | Path,
    *,
    confirm: Callable[[str], None],
    report: Report = quiet,
    identity: Path | None = None,
    timeout: int = 180,
    no_checksum: bool = False,
) -> RestoreResult:
    """Replace the content of the media volume with the archive FILE (a host path or a name)."""
    return _restore(
        stack,
        "media",
        file,
        question=lambda name, writers: (
            f"Replace every file of the media volume of {stack.name} with {name}?"
            f" (a safety archive is taken first{_stopping(writers)})"
        ),
        confirm=confirm,
        report=report,
        identity=identity,
        timeout=timeout,
        flags=["--no-checksum"] if no_checksum else [],
    )


def _stopping(writers: list[str]) -> str:
    if not writers:
        return ""
    return f"; {', '.join(writers)} {'is' if len(writers) == 1 else 'are'} stopped meanwhile"


def _restore(
    stack: Stack,
    kind: Kind,
    file: str | Path,
    *,
    question: Callable[[str, list[str]], str],
    confirm: Callable[[str], None],
    report: Report,
    identity: Path | None,
    timeout: int,
    flags: list[str],
) -> RestoreResult:
    started = time.monotonic()
    phases = Phases()
    script = f"restore_{kind}.sh"
    backup_container(stack)
    with staged(stack, file, error=RestoreError) as target, age_identity(stack, identity) as envs:
        name = Path(target).name
        _check(stack, kind, target, flags=flags, envs=envs, report=report, phases=phases)
        writers = running_writers(stack)
        confirm(question(name, writers))
        _stop(stack, writers, report, timeout, phases=phases)
        try:
            # media: archived once nothing writes to it any more, so no upload is missed
            safety = safety_backup(stack, "media", report, phases=phases) if kind == "media" else None
            report(f"restoring {name}")
            began = time.monotonic()
            payload = run_script(
                stack,
                [script, *flags, "--", target],
                what=f"restoring {name}",
                envs=envs,
                error=RestoreError,
                hint="the live data was not replaced; the restore works on a copy until its last step",
            )
            steps = _script_steps(payload)
            shown = f" ({', '.join(f'{step} {took:.1f} s' for step, took in steps.items())})" if steps else ""
            report(f"restored {name} in {phases.end('restore', began)}{shown}")
        except BaseException:
            _start(stack, writers, report, timeout, best_effort=True)
            raise
    if kind == "db":
        try:
            _hand_to_app_role(stack, report, phases)
        except BaseException:
            _start(stack, writers, report, timeout, best_effort=True)
            raise
    old = str(payload["old_database"]) if kind == "db" and payload.get("old_database") else None
    kept_old = None
    if old:
        # db: the previous database was renamed aside by the swap and nothing writes to it any
        # more; it is dumped while the writers start on the restored one, then dropped. Every
        # write made before the writers stopped is in that dump.
        safety, start_error = _start_while_saving(stack, writers, old, report, timeout, phases)
        # kept when there is no safety backup of it, or when the app is not healthy on the new one
        kept_old = _drop_old(stack, old, report, phases) if safety and not start_error else old
    else:
        start_error = _started(stack, writers, report, timeout, phases)
    if start_error:
        back = f"; the previous database is kept as {kept_old}" if kept_old else ""
        raise RestoreError(
            f"{name} was restored, but {start_error.message}{back}",
            hint=f"read `{stack.env.command('logs web')}`; `stackctl restore` with the pre-restore backup goes back",
        )
    return RestoreResult(
        kind=kind,
        file=name,
        seconds=time.monotonic() - started,
        safety_backup=safety,
        tables=payload.get("tables"),
        rows=payload.get("rows"),
        files=payload.get("files"),
        old_database=kept_old,
        phases=phases.seconds,
        restore_steps=steps,
    )


def _check(
    stack: Stack,
    kind: Kind,
    target: str,
    *,
    flags: list[str],
    envs: dict[str, str],
    report: Report,
    phases: Phases,
) -> None:
    """restore_media.sh --check, or restore_db.sh --precheck (the integrity step a restore makes
    first, alone: a full read only when no checksum vouches for the archive, as the restore
    itself reads it all into a scratch database), then (db) the room on the db volume.
    Refused before anything changes."""
    name = Path(target).name
    report(f"checking {name}: checksum, decryption, readability")
    began = time.monotonic()
    check = run_script(
        stack,
        [f"restore_{kind}.sh", "--precheck" if kind == "db" else "--check", *flags, "--", target],
        what=f"checking {name}",
        envs=envs,
        error=RestoreError,
        hint="nothing was changed; the backup is damaged, unreadable or missing its .sha256 sidecar",
    )
    if kind == "db":
        _check_db_room(stack, int(check.get("bytes") or 0), report)
    # db: read to its end only when no checksum vouches for it (restore_db.sh --precheck)
    readable = "readable" if check.get("read_through", True) else "its table of contents readable"
    report(f"checked {name} in {phases.end('check', began)}: checksum {check.get('checksum')}, {readable}")


def _script_steps(payload: dict[str, object]) -> dict[str, float]:
    """restore_db.sh's step timings ({"load": 21.0, ...}), in the order it runs them."""
    steps = payload.get("steps")
    if not isinstance(steps, dict):
        return {}
    order = {step: index for index, step in enumerate(SCRIPT_STEPS)}
    return {str(step): float(steps[step]) for step in sorted(steps, key=lambda step: order.get(step, len(order)))}


def _hand_to_app_role(stack: Stack, report: Report, phases: Phases) -> None:
    """What restore_db.sh restored belongs to the superuser: hand it to the app's own role
    (stackctl/core/dbroles.py), or the app could not read its own tables."""
    from stackctl.core.dbroles import ensure_app_role

    began = time.monotonic()
    role = ensure_app_role(stack)
    report(f"handed the restored database to its role {role.role} in {phases.end('app_role', began)}")


def safety_backup(stack: Stack, kind: Kind, report: Report, *, phases: Phases | None = None) -> str:
    report(f"taking a safety {'backup' if kind == 'db' else 'archive'} of the current {kind}")
    began = time.monotonic()
    try:
        safety = take_backup(stack, kind, label=SAFETY_LABEL, copy=False)
    except BackupError as exc:
        raise RestoreError(f"the safety backup failed, so nothing was restored: {exc.message}") from None
    took = (phases or Phases()).end("safety_backup", began)
    report(f"safety backup {safety.file} written in {took}")
    return safety.file


def _dump_previous(stack: Stack, old: str) -> tuple[BackupResult | BackupError, float]:
    """The safety backup of the previous database (or why it failed), and when it ended."""
    try:
        result: BackupResult | BackupError = take_backup(
            stack, "db", label=SAFETY_LABEL, copy=False, from_previous=old, prune=False
        )
    except BackupError as exc:
        result = exc
    return result, time.monotonic()


def _start_while_saving(
    stack: Stack, writers: list[str], old: str, report: Report, timeout: int, phases: Phases
) -> tuple[str | None, StackctlError | None]:
    """Dump the previous database (in a thread) while the writers start; both are waited for.

    Returns the safety backup's name (None when it failed: the previous database is then kept)
    and the error of the start, if any."""
    report(f"taking a safety backup of the previous database {old}")
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        dumping = pool.submit(_dump_previous, stack, old)
        start_error = _started(stack, writers, report, timeout, phases)
        if not dumping.done():
            report(f"waiting for the safety backup of {old}")
        dumped, ended = dumping.result()
    took = phases.end("safety_backup", began, ended)
    if isinstance(dumped, BackupError):
        report(f"warning: the safety backup of {old} failed after {took}: {dumped.message.splitlines()[0]}")
        return None, start_error
    report(f"safety backup {dumped.file} written in {took}")
    return dumped.file, start_error


def running_writers(stack: Stack) -> list[str]:
    """The running services that may write to the database or the media volume."""
    services = {s.service for s in stack.status().services if s.state == "running"}
    return sorted(s for s in services if s not in NOT_WRITERS)


def _stop(stack: Stack, writers: list[str], report: Report, timeout: int, *, phases: Phases) -> None:
    if not writers:
        return
    report(f"stopping {', '.join(writers)}")
    began = time.monotonic()
    try:
        stack.client.compose.stop(writers)
    except DockerException as exc:
        _start(stack, writers, report, timeout, best_effort=True)
        raise RestoreError(
            f"could not stop {', '.join(writers)} (exit {exc.return_code}); nothing was restored"
        ) from None
    report(f"stopped {', '.join(writers)} in {phases.end('stop', began)}")


def _started(stack: Stack, writers: list[str], report: Report, timeout: int, phases: Phases) -> StackctlError | None:
    """Start the writers again after a restore; the error, if they did not become healthy."""
    if not writers:
        return None
    began = time.monotonic()
    try:
        _start(stack, writers, report, timeout)
    except StackctlError as exc:
        phases.end("start", began)
        return exc
    report(f"{', '.join(writers)} healthy in {phases.end('start', began)}")
    return None


def _start(stack: Stack, writers: list[str], report: Report, timeout: int, *, best_effort: bool = False) -> None:
    """Start the services again and wait until they are healthy."""
    if not writers:
        return
    report(f"starting {', '.join(writers)} and waiting until healthy")
    try:
        # streamed (and dropped) so that compose's own progress does not reach the terminal
        for _line in stack.client.compose.up(writers, detach=True, stream_logs=True):
            pass
    except DockerException as exc:
        if best_effort:
            report(f"warning: could not start {', '.join(writers)} again (exit {exc.return_code})")
            return
        raise StackctlError(f"{', '.join(writers)} could not be started (exit {exc.return_code})") from None
    try:
        stack.wait_healthy(timeout=timeout, services=writers)
    except StackctlError:
        if best_effort:
            report(f"warning: {', '.join(writers)} did not become healthy within {timeout}s")
            return
        raise


def _drop_old(stack: Stack, old: str, report: Report, phases: Phases) -> str | None:
    """Drop the previous database now that the app is healthy on the restored one."""
    began = time.monotonic()
    try:
        run_script(stack, ["restore_db.sh", "--drop-old-only", old], what=f"dropping {old}")
    except BackupError as exc:
        report(f"warning: {exc.message.splitlines()[0]}; the previous database is kept as {old}")
        return old
    report(f"dropped the previous database {old} in {phases.end('drop_old', began)}")
    return None


def _check_db_room(stack: Stack, archive_bytes: int, report: Report) -> None:
    """The db volume must hold the scratch database beside the live one (which the swap keeps
    as the previous database until its safety dump is written): about the larger of the live
    database and the archive. Refused before anything changes; skipped with a warning when
    the db service cannot say."""
    probe = (
        "set -eu; df -Pk \"${PGDATA:-/var/lib/postgresql/data}\" | awk 'NR == 2 { print $4 }';"
        ' echo "SELECT pg_database_size(:\'db\')" | psql -X -At -U "$POSTGRES_USER" -d postgres -v db="$1"'
    )
    database = stack.config.database.postgres_db
    try:
        out = stack.client.compose.execute("db", ["sh", "-c", probe, "sh", database], tty=False)
        free_kib, live = (int(x) for x in str(out).split()[:2])
        free = free_kib * 1024
    except (DockerException, ValueError):
        report("warning: could not measure the free space of the db volume; restoring without that check")
        return
    needed = max(live, archive_bytes)
    if free < needed:
        raise RestoreError(
            f"not enough room on the db volume for the scratch database: about {needed} bytes needed "
            f"(the larger of {database} and the archive), {free} free; nothing was changed",
            hint="free space on the db volume (drop old *_pre_restore_* databases, prune the host), then try again",
        )
