"""A stackctl project on disk: where its env files and compose files are, per profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Profile = Literal["dev", "prod"]

ENV_FILES: dict[Profile, str] = {"dev": ".env", "prod": ".env.prod"}
COMPOSE_FILES: dict[Profile, tuple[str, ...]] = {
    "dev": ("docker-compose.yml",),
    "prod": ("docker-compose.yml", "docker-compose.prod.yml"),
}


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def at(cls, path: Path | None = None) -> Project:
        return cls((path or Path.cwd()).resolve())

    def env_file(self, profile: Profile) -> Path:
        return self.root / ENV_FILES[profile]

    def compose_files(self, profile: Profile) -> list[Path]:
        return [self.root / name for name in COMPOSE_FILES[profile]]
