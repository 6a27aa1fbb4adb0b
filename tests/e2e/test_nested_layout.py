"""The nested layout on a real engine: a project with its own docker-compose.yml, Dockerfile
and .dockerignore (which knows nothing of stack/) gets its stack in stack/, and
`stackctl up --prod` builds the web image from the project root with the stack's own
ignore file: no env file and no stackctl state ends up in the image, the app answers
through nginx, and the project's own files are left byte for byte as they were.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from tests.e2e.stackenv import REPO, Proj, free_port, http, read_env, remove_built_images, set_env, sha256

pytestmark = pytest.mark.engine

FIXTURE = REPO / "tests" / "fixtures" / "projects" / "src_layout_docker"
# A secret of the project's own, next to its code: the project's .dockerignore does not
# exclude it, the stack's compose/Dockerfile.prod.dockerignore does.
PROJECT_SECRET = "src/.env"
UP_TIMEOUT = "420"


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def _failed(proc: object, what: str) -> str:
    out, err, code = (getattr(proc, name) for name in ("stdout", "stderr", "returncode"))
    return f"{what} exited {code}\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-6000:]}"


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proj, dict[str, str], list[str]]]:
    """The fixture project, initialised and up (prod, plain HTTP on free loopback ports).
    Yields the project, the hashes of its own files before init, and what the test had to
    add to the env files itself (empty when init wrote STACK_DIR)."""
    root = tmp_path_factory.mktemp("nested") / "shop"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3", "media"))
    (root / PROJECT_SECRET).write_text("SHOP_API_TOKEN=project-secret-not-for-images\n")
    original = _hashes(root)

    probe = Proj(root, "", 0, 0)
    init = probe.stackctl("init", "--local-images", "--json", timeout=300)
    assert init.returncode == 0, _failed(init, "stackctl init --local-images --json")
    assert json.loads(init.stdout)["stack_dir"] == "stack"
    stack = root / "stack"
    assert (stack / ".stackctl").is_dir() and (stack / ".env").is_file() and (stack / ".env.prod").is_file()

    added: list[str] = []
    for env_file in (stack / ".env", stack / ".env.prod"):
        if read_env(env_file).get("STACK_DIR") != "stack":
            set_env(env_file, STACK_DIR="stack")
            added.append(env_file.name)
    name, http_port, https_port = f"nested{uuid.uuid4().hex[:8]}", free_port(), free_port()
    set_env(
        stack / ".env.prod",
        STACK_NAME=name,
        NGINX_BIND_ADDRESS="127.0.0.1",
        HTTP_PORT=str(http_port),
        HTTPS_PORT=str(https_port),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        CSRF_TRUSTED_ORIGINS=f"http://127.0.0.1:{http_port}",
        USE_TLS="false",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS="0",
        WEB_CONCURRENCY="1",
    )
    proj = Proj(root, f"{name}-prod", http_port, https_port, True, read_env(stack / ".env.prod"))
    try:  # a stack that failed to come up is removed too
        up = proj.stackctl("up", "--json", "--timeout", UP_TIMEOUT, timeout=1500)
        if up.returncode != 0:
            logs = proj.stackctl("logs", "--tail", "40", timeout=120)
            raise AssertionError(_failed(up, "stackctl up --prod") + "\n--- logs\n" + logs.stdout[-6000:])
        yield proj, original, added
    finally:
        proj.stackctl("down", "--volumes", "--yes", timeout=300)
        remove_built_images(proj.name)  # the web and backup images `up` built
        docker = DockerClient()
        labelled = docker.image.list(filters=[("label", f"com.docker.compose.project={proj.name}")])
        if labelled:
            docker.image.remove([image.id for image in labelled], force=True)


def _web_image(proj: Proj) -> str:
    return f"{proj.name}-web"


def _in_image(image: str, script: str) -> str:
    out = DockerClient().run(image, ["-c", script], entrypoint="sh", remove=True, pull="never")
    assert isinstance(out, str)
    return out


def test_init_wrote_stack_dir_into_both_env_files(nested: tuple[Proj, dict[str, str], list[str]]) -> None:
    _proj, _original, added = nested
    assert added == [], f"the test had to add STACK_DIR=stack to {added}: init does not write it yet"


def test_no_env_file_and_no_stack_state_is_in_the_image(nested: tuple[Proj, dict[str, str], list[str]]) -> None:
    proj, _original, _added = nested
    found = _in_image(
        _web_image(proj),
        "find / -xdev \\( -name '.env*' -o -name .stackctl \\) -not -path '/proc/*' 2>/dev/null; true",
    )
    assert found.split() == [], found
    assert "project-secret-not-for-images" not in _in_image(_web_image(proj), "cat /app/.env 2>&1; true")
    # stackctl's own files came from stack/compose/ (the stack's image, not the project's Dockerfile)
    listed = _in_image(_web_image(proj), "ls /opt/stackctl /usr/local/bin/docker-entrypoint.sh")
    assert "stackctl_settings.py" in listed and "docker-entrypoint.sh" in listed


def test_the_image_holds_the_projects_code_as_it_is(nested: tuple[Proj, dict[str, str], list[str]]) -> None:
    """/app is src/ (DJANGO_PROJECT_DIR, relative to the project root) byte for byte, less
    what the stack's ignore file leaves out."""
    proj, original, _added = nested
    expected = {
        path.removeprefix("src/"): digest
        for path, digest in original.items()
        if path.startswith("src/") and path != PROJECT_SECRET
    }
    listing = _in_image(_web_image(proj), "cd /app && find . -type f -exec sha256sum {} +")
    in_image = {line.split(None, 1)[1].strip().removeprefix("./"): line.split()[0] for line in listing.splitlines()}
    assert in_image == expected


def test_the_app_answers_through_nginx(nested: tuple[Proj, dict[str, str], list[str]]) -> None:
    proj, _original, _added = nested
    login = http(f"{proj.base}/admin/login/")
    assert login.status == 200 and login.headers.get("server", "").startswith("nginx"), login.status
    css = http(f"{proj.base}/static/admin/css/base.css")
    assert css.status == 200 and css.headers.get("server", "").startswith("nginx")
    made = http(
        f"{proj.base}/notes/",
        data=b"title=nested",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert made.status == 201, (made.status, made.body[:500])
    note = http(f"{proj.base}/notes/{made.json()['id']}/")
    assert note.status == 200 and note.json()["title"] == "nested"


def test_the_projects_own_files_are_untouched(nested: tuple[Proj, dict[str, str], list[str]]) -> None:
    proj, original, _added = nested
    now = {path: digest for path, digest in _hashes(proj.root).items() if not path.startswith("stack/")}
    assert now == original
