"""What the PITR e2e modules share: a prod stack whose second pgBackRest repository is a server
the test runs on the stack's own network (an sshd, an S3 store), the probe table, and reads."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from python_on_whales import DockerClient

from tests.e2e.stackenv import Proj, containers, remove_built_images


@dataclass
class PitrSite:
    proj: Proj

    def sql(self, query: str) -> str:
        db = containers(self.proj, "db")[0]
        done = subprocess.run(
            ["docker", "exec", db.name, "psql", "-XAt", "-v", "ON_ERROR_STOP=1", "-U", "django", "-d", "django",
             "-c", query],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def ids(self) -> list[int]:
        return [int(x) for x in self.sql("SELECT id FROM pitr_probe ORDER BY id").split()]

    def info(self) -> dict:
        proc = self.proj.stackctl("backup", "list", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)["pitr"]


@contextmanager
def stack_network(proj: Proj) -> Iterator[str]:
    """The stack's default network, made first (with compose's labels) for the repository's
    server to join before `up`; removed with the built images at the end."""
    docker = DockerClient()
    network = f"{proj.name}_default"
    docker.network.create(
        network, labels={"com.docker.compose.project": proj.name, "com.docker.compose.network": "default"}
    )
    try:
        yield network
    finally:
        if docker.network.exists(network):
            docker.network.remove(network)
        remove_built_images(proj.name)


@contextmanager
def running(site: PitrSite) -> Iterator[None]:
    """`up`, then wait for the first full backup in both repositories (taken when the pgbackrest
    service starts) and make the probe table; `down --volumes` at the end."""
    try:
        proc = site.proj.stackctl("up", timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            repos = {r["repo"]: r["backups"] for r in site.info()["repos"]}
            if repos.get(1) and repos.get(2):
                break
            time.sleep(3)
        else:
            pytest.fail(f"no first full backup in both repositories: {site.info()}")
        site.sql("CREATE TABLE pitr_probe (id int PRIMARY KEY, at timestamptz DEFAULT now())")
        yield
    finally:
        site.proj.stackctl("down", "--volumes", "--yes")
