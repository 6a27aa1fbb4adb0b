"""A Django project nobody here wrote: a plain `django-admin startproject`, with no /healthz,
no STATIC_ROOT, no daphne, no postgres driver and no environment-driven settings. init says what
the image adds; up works, on postgres."""

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
    (root / "requirements.txt").write_text("Django==5.2.19\n")

    init = subprocess.run([str(STACKCTL), "init", "--local-images"], cwd=root, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    assert "the image adds daphne" in init.stderr and "the image adds psycopg" in init.stderr
    assert "settings: prod mysite.settings, dev mysite.settings" in init.stderr
    port = free_port()
    name = f"foreign{uuid.uuid4().hex[:6]}"
    set_env(root / ".env", STACK_NAME=name, HTTP_PORT=str(port), NGINX_BIND_ADDRESS="127.0.0.1")
    try:
        up = subprocess.run(
            [str(STACKCTL), "up", "--timeout", "150"], cwd=root, capture_output=True, text=True, timeout=900
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert http(f"http://127.0.0.1:{port}/admin/login/").status == 200
        css = http(f"http://127.0.0.1:{port}/static/admin/css/base.css")
        assert css.status == 200 and css.headers.get("server") == "nginx"
        vendor = subprocess.run(
            [
                str(STACKCTL),
                "manage",
                "shell",
                "-v",
                "0",
                "-c",
                "from django.db import connection; print(connection.vendor)",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert vendor.stdout.strip() == "postgresql", vendor.stdout + vendor.stderr  # not the sqlite of settings.py
    finally:
        subprocess.run([str(STACKCTL), "down", "--volumes", "--yes"], cwd=root, capture_output=True, timeout=300)
        from python_on_whales import DockerClient

        built = DockerClient().image.list(filters=[("reference", f"{name}-dev-*")])
        if built:
            DockerClient().image.remove(built, force=True)
