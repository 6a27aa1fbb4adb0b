"""The rendered backup/ folder: hadolint, shellcheck, modes, and scripts free of Jinja syntax.

The scripts and python modules are rendered like every template, but hold no Jinja syntax,
so they render to themselves: the unit tests import backupctl.py from templates/ as is, and
docs/deployment.md can quote them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.core.render import templates_dir
from tests.render.stackfiles import CASES, find_tool, render_case, run, write_tree

PROD = next(case for case in CASES if case.name == "prod")
SCRIPTS = sorted(p.name for p in (templates_dir() / "backup").iterdir() if not p.name.endswith(".j2"))


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
    assert set(files.values()) == {0o755}


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_render_to_themselves(name: str, backup_dir: Path) -> None:
    assert (backup_dir / name).read_bytes() == (templates_dir() / "backup" / name).read_bytes()


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


def test_the_backup_service_gets_the_validated_settings(tmp_path: Path) -> None:
    """.env.prod may leave variables at their defaults: compose states them for the container."""
    compose = render_case(PROD, tmp_path)["docker-compose.prod.yml"][0].decode()
    block = compose[compose.index("\n  backup:\n") :]
    for name in ("POSTGRES_USER", "POSTGRES_DB", "POSTGRES_HOST", "DB_BACKUP_CRON", "MEDIA_ROOT", "MEDIA_BACKUP_CRON"):
        assert f"\n      {name}: " in block
    assert "POSTGRES_PASSWORD" not in block  # from .env.prod only
