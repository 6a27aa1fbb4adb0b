"""templates/compose/stackctl/stackctl_build.py, the builder stage's helper: what ldd says a
compiled module needs (found or not), and the server import check after add-missing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HELPER = Path(__file__).resolve().parents[2] / "templates" / "compose" / "stackctl" / "stackctl_build.py"
LDD = """\tlinux-vdso.so.1 (0x00007ffd5a5f2000)
\tlibpq.so.5 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1a000000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1a400000)
"""


@pytest.fixture
def helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stackctl_build", HELPER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _completed(stdout: str = "", returncode: int = 0, stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], returncode, stdout, stderr)


def test_ldd_lines_give_the_found_paths_and_the_missing_names(helper: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helper.subprocess, "run", lambda *a, **k: _completed(LDD))
    paths, missing = helper.linked_libraries("/opt/venv/x/_psycopg.so")
    assert paths == {"/lib/x86_64-linux-gnu/libc.so.6"}
    assert missing == {"libpq.so.5"}  # "=> not found" has no address: it used to be dropped


def test_a_missing_library_gets_the_toolchain_then_a_second_look(
    helper: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.so").write_bytes(b"")
    base = tmp_path / "base"
    base.write_text("libc6\n")
    installed: list[list[str]] = []
    looks = iter([({"/lib/libc.so.6"}, {"libpq.so.5": "m.so"}), ({"/lib/libc.so.6", "/lib/libpq.so.5"}, {})])
    monkeypatch.setattr(helper, "_linked", lambda venv: next(looks))
    monkeypatch.setattr(helper, "toolchain", lambda packages: installed.append(packages) or 0)
    monkeypatch.setattr(helper, "owner", lambda lib: {"/lib/libc.so.6": "libc6", "/lib/libpq.so.5": "libpq5"}[lib])
    monkeypatch.setattr(helper, "installed", lambda name: False)
    assert helper.runtime_libraries(str(tmp_path), str(base), ["build-essential", "libpq-dev"]) == 0
    assert installed == [["build-essential", "libpq-dev"]]
    assert capsys.readouterr().out.split() == ["libpq5"]


def test_pure_psycopg_gets_libpq(
    helper: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base"
    base.write_text("libc6\n")
    monkeypatch.setattr(helper, "_linked", lambda venv: (set(), {}))
    monkeypatch.setattr(helper, "installed", lambda name: name == "psycopg")
    assert helper.runtime_libraries(str(tmp_path), str(base), []) == 0
    assert capsys.readouterr().out.split() == ["libpq5"]  # loaded with ctypes: ldd cannot see it


def test_an_added_server_that_cannot_import_fails_the_build_naming_it(
    helper: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = "AttributeError: module 'lib' has no attribute 'GEN_EMAIL'"
    monkeypatch.setattr(
        helper.subprocess, "run", lambda *a, **k: _completed(returncode=1, stderr=f"Traceback\n{error}")
    )
    assert helper._imports(["daphne"]) == 1
    assert f"daphne was added but `import daphne.server` fails: {error}" in capsys.readouterr().err


def test_daphne_is_added_without_twisteds_tls_extra(helper: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return _completed()

    monkeypatch.setattr(helper.subprocess, "run", run)
    monkeypatch.setattr(helper, "installed", lambda name: name not in ("daphne",))
    monkeypatch.setattr(helper.importlib.util, "find_spec", lambda name: object())
    assert helper.add_missing(["daphne=daphne==4.2.3"]) == 0
    pip = [c for c in calls if c[1:3] == ["-m", "pip"]]
    assert pip[0][-2:] == ["--no-deps", "daphne==4.2.3"]
    assert "twisted>=22.4" in pip[1] and not [a for a in pip[1] if "tls" in a]
    assert calls[-1] == [sys.executable, "-c", "import daphne.server"]
