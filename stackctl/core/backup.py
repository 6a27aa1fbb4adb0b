"""Backups of the prod stack, driven from the host through its `backup` service.

Every operation runs one of the backup container's own scripts (`backup_db.sh`,
`backupctl.py`, ...) with `docker compose exec`, the same commands docs/deployment.md
gives for working by hand, and reads the JSON line each prints last. Host files are
copied into the container's /backups/incoming/ first, each run in a folder of its own.
Nothing here talks to postgres. Names go to the scripts after `--`, and a name that starts
with `-` is refused: it is an option in the wrong place, never a backup.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from python_on_whales.exceptions import DockerException

from stackctl.adapters.docker import compose_exec_stdin
from stackctl.core.progress import Report, quiet
from stackctl.core.stack import Stack, StackStatus, StackView
from stackctl.errors import BackupError, StackctlError, stderr_tail

if TYPE_CHECKING:
    from stackctl.core.certs import CertStatus

Kind = Literal["db", "media"]
SERVICE = "backup"
INCOMING = "/backups/incoming"
BACKUP_USER = "stackbackup"
# Run as root on a staged copy: refuse links and special files, then hand the folder to the
# backup user. The folder is root's own until then (mode 0700), so nothing can swap a link in.
HAND_OVER = (
    'set -eu; d=$1; u=$2; bad=$(find "$d" -mindepth 1 ! -type f ! -type d -print -quit);'
    ' if [ -n "$bad" ]; then echo "refusing ${bad#"$d"/}: a link or a special file" >&2; exit 65; fi;'
    ' chown -R --no-dereference "$u:$u" -- "$d"; chmod -R u=rwX,g=rX,o= -- "$d"'
)
# Run as the backup user with the identity on stdin: it lands on a tmpfs (/dev/shm), never on
# the container's writable layer or a volume; prints its path.
IDENTITY_IN = (
    "set -eu; umask 077; d=$(mktemp -d /dev/shm/stackctl-age-XXXXXX);"
    ' if [ "$(stat -f -c %T "$d")" != tmpfs ]; then rmdir "$d"; echo "/dev/shm is not a tmpfs" >&2; exit 73; fi;'
    ' cat > "$d/identity"; printf "%s\n" "$d/identity"'
)


@dataclass(frozen=True)
class BackupResult:
    kind: Kind
    file: str
    bytes: int
    seconds: float
    sha256: str
    encrypted: bool
    copied_to: str | None = None  # the off-site target (DB_/MEDIA_BACKUP_TARGET), when copied there


@dataclass(frozen=True)
class BackupInfo:
    name: str
    kind: Kind
    bytes: int
    created: dt.datetime
    label: str | None
    encrypted: bool
    sha256_ok: bool | None  # None: no .sha256 sidecar (a "bad" backup)


@dataclass(frozen=True)
class VerifyResult:
    name: str
    kind: Kind
    checksum: str  # "ok" or "skipped" (no sidecar)
    seconds: float
    tables: int | None = None  # db: restored into a scratch database and counted
    rows: int | None = None
    files: int | None = None  # media: files in the archive


@dataclass(frozen=True)
class PruneResult:
    dry_run: bool
    kept: list[str]
    deleted: list[str]
    orphans: list[str]
    damaged: list[str] = field(default_factory=list)  # their hash does not match their sidecar
    unclassified: list[str] = field(default_factory=list)  # never deleted: no sidecar, or not a backup's name


# -- running scripts in the backup container -----------------------------------------------------
def backup_container(stack: StackView) -> str:
    """The name of the running backup container, or a BackupError saying how to get one."""
    running = stack.status().running(SERVICE)
    if running is None:
        raise BackupError(
            f"the {SERVICE} service of {stack.name} is not running", hint=f"start it first: {stack.up_command}"
        )
    return running.container


def _tail(text: str | None) -> str:
    return stderr_tail(text, lines=8)


def run_script(
    stack: StackView,
    argv: list[str],
    *,
    what: str,
    envs: dict[str, str] | None = None,
    error: type[StackctlError] = BackupError,
    hint: str | None = None,
) -> dict[str, Any]:
    """Run one script in the backup container and return the JSON object it printed last.

    The scripts log to stderr and never print a secret, so their last lines go into the error.
    """
    try:
        out = stack.client.compose.execute(SERVICE, argv, tty=False, envs=envs or {})
    except DockerException as exc:
        raise error(f"{what} failed (exit {exc.return_code})\n{_tail(exc.stderr)}".rstrip(), hint=hint) from None
    return last_json(out or "")


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def _exec_plain(stack: Stack, argv: list[str]) -> None:
    try:
        stack.client.compose.execute(SERVICE, argv, tty=False)
    except DockerException as exc:
        raise BackupError(f"`{' '.join(argv[:2])}` failed in the backup container (exit {exc.return_code})") from None


def _as_root(stack: Stack, argv: list[str]) -> None:
    """Run `argv` as root in a one-off container of the backup service (same volumes, same
    capabilities), not by `exec -u root` in the running one: that container's user is
    stackbackup and it has no-new-privileges, so an exec'd root process gets no capability
    at all. A one-off started as root keeps the service's CHOWN, DAC_OVERRIDE and FOWNER."""
    stack.client.compose.run(SERVICE, argv, user="0:0", remove=True, dependencies=False, tty=False)


def check_name(name: str, *, error: type[StackctlError] = BackupError) -> None:
    """A backup name or path never starts with `-`: that is an option given in the wrong place."""
    if name.startswith("-"):
        raise error(
            f"refusing {name!r}: a backup name never starts with - (an option in the wrong place?)",
            hint="give a name from `stackctl backup list`, or a host path (./-file for a file named so)",
        )


@contextmanager
def staged(stack: Stack, file: str | Path, *, error: type[StackctlError] = BackupError) -> Iterator[str]:
    """What to pass to the scripts for FILE: a host file or folder (a directory-format dump) is
    copied, with its .sha256 sidecar, into a folder of this run's own under /backups/incoming/
    for the duration; a bare name is left for the scripts to find.

    A host symlink is followed here, on the host, as the user's own; what reaches the
    container is the file it points to. The copy lands in a fresh folder only root can write
    to, is refused if it holds a link or a special file, and only then handed to the backup
    user: no chown or chmod ever follows a link."""
    check_name(str(file), error=error)
    path = Path(file).expanduser()
    if not (path.is_file() or path.is_dir()):
        if "/" in str(file) or not str(file):
            raise error(f"no such file: {file}", hint="give a host path, or a backup name from `stackctl backup list`")
        yield str(file)
        return
    real = path.resolve(strict=True)
    container = backup_container(stack)
    folder = f"{INCOMING}/stage-{uuid.uuid4().hex}"
    target = f"{folder}/{path.name}"
    copies = [(real, target)]
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        copies.append((sidecar.resolve(strict=True), target + ".sha256"))
    _check_room(stack, sum(_size(source) for source, _ in copies), f"the copy of {path.name}", error)
    try:
        try:
            _as_root(stack, ["mkdir", "-m", "0700", "--", folder])
            for source, dest in copies:
                stack.client.copy(source, (container, dest))
            _as_root(stack, ["sh", "-c", HAND_OVER, "sh", folder, BACKUP_USER])
        except DockerException as exc:
            raise error(
                f"could not stage {path} in the backup container (exit {exc.return_code})\n"
                f"{_tail(exc.stderr)}".rstrip(),
                hint="give a regular file (or a directory-format dump holding only files)",
            ) from None
        yield target
    finally:
        with suppress(DockerException):  # best effort: a copy that cannot be removed stays; say nothing
            _as_root(stack, ["rm", "-rf", "--", folder])


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _check_room(stack: Stack, needed: int, what: str, error: type[StackctlError]) -> None:
    """The backups volume must have room for NEEDED more bytes, or nothing is staged."""
    try:
        _exec_plain(stack, ["mkdir", "-p", INCOMING])
        out = stack.client.compose.execute(SERVICE, ["stat", "-f", "-c", "%a %S", INCOMING], tty=False)
        blocks, block_size = (int(x) for x in str(out).split()[:2])
    except (DockerException, ValueError):
        return  # the copy itself fails, and says so, when the room runs out
    free = blocks * block_size
    if free < needed:
        raise error(
            f"not enough room in the backups volume for {what}: {needed} bytes needed, {free} free;"
            " nothing was changed",
            hint="free some space (stackctl backup prune, or move old backups off the host), then try again",
        )


@contextmanager
def age_identity(stack: Stack, identity: Path | None) -> Iterator[dict[str, str]]:
    """Put an age identity file (a private key) on a tmpfs in the container for one job.

    It goes through `docker compose exec`'s stdin (`docker cp` cannot write to a tmpfs: it
    would land on the container's writable layer), into a fresh folder under /dev/shm that
    only the backup user can read. It never enters argv, a volume or an image layer, and is
    removed afterwards. Yields the environment the restore scripts read it from.
    """
    if identity is None:
        yield {}
        return
    if not identity.is_file():
        raise BackupError(f"no such age identity file: {identity}", hint="pass --age-identity PATH of the private key")
    backup_container(stack)
    key = identity.read_bytes()
    try:
        dest = compose_exec_stdin(stack.client, SERVICE, ["sh", "-c", IDENTITY_IN], key).strip().splitlines()[-1]
    except (DockerException, IndexError):
        raise BackupError(
            "could not put the age identity on a tmpfs in the backup container",
            hint="is /dev/shm a tmpfs in the backup container (docker's default)?",
        ) from None
    try:
        yield {"BACKUP_AGE_IDENTITY": dest}
    finally:
        _remove(stack, [str(Path(dest).parent)])


def _remove(stack: Stack, paths: list[str]) -> None:
    """Best effort, as the backup user who made them (the identity's folder on the running
    container's own /dev/shm); what cannot be removed stays; say nothing."""
    with suppress(DockerException):
        stack.client.compose.execute(SERVICE, ["rm", "-rf", "--", *paths], tty=False)


# -- the operations -------------------------------------------------------------------------------
def _result(kind: Kind, payload: dict[str, Any]) -> BackupResult:
    return BackupResult(
        kind=kind,
        file=str(payload.get("file", "?")),
        bytes=int(payload.get("bytes", 0)),
        seconds=float(payload.get("seconds", 0.0)),
        sha256=str(payload.get("sha256", "")),
        encrypted=bool(payload.get("encrypted", str(payload.get("file", "")).endswith(".age"))),
        copied_to=payload.get("copied_to") if payload.get("copied") else None,
    )


def take_backup(
    stack: Stack,
    kind: Kind,
    *,
    label: str | None = None,
    copy: bool = True,
    from_previous: str | None = None,
    prune: bool = True,
) -> BackupResult:
    """One backup_db.sh / backup_media.sh run; `from_previous` dumps a <db>_pre_restore_<ts> database.
    `prune=False` (db) leaves the retention policy, which re-hashes every db backup, to the next backup."""
    argv = [f"backup_{kind}.sh"]
    if label:
        argv += ["--label", label]
    if kind == "db" and from_previous:
        argv += ["--from-previous", from_previous]
    if not copy:
        argv.append("--no-copy")
    if kind == "db" and not prune:
        argv.append("--no-prune")
    try:
        out = stack.client.compose.execute(SERVICE, argv, tty=False)
    except DockerException as exc:
        copied = last_json(exc.stdout or "")
        if exc.return_code == 3 and copied.get("file"):
            variable = "MEDIA_BACKUP_TARGET" if kind == "media" else "DB_BACKUP_TARGET (or MEDIA_BACKUP_TARGET)"
            raise BackupError(
                f"the {kind} backup {copied['file']} was written, but copying it to "
                f"{copied.get('copied_to')} failed\n{_tail(exc.stderr)}",
                hint=f"check {variable} and its credentials; the local copy is kept",
            ) from None
        raise BackupError(
            f"the {kind} backup failed (exit {exc.return_code}); no backup file was left behind\n{_tail(exc.stderr)}",
            hint=f"read `{stack.env.command('logs backup')}`; is the db service healthy?" if kind == "db" else None,
        ) from None
    return _result(kind, last_json(out or ""))


def backup_now(stack: Stack, kind: Literal["db", "media", "all"], report: Report = quiet) -> list[BackupResult]:
    """Take a database backup, a media archive, or both (db first)."""
    backup_container(stack)
    kinds: list[Kind] = ["db", "media"] if kind == "all" else [kind]
    results = []
    for each in kinds:
        report(f"{each}: running backup_{each}.sh in the backup container")
        result = take_backup(stack, each)
        report(f"{each}: wrote {result.file} ({result.bytes} bytes) in {result.seconds:.1f}s")
        if result.copied_to:
            report(f"{each}: copied to {result.copied_to}")
        results.append(result)
    return results


def list_backups(stack: Stack) -> list[BackupInfo]:
    """Every backup in the backups volume, newest first, each re-hashed against its sidecar."""
    backup_container(stack)
    try:
        out = stack.client.compose.execute(SERVICE, ["backupctl.py", "list", "--json"], tty=False)
        rows = json.loads(out or "[]")
    except DockerException as exc:
        raise BackupError(f"listing the backups failed (exit {exc.return_code})\n{_tail(exc.stderr)}") from None
    except ValueError:
        raise BackupError("backupctl.py list printed something that is not JSON") from None
    return [
        BackupInfo(
            name=row["name"],
            kind=row["kind"],
            bytes=int(row["bytes"]),
            created=dt.datetime.fromisoformat(row["created"]),
            label=row.get("label"),
            encrypted=bool(row.get("encrypted")),
            sha256_ok=row.get("sha256_ok"),
        )
        for row in rows
    ]


def verify_backup(stack: Stack, name_or_path: str | Path, *, identity: Path | None = None) -> VerifyResult:
    """Checksum, then (db) restore into a scratch database, count, drop it; (media) list it."""
    backup_container(stack)
    with staged(stack, name_or_path) as target, age_identity(stack, identity) as envs:
        payload = run_script(
            stack,
            ["backupctl.py", "verify", "--json", "--", target],
            what=f"verifying {Path(target).name}",
            envs=envs,
            hint="the backup is damaged or unreadable; keep it aside and use another one",
        )
    kind: Kind = "media" if "files" in payload else "db"
    return VerifyResult(
        name=str(payload.get("file", Path(target).name)),
        kind=kind,
        checksum=str(payload.get("checksum", "?")),
        seconds=float(payload.get("seconds", 0.0)),
        tables=payload.get("tables"),
        rows=payload.get("rows"),
        files=payload.get("files"),
    )


def prune_backups(stack: Stack, *, dry_run: bool) -> PruneResult:
    """Apply the retention policy (DB_BACKUP_KEEP_DAILY/WEEKLY, DB_BACKUP_RETENTION_DAYS)."""
    backup_container(stack)
    argv = ["backupctl.py", "prune", "--json", *(["--dry-run"] if dry_run else [])]
    payload = run_script(stack, argv, what="pruning the backups")
    return PruneResult(
        dry_run=bool(payload.get("dry_run", dry_run)),
        kept=list(payload.get("kept", [])),
        deleted=list(payload.get("deleted", [])),
        orphans=list(payload.get("orphans", [])),
        damaged=list(payload.get("damaged", [])),
        unclassified=list(payload.get("unclassified", [])),
    )


@dataclass(frozen=True)
class ScheduleEntry:
    """One kind of backup in `stackctl status`: when it runs next, when it last succeeded."""

    next_run: str | None  # ISO 8601, UTC
    last_success: str | None  # ISO 8601, UTC; None: never
    last_success_age_seconds: int | None


@dataclass(frozen=True)
class BackupSchedule:
    healthy: bool | None  # None: the backup service did not answer (see `error`)
    db: ScheduleEntry | None = None
    media: ScheduleEntry | None = None
    error: str | None = None
    certificate: CertStatus | None = None  # TLS_CERT_SOURCE=acme: its health is the backup service's too
    pitr_window: dict[str, str] | None = None  # PITR_ENABLED: pgBackRest's recoverable window {start, end}
    pitr_last_backup: dict[str, Any] | None = None  # the pgbackrest service's last backup {type, ok, at, error}


def _report_from_health_log(status: StackStatus | None) -> dict[str, Any] | None:
    """The status report the backup healthcheck printed last (one JSON line), if there is one."""
    found = status.running(SERVICE) if status else None
    report = last_json(found.health_output or "") if found else {}
    return report if "db" in report else None


def backup_status(stack: StackView, status: StackStatus | None = None) -> BackupSchedule:
    """The backup schedule for `stackctl status`: next runs and the last successes.

    From the backup healthcheck's last output when `status` has it (no extra docker call; at
    most one healthcheck interval old, ages recomputed from its timestamps), else by running
    `backupctl.py status` in the container. Never raises: when the backup service does not
    answer, `error` says why.
    """
    report = _report_from_health_log(status)
    if report is None:
        try:
            backup_container(stack)
            report = run_script(stack, ["backupctl.py", "status", "--json"], what="reading the backup schedule")
        except StackctlError as exc:
            return BackupSchedule(healthy=None, error=exc.message.splitlines()[0])
    now = dt.datetime.now(dt.UTC)
    entries = {}
    for kind in ("db", "media"):
        part = report.get(kind) or {}
        last = part.get("last_success")
        entries[kind] = ScheduleEntry(
            next_run=part.get("next_run"),
            last_success=last if isinstance(last, str) else None,
            last_success_age_seconds=_age_seconds(part, now),
        )
    from stackctl.core.certs import CertStatus

    certificate = report.get("certificate")
    pitr = status.running("pgbackrest") if status else None
    pitr_report = last_json(pitr.health_output or "") if pitr else {}
    window = pitr_report.get("window")
    last = pitr_report.get("last")
    return BackupSchedule(
        healthy=bool(report.get("healthy")),
        db=entries["db"],
        media=entries["media"],
        certificate=CertStatus.of(certificate) if isinstance(certificate, dict) else None,
        pitr_window=window if isinstance(window, dict) else None,
        pitr_last_backup=last if isinstance(last, dict) else None,
    )


def _age_seconds(part: dict[str, Any], now: dt.datetime) -> int | None:
    last = part.get("last_success")
    if isinstance(last, str):
        with suppress(ValueError):
            return max(0, int((now - dt.datetime.fromisoformat(last)).total_seconds()))
    age = part.get("last_success_age_seconds")
    return age if isinstance(age, int) else None
