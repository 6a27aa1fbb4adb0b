#!/usr/bin/env python3
"""backupctl: list, prune, verify, status and healthcheck of the stack's backups.

Runs inside the backup container (python 3.11 stdlib + croniter); the scripts beside it
and stackctl call it. Its settings come from the environment, with no defaults here: the
backup service's environment in docker-compose.prod.yml states every one, from the
validated .env.prod. A command that needs a missing one names it and exits 78.

Backups are files named `<prefix>-<UTC YYYYmmddTHHMMSSZ>[-<label>].<dump|tar.gz>[.age]`
with a `NAME.sha256` sidecar (sha256sum format). Retention counts a backup as good only
when its file hashes to its sidecar's value (every prune re-hashes: a damaged backup never
fills a keep slot). A backup whose hash does not match is "damaged"; one without a sidecar,
and any other file in the backup folders, cannot be classified: prune never deletes those,
it reports them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

UTC = dt.UTC
NAME_RE = re.compile(
    r"^(?P<prefix>.+)-(?P<ts>\d{8}T\d{6}Z)(?:-(?P<label>[A-Za-z0-9][A-Za-z0-9_-]*))?"
    r"\.(?P<ext>dump|tar\.gz)(?P<age>\.age)?$"
)
TEMP_PREFIX = ".tmp-"
ORPHAN_SECONDS = 3600
GRACE = dt.timedelta(minutes=10)
EX_CONFIG = 78  # a setting is missing or malformed (sysexits.h)
TEXT_VARIABLES = ("BACKUP_ROOT", "DB_BACKUPS_DIR", "DB_BACKUP_CRON", "MEDIA_BACKUP_CRON")
COUNT_VARIABLES = (
    "DB_BACKUP_RETENTION_DAYS",
    "DB_BACKUP_KEEP_DAILY",
    "DB_BACKUP_KEEP_WEEKLY",
    "DB_BACKUP_KEEP_MONTHLY",
)
IN_USE = ".in-use"  # a restore's working folder holds this file locked while it runs
STATED_BY = "the backup service's environment in docker-compose.prod.yml states them"


# -- settings ---------------------------------------------------------------------------------
class SettingsError(Exception):
    """The environment lacks a setting, or holds one that is not valid."""


@dataclass(frozen=True)
class Settings:
    """What the container's environment says (BACKUP_ROOT from the image, the rest from compose)."""

    root: Path
    db_dir: Path
    media_dir: Path
    db_cron: str
    media_cron: str
    retention_days: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every problem at once: each missing variable, then each one that is not a count."""
        env = os.environ if env is None else env
        missing = [name for name in (*TEXT_VARIABLES, *COUNT_VARIABLES) if not env.get(name)]
        if missing:
            raise SettingsError(f"not set: {' '.join(missing)} ({STATED_BY})")
        counts = {name: env[name] for name in COUNT_VARIABLES}
        bad = [f"{name}={value!r}" for name, value in counts.items() if not (value.isascii() and value.isdigit())]
        if bad:
            raise SettingsError(f"not a whole number: {', '.join(bad)}")
        root = Path(env["BACKUP_ROOT"])
        return cls(
            root=root,
            db_dir=Path(env["DB_BACKUPS_DIR"]),
            media_dir=root / "media",
            db_cron=env["DB_BACKUP_CRON"],
            media_cron=env["MEDIA_BACKUP_CRON"],
            retention_days=int(env["DB_BACKUP_RETENTION_DAYS"]),
            keep_daily=int(env["DB_BACKUP_KEEP_DAILY"]),
            keep_weekly=int(env["DB_BACKUP_KEEP_WEEKLY"]),
            keep_monthly=int(env["DB_BACKUP_KEEP_MONTHLY"]),
        )

    def marker(self, kind: str) -> Path:
        return self.root / f"last-success-{kind}"

    @property
    def state_file(self) -> Path:
        return self.root / ".scheduler.json"


# -- backups on disk --------------------------------------------------------------------------
@dataclass(frozen=True)
class Backup:
    path: Path
    kind: str  # "db" or "media"
    created: dt.datetime  # UTC, from the name
    label: str | None
    good: bool  # parse_backup: its .sha256 sidecar exists; prune: its hash matches the sidecar

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def encrypted(self) -> bool:
        return self.name.endswith(".age")

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.name + ".sha256")


def parse_backup(path: Path, *, good: bool | None = None) -> Backup | None:
    """A Backup for a file named like one, else None."""
    match = NAME_RE.match(path.name)
    if not match:
        return None
    created = dt.datetime.strptime(match["ts"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    kind = "db" if match["ext"] == "dump" else "media"
    if good is None:
        good = path.with_name(path.name + ".sha256").is_file()
    return Backup(path, kind, created, match["label"], good)


def scan(directory: Path) -> list[Backup]:
    """Every backup in one folder, newest first."""
    if not directory.is_dir():
        return []
    found = [parse_backup(p) for p in directory.iterdir() if p.is_file()]
    return sorted((b for b in found if b is not None), key=lambda b: b.created, reverse=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_ok(backup: Backup) -> bool | None:
    """True/False when the sidecar matches or not; None when there is no sidecar."""
    if not backup.sidecar.is_file():
        return None
    expected = backup.sidecar.read_text(encoding="utf-8").split()
    return bool(expected) and expected[0].lower() == sha256_of(backup.path)


# -- retention --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    keep_daily: int
    keep_weekly: int
    retention_days: int
    keep_monthly: int = 0


def _newest_per_period(good: Sequence[Backup], count: int, period: Any) -> set[Path]:
    """The newest backup of each of the last `count` periods that have a good backup."""
    kept: set[Path] = set()
    seen: list[object] = []
    for backup in good:  # newest first
        key = period(backup.created)
        if key in seen:
            continue
        if len(seen) >= count:
            break
        seen.append(key)
        kept.add(backup.path)
    return kept


def retention(backups: Iterable[Backup], policy: Policy, now: dt.datetime) -> tuple[list[Backup], list[Backup]]:
    """Split backups of one kind into (keep, delete). Pure: no disk access.

    Among good backups (`good`: prune sets it when the hash matches the sidecar) keep: the
    newest of each of the last KEEP_DAILY days that have one, the newest of each of the
    last KEEP_WEEKLY ISO weeks that have one, the newest of each of the last KEEP_MONTHLY
    months that have one, every one younger than RETENTION_DAYS, and always the newest.
    Labelled backups (e.g. pre-restore) follow the same rule. A bad backup is kept while
    younger than RETENTION_DAYS and never fills a daily, weekly, monthly or newest slot.
    """
    ordered = sorted(backups, key=lambda b: b.created, reverse=True)
    good = [b for b in ordered if b.good]
    young = now - dt.timedelta(days=policy.retention_days)
    keep: set[Path] = {b.path for b in ordered if b.created > young}
    if good:
        keep.add(good[0].path)
    keep |= _newest_per_period(good, policy.keep_daily, lambda t: t.date())
    keep |= _newest_per_period(good, policy.keep_weekly, lambda t: t.isocalendar()[:2])
    keep |= _newest_per_period(good, policy.keep_monthly, lambda t: (t.year, t.month))
    return [b for b in ordered if b.path in keep], [b for b in ordered if b.path not in keep]


def in_use(folder: Path) -> bool:
    """A running restore holds FOLDER/.in-use locked (restore_*.sh, make_workdir)."""
    try:
        handle = (folder / IN_USE).open("rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def orphans(directories: Iterable[Path], now: float) -> list[Path]:
    """Temp files and folders (.tmp-*) left by an interrupted job, older than an hour; never
    the working folder of a restore that is still running, however old."""
    found = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if not path.name.startswith(TEMP_PREFIX) or now - path.lstat().st_mtime <= ORPHAN_SECONDS:
                continue
            if path.is_dir() and not path.is_symlink() and in_use(path):
                continue
            found.append(path)
    return sorted(found)


def unclassified(directory: Path) -> list[Path]:
    """Files in a backup folder that prune cannot classify: named like no backup (sidecars
    and temp files aside), or a backup without its sidecar. Never deleted."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        name = path.name
        if name.startswith(TEMP_PREFIX) or (name.endswith(".sha256") and path.is_file()):
            continue
        if not path.is_file() or parse_backup(path) is None or not path.with_name(name + ".sha256").is_file():
            found.append(path)
    return sorted(found)


def verified(directory: Path) -> tuple[list[Backup], list[str]]:
    """The backups of one folder that have a sidecar, each re-hashed (`good`: it matches),
    and the names of the damaged ones (their hash does not match)."""
    found = []
    damaged = []
    for backup in scan(directory):
        if not backup.good:
            continue  # no sidecar: unclassified
        try:
            ok = bool(checksum_ok(backup))
        except OSError:
            ok = False
        if not ok:
            damaged.append(backup.name)
        found.append(Backup(backup.path, backup.kind, backup.created, backup.label, ok))
    return found, damaged


def prune(settings: Settings, *, dry_run: bool, kinds: Sequence[str] = ("db", "media")) -> dict[str, Any]:
    policy = Policy(settings.keep_daily, settings.keep_weekly, settings.retention_days, settings.keep_monthly)
    now = dt.datetime.now(UTC)
    kept: list[str] = []
    deleted: list[str] = []
    damaged: list[str] = []
    skipped: list[str] = []
    for kind in kinds:
        directory = settings.db_dir if kind == "db" else settings.media_dir
        backups, bad = verified(directory)
        damaged += bad
        skipped += [str(p) for p in unclassified(directory)]
        keep, delete = retention(backups, policy, now)
        kept += [b.name for b in keep]
        for backup in delete:
            deleted.append(backup.name)
            if not dry_run:
                backup.path.unlink(missing_ok=True)
                backup.sidecar.unlink(missing_ok=True)
    dirs = [settings.db_dir, settings.media_dir, settings.root / "incoming", settings.root]
    stale = orphans(dirs, time.time())
    if not dry_run:
        for path in stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return {
        "dry_run": dry_run,
        "kept": kept,
        "deleted": deleted,
        "damaged": damaged,
        "unclassified": skipped,
        "orphans": [str(p) for p in stale],
    }


# -- schedule and health ----------------------------------------------------------------------
def next_runs(cron: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    from croniter import croniter

    it = croniter(cron, start)
    return [it.get_next(dt.datetime).astimezone(UTC) for _ in range(count)]


def max_age(cron: str, now: dt.datetime) -> dt.timedelta:
    """How old the last success may be: twice the longest gap between runs, plus 10 minutes."""
    runs = next_runs(cron, now, 9)
    gap = max(b - a for a, b in itertools.pairwise(runs))
    return 2 * gap + GRACE


def _read_time(path: Path) -> dt.datetime | None:
    try:
        text = path.read_text(encoding="utf-8").split()
        return dt.datetime.fromisoformat(text[0]).astimezone(UTC)
    except (OSError, ValueError, IndexError):
        try:
            return dt.datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:
            return None


def read_state(settings: Settings) -> dict[str, Any]:
    try:
        state = json.loads(settings.state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def iso(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def status(settings: Settings, now: dt.datetime | None = None) -> dict[str, Any]:
    """Next runs, last successes and whether the last DB backup is recent enough."""
    now = now or dt.datetime.now(UTC)
    state = read_state(settings)
    started = dt.datetime.fromisoformat(state["started"]) if state.get("started") else None
    result: dict[str, Any] = {"now": iso(now), "scheduler_started": iso(started)}
    for kind, cron in (("db", settings.db_cron), ("media", settings.media_cron)):
        last = _read_time(settings.marker(kind))
        limit = max_age(cron, now)
        # A scheduler that (re)started recently has not had its chance yet.
        reference = max((t for t in (last, started) if t is not None), default=None)
        result[kind] = {
            "cron": cron,
            "next_run": iso(next_runs(cron, now, 1)[0]),
            "last_success": iso(last),
            "last_success_age_seconds": int((now - last).total_seconds()) if last else None,
            "max_age_seconds": int(limit.total_seconds()),
            "ok": reference is not None and now - reference <= limit,
        }
    result["healthy"] = bool(result["db"]["ok"])
    certificate = certificate_health(now)
    if certificate is not None:  # TLS_CERT_SOURCE=acme
        result["certificate"] = certificate
        result["healthy"] = result["healthy"] and bool(certificate["healthy"])
    return result


def certificate_health(now: dt.datetime) -> dict[str, Any] | None:
    """certctl.py's status (ACME certificates only), or None."""
    if not os.environ.get("ACME_DOMAINS"):
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import certctl

    return certctl.health(now)


# -- commands ---------------------------------------------------------------------------------
def backup_record(backup: Backup, *, hash_files: bool) -> dict[str, Any]:
    size = backup.path.stat().st_size
    return {
        "name": backup.name,
        "kind": backup.kind,
        "bytes": size,
        "created": iso(backup.created),
        "label": backup.label,
        "encrypted": backup.encrypted,
        "sha256_ok": checksum_ok(backup) if hash_files else (True if backup.good else None),
    }


def _run_json(command: Sequence[str]) -> tuple[int, dict[str, Any]]:
    """Run one of the scripts; its last stdout line is a JSON object."""
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    try:
        payload = json.loads(lines[-1]) if lines else {}
    except ValueError:
        payload = {}
    return proc.returncode, payload


class ArchiveRefused(Exception):
    """A media archive holds a member that must not be restored, or cannot be read."""


def check_archive(path: Path) -> dict[str, int]:
    """Read a media tar.gz to the end: every member must be a regular file or a folder whose
    name stays inside MEDIA_ROOT. Symbolic and hard links (`evil.txt -> /etc/passwd`, which
    nginx would serve), devices, fifos, absolute names and `..` are refused."""
    files = size = 0
    refused: list[str] = []
    try:
        with tarfile.open(path, "r|gz") as archive:
            for member in archive:
                name = member.name
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts:
                    refused.append(f"{name!r} is outside MEDIA_ROOT")
                elif member.issym():
                    refused.append(f"{name!r} is a symbolic link (to {member.linkname!r})")
                elif member.islnk():
                    refused.append(f"{name!r} is a hard link (to {member.linkname!r})")
                elif member.ischr() or member.isblk():
                    refused.append(f"{name!r} is a device")
                elif member.isfifo():
                    refused.append(f"{name!r} is a fifo")
                elif member.isfile():
                    files += 1
                    size += member.size
                elif not member.isdir():
                    refused.append(f"{name!r} is not a plain file or folder")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveRefused(f"{path.name} is not a readable tar.gz archive: {exc}") from None
    if refused:
        more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
        raise ArchiveRefused(
            f"refusing {path.name}: {'; '.join(refused[:5])}{more}; only plain files and folders are restored"
        )
    return {"files": files, "bytes": size}


def verify(target: str) -> tuple[int, dict[str, Any]]:
    """A media archive is listed; a database dump is restored into a scratch database and counted."""
    if target.startswith("-"):
        return 2, {"file": target, "error": "a backup name never starts with -"}
    media = Path(target).name.removesuffix(".age").endswith((".tar.gz", ".tgz"))
    script = ["restore_media.sh", "--check"] if media else ["restore_db.sh", "--verify"]
    command = [*script, "--", target]
    code, payload = _run_json(command)
    payload.setdefault("file", target)
    payload["ok"] = code == 0
    return code, payload


def emit(pairs: Sequence[str]) -> dict[str, Any]:
    """`key=text` or `key:=json` pairs to one JSON object (what the shell scripts print)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key.endswith(":"):
            out[key[:-1]] = json.loads(value)
        else:
            out[key] = value
    return out


def _print(payload: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(payload, sort_keys=True), flush=True)
    elif isinstance(payload, list):
        for row in payload:
            print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    else:
        for key, value in payload.items():
            print(f"{key}: {value}", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backupctl.py", description=__doc__.splitlines()[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="every backup, newest first, with its checksum state")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--no-hash", action="store_true", help="do not re-hash the files (faster)")
    pruning = sub.add_parser("prune", help="apply the retention policy")
    pruning.add_argument("--dry-run", action="store_true")
    pruning.add_argument("--json", action="store_true")
    pruning.add_argument("--kind", choices=["db", "media"], action="append")
    checking = sub.add_parser("verify", help="checksum and restore into a scratch database (media: list it)")
    checking.add_argument("file")
    checking.add_argument("--json", action="store_true")
    stat = sub.add_parser("status", help="next runs and age of the last successes")
    stat.add_argument("--json", action="store_true")
    sub.add_parser("healthcheck", help="exit 1 when the last DB backup is older than the schedule allows")
    archive = sub.add_parser("check-archive", help="refuse a media archive holding links, devices or names outside")
    archive.add_argument("archive", type=Path)
    emitting = sub.add_parser("emit", help="print key=value / key:=json pairs as one JSON line")
    emitting.add_argument("pairs", nargs="*")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "emit":
        print(json.dumps(emit(args.pairs), sort_keys=True), flush=True)
        return 0
    if args.command == "check-archive":
        try:
            print(json.dumps(check_archive(args.archive), sort_keys=True), flush=True)
        except ArchiveRefused as exc:
            print(f"backupctl.py: error: {exc}", file=sys.stderr, flush=True)
            return 65
        return 0
    if args.command == "verify":
        code, payload = verify(args.file)
        if "error" in payload:
            print(f"backupctl.py: error: {payload['error']}", file=sys.stderr, flush=True)
        _print(payload, args.json)
        return code
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"backupctl.py: error: {exc}", file=sys.stderr, flush=True)
        return 1 if args.command == "healthcheck" else EX_CONFIG  # a healthcheck knows only 0 and 1
    if args.command == "list":
        backups = scan(settings.db_dir) + scan(settings.media_dir)
        _print([backup_record(b, hash_files=not args.no_hash) for b in backups], args.json)
    elif args.command == "prune":
        result = prune(settings, dry_run=args.dry_run, kinds=args.kind or ("db", "media"))
        if args.json:
            _print(result, True)
        else:
            verb = "would delete" if args.dry_run else "deleted"
            print(
                f"retention: kept {len(result['kept'])}, {verb} {len(result['deleted'])}"
                f"{': ' + ', '.join(result['deleted']) if result['deleted'] else ''}"
                f"; {len(result['orphans'])} stale temp file(s)",
                flush=True,
            )
            for name in result["damaged"]:
                print(f"damaged (its hash does not match its sidecar): {name}", flush=True)
            for name in result["unclassified"]:
                print(f"not a backup prune can classify, left alone: {name}", flush=True)
    elif args.command == "status":
        _print(status(settings), args.json)
    elif args.command == "healthcheck":
        # The status report, on one line: the engine keeps it in the container's health log,
        # where `stackctl status` reads it without running anything in the container.
        report = status(settings)
        print(json.dumps(report, sort_keys=True, separators=(",", ":")), flush=True)
        return 0 if report["healthy"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
