"""A local image the stack needs and the engine lacks (issue class 2): `up` builds it itself,
suite included, before compose could ask a registry for it.

The images live under a namespace of this test's own (STACKCTL_IMAGE_NAMESPACE), so that
nothing other stacks run is removed: the shared trixie images and bookworm's base get a second
tag there (a tag, not a copy), and bookworm's Python, which `init --python 3.11` selects, is
missing. `up` must build it FROM that base and start the stack on it. Every tag made here is
removed again; the shared images keep theirs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from stackctl.core import images
from tests.e2e.stackenv import Proj, containers, http, make_project, read_env, remove_built_images

pytestmark = pytest.mark.engine


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh namespace holding the shared images but bookworm's Python; its tags are removed afterwards."""
    shared = [*images.images_for("trixie").all, images.images_for("bookworm").base]
    name = f"stackctl-test/missing{uuid.uuid4().hex[:8]}"
    client = DockerClient()
    missing = [spec.alias for spec in shared if not client.image.exists(spec.alias)]
    assert not missing, f"the shared local images are built first (stackctl images build): {missing}"
    monkeypatch.setenv(images.NAMESPACE_VARIABLE, name)
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
    proj = make_project(tmp_path)  # `init --local-images`: this namespace's images
    try:
        yield proj
    finally:
        proj.stackctl("down", "--volumes", "--yes")
        remove_built_images(proj.name)


def test_up_builds_a_missing_local_image_itself(namespace: str, stack: Proj) -> None:
    client = DockerClient()
    python = f"{namespace}/python:3.11-bookworm"
    init = stack.stackctl("init", "--python", "3.11", check=True)
    assert "Python 3.11.2" in init.stderr and "--python 3.11" in init.stderr
    assert read_env(stack.root / ".env")["PYTHON_IMAGE"] == python
    assert f"STACKCTL_IMAGE_NAMESPACE={namespace} stackctl images build --suite bookworm" in init.stderr
    assert not client.image.exists(python)

    up = stack.stackctl("up", timeout=900)
    assert up.returncode == 0, up.stdout + up.stderr
    said = up.stdout + up.stderr
    assert f"{python}: not on this engine, building it now" in said
    assert f"STACKCTL_IMAGE_NAMESPACE={namespace} stackctl images build --suite bookworm" in said
    assert f"{python}: built in " in said
    # only what was missing: bookworm's base was there, its servers are not used
    assert f"{namespace}/debian:bookworm: present, skipped" in said
    assert not client.image.exists(f"{namespace}/postgres:15-bookworm")
    assert python in client.image.inspect(python).repo_tags
    assert f"{namespace}/python:3.11.2-bookworm" in client.image.inspect(python).repo_tags

    # the stack runs on it: web answers through nginx with Python 3.11
    web = containers(stack, "web")[0]
    version = str(web.execute(["python", "-c", "import platform; print(platform.python_version())"])).strip()
    assert version == "3.11.2"
    assert http(f"{stack.base}/admin/login/").status == 200

    # a second `up` finds it and builds nothing
    again = stack.stackctl("up", timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "building it now" not in again.stdout + again.stderr
