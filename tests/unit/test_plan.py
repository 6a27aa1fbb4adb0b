"""Render, plan, write: labels, conflicts, atomic writes, paths outside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackctl.adapters.files import write_atomic
from stackctl.core.plan import Action, apply_plan, plan_files
from stackctl.errors import ConflictError, StackctlError


def rendered(**files: str) -> dict[str, tuple[bytes, int]]:
    return {name.replace("__", "/"): (text.encode(), 0o644) for name, text in files.items()}


def labels(tmp_path: Path, files: dict[str, tuple[bytes, int]]) -> dict[str, str]:
    return {f.path: f.action.value for f in plan_files(tmp_path, files).files}


def test_create_then_identical(tmp_path: Path) -> None:
    files = rendered(a="one\n", compose__b="two\n")
    assert labels(tmp_path, files) == {"a": "create", "compose/b": "create"}
    apply_plan(plan_files(tmp_path, files))
    assert (tmp_path / "compose/b").read_text() == "two\n"
    assert labels(tmp_path, files) == {"a": "identical", "compose/b": "identical"}


def test_overwrite_only_what_stackctl_wrote(tmp_path: Path) -> None:
    apply_plan(plan_files(tmp_path, rendered(a="v1\n", b="v1\n")))
    (tmp_path / "b").write_text("edited by hand\n")
    plan = plan_files(tmp_path, rendered(a="v2\n", b="v2\n"))
    assert {f.path: f.action for f in plan.files} == {"a": Action.OVERWRITE, "b": Action.CONFLICT}
    with pytest.raises(ConflictError, match="edited by hand since stackctl rendered it: b"):
        apply_plan(plan)
    # nothing at all was written: the refusal is all-or-nothing
    assert (tmp_path / "a").read_text() == "v1\n"
    assert (tmp_path / "b").read_text() == "edited by hand\n"
    apply_plan(plan, force=True)
    assert (tmp_path / "b").read_text() == "v2\n"


def test_unknown_existing_file_is_a_conflict(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("mine\n")
    assert labels(tmp_path, rendered(a="theirs\n")) == {"a": "conflict"}


def test_path_outside_the_project_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackctlError, match="outside"):
        plan_files(tmp_path / "proj", {"../escape": (b"x", 0o644)})


def test_modes_are_applied(tmp_path: Path) -> None:
    apply_plan(plan_files(tmp_path, {"run.sh": (b"#!/bin/sh\n", 0o755), "secret": (b"k=v\n", 0o600)}))
    assert (tmp_path / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_text("old\n")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # no temp file left behind
