"""Bad input from a real project: a settings module that fails to import gets an error naming
the file and the line, and `up --prod` fails instead of reporting a healthy stack."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest

from tests.e2e.stackenv import Proj, free_port
from tests.e2e.test_real_projects import CORPUS, _init, _prepare_env, _remove_images

pytestmark = pytest.mark.engine

BROKEN_MIDDLEWARE_SETTINGS = ['MIDDLEWARE = ["journal.e2e_broken.SigningMiddleware", *MIDDLEWARE]']
BROKEN_MIDDLEWARE = """import os


class SigningMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.signing_key = os.environ["E2E_SIGNING_KEY"]
        return self.get_response(request)
"""


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
        # the exception itself, quoted under the error (not only the log tail above it)
        assert "web's last exception:\nTraceback (most recent call last):" in message, message
        assert "ModuleNotFoundError: No module named 'a_module_nobody_installed'" in message, message
        # manage on that web: its state said plainly, not docker's raw 126 or a silent 137
        manage = proj.stackctl("manage", "check", timeout=300)
        assert manage.returncode == 6, (manage.returncode, manage.stdout, manage.stderr)
        assert re.search(rf"error: web of {name}-prod (is restarting|has exited) \(", manage.stderr), manage.stderr
        assert "cannot exec" not in manage.stderr and "ModuleNotFoundError" in manage.stderr, manage.stderr

        # a web that starts but fails every request (its healthcheck too): the tail shows only
        # `Internal Server Error: /healthz`; the error quotes the exception and names the variable
        settings.write_text("\n".join([*lines[:-1], *BROKEN_MIDDLEWARE_SETTINGS]) + "\n")
        (root / "journal" / "e2e_broken.py").write_text(BROKEN_MIDDLEWARE)
        up = proj.stackctl("up", "--timeout", "180", timeout=900)
        assert up.returncode == 6, up.stdout + up.stderr
        message = up.stderr
        assert "web's last exception:" in message and "KeyError: 'E2E_SIGNING_KEY'" in message, message
        assert 'File "/app/journal/e2e_broken.py", line 9, in __call__' in message, message
        assert (
            "hint: KeyError (journal/e2e_broken.py:9) names E2E_SIGNING_KEY: set E2E_SIGNING_KEY in .env.prod"
        ) in message, message
        assert "read the logs above" not in message
    finally:
        proj.stackctl("down", "--volumes", "--yes", timeout=300)
        _remove_images(proj.name)


def test_a_requirement_that_cannot_compile_is_named_with_the_package_it_needs(tmp_path: Path) -> None:
    """python-ldap has no wheel: it compiles against OpenLDAP's headers, which the builder's
    default toolchain lacks. The build fails, and the error names the requirement, the header
    and the Debian package, and where to add it (BUILD_PACKAGES in .env.prod, by path)."""
    root = tmp_path / "startproject52"
    shutil.copytree(CORPUS / "startproject52", root, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    requirements = root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "python-ldap==3.4.8\n")
    init = _init(root)
    env_file = root / init["stack_dir"] / ".env.prod"
    name = f"e2e{uuid.uuid4().hex[:8]}"
    _prepare_env(env_file, name, free_port(), free_port())
    proj = Proj(root, f"{name}-prod", 0, 0, True)
    try:
        up = proj.stackctl("up", "--timeout", "180", timeout=900)
        assert up.returncode != 0, up.stdout + up.stderr
        message = up.stderr
        assert "the requirement python-ldap" in message and "did not build from source" in message, message
        assert "lber.h not found" in message or "ldap.h not found" in message, message
        assert f'BUILD_PACKAGES="libldap-dev" in {env_file}' in message, message
        assert "exit 1)" not in message.splitlines()[0], message  # not the bare "docker compose build failed (exit 1)"
    finally:
        proj.stackctl("down", "--volumes", "--yes", timeout=300)
        _remove_images(proj.name)
