"""Point-in-time recovery (pgBackRest): the settings and their rules, the rendered services,
the secrets' path, the target parsing and window rules of stackctl/core/pitr.py, and the
window maths of templates/backup/pitrctl.py (imported as is, pgBackRest's JSON stubbed)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stackctl.config import StackConfig
from stackctl.core.configvolumes import config_volumes
from stackctl.core.pitr import parse_target
from stackctl.core.render import render_set
from stackctl.core.secretfiles import pgbackrest_secret_conf
from stackctl.errors import ConfigError, RestoreError
from tests.render.stackfiles import compose_config, load_fixture, missing, write_tree

REPO = Path(__file__).resolve().parents[2]
CIPHER = "unit-test-cipher-passphrase-0123456789"
SFTP = {
    "PITR_REPO2_TYPE": "sftp",
    "PITR_REPO2_SFTP_HOST": "backup.example.net",
    "PITR_REPO2_SFTP_USER": "pgbackrest",
    "PITR_REPO2_SFTP_PRIVATE_KEY": "./sftp_key",
    "PITR_REPO2_SFTP_KNOWN_HOSTS": "./known_hosts",
    "PITR_REPO2_CIPHER_PASS": CIPHER,
}


def _said(err: pytest.ExceptionInfo[ConfigError]) -> str:
    """Every problem's variable, message and hint, as the CLI prints them."""
    return "\n".join(f"{p.variable}: {p.message} ({p.hint})" for p in err.value.problems)


def _load(tmp_path: Path, extra: dict[str, str] | None = None) -> StackConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "sftp_key").write_text("-----BEGIN RSA PRIVATE KEY-----\nunit\n-----END RSA PRIVATE KEY-----\n")
    (tmp_path / "known_hosts").write_text("backup.example.net ssh-ed25519 AAAAunit\n")
    return load_fixture("prod.env", "prod", tmp_path, extra=extra)


def _compose(cfg: StackConfig, folder: Path) -> tuple[str, dict[str, Any]]:
    """The rendered docker-compose.prod.yml, and as compose reads it (`docker compose config`)."""
    docker = shutil.which("docker")
    if docker is None:
        missing("the docker CLI")
    assert docker is not None
    rendered = render_set(cfg)
    write_tree(folder, rendered)
    text = rendered["docker-compose.prod.yml"][0].decode()
    return text, compose_config([docker, "compose"], folder, ["docker-compose.prod.yml"], ".env.prod")


def _mounts(service: dict[str, Any]) -> set[str]:
    return {f"{v['source']}:{v['target']}" for v in service.get("volumes", [])}


def test_the_default_prod_stack_archives_wal_and_has_the_pgbackrest_service(tmp_path: Path) -> None:
    cfg = _load(tmp_path)
    assert cfg.backups.pitr_enabled and not cfg.backups.repo2
    _text, compose = _compose(cfg, tmp_path)
    db, pgbr = compose["services"]["db"], compose["services"]["pgbackrest"]
    assert db["build"]["dockerfile"] == "Dockerfile.db" and "image" not in db
    assert "archive_mode=on" in db["command"]
    assert "archive_command=pgbackrest --stanza=main archive-push %p" in db["command"]
    assert f"archive_timeout={cfg.backups.pitr_archive_timeout}" in db["command"]
    assert pgbr["user"] == "999:999" and pgbr["command"] == ["pitrctl.py", "serve"]
    assert pgbr["environment"]["PITR_FULL_CRON"] == cfg.backups.pitr_full_cron
    assert pgbr["environment"]["PITR_REPOS"] == "1"
    # the same pgBackRest options for both, the repository and socket shared
    shared = {k: v for k, v in db["environment"].items() if k.startswith("PGBACKREST_")}
    assert shared and all(pgbr["environment"][k] == v for k, v in shared.items())
    for service in (db, pgbr):
        assert {"pgbackrest_repo:/var/lib/pgbackrest", "pgbackrest_socket:/var/run/postgresql"} <= _mounts(service)
    assert set(db["networks"]) == {"backend"} == set(pgbr["networks"])  # no route out without repo2
    dockerfile = render_set(cfg)["backup/Dockerfile"][0].decode()
    assert "pgbackrest" in dockerfile


def test_pitr_off_keeps_the_plain_postgres_image(tmp_path: Path) -> None:
    cfg = _load(tmp_path, {"PITR_ENABLED": "false"})
    _text, compose = _compose(cfg, tmp_path)
    assert "pgbackrest" not in compose["services"]
    db = compose["services"]["db"]
    assert "postgres" in db["image"] and "build" not in db and not db.get("command")
    assert "pgbackrest_repo" not in compose["volumes"]


def test_the_archive_timeout_is_configurable_and_bounded(tmp_path: Path) -> None:
    cfg = _load(tmp_path, {"PITR_ARCHIVE_TIMEOUT": "30"})
    assert "archive_timeout=30" in _compose(cfg, tmp_path)[1]["services"]["db"]["command"]
    with pytest.raises(ConfigError) as err:
        _load(tmp_path / "b", {"PITR_ARCHIVE_TIMEOUT": "0"})
    assert "PITR_ARCHIVE_TIMEOUT" in _said(err) and "between 10 and 3600" in _said(err)


def test_a_bad_schedule_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"PITR_DIFF_CRON": "every day"})
    assert "PITR_DIFF_CRON" in _said(err)


def test_sftp_repo2_needs_each_part_and_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"PITR_REPO2_TYPE": "sftp"})
    text = _said(err)
    for variable in ("PITR_REPO2_CIPHER_PASS", "PITR_REPO2_SFTP_HOST", "PITR_REPO2_SFTP_USER",
                     "PITR_REPO2_SFTP_PRIVATE_KEY", "PITR_REPO2_SFTP_KNOWN_HOSTS"):  # fmt: skip
        assert variable in text
    with pytest.raises(ConfigError) as err:
        _load(tmp_path / "short", {**SFTP, "PITR_REPO2_CIPHER_PASS": "short"})
    assert "20 or more characters" in _said(err) and "short" not in _said(err).split("characters")[1]
    with pytest.raises(ConfigError) as err:
        _load(tmp_path / "missing", {**SFTP, "PITR_REPO2_SFTP_KNOWN_HOSTS": "./nowhere"})
    assert "PITR_REPO2_SFTP_KNOWN_HOSTS" in _said(err) and "file not found" in _said(err)


def test_s3_repo2_needs_its_parts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"PITR_REPO2_TYPE": "s3", "PITR_REPO2_CIPHER_PASS": CIPHER})
    for variable in ("PITR_REPO2_S3_BUCKET", "PITR_REPO2_S3_ENDPOINT", "PITR_REPO2_S3_KEY", "PITR_REPO2_S3_KEY_SECRET"):
        assert variable in _said(err)


def test_repo2_secrets_travel_in_db_secrets_never_in_the_compose_file(tmp_path: Path) -> None:
    s3_key, s3_secret = "AKIAUNITTEST0123", "unit-s3-secret-value-0123456789"
    cfg = _load(tmp_path, {**SFTP})
    text, compose = _compose(cfg, tmp_path)
    assert CIPHER not in text
    for name in ("db", "pgbackrest"):
        env = compose["services"][name]["environment"]
        assert env["PGBACKREST_REPO2_TYPE"] == "sftp"
        assert env["PGBACKREST_REPO2_CIPHER_TYPE"] == "aes-256-cbc"
        assert env["PGBACKREST_REPO2_SFTP_HOST_KEY_CHECK_TYPE"] == "strict"
        assert env["PGBACKREST_CONFIG"] == "/run/secrets/pgbackrest.conf"
        assert "default" in compose["services"][name]["networks"]  # they reach the SFTP server
    backup_env = compose["services"]["backup"]["environment"]
    assert backup_env["PITR_REPO2_CIPHER_PASS"] == ""  # blanked over env_file
    db_secrets = next(v for v in config_volumes(cfg, tmp_path) if v.name == "db_secrets")
    files = {f.name: f.content for f in db_secrets.files}
    assert f"repo2-cipher-pass={CIPHER}".encode() in files["pgbackrest.conf"]
    assert files["pitr_repo2_key"].startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert files["pitr_repo2_known_hosts"].startswith(b"backup.example.net ")

    s3 = _load(
        tmp_path / "s3",
        {
            "PITR_REPO2_TYPE": "s3",
            "PITR_REPO2_S3_BUCKET": "backups",
            "PITR_REPO2_S3_ENDPOINT": "s3.example.net",
            "PITR_REPO2_S3_KEY": s3_key,
            "PITR_REPO2_S3_KEY_SECRET": s3_secret,
            "PITR_REPO2_CIPHER_PASS": CIPHER,
        },
    )
    text, compose = _compose(s3, tmp_path / "s3")
    assert s3_key not in text and s3_secret not in text and CIPHER not in text
    conf = pgbackrest_secret_conf(s3)
    assert f"repo2-s3-key={s3_key}" in conf and f"repo2-s3-key-secret={s3_secret}" in conf
    assert compose["services"]["db"]["environment"]["PGBACKREST_REPO2_S3_BUCKET"] == "backups"
    assert pgbackrest_secret_conf(_load(tmp_path / "plain")) == "[global]\n"


def test_bookworm_has_no_sftp_repositories(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {**SFTP, "POSTGRES_IMAGE": "postgres:15-bookworm"})
    assert "2.45" in _said(err) and "PITR_REPO2_TYPE" in _said(err)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latest", None),
        ("LATEST", None),
        ("2026-12-01T10:00:00Z", dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)),
        ("2026-12-01 11:00:00+01:00", dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)),
        ("2026-12-01T10:00:00.250000Z", dt.datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=dt.UTC)),
    ],
)
def test_targets_parse_to_utc(text: str, expected: dt.datetime | None) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(("text", "says"), [("2026-12-01 10:00", "no time zone"), ("yesterday", "neither")])
def test_a_bad_target_says_how_to_write_one(text: str, says: str) -> None:
    with pytest.raises(RestoreError) as err:
        parse_target(text)
    assert says in err.value.message and err.value.hint


# -- pitrctl.py ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pitrctl() -> ModuleType:
    folder = REPO / "templates" / "backup"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("pitrctl", folder / "pitrctl.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def _info_json(*backups: tuple[str, int, int, int]) -> str:
    return json.dumps(
        [
            {
                "name": "main",
                "status": {"code": 0, "message": "ok"},
                "backup": [
                    {
                        "label": label,
                        "type": "full",
                        "database": {"repo-key": repo},
                        "timestamp": {"start": start, "stop": stop},
                        "info": {"size": 10, "repository": {"delta": 5}},
                    }
                    for label, repo, start, stop in backups
                ],
            }
        ]
    )


def test_the_window_runs_from_the_oldest_backups_end_to_the_last_archived_segment(
    pitrctl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = int(dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp())
    out = _info_json(("A", 1, t0, t0 + 20), ("B", 2, t0 + 100, t0 + 130), ("C", 1, t0 + 3600, t0 + 3660))
    monkeypatch.setattr(pitrctl, "pgbackrest", lambda args, timeout=None: subprocess.CompletedProcess(args, 0, out, ""))
    monkeypatch.setattr(pitrctl, "psql", lambda sql: "2026-12-01T12:00:00Z|")
    monkeypatch.setenv("PITR_REPOS", "1 2")
    found = pitrctl.info()
    assert found["window"] == {"start": "2026-12-01T10:00:20Z", "end": "2026-12-01T12:00:00Z"}
    by_repo = {r["repo"]: r for r in found["repos"]}
    assert by_repo[2]["window"]["start"] == "2026-12-01T10:02:10Z" and by_repo[1]["backups"] == 2


def test_without_archiver_stats_the_window_ends_at_the_newest_backup(
    pitrctl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = int(dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp())
    out = _info_json(("A", 1, t0, t0 + 20))
    monkeypatch.setattr(pitrctl, "pgbackrest", lambda args, timeout=None: subprocess.CompletedProcess(args, 0, out, ""))

    def down(sql: str) -> str:
        raise RuntimeError("no socket")

    monkeypatch.setattr(pitrctl, "psql", down)
    found = pitrctl.info()
    assert found["window"] == {"start": "2026-12-01T10:00:20Z", "end": "2026-12-01T10:00:20Z"}
    empty = json.dumps([{"name": "main", "status": {"code": 2, "message": "no valid backups"}, "backup": []}])
    monkeypatch.setattr(
        pitrctl, "pgbackrest", lambda args, timeout=None: subprocess.CompletedProcess(args, 0, empty, "")
    )
    assert pitrctl.info()["window"] is None


def _recording(pitrctl: ModuleType, monkeypatch: pytest.MonkeyPatch, *, info: str = "") -> list[list[str]]:
    """pgBackRest stubbed: every call's arguments recorded, each succeeds (`info` prints INFO)."""
    seen: list[list[str]] = []

    def fake(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        seen.append(list(args))
        return subprocess.CompletedProcess(args, 0, info if args[0] == "info" else "", "")

    monkeypatch.setattr(pitrctl, "pgbackrest", fake)
    return seen


def test_latest_restores_to_the_end_of_the_archive_and_a_time_promotes(
    pitrctl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _recording(pitrctl, monkeypatch)
    pitrctl.restore("latest", None)
    pitrctl.restore("2026-12-01 10:00:00.000000+00", 2)
    assert seen[0] == ["restore", "--delta", "--type=default"]
    assert seen[1] == ["restore", "--delta", "--type=time", "--target=2026-12-01 10:00:00.000000+00",
                       "--target-action=promote", "--repo=2"]  # fmt: skip
    with pytest.raises(ValueError):
        pitrctl.safety("x'; DROP TABLE t; --")


# -- a new host: the cluster is not the repository's ---------------------------------------------
FRESH, OLD = 7716419391505453119, 7716419360727248912


def _mismatch_json(t0: int) -> str:
    """pgBackRest's info on a new host: repo1 made by the fresh cluster's stanza-create (no
    backup), repo2 the lost cluster's (as printed by pgBackRest 2.55.1 in that case)."""
    return json.dumps(
        [
            {
                "name": "main",
                "status": {"code": 5, "message": "database mismatch across repos"},
                "db": [
                    {"id": 1, "repo-key": 1, "system-id": FRESH, "version": "17"},
                    {"id": 1, "repo-key": 2, "system-id": OLD - 1, "version": "17"},
                    {"id": 2, "repo-key": 2, "system-id": OLD, "version": "17"},
                ],
                "backup": [
                    {
                        "label": "F",
                        "type": "full",
                        "database": {"id": 2, "repo-key": 2},
                        "timestamp": {"start": t0, "stop": t0 + 20},
                        "info": {"size": 10, "repository": {"delta": 5}},
                    }
                ],
            }
        ]
    )


def _fake_psql(system_id: int, archived: str = "2026-12-01T12:00:00Z") -> Any:
    def psql(sql: str) -> str:
        return str(system_id) if "pg_control_system" in sql else f"{archived}|"

    return psql


def test_the_window_says_whose_cluster_runs_and_ignores_another_clusters_archiver(
    pitrctl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = int(dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp())
    out = _mismatch_json(t0)
    monkeypatch.setattr(pitrctl, "pgbackrest", lambda args, timeout=None: subprocess.CompletedProcess(args, 0, out, ""))
    monkeypatch.setenv("PITR_REPOS", "1 2")
    monkeypatch.setattr(pitrctl, "psql", _fake_psql(FRESH))
    found = pitrctl.info(2)
    assert found["system_id"] == FRESH and found["source_repo"] == 2 and found["cluster_matches"] is False
    assert found["window"] == {"start": "2026-12-01T10:00:20Z", "end": "2026-12-01T10:00:20Z"}  # not the fresh one's
    assert {r["repo"]: r["system_id"] for r in pitrctl.info()["repos"]} == {1: FRESH, 2: OLD}  # the newest entry
    monkeypatch.setattr(pitrctl, "psql", _fake_psql(OLD))
    found = pitrctl.info(2)
    assert found["cluster_matches"] is True and found["window"]["end"] == "2026-12-01T12:00:00Z"


def test_another_clusters_stanza_stops_stanza_create_at_once_and_names_the_restore(
    pitrctl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    info = _mismatch_json(1_796_000_000)

    def fake(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        calls.append(args[0])
        if args[0] == "stanza-create":
            return subprocess.CompletedProcess(args, 28, "", "ERROR: [028]: backup and archive info files exist but …")
        return subprocess.CompletedProcess(args, 0, info, "")

    monkeypatch.setattr(pitrctl, "pgbackrest", fake)
    monkeypatch.setattr(pitrctl, "psql", _fake_psql(FRESH))
    with pytest.raises(pitrctl.OtherCluster) as err:
        pitrctl.stanza_create(deadline=1e12)  # a retry would never end: it must not retry
    assert calls == ["stanza-create", "info"]
    said = str(err.value)
    assert f"another cluster's backups are in repo2 (system id {OLD}; this database cluster is {FRESH})" in said
    assert "restore db --to latest --repo 2" in said and "PITR_REPO2_PATH" in said


def test_a_restore_first_deletes_the_stanzas_it_is_asked_to_reset(
    pitrctl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _recording(pitrctl, monkeypatch)
    pitrctl.restore("latest", 2, [1])
    assert seen == [["stop"], ["stanza-delete", "--repo=1", "--force"], ["start"],
                    ["restore", "--delta", "--type=default", "--repo=2"]]  # fmt: skip
    seen.clear()
    pitrctl.restore("latest", None)
    assert seen == [["restore", "--delta", "--type=default"]]  # nothing reset unless asked

    def refused(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        seen.append(list(args))
        return subprocess.CompletedProcess(args, 55 if args[0] == "stanza-delete" else 0, "", "ERROR: [055]: no")

    seen.clear()
    monkeypatch.setattr(pitrctl, "pgbackrest", refused)
    with pytest.raises(RuntimeError, match="stanza-delete --repo=1 --force failed"):
        pitrctl.restore("latest", 2, [1])
    assert ["restore", "--delta", "--type=default", "--repo=2"] not in seen  # no restore after a failed reset


def test_only_a_repository_without_backups_is_started_anew() -> None:
    from stackctl.core.pitr import PitrInfo, repos_to_reset

    source = PitrInfo("x", None, None, None, repos=[{"repo": 2, "backups": 3, "system_id": OLD}], source_repo=2)
    fresh = {"repo": 1, "backups": 0, "system_id": FRESH}
    everything = PitrInfo("x", None, None, None, repos=[fresh, {"repo": 2, "backups": 3, "system_id": OLD}])
    assert repos_to_reset(everything, source) == [1]
    same = PitrInfo("x", None, None, None, repos=[{**fresh, "system_id": OLD}, source.repos[0]])
    assert repos_to_reset(same, source) == []
    held = PitrInfo("x", None, None, None, repos=[{**fresh, "backups": 2}, source.repos[0]])
    with pytest.raises(RestoreError, match=r"repo1 holds 2 backup\(s\) of another cluster .*nothing was changed"):
        repos_to_reset(held, source)


def test_up_names_the_restore_when_the_offsite_repository_holds_another_cluster() -> None:
    from stackctl.config.profile import PROD
    from stackctl.core.stack import _unhealthy_hint

    line = (
        "2026-12-07T05:00:00Z pitrctl: another cluster's backups are in repo2 (system id 1; this database cluster "
        "is 2). On a new host, bring the data back with `restore db --to latest --repo 2`; otherwise ..."
    )
    hint = _unhealthy_hint({"pgbackrest": f"earlier\n{line}\n"}, PROD)
    assert hint.startswith("another cluster's backups are in repo2 (system id 1; this database cluster is 2)")
    assert "`stackctl restore db --to latest --repo 2 --prod`" in hint and "`stackctl up --prod`" in hint


S3 = {
    "PITR_REPO2_TYPE": "s3",
    "PITR_REPO2_S3_BUCKET": "backups",
    "PITR_REPO2_S3_ENDPOINT": "s3.example.net",
    "PITR_REPO2_S3_KEY": "AKIAUNITTEST0123",
    "PITR_REPO2_S3_KEY_SECRET": "unit-s3-secret-value-0123456789",
    "PITR_REPO2_CIPHER_PASS": CIPHER,
}


def test_a_missing_s3_ca_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {**S3, "PITR_REPO2_S3_CA_FILE": "./nowhere.pem"})
    assert "PITR_REPO2_S3_CA_FILE: file not found" in _said(err)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path / "port", {**S3, "PITR_REPO2_S3_PORT": "70000"})
    assert "PITR_REPO2_S3_PORT" in _said(err) and "between 1 and 65535" in _said(err)


def test_the_s3_ca_file_and_port_reach_pgbackrest(tmp_path: Path) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "s3-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nunit\n-----END CERTIFICATE-----\n")
    cfg = _load(tmp_path, {**S3, "PITR_REPO2_S3_CA_FILE": "./s3-ca.pem", "PITR_REPO2_S3_PORT": "9000"})
    text, compose = _compose(cfg, tmp_path)
    for secret in (S3["PITR_REPO2_S3_KEY"], S3["PITR_REPO2_S3_KEY_SECRET"], CIPHER):
        assert secret not in text
    for name in ("db", "pgbackrest"):
        env = compose["services"][name]["environment"]
        assert env["PGBACKREST_REPO2_STORAGE_CA_FILE"] == "/run/secrets/pitr_repo2_ca"
        assert env["PGBACKREST_REPO2_STORAGE_PORT"] == "9000"
        assert "db_secrets:/run/secrets" in _mounts(compose["services"][name])
        assert "default" in compose["services"][name]["networks"]  # they reach the S3 endpoint
    db_secrets = next(v for v in config_volumes(cfg, tmp_path) if v.name == "db_secrets")
    files = {f.name: f for f in db_secrets.files}
    assert files["pitr_repo2_ca"].content.startswith(b"-----BEGIN CERTIFICATE-----")
    assert files["pitr_repo2_ca"].mode == 0o440
    assert "pitr_repo2_key" not in files  # the SFTP files only with sftp
    conf = files["pgbackrest.conf"].content.decode()
    assert "storage-ca-file" not in conf  # a path, given as a variable; the file is no secret

    # without it, the image's system CAs and the default port
    plain = _load(tmp_path / "plain", S3)
    _, compose = _compose(plain, tmp_path / "plain")
    env = compose["services"]["db"]["environment"]
    assert "PGBACKREST_REPO2_STORAGE_CA_FILE" not in env and env["PGBACKREST_REPO2_STORAGE_PORT"] == "443"
    db_secrets = next(v for v in config_volumes(plain, tmp_path / "plain") if v.name == "db_secrets")
    assert "pitr_repo2_ca" not in {f.name for f in db_secrets.files}


# -- back to a safety point --------------------------------------------------------------------
def test_a_safety_point_is_kept_with_its_timeline_and_a_restore_goes_back_to_it(
    pitrctl: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pitrctl, "SAFETY_POINTS", tmp_path / "points.json")
    answers = {"pg_create_restore_point": "0/5000090", "pg_walfile_name": "000000030000000000000005"}

    def psql(sql: str) -> str:  # what the safety point asks; anything else: db is down (a restore runs)
        for key, value in answers.items():
            if key in sql:
                return value
        raise RuntimeError("no socket")

    monkeypatch.setattr(pitrctl, "psql", psql)
    t0 = int(dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp())
    out = _info_json(("OLD", 1, t0, t0 + 20), ("NEWER", 1, t0 + 100, t0 + 130), ("AFTER", 1, t0 + 9000, t0 + 9100))
    seen = _recording(pitrctl, monkeypatch, info=out)
    point = pitrctl.safety("stackctl-pre-restore-20261201T110000Z")
    assert point["timeline"] == 3  # from the WAL segment's name, not the last checkpoint
    assert pitrctl.safety_points() == [point]
    point["time"] = "2026-12-01T11:00:00Z"  # between NEWER's end and AFTER's
    (tmp_path / "points.json").write_text(json.dumps([point]))
    seen.clear()
    pitrctl.restore("latest", None, point="stackctl-pre-restore-20261201T110000Z")
    assert seen[-1] == ["restore", "--delta", "--type=name", "--target=stackctl-pre-restore-20261201T110000Z",
                        "--target-timeline=3", "--target-action=promote", "--set=NEWER"]  # fmt: skip
    with pytest.raises(ValueError, match="no safety point"):
        pitrctl.restore("latest", None, point="stackctl-pre-restore-20991201T110000Z")


def test_a_safety_point_needs_a_backup_from_before_it() -> None:
    from stackctl.core.pitr import PitrBackup, PitrInfo, _reachable

    point = {"name": "stackctl-pre-restore-20261201T110000Z", "time": "2026-12-01T11:00:00Z", "timeline": 1}
    before = PitrBackup("F", "full", 1, None, "2026-12-01T10:00:20Z", None, None)
    after = PitrBackup("G", "full", 2, None, "2026-12-01T12:00:00Z", None, None)
    _reachable(PitrInfo("ok", None, None, None, backups=[before], safety_points=[point]), point["name"], None)
    with pytest.raises(RestoreError, match="no backup in repo 2 ended before the safety point"):
        _reachable(PitrInfo("ok", None, None, None, backups=[before, after], safety_points=[point]), point["name"], 2)
    with pytest.raises(RestoreError, match="no safety point stackctl-pre-restore-20261201T120000Z is recorded"):
        _reachable(PitrInfo("ok", None, None, None, safety_points=[point]), "stackctl-pre-restore-20261201T120000Z", 1)
