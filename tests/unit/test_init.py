"""`stackctl init`: detection, env files with fresh secrets, render-plan-write, idempotence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(REPO / "example", root / "example", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_init_writes_env_files_with_secrets_and_renders(cli, project: Path) -> None:
    result = cli("init", cwd=project)
    assert result.code == 0, result.err
    for name in (".env", ".env.prod"):
        env = project / name
        assert env.stat().st_mode & 0o777 == 0o600
        assert "DJANGO_SECRET_KEY=" in env.read_text()
    dev_key = next(
        line for line in (project / ".env").read_text().splitlines() if line.startswith("DJANGO_SECRET_KEY=")
    )
    prod_key = next(
        line for line in (project / ".env.prod").read_text().splitlines() if line.startswith("DJANGO_SECRET_KEY=")
    )
    assert dev_key != prod_key and len(prod_key) > 60
    for path in (
        "docker-compose.yml",
        "docker-compose.prod.yml",
        "compose/Dockerfile",
        "compose/entrypoint.sh",
        "nginx/nginx.conf",
        "nginx/nginx.prod.conf",
        "backup/Dockerfile",
        ".env.example",
        ".dockerignore",
    ):
        assert (project / path).is_file(), path
    assert (project / "compose/entrypoint.sh").stat().st_mode & 0o111
    gitignore = (project / ".gitignore").read_text().splitlines()
    assert {".env", ".env.prod"} <= set(gitignore)
    # secrets never reach the output or a rendered file
    secret = dev_key.split("=", 1)[1]
    assert secret not in result.output
    rendered = [p for p in tree(project) if not p.startswith((".env", "example/", ".stackctl"))]
    assert all(secret.encode() not in (project / p).read_bytes() for p in rendered)


def test_second_run_is_all_identical(cli, project: Path) -> None:
    assert cli("init", cwd=project).code == 0
    before = tree(project)
    result = cli("init", "--json", cwd=project)
    assert result.code == 0
    actions = {f["action"] for f in json.loads(result.out)["files"]}
    assert actions == {"identical"}
    assert tree(project) == before


def test_dry_run_writes_nothing(cli, project: Path) -> None:
    before = tree(project)
    result = cli("init", "--dry-run", cwd=project)
    assert result.code == 0
    assert "create  docker-compose.yml" in result.out
    assert "dry run: nothing was written" in result.err
    assert tree(project) == before


def test_hand_edit_is_a_conflict_without_force(cli, project: Path) -> None:
    assert cli("init", cwd=project).code == 0
    nginx = project / "nginx/nginx.conf"
    nginx.write_text(nginx.read_text() + "# my tweak\n")
    (project / ".env").write_text((project / ".env").read_text() + "WEB_CONCURRENCY=3\n")
    before = tree(project)
    result = cli("init", cwd=project)
    assert result.code == 8
    assert "edited by hand since stackctl rendered it: nginx/nginx.conf" in result.err
    assert "--force" in result.err
    assert tree(project) == before  # all or nothing: docker-compose.yml was not updated either
    assert cli("init", "--force", cwd=project).code == 0
    assert "# my tweak" not in nginx.read_text()


def test_render_check_detects_drift(cli, project: Path) -> None:
    assert cli("init", cwd=project).code == 0
    assert cli("render", "--check", cwd=project).code == 0
    (project / ".env").write_text((project / ".env").read_text() + "WEB_CONCURRENCY=4\n")
    drift = cli("render", "--check", cwd=project)
    assert drift.code == 1 and "drift from .env" in drift.err and "nginx/nginx.conf" in drift.err
    assert cli("render", cwd=project).code == 0
    assert cli("render", "--check", cwd=project).code == 0


def test_invalid_existing_env_writes_nothing(cli, project: Path) -> None:
    assert cli("init", cwd=project).code == 0
    (project / ".env").write_text((project / ".env").read_text() + "DB_BACKUP_CRON=every day\n")
    (project / "nginx/nginx.conf").unlink()
    before = tree(project)
    result = cli("init", cwd=project)
    assert result.code == 1
    assert "DB_BACKUP_CRON [Database]: not a valid 5-field cron expression" in result.err
    assert tree(project) == before


def test_detection_failure_says_what_it_looked_for(cli, tmp_path: Path) -> None:
    result = cli("init", cwd=tmp_path)
    assert result.code == 1
    assert "looked for manage.py here and one folder down" in result.err
    (tmp_path / "manage.py").write_text("import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site.settings')\n")
    result = cli("init", cwd=tmp_path)
    assert result.code == 1
    assert "manage.py: DJANGO_SETTINGS_MODULE default 'site.settings' names no module" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "manage.py"]  # nothing written


def test_init_says_which_module_prod_runs_when_it_guesses(cli, tmp_path: Path) -> None:
    root = tmp_path / "guess"
    files = {
        "manage.py": "import sys\nfrom django.core.management import execute_from_command_line\n",
        "app/__init__.py": "",
        "app/urls.py": "urlpatterns = []\n",
        "app/settings/__init__.py": "",
        "app/settings/base.py": "DEBUG = False\n",
        "app/settings/development.py": "from .base import *\nDEBUG = True\n",
        "app/settings/production.example.py": "from .base import *\n",
        "requirements.txt": "Django==5.2.19\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    result = cli("init", "--dry-run", cwd=root)
    assert result.code == 0, result.err
    assert (
        "warning: prod runs app.settings.base, a guess: app.settings has no production/prod/live module; "
        "base is the shared base, not the dev module app.settings.development; "
        "to run another, set DJANGO_SETTINGS_MODULE in .env.prod"
    ) in " ".join(result.err.split())
    data = cli("init", "--dry-run", "--json", cwd=root)
    settings = json.loads(data.out)["detected"]["settings"]
    assert (settings["prod"], settings["dev"], settings["prod_guessed"]) == (
        "app.settings.base",
        "app.settings.development",
        True,
    )
    assert settings["prod_reason"].startswith("app.settings has no production/prod/live module")
