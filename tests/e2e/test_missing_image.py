"""A local image the stack needs and the engine lacks (issue class 2): `up` builds it itself,
suite included, before compose could ask a registry for it.

The corpus project heroku_pins (runtime.txt python-3.10.2, .python-version 3.12) gets
bookworm's Python 3.11 from `init` with no flag. Here that image is missing: the images live
under a namespace of this test's own (STACKCTL_IMAGE_NAMESPACE), so that nothing other stacks
run is removed. The shared trixie images and bookworm's base get a second tag there (a tag, not
a copy); bookworm's Python is not there. `up --prod` must build it FROM that base and run the
stack on it. Every tag made here is removed again; the shared images keep theirs.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from stackctl.core import images
from tests.e2e.stackenv import REPO, Proj, containers, free_port, http, read_env, remove_built_images, set_env

pytestmark = pytest.mark.engine

FIXTURE = REPO / "tests" / "fixtures" / "projects" / "heroku_pins"


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh namespace holding the shared images but bookworm's Python; its tags are removed afterwards."""
    shared = [*images.images_for("trixie").all, images.images_for("bookworm").base]
    name = f"stackctl-test/missing{uuid.uuid4().hex[:8]}"
    client = DockerClient()
    missing = [spec.alias for spec in shared if not client.image.exists(spec.alias)]
    assert not missing, f"the shared local images are built first (stackctl images build): {missing}"
    monkeypatch.setenv(images.NAMESPACE_VARIABLE, name)  # the stackctl commands run here inherit it
    ours = [*images.images_for("trixie").all, images.images_for("bookworm").base]
    for source, spec in zip(shared, ours, strict=True):
        client.image.tag(source.alias, spec.alias)
    try:
        yield name
    finally:
        listed = client.image.list(filters=[("reference", f"{name}/*")])
        tags = [tag for image in listed for tag in image.repo_tags if tag.startswith(f"{name}/")]
        if tags:
            client.image.remove(tags)  # a tag of a shared image is only untagged


@pytest.fixture
def stack(namespace: str, tmp_path: Path) -> Iterator[Proj]:
    root = tmp_path / "heroku_pins"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3", "media"))
    proj = Proj(root, "", 0, 0, prod=True)
    try:
        yield proj
    finally:
        if proj.name:
            proj.stackctl("down", "--volumes", "--yes", timeout=300)
            remove_built_images(proj.name)


def _loopback(proj: Proj) -> None:
    """Plain HTTP on loopback ports: what the prod policy needs for a test nobody reaches."""
    name, proj.http_port, proj.https_port = f"e2e{uuid.uuid4().hex[:8]}", free_port(), free_port()
    set_env(
        proj.root / ".env.prod",
        STACK_NAME=name,
        NGINX_BIND_ADDRESS="127.0.0.1",
        HTTP_PORT=str(proj.http_port),
        HTTPS_PORT=str(proj.https_port),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        USE_TLS="false",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS="0",
        WEB_CONCURRENCY="1",
    )
    proj.name = f"{name}-prod"


def test_up_builds_a_missing_local_image_itself(namespace: str, stack: Proj) -> None:
    client = DockerClient()
    python = f"{namespace}/python:3.11-bookworm"
    command = f"STACKCTL_IMAGE_NAMESPACE={namespace} stackctl images build --suite bookworm"
    init = stack.stackctl("init", check=True)  # no flag: no registry answers, the local images
    assert "runtime.txt asks for python-3.10.2, .python-version asks for 3.12: Python 3.11.2" in init.stderr
    assert read_env(stack.root / ".env.prod")["PYTHON_IMAGE"] == python
    assert command in init.stderr
    assert not client.image.exists(python)
    _loopback(stack)

    up = stack.stackctl("up", "--timeout", "1200", timeout=1800)  # the build is part of it
    said = up.stdout + up.stderr
    assert up.returncode == 0, said
    assert f"{python}: not on this engine, building it now (what `{command}` builds)" in said
    assert f"{python}: built in " in said
    # only what was missing: bookworm's base was there, its servers are not used
    assert f"{namespace}/debian:bookworm: present, skipped" in said
    assert not client.image.exists(f"{namespace}/postgres:15-bookworm")
    assert f"{namespace}/python:3.11.2-bookworm" in client.image.inspect(python).repo_tags

    # the stack runs on it: web has bookworm's Python and answers through nginx
    web = containers(stack, "web")[0]
    version = str(web.execute(["python", "-c", "import platform; print(platform.python_version())"])).strip()
    assert version == "3.11.2"
    assert http(f"{stack.base}/admin/login/").status == 200

    # a second `up` finds it and builds nothing
    again = stack.stackctl("up", "--timeout", "600", timeout=1500)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "building it now" not in again.stdout + again.stderr
