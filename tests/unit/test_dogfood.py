"""The repository is its own worked example: its compose/, nginx/, backup/, compose files and
.env.example are what the templates render from .env.example for the bundled example app."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.config import load_config
from stackctl.config.profile import DEV, PROD
from stackctl.core.render import artifacts_for, render_set

REPO = Path(__file__).resolve().parents[2]


def _rendered() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for profile in ("dev", "prod"):
        cfg = load_config(REPO / ".env.example", profile=profile, policy=False).config  # type: ignore[arg-type]
        files.update({path: content for path, (content, _mode) in render_set(cfg).items()})
    return files


@pytest.fixture(scope="module")
def rendered() -> dict[str, bytes]:
    return _rendered()


@pytest.mark.parametrize("path", sorted(a.path for e in (DEV, PROD) for a in artifacts_for(e)))
def test_repo_file_matches_the_templates(path: str, rendered: dict[str, bytes]) -> None:
    on_disk = REPO / path
    assert on_disk.is_file(), f"{path} is missing: run `stackctl init` (or `stackctl render`) at the repo root"
    assert on_disk.read_bytes() == rendered[path], (
        f"{path} drifts from the templates: run `stackctl render` at the repo root"
    )


def test_example_env_documents_every_variable() -> None:
    from stackctl.config.model import variable_names

    text = (REPO / ".env.example").read_text()
    for name in variable_names():
        assert f"\n{name}=" in text, f"{name} is not in .env.example"
