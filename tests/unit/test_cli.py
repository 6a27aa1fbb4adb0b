"""The CLI edge: help, version, exit codes, errors that name file/variable/fix, no secrets."""

from __future__ import annotations

from pathlib import Path

SECRET = "Very-Secret-Value-" + "x" * 40


def test_help_lists_the_command_set(cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in (
        "init",
        "render",
        "check",
        "up",
        "down",
        "status",
        "logs",
        "manage",
        "backup",
        "restore",
        "engine",
        "images",
    ):
        assert command in result.out
    sub = cli("backup", "--help")
    for command in ("now", "list", "verify", "prune"):
        assert command in sub.out
    assert {"db", "media"} <= set(cli("restore", "--help").out.split())


def test_version(cli) -> None:
    from stackctl import __version__

    assert cli("--version").out.strip() == f"stackctl {__version__}"


def test_unknown_command_is_a_usage_error(cli) -> None:
    assert cli("frobnicate").code == 2


def test_check_reports_every_problem_and_exits_1(cli, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"DJANGO_SECRET_KEY={SECRET}\nPOSTGRES_PASSWORD={SECRET}\nDB_BACKUP_CRON=bad\nDATABASE_URL=ftp://u:{SECRET}@h/x\n"
    )
    result = cli("check", cwd=tmp_path)
    assert result.code == 1
    assert "DB_BACKUP_CRON [Database]: not a valid 5-field cron expression" in result.err
    assert "DATABASE_URL [Database]: not a postgres URL" in result.err
    assert "2 configuration error(s)" in result.err
    assert SECRET not in result.output


def test_check_json(cli, tmp_path: Path) -> None:
    import json

    (tmp_path / ".env.prod").write_text(f"DJANGO_SECRET_KEY={SECRET}\nPOSTGRES_PASSWORD=x\nDJANGO_DEBUG=true\n")
    result = cli("check", "--prod", "--json", cwd=tmp_path)
    assert result.code == 1
    payload = json.loads(result.out)
    assert payload["ok"] is False
    assert {"severity": "error", "variable": "DJANGO_DEBUG", "group": "Django"}.items() <= payload["problems"][
        0
    ].items()


def test_missing_env_file_names_the_fix(cli, tmp_path: Path) -> None:
    result = cli("up", cwd=tmp_path)
    assert result.code == 1
    assert ".env: file not found; fix: run `stackctl init`" in result.err


def test_destructive_down_refuses_without_terminal(cli, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DJANGO_SECRET_KEY={SECRET}\nPOSTGRES_PASSWORD=x\n")
    result = cli("down", "--volumes", cwd=tmp_path)
    assert result.code == 9
    assert "no terminal can answer" in result.err and "--yes" in result.err


def test_debug_env_shows_traceback(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STACKCTL_DEBUG", "1")
    result = cli("check", cwd=tmp_path)
    assert result.code == 1
    assert "Traceback" in result.err
