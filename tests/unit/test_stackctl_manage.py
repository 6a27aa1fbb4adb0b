"""templates/compose/stackctl/stackctl_manage.py: the project's manage.py runs as itself, but
its assignment of DJANGO_SETTINGS_MODULE no longer replaces the stack's settings module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MODULES = Path(__file__).resolve().parents[2] / "templates" / "compose" / "stackctl"
MANAGE = """import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"  # wsgi_only's shape: an assignment
os.environ["OTHER"] = "set by manage.py"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.dev")
print(os.environ["DJANGO_SETTINGS_MODULE"], os.environ["OTHER"], sys.argv[1:], sys.path[0] == os.getcwd())
"""


def _run(tmp_path: Path, env: dict[str, str]) -> str:
    (tmp_path / "manage.py").write_text(MANAGE)
    done = subprocess.run(
        [sys.executable, "-m", "stackctl_manage", "check", "--deploy"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(MODULES), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_stacks_settings_module_stays(tmp_path: Path) -> None:
    out = _run(tmp_path, {"DJANGO_SETTINGS_MODULE": "stackctl_settings"})
    assert out == "stackctl_settings set by manage.py ['check', '--deploy'] True"


def test_without_one_the_projects_assignment_counts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    (tmp_path / "manage.py").write_text(MANAGE)
    done = subprocess.run(
        [sys.executable, "-m", "stackctl_manage"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(MODULES)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("mysite.settings set by manage.py [] True")
