"""`stackctl ci github`: the workflow for three project shapes (requirements.txt, Poetry, uv),
each validated by actionlint (with shellcheck over its `run:` scripts), and how it is written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stackctl.core.ciworkflow import WORKFLOW_PATH, plan_workflow
from tests.conftest import CliResult

ACTIONLINT = Path(sys.executable).parent / "actionlint"

MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


def _django(root: Path) -> None:
    (root / "mysite").mkdir(parents=True)
    (root / "manage.py").write_text(MANAGE)
    (root / "mysite" / "__init__.py").write_text("")
    (root / "mysite" / "settings.py").write_text("SECRET_KEY = 'x'\n")
    (root / "mysite" / "asgi.py").write_text("application = None\n")


def requirements_project(root: Path) -> None:
    _django(root)
    (root / "requirements.txt").write_text("Django==5.2.1\n")
    (root / "requirements-dev.txt").write_text("-r requirements.txt\npytest==9.0.1\npytest-django==4.11.1\n")
    (root / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = mysite.settings\n")


def poetry_project(root: Path) -> None:
    _django(root)
    (root / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "mysite"\nversion = "0.1.0"\n\n'
        '[tool.poetry.dependencies]\npython = "^3.12"\nDjango = "^5.2"\n'
    )
    (root / "poetry.lock").write_text("# poetry lock\n")


def uv_project(root: Path) -> None:
    _django(root)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "mysite"\nversion = "0.1.0"\nrequires-python = ">=3.11,<3.13"\n'
        'dependencies = ["django>=5.2"]\n\n[tool.pytest.ini_options]\nDJANGO_SETTINGS_MODULE = "mysite.settings"\n'
    )
    (root / "uv.lock").write_text("version = 1\n")


SHAPES: dict[str, tuple[Callable[[Path], None], list[str], str, str]] = {
    # shape: (make it, install lines, test command, python)
    "requirements": (
        requirements_project,
        ["python -m pip install -r requirements.txt", "python -m pip install -r requirements-dev.txt"],
        "python -m pytest",
        "3.13",
    ),
    "poetry": (
        poetry_project,
        ["pipx install poetry", "poetry install --no-interaction --no-root"],
        "poetry run python manage.py test",
        "3.13",
    ),
    "uv": (uv_project, ["uv sync --locked"], "uv run python -m pytest", "3.12"),
}


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.is_file(), "actionlint is missing: pip install -r requirements/lock.txt"
    assert shutil.which("shellcheck"), "shellcheck is missing (scripts/test.sh installs it)"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", str(path)], capture_output=True, text=True, check=False, env=os.environ
    )


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_workflow_of_each_shape_passes_actionlint(tmp_path: Path, shape: str) -> None:
    make, installs, tests, python = SHAPES[shape]
    make(tmp_path)
    workflow = plan_workflow(tmp_path)
    assert workflow.action == "create"
    path = tmp_path / WORKFLOW_PATH
    path.parent.mkdir(parents=True)
    path.write_text(workflow.text)
    lint = actionlint(path)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    text = workflow.text
    assert 'branches: ["main"]' in text
    assert f'python-version: "{python}"' in text
    for line in installs:
        assert f"\n          {line}\n" in text or f"run: {line}\n" in text, line
    assert "      - name: Tests\n" in text and f"run: {tests}\n" in text and workflow.tests == tests
    assert "ruff check .\n" in text
    assert "    needs: test\n" in text
    assert text.endswith('run: stackctl --host "ssh://${DEPLOY_USER}@${DEPLOY_HOST}" deploy --prod\n')


@pytest.mark.parametrize("shape", list(SHAPES))
def test_secrets_reach_the_runner_only_through_env_and_files_of_mode_600(tmp_path: Path, shape: str) -> None:
    SHAPES[shape][0](tmp_path)
    text = plan_workflow(tmp_path).text
    for line in text.splitlines():
        if "secrets." in line and not line.lstrip().startswith("#"):
            # only as an env value, never interpolated into a script
            assert line.split(": ", 1)[1].startswith("${{ secrets.") and line.endswith("}}"), line
    script = text.split("SSH key, known hosts and .env.prod from the secrets", 1)[1].split("- name: Deploy", 1)[0]
    assert "DEPLOY_SSH_KEY: ${{ secrets.DEPLOY_SSH_KEY }}" in script
    assert "DEPLOY_KNOWN_HOSTS: ${{ secrets.DEPLOY_KNOWN_HOSTS }}" in script
    assert "STACK_ENV_FILE: ${{ secrets.STACKCTL_ENV_PROD }}" in script
    assert "run: |\n          umask 077\n" in script
    assert "chmod 600 ~/.ssh/deploy_key ~/.ssh/known_hosts ~/.ssh/config" in script
    assert "chmod 600 .env.prod" in script
    assert "echo" not in script and "set -x" not in script
    assert "DEPLOY_HOST: ${{ secrets.DEPLOY_HOST }}" in text and "DEPLOY_USER: ${{ secrets.DEPLOY_USER }}" in text


def test_requirements_without_pytest_config_runs_manage_py_test_in_the_project_folder(tmp_path: Path) -> None:
    _django(tmp_path / "src")
    (tmp_path / "src" / "requirements.txt").write_text("Django==5.2.1\n")
    workflow = plan_workflow(tmp_path / "src")
    assert workflow.tests == "python manage.py test" and "run: python manage.py test\n" in workflow.text


def test_a_named_environment_and_branch(tmp_path: Path) -> None:
    uv_project(tmp_path)
    workflow = plan_workflow(tmp_path, branch="release", env="staging")
    assert 'branches: ["release"]' in workflow.text and "    environment: staging\n" in workflow.text
    assert workflow.text.endswith("deploy --env staging\n")
    assert "secrets.STACKCTL_ENV_STAGING" in workflow.text and "> .env.staging" in workflow.text
    path = tmp_path / WORKFLOW_PATH
    path.parent.mkdir(parents=True)
    path.write_text(workflow.text)
    lint = actionlint(path)
    assert lint.returncode == 0, lint.stdout


def test_cli_dry_run_writes_nothing_then_writes_then_refuses_a_different_file(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    requirements_project(tmp_path)
    path = tmp_path / WORKFLOW_PATH
    dry = cli("ci", "github", "--dry-run", cwd=tmp_path)
    assert dry.code == 0, dry.err
    assert "name: deploy" in dry.out and not path.exists()

    first = cli("ci", "github", cwd=tmp_path)
    assert first.code == 0, first.err
    assert "create: .github/workflows/deploy.yml" in first.err
    assert path.read_text() == dry.out
    again = cli("ci", "github", cwd=tmp_path)
    assert again.code == 0 and "identical" in again.err

    path.write_text(path.read_text() + "# my edit\n")
    refused = cli("ci", "github", cwd=tmp_path)
    assert refused.code == 8, refused.err
    assert "--force" in refused.err and path.read_text().endswith("# my edit\n")
    forced = cli("ci", "github", "--force", cwd=tmp_path)
    assert forced.code == 0 and "overwrite" in forced.err
    assert path.read_text() == dry.out


@pytest.mark.parametrize(
    ("args", "message"), [(["--env", "dev"], "not a deploy environment"), (["--branch", "a b"], "not a branch name")]
)
def test_bad_options_are_refused(tmp_path: Path, cli: Callable[..., CliResult], args: list[str], message: str) -> None:
    requirements_project(tmp_path)
    result = cli("ci", "github", *args, cwd=tmp_path)
    assert result.code == 1 and message in result.err
    assert not (tmp_path / ".github").exists()


def test_a_folder_without_a_django_project_is_an_error(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("ci", "github", cwd=tmp_path)
    assert result.code == 1 and "no Django project found" in result.err
