"""One error hierarchy for stackctl. The CLI edge maps each class to an exit code.

Exit codes (documented in the README):
    0  success
    1  StackctlError (generic) and ConfigError: the configuration is invalid
    2  usage error (typer/click)
    4  EngineError: no Docker engine answers, or it could not be started
    5  DockerCommandError: a docker/compose call failed
    6  StackUnhealthy: a service failed or stayed unhealthy
    7  BackupError / RestoreError: a backup or restore failed or was refused
    8  ConflictError: a file was modified by hand and --force was not given
    9  Aborted: the user declined, or no terminal could confirm a destructive action
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STDERR_TAIL_LINES = 15


def stderr_tail(text: str | bytes | None, lines: int = STDERR_TAIL_LINES) -> str:
    """The last non-blank lines of a command's stderr, for an error message."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    kept = [line for line in (text or "").strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


class StackctlError(Exception):
    """Root of every error stackctl raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in the configuration: where it is, what is wrong, how to fix it."""

    file: str
    variable: str
    group: str
    message: str
    value: str | None = None  # None when the value is secret or absent
    hint: str | None = None
    severity: str = "error"  # "error" or "warning"

    def render(self) -> str:
        where = f"{self.file}: {self.variable}" if self.variable else self.file
        if self.group:
            where += f" [{self.group}]"
        text = f"{where}: {self.message}"
        if self.value is not None:
            text += f" (got {self.value!r})"
        if self.hint:
            text += f"; fix: {self.hint}"
        return text


class ConfigError(StackctlError):
    exit_code = 1

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__(f"the configuration has {len(errors)} error(s)")


class CommandExited(StackctlError):
    """A command run for the user (manage.py) exited non-zero; its own output said why, unless
    `message` says what docker's own code means (126: not run, 137: killed)."""

    def __init__(self, code: int | None, *, message: str = "") -> None:
        super().__init__(message)
        self.exit_code = code or 1


class EngineError(StackctlError):
    exit_code = 4


class DockerCommandError(StackctlError):
    exit_code = 5


class StackUnhealthy(StackctlError):
    exit_code = 6

    def __init__(self, message: str, *, logs: dict[str, str] | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.logs = logs or {}


class ServiceNotRunning(StackUnhealthy):
    """A command needs a service's running container (manage needs web) and it is exited,
    restarting or absent: the message says which, with its last exception. Exit code 6."""


class SettingsNotVerified(StackUnhealthy):
    """The stack runs, but the settings in effect in web are not what the env file says
    (stackctl.core.verify): one finding per setting, each with its fix. Exit code 6."""

    def __init__(self, message: str, *, findings: Sequence[object], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.findings = list(findings)


class BackupError(StackctlError):
    exit_code = 7


class RestoreError(StackctlError):
    exit_code = 7


class ConflictError(StackctlError):
    exit_code = 8


class Aborted(StackctlError):
    exit_code = 9


class CertificateError(StackctlError):
    """The CA issued no certificate (TLS_CERT_SOURCE=acme); nginx keeps the one it had."""

    exit_code = 10
