"""The one python-on-whales internal stackctl uses (adapters/docker.py `project_containers`):
its command runner with a client's docker command. This fails if a new release changes it."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.utils import run

REPO = Path(__file__).resolve().parents[2]


def test_python_on_whales_is_pinned_to_the_version_installed() -> None:
    pin = re.search(r'"python-on-whales==([\d.]+)"', (REPO / "pyproject.toml").read_text())
    assert pin, "pyproject.toml must pin python-on-whales exactly"
    assert version("python-on-whales") == pin.group(1)
    assert f"python-on-whales=={pin.group(1)}" in (REPO / "requirements/lock.txt").read_text()


def test_the_runner_and_the_docker_command_are_what_project_containers_uses() -> None:
    params = list(inspect.signature(run).parameters)
    assert params[0] == "args"
    client = DockerClient(host="ssh://user@example.invalid", compose_project_name="p")
    cmd = client.client_config.docker_cmd
    assert Path(str(cmd[0])).name == "docker"
    assert "--host" in cmd and "ssh://user@example.invalid" in cmd  # the client's options travel with it


def test_the_runner_feeds_stdin_and_the_compose_command_is_what_compose_exec_stdin_uses() -> None:
    assert "input" in inspect.signature(run).parameters
    client = DockerClient(host="ssh://user@example.invalid", compose_project_name="p")
    cmd = [str(part) for part in client.client_config.docker_compose_cmd]
    assert Path(cmd[0]).name == "docker" and "compose" in cmd
    assert "ssh://user@example.invalid" in cmd and "p" in cmd  # host and project travel with it


def test_the_runner_returns_stdout_and_stderr_as_compose_would_recreate_uses() -> None:
    assert "return_stderr" in inspect.signature(run).parameters
    out, err = run(["sh", "-c", "echo out; echo err >&2"], return_stderr=True)
    assert (out, err) == ("out", "err")
