"""Where `stackctl init` puts the stack, and which images it selects.

The project's own files are never touched: when it already has a docker-compose.yml,
Dockerfile, .dockerignore, nginx/, compose/, backup/ or env files that stackctl did not
write, the stack goes into its own folder (`stack/`). Files stackctl rendered before are
recognised by the render state (`.stackctl/rendered.json`), env files by their header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stackctl.core.project import STATE_DIR, Project

# What a project may already have that a top-level stack would write or be confused by.
OWN_FILES = (
    "docker-compose.yml",
    "docker-compose.yaml",
    "compose.yml",
    "compose.yaml",
    "docker-compose.prod.yml",
    "Dockerfile",
    ".dockerignore",
    "nginx",
    "compose",
    "backup",
    ".env",
    ".env.prod",
    ".env.example",
)
ENV_HEADER = "# stackctl "  # the first line of every env file init writes

ImageChoice = Literal["auto", "local", "official"]


@dataclass(frozen=True)
class Layout:
    project: Project
    in_the_way: tuple[str, ...]  # the project's own files that sent the stack into stack/


def _rendered_before(root: Path) -> set[str]:
    try:
        data = json.loads((root / STATE_DIR / "rendered.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def _ours(root: Path, name: str, rendered: set[str]) -> bool:
    path = root / name
    if name.startswith(".env"):
        try:
            first = path.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        except OSError:
            return False
        return name in rendered or bool(first and first[0].startswith(ENV_HEADER))
    if path.is_dir():
        files = [p.relative_to(root).as_posix() for p in path.rglob("*") if p.is_file()]
        return all(f in rendered for f in files)
    return name in rendered


def choose_layout(root: Path) -> Layout:
    """The layout a stack already has, or, for a first init, the one that leaves the
    project's own files alone."""
    existing = Project.at(root)
    if existing.root != existing.source or (existing.root / STATE_DIR / "source").is_file():
        return Layout(existing, ())
    rendered = _rendered_before(root)
    in_the_way = tuple(n for n in OWN_FILES if (root / n).exists() and not _ours(root, n, rendered))
    return Layout(Project.nested(root) if in_the_way else Project(root, root), in_the_way)
