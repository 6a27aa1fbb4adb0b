"""Shared fixtures: an isolated CLI runner, and the real-engine gate that CI never skips."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackctl.adapters.docker import engine_answers

REPO = Path(__file__).resolve().parent.parent
STACKCTL = Path(sys.executable).parent / "stackctl"


def engine_required() -> bool:
    """In CI (and under `make test`) a missing engine is a failure, never a skip."""
    return bool(os.environ.get("CI") or os.environ.get("STACKCTL_REQUIRE_ENGINE"))


_engine_ok: bool | None = None


def pytest_runtest_setup(item: pytest.Item) -> None:
    global _engine_ok
    if item.get_closest_marker("engine") is None:
        return
    if _engine_ok is None:
        _engine_ok = engine_answers()
    if not _engine_ok:
        if engine_required():
            pytest.fail("no Docker engine answers; real-engine tests may not skip here (run `make test`)")
        pytest.skip("no Docker engine answers (run `stackctl engine ensure`); CI never skips this")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Isolation for CLI runs: no colour, fixed width, a temp HOME."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"NO_COLOR": "1", "COLUMNS": "120", "HOME": str(home), "TERM": "dumb"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STACKCTL_DEBUG", raising=False)
    return env


@pytest.fixture
def cli(cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `stackctl ARGS` in-process; returns exit code, stdout and stderr."""
    from stackctl.cli.app import main

    def run(*args: str, cwd: Path | None = None, stdin: str = "") -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def stackctl_proc(cli_env: dict[str, str]):
    """Run the installed `stackctl` as a subprocess with no terminal (what scripts and CI see)."""

    def run(
        *args: str, cwd: Path, timeout: float = 900, stdin: str = "", env: dict[str, str] | None = None
    ) -> CliResult:
        env = {**os.environ, **cli_env, **(env or {})}
        proc = subprocess.run(
            [str(STACKCTL), *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
