"""When the docker CLI loses ssh's pipe ("broken pipe"), ssh itself is asked why (adapters/remote.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from stackctl.adapters import host as host_adapter
from stackctl.adapters import remote

LOST = (
    'error during connect: Get "http://docker.example.com/v1.41/info": command [ssh -o ConnectTimeout=30 '
    "-p 2222 -- root@h docker system dial-stdio] has exited with exit status 255, make sure the URL is valid, "
    "and Docker 18.09 or later is installed on the remote host: stderr=: write |1: broken pipe"
)


def test_a_lost_pipe_is_explained_by_ssh_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def refused(argv: Sequence[str], **_: Any) -> None:
        asked.append(list(argv))
        raise host_adapter.HostCommandError(
            argv, "failed (exit 255)\nssh: connect to host h port 2222: Connection refused"
        )

    monkeypatch.setattr(host_adapter, "run", refused)
    error = remote.ssh_failure("ssh://root@h:2222", LOST)
    assert "connection refused (nothing listens for SSH on port 2222)" in error.message
    assert asked == [["ssh", "-o", "BatchMode=yes", "-p", "2222", "--", "root@h", "docker", "info", "--format", "ok"]]


def test_a_known_reason_asks_ssh_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("ssh was run")

    monkeypatch.setattr(host_adapter, "run", never)
    error = remote.ssh_failure("ssh://root@h", "ssh: connect to host h port 22: Connection refused")
    assert "connection refused" in error.message


def test_a_probe_that_succeeds_keeps_the_clis_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_adapter, "run", lambda *_, **__: None)
    error = remote.ssh_failure("ssh://root@h", LOST)
    assert "does not answer" in error.message and "broken pipe" in error.message
