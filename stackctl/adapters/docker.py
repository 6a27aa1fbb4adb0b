"""The one factory for python-on-whales clients. Nothing in stackctl calls docker any other way.

One internal of python-on-whales is used, in `project_containers`: its command runner
(`python_on_whales.utils.run` with the client's `docker_cmd`), for one `docker inspect` of
several containers at once, which its public API cannot do (`docker.container.inspect([...])`
inspects each container on its own, and every attribute read re-inspects after 10 ms; its
`bulk_reload` fails on an unhashable ClientConfig in 0.81). The same runner, with the client's
`docker_cmd`/`docker_compose_cmd`, serves what the public API has no argument for: stdin for
`compose exec` and `docker cp -` (fill_volumes), `compose --dry-run up`, `compose config
--images`. python-on-whales is pinned exactly for that (pyproject.toml), and
tests/unit/test_docker_internals.py fails if the internal changes.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.client_config import ClientNotFoundError
from python_on_whales.components.container.models import ContainerInspectResult
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from stackctl.adapters.remote import is_ssh, ssh_failure
from stackctl.errors import DockerCommandError, EngineError, stderr_tail

ENGINE_HINT = "start one with `stackctl engine ensure` (Debian/Ubuntu, root), or start Docker yourself"
# python-on-whales logs every command it runs here, at DEBUG ("Running command: docker ...").
COMMAND_LOGGER = "python_on_whales"
LOGGER = logging.getLogger("stackctl.docker")


class _Forward(logging.Handler):
    def __init__(self, sink: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink(record.getMessage())


def log_commands(sink: Callable[[str], None], *, verbosity: int) -> None:
    """Send each docker and compose command stackctl runs to `sink` (`-v`); with `-vv` also
    stackctl's own debug lines (the clients it builds, the streamed commands)."""
    if verbosity < 1:
        return
    handler = _Forward(sink)
    names = [COMMAND_LOGGER] + (["stackctl"] if verbosity >= 2 else [])
    for name in names:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False


def log_streamed(client: DockerClient, *args: str) -> None:
    """python-on-whales does not log the commands it streams (build, up, logs): say them here."""
    cfg = client.client_config
    argv = ["docker", "compose", "-p", str(cfg.compose_project_name)]
    for file in cfg.compose_files or []:
        argv += ["-f", str(file)]
    for env_file in cfg.compose_env_files or []:
        argv += ["--env-file", str(env_file)]
    logging.getLogger(COMMAND_LOGGER).debug("Running command: %s", shlex.join([*argv, *args]))


def engine_client(host: str | None = None) -> DockerClient:
    """A client for engine-level calls (info, images, build, run); `host` is another
    engine's address (`ssh://user@host[:port]`), None for DOCKER_HOST or the local one."""
    return DockerClient(host=host)


def compose_client(
    *,
    project_dir: Path,
    compose_files: Sequence[Path],
    env_file: Path,
    project_name: str,
    host: str | None = None,
) -> DockerClient:
    """A client bound to one compose project: its files, its env file, its name, and the
    engine it runs on (`host`, as for engine_client)."""
    files = ", ".join(map(str, compose_files))
    LOGGER.debug("compose project %s: files %s, env file %s, host %s", project_name, files, env_file, host or "local")
    return DockerClient(
        host=host,
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


def compose_exec_stdin(client: DockerClient, service: str, command: list[str], data: bytes) -> str:
    """`docker compose exec --no-TTY SERVICE COMMAND` with `data` on its stdin, its stdout
    returned. python-on-whales' compose.execute cannot feed stdin (0.81): its runner can, with
    the client's compose command (the second internal, checked by test_docker_internals)."""
    return str(run([*client.client_config.docker_compose_cmd, "exec", "--no-TTY", service, *command], input=data))


def compose_would_recreate(client: DockerClient, service: str) -> bool | None:
    """Whether `docker compose up` would recreate the running containers of `service` (a new
    image, or a changed configuration), asked of compose itself: `--dry-run up --no-deps`
    says `Recreate` for each one it would replace (0.2 s). python-on-whales has no dry-run
    (0.81): the client's compose command through its runner, as above. None when compose cannot say."""
    try:
        out, err = run(
            [*client.client_config.docker_compose_cmd, "--dry-run", "up", "--detach", "--no-deps", service],
            return_stderr=True,
        )
    except DockerException:
        return None
    return " Recreate" in out + err


def engine_answers(client: DockerClient | None = None) -> bool:
    try:
        (client or engine_client()).system.info()
    except (DockerException, ClientNotFoundError, FileNotFoundError):
        return False
    return True


def require_engine(client: DockerClient | None = None) -> None:
    """Raise EngineError unless the client's engine answers; for an `ssh://` host, saying
    what failed (unreachable, host key, refused key, no docker there) and the fix."""
    client = client or engine_client()
    host = client.client_config.host or os.environ.get("DOCKER_HOST")
    try:
        client.system.info()
    except DockerException as exc:
        if is_ssh(host):
            raise ssh_failure(str(host), exc.stderr) from None
        raise EngineError("no Docker engine answers (`docker info` failed)", hint=ENGINE_HINT) from None
    except (ClientNotFoundError, FileNotFoundError):
        raise EngineError("no Docker engine answers (no docker command here)", hint=ENGINE_HINT) from None


def describe_failure(exc: DockerException, *, what: str) -> DockerCommandError:
    """Turn a python-on-whales failure into our error, keeping only the tail of stderr."""
    return DockerCommandError(f"{what} failed (exit {exc.return_code})\n{stderr_tail(exc.stderr)}".rstrip())


# -- files and images for an engine that cannot see the client's files ---------------------------

LOCAL_ENGINE = "unix:///var/run/docker.sock"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_VOLUME_LABEL = "com.docker.compose.volume"


def is_remote(client: DockerClient) -> bool:
    """Whether the client's engine is another host's (ssh:// or tcp://, given or DOCKER_HOST)."""
    host = str(client.client_config.host or os.environ.get("DOCKER_HOST") or "")
    return host.startswith(("ssh://", "tcp://"))


def local_engine() -> DockerClient | None:
    """This host's own engine, when one answers (None otherwise)."""
    if not Path(LOCAL_ENGINE.removeprefix("unix://")).exists():
        return None
    client = DockerClient(host=LOCAL_ENGINE)
    return client if engine_answers(client) else None


def architecture(client: DockerClient) -> str:
    return str(client.system.info().architecture or "")


def fill_volumes(client: DockerClient, *, project: str, image: str, archive: bytes, volumes: Sequence[str]) -> None:
    """Extract `archive` (a tar whose top folders are the volumes' compose names) into the
    compose project's named volumes, creating the missing ones with compose's labels (so
    that `compose up` adopts them). Through the engine's API only (`docker cp` into a created,
    never started container of `image` that mounts them), so it works on any engine, over
    SSH too; `-a` keeps the tar's owners and modes. python-on-whales' copy_to takes a local
    path only (0.81): the client's docker command through its runner, with the tar on stdin."""
    existing = {str(v.name) for v in client.volume.list(filters=[("label", f"{COMPOSE_PROJECT_LABEL}={project}")])}
    for name in volumes:
        full = f"{project}_{name}"
        if full not in existing:
            client.volume.create(full, labels={COMPOSE_PROJECT_LABEL: project, COMPOSE_VOLUME_LABEL: name})
    helper = client.container.create(
        image,
        ["true"],
        networks=["none"],
        labels={COMPOSE_PROJECT_LABEL + ".config-helper": project},
        volumes=[(f"{project}_{name}", f"/stackctl/{name}") for name in volumes],
    )
    try:
        run([*client.client_config.docker_cmd, "cp", "--archive", "-", f"{helper.id}:/stackctl"], input=archive)
    finally:
        client.container.remove(helper, force=True)


def compose_images(client: DockerClient) -> list[str]:
    """The images the compose project runs, as compose names them (`config --images`, with
    `<project>-<service>` for a service that only builds). python-on-whales has no
    `--images` (0.81): the client's compose command through its runner."""
    out = run([*client.client_config.docker_compose_cmd, "config", "--images"])
    return sorted({line.strip() for line in str(out or "").splitlines() if line.strip()})


def image_ids(client: DockerClient, names: Sequence[str]) -> dict[str, str]:
    """{name: image id} of those of `names` the engine has (one `docker image ls`)."""
    wanted, found = set(names), {}
    for image in client.image.list():
        for tag in image.repo_tags or []:
            if tag in wanted:
                found[tag] = str(image.id)
            elif tag.endswith(":latest") and tag.removesuffix(":latest") in wanted:
                found[tag.removesuffix(":latest")] = str(image.id)
    return found


def send_images(source: DockerClient, target: DockerClient, names: Sequence[str]) -> None:
    """`docker save NAMES | docker --host … load`, streamed (no file in between)."""
    stream = source.image.save(list(names))
    assert stream is not None  # no output file: the tar is streamed
    target.image.load(stream)
