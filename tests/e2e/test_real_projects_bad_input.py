"""Bad input from a real project: a settings module that fails to import gets an error naming
the file and the line, and `up --prod` fails instead of reporting a healthy stack."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.e2e.stackenv import Proj, free_port
from tests.e2e.test_real_projects import CORPUS, _init, _prepare_env, _remove_images

pytestmark = pytest.mark.engine


def test_a_settings_module_that_fails_to_import_is_named_with_its_line(tmp_path: Path) -> None:
    root = tmp_path / "hardcoded_debug"
    shutil.copytree(CORPUS / "hardcoded_debug", root, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    settings = root / "journal" / "settings.py"
    lines = settings.read_text().splitlines()
    lines.append("import a_module_nobody_installed  # noqa")
    settings.write_text("\n".join(lines) + "\n")
    init = _init(root)
    env_file = root / init["stack_dir"] / ".env.prod"
    name = f"e2e{uuid.uuid4().hex[:8]}"
    _prepare_env(env_file, name, free_port(), free_port())
    proj = Proj(root, f"{name}-prod", 0, 0, True)
    try:
        up = proj.stackctl("up", "--timeout", "180", timeout=900)
        assert up.returncode != 0, up.stdout + up.stderr
        message = up.stderr
        assert "the settings module journal.settings failed to load at journal/settings.py, line" in message, message
        assert f"line {len(lines)}" in message and "a_module_nobody_installed" in message, message
        assert "is healthy" not in message
    finally:
        proj.stackctl("down", "--volumes", "--yes", timeout=300)
        _remove_images(proj.name)
