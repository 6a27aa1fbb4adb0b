"""Where a remote stack's images are built and what is sent (Stack.builds_here / Stack.ship),
and what `up` refuses on a remote engine, with the docker layer stubbed. The real path runs
in tests/e2e/test_remote_deploy.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stackctl.adapters import docker as docker_adapter
from stackctl.config.profile import DEV, PROD
from stackctl.core import stack as stack_module
from stackctl.core.project import Project
from stackctl.core.stack import Stack
from stackctl.errors import StackctlError
from tests.render.stackfiles import load_fixture


class Engine:
    """An engine with images {name: id} and an architecture."""

    def __init__(self, host: str | None, images: dict[str, str], arch: str = "x86_64") -> None:
        self.client_config = SimpleNamespace(host=host)
        self.images = images
        self.arch = arch


def _stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, remote: Engine, here: Engine | None) -> Stack:
    cfg = load_fixture("prod.env", "prod", tmp_path)
    stack = Stack(Project(tmp_path, tmp_path), PROD, config=cfg, host="ssh://root@example.invalid")
    stack._client = remote  # type: ignore[assignment]
    monkeypatch.setattr(stack_module, "local_engine", lambda: here)
    monkeypatch.setattr(stack_module, "architecture", lambda client: client.arch)
    monkeypatch.setattr(
        stack_module, "image_ids", lambda client, names: {n: client.images[n] for n in names if n in client.images}
    )
    monkeypatch.setattr(stack_module, "compose_images", lambda client: ["p-web", "p-backup", "postgres:17"])
    return stack


def _sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any, list[str]]]:
    sent: list[tuple[Any, Any, list[str]]] = []
    monkeypatch.setattr(
        stack_module, "send_images", lambda source, target, names: sent.append((source, target, list(names)))
    )
    return sent


def test_a_remote_stack_is_built_here_and_gets_only_what_it_lacks_or_has_older(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    remote = Engine("ssh://root@example.invalid", {"p-backup": "sha256:b", "p-web": "sha256:old"})
    here = Engine("unix:///var/run/docker.sock", {"p-web": "sha256:new", "p-backup": "sha256:b"})
    stack, sent = _stack(monkeypatch, tmp_path, remote, here), _sent(monkeypatch)
    assert stack.builds_here is here
    # postgres:17 is not here (the remote pulls it itself); p-backup is the same image there
    assert stack.ship() == ["p-web"]
    assert sent == [(here, remote, ["p-web"])]
    remote.images["p-web"] = "sha256:new"
    assert stack.ship() == [] and len(sent) == 1  # nothing left to send


def test_another_architecture_or_no_engine_here_builds_on_the_remote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    remote = Engine("ssh://root@example.invalid", {}, arch="aarch64")
    stack, sent = _stack(monkeypatch, tmp_path / "a", remote, Engine("unix:///x", {"p-web": "1"})), _sent(monkeypatch)
    assert stack.builds_here is None and stack.build_client() is remote
    assert stack.ship() == [] and sent == []
    stack = _stack(monkeypatch, tmp_path / "b", Engine("ssh://root@example.invalid", {}), None)
    assert stack.builds_here is None and stack.ship() == []


def test_a_local_stack_builds_and_sends_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    asked: list[bool] = []
    monkeypatch.setattr(stack_module, "local_engine", lambda: asked.append(True))
    cfg = load_fixture("prod.env", "prod", tmp_path)
    stack = Stack(Project(tmp_path, tmp_path), PROD, config=cfg)
    stack._client = Engine(None, {})  # type: ignore[assignment]
    assert stack.builds_here is None and stack.ship() == [] and asked == []


def test_is_remote_follows_the_host_and_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert docker_adapter.is_remote(Engine("ssh://u@h", {}))  # type: ignore[arg-type]
    assert docker_adapter.is_remote(Engine("tcp://10.0.0.2:2376", {}))  # type: ignore[arg-type]
    assert not docker_adapter.is_remote(Engine(None, {}))  # type: ignore[arg-type]
    assert not docker_adapter.is_remote(Engine("unix:///var/run/docker.sock", {}))  # type: ignore[arg-type]
    monkeypatch.setenv("DOCKER_HOST", "ssh://u@h")
    assert docker_adapter.is_remote(Engine(None, {}))  # type: ignore[arg-type]


def test_up_of_the_dev_stack_on_a_remote_engine_is_refused_before_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = load_fixture("dev.env", "dev", tmp_path)
    stack = Stack(Project(tmp_path, tmp_path), DEV, config=cfg, host="ssh://root@example.invalid")
    stack._client = Engine("ssh://root@example.invalid", {})  # type: ignore[assignment]
    monkeypatch.setattr(stack, "ensure_rendered", lambda force=False: [])
    monkeypatch.setattr(stack, "build", lambda report=None: pytest.fail("built"))
    with pytest.raises(StackctlError) as refused:
        stack.up()
    assert "bind-mounts" in str(refused.value) and "--prod or --env NAME" in (refused.value.hint or "")
