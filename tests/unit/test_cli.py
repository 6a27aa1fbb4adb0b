"""The CLI edge: help, version, exit codes, errors that name file/variable/fix, no secrets."""

from __future__ import annotations

from pathlib import Path

SECRET = "Very-Secret-Value-" + "x" * 40


def _commands(help_text: str) -> list[str]:
    """The command names of a --help page: the first word of each line under "Commands:"."""
    _, _, rest = help_text.partition("Commands:\n")
    names = []
    for line in rest.splitlines():
        if not line.startswith("  "):
            break
        if not line.startswith("   "):  # continuation lines are indented further
            names.append(line.split()[0])
    return names


def test_help_lists_the_command_set(cli) -> None:
    result = cli("--help")
    assert result.code == 0
    assert sorted(_commands(result.out)) == sorted(
        [
            *("init", "render", "check", "up", "down", "status", "logs", "manage", "backup", "restore", "engine"),
            *("images", "certs", "ci", "deploy", "releases", "rollback", "plan"),
        ]
    )
    assert sorted(_commands(cli("backup", "--help").out)) == ["list", "now", "prune", "verify"]
    assert sorted(_commands(cli("restore", "--help").out)) == ["db", "media"]
    assert sorted(_commands(cli("engine", "--help").out)) == ["ensure", "status", "stop"]


def test_shell_completion_is_on(cli) -> None:
    result = cli("--help")
    assert "--install-completion" in result.out and "--show-completion" in result.out


def test_completion_completes_commands(stackctl_proc, tmp_path: Path) -> None:
    """The protocol the installed bash completion script speaks (typer/click's env variables)."""
    env = {"_STACKCTL_COMPLETE": "complete_bash", "COMP_WORDS": "stackctl resto", "COMP_CWORD": "1"}
    result = stackctl_proc(cwd=tmp_path, env=env)
    assert result.code == 0
    assert result.out.split() == ["restore"]
    env = {"_STACKCTL_COMPLETE": "complete_bash", "COMP_WORDS": "stackctl restore ", "COMP_CWORD": "2"}
    assert stackctl_proc(cwd=tmp_path, env=env).out.split() == ["db", "media"]


def test_backup_name_completion_offers_nothing_without_a_stack(stackctl_proc, tmp_path: Path) -> None:
    """Completing a backup name with no prod stack must not print an error into the shell."""
    env = {"_STACKCTL_COMPLETE": "complete_bash", "COMP_WORDS": "stackctl restore db ", "COMP_CWORD": "3"}
    result = stackctl_proc(cwd=tmp_path, env=env)
    assert result.code == 0 and result.out.strip() == "" and result.err == ""


def test_the_fast_root_help_is_typers_own(cli, monkeypatch, capsys) -> None:
    """stackctl.cli answers --help from help.txt without importing typer: it must be exactly
    what typer prints (regenerate: COLUMNS=80 python -c "from stackctl.cli.app import main;
    main(['--help'])" > stackctl/cli/help.txt)."""
    import stackctl.cli as entry

    for columns in ("80", "200"):
        monkeypatch.setenv("COLUMNS", columns)
        assert cli("--help").out == entry.HELP_FILE.read_text(), "stackctl/cli/help.txt is stale"
    entry.main(["--help"])
    assert capsys.readouterr().out == entry.HELP_FILE.read_text()
    entry.main(["--version"])
    from stackctl import __version__

    assert capsys.readouterr().out == f"stackctl {__version__}\n"


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


def test_verbose_forwards_the_docker_command_log(monkeypatch, capsys) -> None:
    """-v shows each command python-on-whales runs (its logger), -vv also stackctl's own lines."""
    import logging

    from stackctl.adapters.docker import log_commands
    from stackctl.console import Console

    for name in ("python_on_whales", "stackctl"):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    monkeypatch.setenv("NO_COLOR", "1")
    log_commands(Console(verbosity=1).debug, verbosity=1)
    logging.getLogger("python_on_whales.utils").debug("Running command: %s", "docker ps")
    logging.getLogger("stackctl.docker").debug("compose project x")
    err = capsys.readouterr().err
    assert err == "Running command: docker ps\n"
    log_commands(Console(verbosity=2).debug, verbosity=2)
    logging.getLogger("stackctl.docker").debug("compose project x")
    assert "compose project x" in capsys.readouterr().err


def test_tables_never_cut_a_cell(capsys, monkeypatch) -> None:
    from stackctl.console import Console

    monkeypatch.setenv("COLUMNS", "40")
    name = "django-20261201T200305Z.dump-with-a-long-label"
    Console().table(("name", "kind", "size"), [(name, "db", "1.2 MB"), ("x", "media", "3 B")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [name, "db", "1.2", "MB"]
    assert lines[0].index("kind") == lines[1].index("db")  # aligned


def test_debug_env_shows_traceback(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STACKCTL_DEBUG", "1")
    result = cli("check", cwd=tmp_path)
    assert result.code == 1
    assert "Traceback" in result.err


def test_host_after_the_command_is_the_apps_option() -> None:
    from stackctl.cli.app import hoist_host

    moved = hoist_host(["deploy", "--prod", "--host", "ssh://u@h:2222"])
    assert moved == ["--host", "ssh://u@h:2222", "deploy", "--prod"]
    assert hoist_host(["-v", "status", "--host=ssh://h", "--json"]) == ["--host=ssh://h", "-v", "status", "--json"]
    assert hoist_host(["--host", "ssh://h", "status"]) == ["--host", "ssh://h", "status"]
    # manage's arguments are manage.py's, and nothing after `--` is an option of ours
    assert hoist_host(["manage", "runserver", "--host", "x"]) == ["manage", "runserver", "--host", "x"]
    assert hoist_host(["backup", "verify", "--", "--host"]) == ["backup", "verify", "--", "--host"]
