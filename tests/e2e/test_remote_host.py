"""The remote test host itself (tests/e2e/remotehost.py): a second engine reached only over SSH,
which cannot see the client's files, and which has the stack's images."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from tests.e2e.remotehost import STACK_IMAGES, RemoteHost, remote_host
from tests.e2e.stackenv import free_port

pytestmark = pytest.mark.engine
__all__ = ["remote_host"]  # the session fixture, used below


def test_docker_over_ssh_answers_info_from_the_second_engine(remote_host: RemoteHost) -> None:
    info = remote_host.docker().system.info()
    local = DockerClient().system.info()
    assert str(info.docker_root_dir) == str(remote_host.state / "docker")
    assert info.docker_root_dir != local.docker_root_dir
    # the docker CLI itself, as a user would run it
    done = subprocess.run(
        ["docker", "-H", remote_host.url, "info", "--format", "{{.DockerRootDir}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(remote_host.state / "docker")


def _ls(client: DockerClient, folder: Path) -> list[str]:
    out = client.run("stackctl/python:3.13-trixie", ["ls", "-A", "/mnt"], volumes=[(folder, "/mnt")], remove=True)
    return str(out).split()


def test_client_files_under_tmp_are_not_visible_to_remote_containers(remote_host: RemoteHost, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "nginx.conf").write_text("client side only\n")
    assert str(folder).startswith("/tmp/")
    assert _ls(DockerClient(), folder) == ["nginx.conf"]  # the local engine sees it: the check can fail
    assert _ls(remote_host.docker(), folder) == []  # the remote one bind-mounts an empty folder of its own


def test_remote_engine_has_the_stack_images(remote_host: RemoteHost) -> None:
    remote, local = remote_host.docker(), DockerClient()
    for image in STACK_IMAGES:
        assert remote.image.exists(image), image
        assert remote.image.inspect(image).id == local.image.inspect(image).id


def test_remote_containers_are_reachable_only_in_its_network_namespace(remote_host: RemoteHost) -> None:
    client, port = remote_host.docker(), free_port()
    container = client.run("stackctl/redis:8.0-trixie", detach=True, remove=True, publish=[(f"127.0.0.1:{port}", 6379)])
    try:
        answered = ""
        for _ in range(50):
            done = remote_host.in_netns(
                ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'PING\\r\\n' >&3; head -c 7 <&3"], timeout=5
            )
            answered = done.stdout
            if "PONG" in answered:
                break
            subprocess.run(["sleep", "0.2"], check=True)
        assert "PONG" in answered
        here = subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True, check=False)
        assert here.returncode != 0  # not published on the client's loopback
    finally:
        client.container.remove(container, force=True)


def test_compose_runs_a_project_on_the_remote_engine(remote_host: RemoteHost, tmp_path: Path) -> None:
    """`docker --host ssh://… compose`: the client's compose file, the remote engine's containers."""
    compose_file = tmp_path / "compose.yml"
    compose_file.write_text(
        "services:\n  cache:\n    image: stackctl/redis:8.0-trixie\n    pull_policy: never\n"
        '    healthcheck:\n      test: ["CMD", "redis-cli", "ping"]\n      interval: 1s\n'
    )
    name = f"remote{uuid.uuid4().hex[:8]}"
    remote = DockerClient(host=remote_host.url, compose_files=[compose_file], compose_project_name=name)
    try:
        remote.compose.up(detach=True, wait=True)
        running = remote.container.list(filters=[("label", f"com.docker.compose.project={name}")])
        assert [c.state.health.status for c in running if c.state.health] == ["healthy"]
        assert DockerClient().container.list(all=True, filters=[("label", f"com.docker.compose.project={name}")]) == []
    finally:
        remote.compose.down(volumes=True)
