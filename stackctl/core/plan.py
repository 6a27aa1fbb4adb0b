"""Render, plan, write: compare rendered files with the disk, then write atomically."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from stackctl.adapters.files import read_bytes_or_none, write_atomic
from stackctl.errors import ConflictError, StackctlError

STATE_FILE = ".stackctl/rendered.json"


class Action(StrEnum):
    CREATE = "create"
    IDENTICAL = "identical"
    OVERWRITE = "overwrite"  # stackctl wrote the old version and nobody edited it since
    CONFLICT = "conflict"  # the file on disk was edited by hand


@dataclass(frozen=True)
class PlannedFile:
    path: str
    action: Action
    content: bytes
    mode: int


@dataclass
class RenderPlan:
    root: Path
    files: list[PlannedFile] = field(default_factory=list)

    @property
    def conflicts(self) -> list[PlannedFile]:
        return [f for f in self.files if f.action is Action.CONFLICT]

    @property
    def changes(self) -> list[PlannedFile]:
        return [f for f in self.files if f.action is not Action.IDENTICAL]

    def summary(self) -> dict[str, int]:
        counts = {a.value: 0 for a in Action}
        for f in self.files:
            counts[f.action.value] += 1
        return counts

    def as_json(self) -> list[dict[str, str]]:
        return [{"path": f.path, "action": f.action.value} for f in self.files]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_state(root: Path) -> dict[str, str]:
    raw = read_bytes_or_none(root / STATE_FILE)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _safe_path(root: Path, rel: str) -> Path:
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        raise StackctlError(f"refusing to write {rel}: it is outside {root}")
    return target


def plan_files(root: Path, rendered: dict[str, tuple[bytes, int]]) -> RenderPlan:
    """Label each rendered file create / identical / overwrite / conflict."""
    state = _load_state(root)
    plan = RenderPlan(root=root)
    for rel, (content, mode) in sorted(rendered.items()):
        on_disk = read_bytes_or_none(_safe_path(root, rel))
        if on_disk is None:
            action = Action.CREATE
        elif on_disk == content:
            action = Action.IDENTICAL
        elif state.get(rel) == _digest(on_disk):
            action = Action.OVERWRITE
        else:
            action = Action.CONFLICT
        plan.files.append(PlannedFile(rel, action, content, mode))
    return plan


def apply_plan(plan: RenderPlan, *, force: bool = False) -> list[PlannedFile]:
    """Write every changed file atomically. Refuses all writes if any conflict lacks --force."""
    if plan.conflicts and not force:
        names = ", ".join(f.path for f in plan.conflicts)
        raise ConflictError(
            f"edited by hand since stackctl rendered it: {names}",
            hint="keep your edits by moving them into .env, or pass --force to overwrite",
        )
    written = []
    state = _load_state(plan.root)
    for item in plan.files:
        if item.action is not Action.IDENTICAL:
            write_atomic(_safe_path(plan.root, item.path), item.content, mode=item.mode)
            written.append(item)
        state[item.path] = _digest(item.content)
    if written or not (plan.root / STATE_FILE).exists():
        payload = json.dumps(dict(sorted(state.items())), indent=2) + "\n"
        write_atomic(plan.root / STATE_FILE, payload.encode())
    return written
