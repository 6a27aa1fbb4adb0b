"""A Django project nobody here wrote: a plain `django-admin startproject`, with no /healthz,
no STATIC_ROOT and no environment-driven settings. init warns about what it lacks; up works."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.stackenv import STACKCTL, free_port, http, set_env

pytestmark = pytest.mark.engine


def test_startproject_app_comes_up(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    # django-admin from a throwaway venv: the project is generated, not copied from this repo
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "Django==5.2.19"], check=True, timeout=300)
    subprocess.run([str(venv / "bin/django-admin"), "startproject", "mysite", str(root)], check=True)
    (root / "requirements.txt").write_text("Django==5.2.19\ndaphne==4.2.3\n")

    init = subprocess.run([str(STACKCTL), "init", "--local-images"], cwd=root, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    assert "requirements.txt: does not list a postgres driver; fix: add psycopg" in init.stderr
    assert "settings mysite.settings, ASGI mysite.asgi:application" in init.stderr
    port = free_port()
    set_env(
        root / ".env", STACK_NAME=f"foreign{uuid.uuid4().hex[:6]}", HTTP_PORT=str(port), NGINX_BIND_ADDRESS="127.0.0.1"
    )
    try:
        up = subprocess.run(
            [str(STACKCTL), "up", "--timeout", "150"], cwd=root, capture_output=True, text=True, timeout=900
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert http(f"http://127.0.0.1:{port}/admin/login/").status == 200
        css = http(f"http://127.0.0.1:{port}/static/admin/css/base.css")
        assert css.status == 200 and css.headers.get("server") == "nginx"
    finally:
        subprocess.run([str(STACKCTL), "down", "--volumes", "--yes"], cwd=root, capture_output=True, timeout=300)
