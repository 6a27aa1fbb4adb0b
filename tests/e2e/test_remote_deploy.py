"""A prod stack on a remote engine (tests/e2e/remotehost.py: a second dockerd whose filesystem
the client cannot see, reached only through sshd with key auth on a loopback port):
`up --prod --host`, two deploys, then `status`, `backup now`, `restore db` and `rollback` there.

The remote's network namespace has no route out, so it could not build (pip); stackctl builds
on this host's engine and sends the images. Its containers are reachable only inside that
namespace, so every request goes through `in_netns`. The tests share one stack, in order."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import DockerClient

from tests.e2e.remotehost import RemoteHost, remote_host
from tests.e2e.stackenv import Proj, all_image_tags, make_project, remove_built_images

pytestmark = pytest.mark.engine
__all__ = ["remote_host"]  # the session fixture, used below
local = DockerClient()

# One HTTP request from inside the remote's network namespace: prints `status body`.
REQUEST = """
import json, sys, urllib.request, urllib.error
url, data = sys.argv[1], sys.argv[2].encode() or None
req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode()[:200])
"""


@pytest.fixture(scope="module")
def site(remote_host: RemoteHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proj]:
    proj = make_project(tmp_path_factory.mktemp("remote"), prod=True)
    try:
        yield proj
    finally:
        run(proj, remote_host, "down", "--volumes", "--yes")  # --prod: Proj adds it
        client = remote_host.docker()
        for label in ("com.docker.compose.project", "io.stackctl.project"):
            for volume in client.volume.list(filters=[("label", f"{label}={proj.name}")]):
                client.volume.remove(volume)
        if client.container.exists(f"{proj.name}-deploy-lock"):
            client.container.remove(f"{proj.name}-deploy-lock", force=True)
        built = [t for i in client.image.list() for t in i.repo_tags if t.startswith(f"{proj.name}-")]
        if built:
            client.image.remove(built, force=True)
        remove_built_images(proj.name)


def run(proj: Proj, host: RemoteHost, *args: str, check: bool = False) -> Any:
    return proj.stackctl(*args, "--host", host.url, check=check)


def request(host: RemoteHost, proj: Proj, path: str, body: str = "") -> tuple[int, str]:
    done = host.in_netns([sys.executable, "-c", REQUEST, f"{proj.base}{path}", body], timeout=30)
    assert done.returncode == 0, done.stderr
    status, _, text = done.stdout.partition(" ")
    return int(status), text.strip()


def gql(host: RemoteHost, proj: Proj, query: str) -> Any:
    status, text = request(host, proj, "/graphql", json.dumps({"query": query}))
    assert status == 200, text
    payload = json.loads(text)
    assert "errors" not in payload, payload
    return payload["data"]


def note_titles(host: RemoteHost, proj: Proj) -> list[str]:
    return sorted(n["title"] for n in gql(host, proj, "{ notes { title } }")["notes"])


def add_route(proj: Proj, text: str) -> None:
    """GET /release/ answers `text` (a new release's code)."""
    urls = proj.root / "example" / "config" / "urls.py"
    source = urls.read_text()
    if "RELEASE_TEXT" not in source:
        route = "urlpatterns = [\n    path('release/', lambda r: HttpResponse(RELEASE_TEXT)),\n"
        source = source.replace("urlpatterns = [\n", route, 1)
        source = f"from django.http import HttpResponse\nRELEASE_TEXT = 'none'\n{source}"
    urls.write_text(re.sub(r"RELEASE_TEXT = '[^']*'", f"RELEASE_TEXT = {text!r}", source, count=1))


def project_containers(client: DockerClient, proj: Proj) -> list[Any]:
    return client.container.list(filters=[("label", f"com.docker.compose.project={proj.name}")])


def test_up_prod_runs_the_stack_on_the_remote_engine_with_its_config(site: Proj, remote_host: RemoteHost) -> None:
    proc = run(site, remote_host, "up", check=True)
    assert "sending" in proc.stdout + proc.stderr  # built here, sent there
    remote = remote_host.docker()
    services = {c.config.labels["com.docker.compose.service"] for c in project_containers(remote, site)}
    assert services == {"web", "db", "redis", "nginx", "backup", "pgbackrest"}
    assert project_containers(local, site) == []  # nothing of it runs on the client's engine
    # no bind mount: nginx.conf came in its volume, as rendered here
    nginx = next(c for c in project_containers(remote, site) if "nginx" in c.name)
    assert {m.type for m in nginx.mounts} == {"volume"}, nginx.mounts
    conf = remote.container.execute(nginx, ["cat", "/etc/nginx/stackctl/nginx.conf"])
    assert conf.strip() == (site.root / "nginx" / "nginx.prod.conf").read_text().strip()
    # the settings in effect were verified there, and the app answers through nginx
    assert "verif" in proc.stdout + proc.stderr
    gql(remote_host, site, 'mutation { createNote(title: "before", body: "remote") { id } }')
    assert note_titles(remote_host, site) == ["before"]
    status = json.loads(run(site, remote_host, "status", "--json", check=True).stdout)
    assert status["healthy"] is True, status


def test_deploys_then_backup_restore_and_rollback_on_the_remote(site: Proj, remote_host: RemoteHost) -> None:
    ids = []
    for text in ("one", "two"):
        add_route(site, text)
        proc = run(site, remote_host, "deploy", "--prod", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ids.append(json.loads(proc.stdout)["release"]["id"])
        assert request(remote_host, site, "/release/") == (200, text)
    # the release images were sent, not left behind on the client
    assert not [t for t in all_image_tags(local) if any(r in t for r in ids)]
    listed = json.loads(run(site, remote_host, "releases", "--prod", "--json", check=True).stdout)
    assert listed["serving"] == ids[1] and [r["id"] for r in listed["releases"]][:2] == ids[::-1]

    taken = json.loads(run(site, remote_host, "backup", "now", "--json", check=True).stdout)
    name = (taken[0] if isinstance(taken, list) else taken)["file"].rsplit("/", 1)[-1]
    gql(remote_host, site, 'mutation { createNote(title: "after", body: "remote") { id } }')
    assert note_titles(remote_host, site) == ["after", "before"]
    restored = run(site, remote_host, "restore", "db", name, "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert note_titles(remote_host, site) == ["before"]

    back = run(site, remote_host, "rollback", "--prod", "--yes", "--json")
    assert back.returncode == 0, back.stdout + back.stderr
    result = json.loads(back.stdout)
    assert result["previous"] == ids[1] and result["release"]["id"] == ids[0]
    assert request(remote_host, site, "/release/") == (200, "one")
    assert note_titles(remote_host, site) == ["before"]


def test_the_client_keeps_no_secret_file(site: Proj) -> None:
    assert not (site.root / ".stackctl" / "secrets").exists()
    assert not list(Path(site.root).glob("**/django_secret_key"))
