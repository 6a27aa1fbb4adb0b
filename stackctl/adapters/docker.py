"""The one factory for python-on-whales clients. Nothing in stackctl calls docker any other way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.client_config import ClientNotFoundError
from python_on_whales.components.container.models import ContainerInspectResult
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from stackctl.errors import DockerCommandError, EngineError

ENGINE_HINT = "start one with `stackctl engine ensure` (Debian/Ubuntu, root), or start Docker yourself"


def engine_client() -> DockerClient:
    """A client for engine-level calls (info, images, build, run)."""
    return DockerClient()


def compose_client(
    *,
    project_dir: Path,
    compose_files: Sequence[Path],
    env_file: Path,
    project_name: str,
) -> DockerClient:
    """A client bound to one compose project: its files, its env file, its name."""
    return DockerClient(
        compose_files=list(compose_files),
        compose_env_files=[env_file],
        compose_project_name=project_name,
        compose_project_directory=project_dir,
    )


def project_containers(client: DockerClient, project: str) -> list[ContainerInspectResult]:
    """Every container of a compose project (one-off `compose run` ones left out, as compose
    does): one `docker ps` on compose's project label and one `docker inspect` for them all.

    The results are snapshots: a python-on-whales Container re-inspects itself whenever an
    attribute is read more than 10 ms after the last inspect, so reading a few fields of
    five containers would otherwise cost ten more `docker inspect` calls (0.05 s each).
    """
    for attempt in (1, 2):
        found = client.container.list(
            all=True,
            filters=[("label", f"com.docker.compose.project={project}"), ("label", "com.docker.compose.oneoff=False")],
        )
        if not found:
            return []
        # python-on-whales's own bulk_reload() fails on its unhashable ClientConfig (0.81): the
        # same single call through its runner.
        try:
            raw = run([*client.client_config.docker_cmd, "container", "inspect", *(c.id for c in found)])
        except DockerException:
            if attempt == 2:
                raise
            continue  # one was removed between the two calls (compose recreating it): list again
        return [ContainerInspectResult(**item) for item in json.loads(str(raw) or "[]")]
    raise AssertionError("unreachable")


def engine_answers(client: DockerClient | None = None) -> bool:
    try:
        (client or engine_client()).system.info()
    except (DockerException, ClientNotFoundError, FileNotFoundError):
        return False
    return True


def require_engine(client: DockerClient | None = None) -> None:
    if not engine_answers(client):
        raise EngineError("no Docker engine answers (`docker info` failed)", hint=ENGINE_HINT)


def describe_failure(exc: DockerException, *, what: str) -> DockerCommandError:
    """Turn a python-on-whales failure into our error, keeping only the tail of stderr."""
    stderr = (exc.stderr or "").strip().splitlines()
    tail = "\n".join(stderr[-15:])
    return DockerCommandError(f"{what} failed (exit {exc.return_code})\n{tail}".rstrip())
