"""The rendered backup/ folder: hadolint, shellcheck and modes; files without the .j2 suffix
copied as they are; and a backup service whose environment states every setting the
scripts read, with the validated value (they have no defaults of their own)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from stackctl.config import StackConfig
from stackctl.config.model import GROUPS
from stackctl.core import render
from stackctl.core.render import render_set, templates_dir
from tests.render.stackfiles import (
    CASES,
    backup_environment,
    backup_module,
    find_tool,
    load_fixture,
    render_case,
    run,
    write_tree,
)

PROD = next(case for case in CASES if case.name == "prod")
BACKUP_TEMPLATES = templates_dir() / "backup"
SCRIPTS = sorted(p.name for p in BACKUP_TEMPLATES.iterdir() if not p.name.endswith(".j2"))


@pytest.fixture(scope="module")
def backup_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backup-render")
    rendered = {k: v for k, v in render_case(PROD, root / "cfg").items() if k.startswith("backup/")}
    write_tree(root, rendered)
    return root / "backup"


def test_the_backup_folder_is_complete_and_modes_are_right(backup_dir: Path) -> None:
    files = {p.name: p.stat().st_mode & 0o777 for p in backup_dir.iterdir()}
    assert set(files) == {"Dockerfile", *SCRIPTS}
    assert files.pop("Dockerfile") == 0o644
    assert files.pop("Dockerfile.db") == 0o644  # db's image (pgBackRest added)
    assert set(files.values()) == {0o755}


def test_only_j2_files_go_through_jinja(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file without the suffix is copied byte for byte, text that looks like Jinja included."""
    tree = tmp_path / "templates"
    shutil.copytree(templates_dir(), tree)
    script = '#!/usr/bin/env bash\necho "{{ cfg }} {% if %} ${#keys[@]} {#"\n'
    (tree / "backup" / "odd.sh").write_text(script)
    (tree / "backup" / "notes.txt.j2").write_text("{{ cfg.database.postgres_db }}{# dropped #}!\n")
    monkeypatch.setattr(render, "templates_dir", lambda: tree)
    cfg = load_fixture(PROD.env, "prod", tmp_path / "cfg")
    rendered = render_set(cfg)
    assert rendered["backup/odd.sh"] == (script.encode(), 0o755)
    assert rendered["backup/notes.txt"] == (f"{cfg.database.postgres_db}!\n".encode(), 0o644)
    assert "{{" not in rendered["backup/Dockerfile"][0].decode()


def test_dockerfile_passes_hadolint(backup_dir: Path) -> None:
    result = run([find_tool("hadolint"), "--no-color", "Dockerfile"], cwd=backup_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (backup_dir / "Dockerfile").read_text()
    assert "# syntax=" not in text and "FROM ${POSTGRES_IMAGE}" in text


def test_scripts_pass_shellcheck(backup_dir: Path) -> None:
    scripts = sorted(p.name for p in backup_dir.glob("*.sh"))
    result = run([find_tool("shellcheck"), "--external-sources", "--severity=style", *scripts], cwd=backup_dir)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", [s for s in SCRIPTS if s.endswith(".sh") and s != "backup_common.sh"])
def test_scripts_are_strict(name: str, backup_dir: Path) -> None:
    text = (backup_dir / name).read_text()
    assert text.startswith(("#!/usr/bin/env bash\n", "#!/bin/sh\n"))
    assert "set -euo pipefail" in text or (text.startswith("#!/bin/sh") and "set -eu" in text)


# -- the settings the scripts read ------------------------------------------------------------

# Not from the backup service's environment: the image's ENV, and .env.prod (never rendered).
FROM_ELSEWHERE = {"BACKUP_ROOT", "POSTGRES_PASSWORD"}
# Values other than the defaults, so that a template stating a default instead is caught.
BACKUP_SETTINGS = {
    "POSTGRES_PORT": "5433",
    "DB_BACKUP_CRON": "15 2 * * 1-5",
    "DB_BACKUP_RETENTION_DAYS": "12",
    "DB_BACKUP_KEEP_DAILY": "3",
    "DB_BACKUP_KEEP_WEEKLY": "2",
    "MEDIA_BACKUP_CRON": "45 4 * * *",
    "MEDIA_BACKUP_TARGET": "rsync://backup.example.com/module/example",
    "BACKUP_COMPRESS_LEVEL": "4",
}


def _read_by_the_scripts() -> set[str]:
    """The variables the shell scripts `require` or `require_set`, and those backupctl.py reads."""
    names: set[str] = set()
    for script in BACKUP_TEMPLATES.glob("*.sh"):
        for line in script.read_text().splitlines():
            found = re.fullmatch(r"\s*require(?:_set)?((?: [A-Z][A-Z0-9_]*)+)", line)
            if found:
                names |= set(found[1].split())
    backupctl = backup_module("backupctl")
    return names | {*backupctl.TEXT_VARIABLES, *backupctl.COUNT_VARIABLES}


def _model_value(cfg: StackConfig, name: str) -> str:
    """NAME's value in the validated config, written as compose states it."""
    for key, group_cls in GROUPS.items():
        if name.lower() in group_cls.model_fields:
            value = getattr(getattr(cfg, key), name.lower())
            if isinstance(value, list):
                return ",".join(str(v) for v in value)
            return "" if value is None else str(value)
    raise AssertionError(f"{name} is not a setting of the config model")


def test_the_backup_service_states_every_setting_the_scripts_read(docker_compose: list[str], tmp_path: Path) -> None:
    cfg = load_fixture(PROD.env, "prod", tmp_path / "cfg", extra=BACKUP_SETTINGS)
    environment = backup_environment(docker_compose, cfg, tmp_path / "stack")
    read = _read_by_the_scripts()
    assert {"BACKUP_ROOT", "POSTGRES_HOST", "MEDIA_BACKUP_TARGET", *BACKUP_SETTINGS} <= read  # the scan works
    missing = sorted(read - FROM_ELSEWHERE - set(environment))
    assert not missing, f"docker-compose.prod.yml does not give the backup service {missing}"
    assert {name: environment[name] for name in read - FROM_ELSEWHERE} == {
        name: _model_value(cfg, name) for name in read - FROM_ELSEWHERE
    }
    # blanked over .env.prod: the password is a secret file, read through POSTGRES_PASSWORD_FILE
    assert environment["POSTGRES_PASSWORD"] == ""
    assert environment["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "ENV BACKUP_ROOT=/backups " in (tmp_path / "stack" / "backup" / "Dockerfile").read_text()


def test_acme_dockerfile_adds_certbot_and_passes_hadolint(tmp_path: Path) -> None:
    """TLS_CERT_SOURCE=acme: certbot from the image's own Debian release, stackbackup in the
    group of gid 101 (nginx's workers'), the volumes' mount points owned as certctl.py writes."""
    acme = next(case for case in CASES if case.name == "tls-acme-prod")
    rendered = {k: v for k, v in render_case(acme, tmp_path / "cfg").items() if k.startswith("backup/")}
    write_tree(tmp_path, rendered)
    text = (tmp_path / "backup" / "Dockerfile").read_text()
    assert "certbot openssl" in text and "install -d -o stackbackup -g 101 -m 0750 /nginx-certs" in text
    assert "certctl.py" in {p.name for p in (tmp_path / "backup").iterdir()}
    result = run([find_tool("hadolint"), "--no-color", "Dockerfile"], cwd=tmp_path / "backup")
    assert result.returncode == 0, result.stdout + result.stderr
    plain = render_case(PROD, tmp_path / "plain")["backup/Dockerfile"][0].decode()
    assert "certbot" not in plain  # only stacks with ACME certificates carry it
