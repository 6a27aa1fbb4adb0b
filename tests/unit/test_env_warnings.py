"""The env file's warnings are shown by the commands that check or apply it (check, render,
up, deploy; init shows its own), once each, and not repeated by every command that looks at
or works on a running stack (status, logs, manage, down...). Through the CLI, docker stubbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.core.stack import Stack, StackStatus, StackView

KEY = "k8Jd0-Qa_zP3xR7vN2mL5tY9wB4cF6hG1jK0sD8eU3iO7pA2qZ5xC9vB1nM4lT6r"
ENV = f"STACK_NAME=shop\nDJANGO_SECRET_KEY={KEY}\nPOSTGRES_PASSWORD=pw-3kd9Qm2Lx8\n"
# what this .env.prod is warned about: plain HTTP, no off-site backups, no encryption
WARNED = ("USE_TLS [Nginx]", "DB_BACKUP_TARGET [Database]", "BACKUP_AGE_RECIPIENTS [Backups]")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".env.prod").write_text(ENV)
    # no engine: the stack is an empty one, and down does nothing
    monkeypatch.setattr(StackView, "status", lambda self: StackStatus(self.name, self.profile, [], self.urls()))
    monkeypatch.setattr(Stack, "down", lambda self, volumes=False: None)
    monkeypatch.setattr(StackView, "logs", lambda self, service, follow, tail: iter([]))
    import stackctl.core.backup

    monkeypatch.setattr(stackctl.core.backup, "backup_status", lambda stack, status: None)
    return tmp_path


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: ")]


@pytest.mark.parametrize("args", [("check", "--prod"), ("render", "--prod", "--dry-run")])
def test_the_commands_that_check_or_apply_the_env_file_warn_once_each(cli, project: Path, args) -> None:
    result = cli(*args, cwd=project)
    assert result.code == 0, result.err
    shown = _warnings(result.err)
    for what in WARNED:
        assert sum(what in line for line in shown) == 1, shown


@pytest.mark.parametrize(
    "args", [("status", "--prod"), ("down", "--prod"), ("logs", "--prod"), ("status", "--prod", "--json")]
)
def test_the_commands_on_a_running_stack_do_not_repeat_them(cli, project: Path, args) -> None:
    result = cli(*args, cwd=project)
    assert _warnings(result.err) == [], result.err
    assert all(what not in result.err for what in WARNED)
