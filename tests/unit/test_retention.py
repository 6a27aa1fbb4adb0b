"""The retention policy and the schedule maths of templates/backup/backupctl.py (imported as is)."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
UTC = dt.UTC


def _load() -> ModuleType:
    path = REPO / "templates" / "backup" / "backupctl.py"
    spec = importlib.util.spec_from_file_location("backupctl", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["backupctl"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bc = _load()
NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)  # a Friday, ISO week 9


def backup(when: str, *, label: str | None = None, good: bool = True, kind: str = "db") -> Any:
    stamp = dt.datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    suffix = ".dump" if kind == "db" else ".tar.gz"
    name = f"{'django' if kind == 'db' else 'media'}-{stamp:%Y%m%dT%H%M%SZ}{'-' + label if label else ''}{suffix}"
    parsed = bc.parse_backup(Path("/backups/db") / name, good=good)
    assert parsed is not None
    return parsed


def nightly(days: int, extras: dict[str, str]) -> list[Any]:
    """`days` nightly backups at 03:00 up to NOW's day, plus labelled same-day extras."""
    first = NOW.date() - dt.timedelta(days=days - 1)
    found = [backup(f"{first + dt.timedelta(days=i)} 03:00") for i in range(days)]
    found += [backup(when, label=label) for when, label in extras.items()]
    return found


def stamps(backups: list[Any]) -> set[str]:
    return {b.created.strftime("%Y-%m-%d %H:%M") for b in backups}


def test_sixty_nights_keep_exactly_the_configured_set() -> None:
    extras = {"2024-02-26 15:00": "pre-restore", "2024-02-25 15:00": "manual", "2024-02-20 15:00": "pre-restore"}
    backups = nightly(60, extras)
    keep, delete = bc.retention(backups, bc.Policy(keep_daily=7, keep_weekly=4, retention_days=3), NOW)
    assert stamps(keep) == {
        # younger than 3 days
        "2024-03-01 03:00",
        "2024-02-29 03:00",
        "2024-02-28 03:00",
        # the newest of each of the last 7 days (the labelled extras win their day)
        "2024-02-27 03:00",
        "2024-02-26 15:00",
        "2024-02-25 15:00",
        "2024-02-24 03:00",
        # the newest of each of the last 4 ISO weeks: w9 (today), w8 (Sun 25th), w7, w6
        "2024-02-18 03:00",
        "2024-02-11 03:00",
    }
    assert len(keep) + len(delete) == 63
    assert "2024-02-26 03:00" in stamps(delete) and "2024-02-20 15:00" in stamps(delete)


def test_thirty_days_retention_keeps_the_whole_month() -> None:
    backups = nightly(60, {"2024-02-10 15:00": "pre-restore"})
    keep, _ = bc.retention(backups, bc.Policy(keep_daily=7, keep_weekly=4, retention_days=30), NOW)
    cutoff = NOW - dt.timedelta(days=30)
    assert {b for b in backups if b.created > cutoff} <= set(keep)
    assert len(keep) == 30 + 1  # 30 nights and the labelled one; older weeks are inside the month


def test_the_newest_good_backup_survives_when_everything_is_old() -> None:
    backups = [backup("2023-12-01 03:00"), backup("2023-12-02 03:00"), backup("2023-12-03 03:00")]
    keep, delete = bc.retention(backups, bc.Policy(keep_daily=0, keep_weekly=0, retention_days=1), NOW)
    assert stamps(keep) == {"2023-12-03 03:00"}
    assert stamps(delete) == {"2023-12-01 03:00", "2023-12-02 03:00"}


def test_bad_backups_never_count_as_good() -> None:
    backups = [
        backup("2024-01-01 03:00"),
        backup("2024-01-02 03:00"),
        backup("2024-01-02 15:00", good=False),  # newer than that day's good one
        backup("2024-01-03 03:00", good=False),  # the newest of all
        backup("2023-12-01 03:00", good=False),  # old and bad
    ]
    keep, delete = bc.retention(backups, bc.Policy(keep_daily=1, keep_weekly=0, retention_days=0), NOW)
    # the newest *good* one is kept; bad ones never fill a slot and go once past retention
    assert stamps(keep) == {"2024-01-02 03:00"}
    assert "2024-01-03 03:00" in stamps(delete)


def test_bad_backups_are_kept_while_young() -> None:
    backups = [backup("2024-03-01 03:00"), backup("2024-02-29 03:00", good=False)]
    keep, delete = bc.retention(backups, bc.Policy(keep_daily=1, keep_weekly=0, retention_days=7), NOW)
    assert stamps(keep) == {"2024-03-01 03:00", "2024-02-29 03:00"} and delete == []


def test_daily_slots_count_days_that_have_a_backup() -> None:
    """After a two-week outage the last 3 days *with* a backup are kept, not 3 empty days."""
    backups = [backup(f"2024-02-{day:02d} 03:00") for day in range(1, 16)]
    keep, _ = bc.retention(backups, bc.Policy(keep_daily=3, keep_weekly=0, retention_days=1), NOW)
    assert stamps(keep) == {"2024-02-15 03:00", "2024-02-14 03:00", "2024-02-13 03:00"}


times = st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2024, 3, 1, 11)).map(
    lambda t: t.replace(second=0, microsecond=0, tzinfo=UTC)
)


@given(
    st.lists(st.tuples(times, st.booleans()), max_size=40, unique_by=lambda x: x[0]),
    st.integers(0, 10),
    st.integers(0, 8),
    st.integers(0, 60),
)
def test_retention_invariants(entries: list[tuple[dt.datetime, bool]], daily: int, weekly: int, days: int) -> None:
    backups = [backup(f"{t:%Y-%m-%d %H:%M}", good=good) for t, good in entries]
    keep, delete = bc.retention(backups, bc.Policy(daily, weekly, days), NOW)
    assert {b.path for b in keep}.isdisjoint({b.path for b in delete})
    assert len(keep) + len(delete) == len(backups)
    good = sorted((b for b in backups if b.good), key=lambda b: b.created)
    if good:
        assert good[-1] in keep
    young = NOW - dt.timedelta(days=days)
    assert all(b in keep for b in backups if b.created > young)


@pytest.mark.parametrize(
    ("name", "kind", "label", "encrypted"),
    [
        ("django-20240301T030000Z.dump", "db", None, False),
        ("my-app-db-20240301T030000Z-pre-restore.dump.age", "db", "pre-restore", True),
        ("media-20240301T033000Z.tar.gz", "media", None, False),
        ("media-20240301T033000Z-pre_restore.tar.gz.age", "media", "pre_restore", True),
    ],
)
def test_names_parse(name: str, kind: str, label: str | None, encrypted: bool) -> None:
    parsed = bc.parse_backup(Path(name), good=True)
    assert parsed is not None
    assert (parsed.kind, parsed.label, parsed.encrypted) == (kind, label, encrypted)
    assert parsed.created.tzinfo is not None


@pytest.mark.parametrize(
    "name", [".tmp-db-abc123", "django.dump", "django-2024-03-01.dump", "x-20240301T030000Z.dump.sha256"]
)
def test_other_files_are_not_backups(name: str) -> None:
    assert bc.parse_backup(Path(name), good=True) is None


def test_max_age_is_twice_the_longest_gap_plus_grace() -> None:
    assert bc.max_age("0 3 * * *", NOW) == dt.timedelta(days=2, minutes=10)
    assert bc.max_age("0 3 * * 1-5", NOW) == dt.timedelta(days=6, minutes=10)  # over a weekend
    assert bc.max_age("* * * * *", NOW) == dt.timedelta(minutes=12)


def _settings(root: Path, **values: str) -> Any:
    env = {
        "BACKUP_ROOT": str(root),
        "DB_BACKUPS_DIR": str(root / "db"),
        "DB_BACKUP_CRON": "0 3 * * *",
        "MEDIA_BACKUP_CRON": "30 3 * * *",
        "DB_BACKUP_RETENTION_DAYS": "30",
        "DB_BACKUP_KEEP_DAILY": "7",
        "DB_BACKUP_KEEP_WEEKLY": "4",
        "DB_BACKUP_KEEP_MONTHLY": "0",
    }
    return bc.Settings.from_env({**env, **values})


def test_health_follows_the_marker_or_a_recent_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert bc.status(settings, NOW)["healthy"] is False  # nothing yet: no marker, no scheduler
    (tmp_path / ".scheduler.json").write_text(json.dumps({"started": "2024-03-01T11:00:00+00:00"}))
    assert bc.status(settings, NOW)["healthy"] is True  # just started, has not had its chance
    (tmp_path / ".scheduler.json").write_text(json.dumps({"started": "2024-02-20T11:00:00+00:00"}))
    (tmp_path / "last-success-db").write_text("2024-02-27T03:00:05Z django-20240227T030000Z.dump\n")
    report = bc.status(settings, NOW)
    assert report["healthy"] is False and report["db"]["last_success_age_seconds"] > 2 * 86400
    (tmp_path / "last-success-db").write_text("2024-02-29T03:00:05Z django-20240229T030000Z.dump\n")
    assert bc.status(settings, NOW)["healthy"] is True


def test_prune_deletes_files_sidecars_and_stale_temp_files(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    names = [f"django-2020010{d}T030000Z.dump" for d in (1, 2, 3)]
    for name in names:
        (db / name).write_bytes(b"x")
        (db / f"{name}.sha256").write_text(f"{hashlib.sha256(b'x').hexdigest()}  {name}\n")
    stale, fresh = db / ".tmp-db-old", db / ".tmp-db-new"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    hour_ago = time.time() - 3700
    os.utime(stale, (hour_ago, hour_ago))
    settings = _settings(tmp_path, DB_BACKUP_RETENTION_DAYS="1", DB_BACKUP_KEEP_DAILY="1", DB_BACKUP_KEEP_WEEKLY="0")
    dry = bc.prune(settings, dry_run=True)
    assert dry["deleted"] == names[1::-1] and (db / names[0]).exists()
    result = bc.prune(settings, dry_run=False)
    assert result["kept"] == [names[2]] and result["orphans"] == [str(stale)]
    assert sorted(p.name for p in db.iterdir()) == [".tmp-db-new", names[2], f"{names[2]}.sha256"]


def test_emit_types_values() -> None:
    assert bc.emit(["file=a b.dump", "bytes:=12", "ok:=true", "x:=null", "eq=a=b"]) == {
        "file": "a b.dump",
        "bytes": 12,
        "ok": True,
        "x": None,
        "eq": "a=b",
    }


def test_the_monthly_tier_keeps_the_newest_of_each_month() -> None:
    backups = [backup(f"2023-{month:02d}-{day:02d} 03:00") for month in range(1, 13) for day in (5, 20)]
    keep, _ = bc.retention(backups, bc.Policy(keep_daily=1, keep_weekly=0, retention_days=1, keep_monthly=4), NOW)
    assert stamps(keep) == {"2023-12-20 03:00", "2023-11-20 03:00", "2023-10-20 03:00", "2023-09-20 03:00"}


def _write(folder: Path, name: str, data: bytes, *, sidecar: bytes | None = None) -> None:
    (folder / name).write_bytes(data)
    if sidecar is not None:
        (folder / f"{name}.sha256").write_text(f"{hashlib.sha256(sidecar).hexdigest()}  {name}\n")


def test_prune_counts_only_backups_whose_hash_matches(tmp_path: Path) -> None:
    """Damaged backups with sidecars newer than an intact one: the intact one is the newest good
    backup, so it is kept; the damaged ones are reported, and go once past retention."""
    db = tmp_path / "db"
    db.mkdir()
    intact = "django-20240101T030000Z.dump"
    _write(db, intact, b"good", sidecar=b"good")
    for day in ("02", "03"):
        _write(db, f"django-202401{day}T030000Z.dump", b"rotten", sidecar=b"good")
    settings = _settings(tmp_path, DB_BACKUP_RETENTION_DAYS="1", DB_BACKUP_KEEP_DAILY="2", DB_BACKUP_KEEP_WEEKLY="0")
    result = bc.prune(settings, dry_run=False, kinds=["db"])
    assert result["kept"] == [intact]
    assert sorted(result["damaged"]) == ["django-20240102T030000Z.dump", "django-20240103T030000Z.dump"]
    assert (db / intact).exists()


def test_prune_never_deletes_what_it_cannot_classify(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    by_hand = ["django-20200101T030000Z.dump", "notes.txt", "django.dump"]
    for name in by_hand:
        _write(db, name, b"x")
    _write(db, "django-20200102T030000Z.dump", b"y", sidecar=b"y")
    settings = _settings(tmp_path, DB_BACKUP_RETENTION_DAYS="1", DB_BACKUP_KEEP_DAILY="0", DB_BACKUP_KEEP_WEEKLY="0")
    result = bc.prune(settings, dry_run=False, kinds=["db"])
    assert sorted(Path(p).name for p in result["unclassified"]) == sorted(by_hand)
    assert result["deleted"] == [] and all((db / name).exists() for name in by_hand)


def test_the_orphan_sweep_spares_a_folder_held_in_use(tmp_path: Path) -> None:
    running, left = tmp_path / ".tmp-restore-running", tmp_path / ".tmp-restore-left"
    for folder in (running, left):
        folder.mkdir()
        (folder / "plain.dump").write_bytes(b"decrypted")
        (folder / ".in-use").touch()
    hours_ago = time.time() - 3 * 3600
    for folder in (running, left):
        os.utime(folder, (hours_ago, hours_ago))
    with (running / ".in-use").open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert bc.orphans([tmp_path], time.time()) == [left]


def _archive(path: Path, member: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("./ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        tar.addfile(member, io.BytesIO(b"xx") if member.size else None)
    return path


@pytest.mark.parametrize(
    ("kind", "linkname", "name"),
    [
        (tarfile.SYMTYPE, "/etc/passwd", "./evil.txt"),
        (tarfile.LNKTYPE, "ok.txt", "./evil.txt"),
        (tarfile.CHRTYPE, "", "./evil.txt"),
        (tarfile.FIFOTYPE, "", "./evil.txt"),
        (tarfile.REGTYPE, "", "../evil.txt"),
        (tarfile.REGTYPE, "", "/evil.txt"),
    ],
)
def test_check_archive_refuses_links_devices_and_names_outside(
    tmp_path: Path, kind: bytes, linkname: str, name: str
) -> None:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, linkname
    member.size = 2 if kind == tarfile.REGTYPE else 0
    with pytest.raises(bc.ArchiveRefused, match=r"evil\.txt"):
        bc.check_archive(_archive(tmp_path / "a.tar.gz", member))


def test_check_archive_counts_plain_files(tmp_path: Path) -> None:
    folder = tarfile.TarInfo("./sub")
    folder.type = tarfile.DIRTYPE
    assert bc.check_archive(_archive(tmp_path / "a.tar.gz", folder)) == {"files": 1, "bytes": 2}
    (tmp_path / "cut.tar.gz").write_bytes((tmp_path / "a.tar.gz").read_bytes()[:40])
    with pytest.raises(bc.ArchiveRefused, match="not a readable"):
        bc.check_archive(tmp_path / "cut.tar.gz")
