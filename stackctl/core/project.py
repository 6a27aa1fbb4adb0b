"""A stackctl project on disk: where its env files and compose files are, per environment.

Two layouts. With nothing in the way (this repository), the stack's files sit at the top of
the user's project. When the project already has files of its own that stackctl would write
(a docker-compose.yml, a Dockerfile, .dockerignore, nginx/, compose/, backup/, .env...),
`stackctl init` puts the whole stack in a folder of its own, `stack/`, and never touches
those files. `.stackctl/source` in the stack's folder says where the project's root (the
build context) is relative to it, so every command finds the stack from either folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackctl.config.profile import Environment

DEV_COMPOSE_FILE = "docker-compose.yml"
STACK_DIR = "stack"  # the stack's own folder, when the project's files are in the way
STATE_DIR = ".stackctl"
SOURCE_FILE = f"{STATE_DIR}/source"  # the project root, relative to the stack's folder


@dataclass(frozen=True)
class Project:
    root: Path  # the stack's folder: env files, compose files, compose/, nginx/, backup/
    source: Path  # the user's project root: the build context of the web image

    @classmethod
    def at(cls, path: Path | None = None) -> Project:
        """The project at `path` (default: the current folder): its own stack folder when
        `stackctl init` made one, else the folder itself."""
        here = (path or Path.cwd()).resolve()
        for stack_dir in (here / STACK_DIR, here):
            source = _source_of(stack_dir)
            if source is not None:
                return cls(stack_dir, source)
        # a clone whose marker was not committed: stack/ holding a rendered stack
        if (here / STACK_DIR / DEV_COMPOSE_FILE).is_file() and (here / STACK_DIR / ".env.example").is_file():
            return cls.nested(here)
        return cls(here, here)

    @classmethod
    def nested(cls, source: Path) -> Project:
        """The layout with the stack in its own folder of `source`."""
        return cls(source / STACK_DIR, source)

    @property
    def is_nested(self) -> bool:
        return self.root != self.source

    def env_file(self, env: Environment) -> Path:
        """.env, .env.prod, .env.staging"""
        return self.root / env.env_file

    def compose_files(self, env: Environment) -> list[Path]:
        """docker-compose.yml, or the prod kind's own, which stands alone: docker-compose.prod.yml,
        docker-compose.staging.yml (each rendered from its env file only)."""
        return [self.root / f"docker-compose{env.suffix}.yml"]

    def named_environments(self) -> list[str]:
        """The named environments that have an env file here (.env.staging), sorted."""
        from stackctl.config.profile import NAME_PATTERN, RESERVED

        found = (p.name.removeprefix(".env.") for p in self.root.glob(".env.*") if p.is_file())
        return sorted(n for n in found if NAME_PATTERN.match(n) and n not in ("dev", "prod", *RESERVED))

    def source_marker(self) -> tuple[str, bytes]:
        """The file that records this layout (relative to `root`, content)."""
        return SOURCE_FILE, (Path("..").as_posix() if self.is_nested else ".").encode() + b"\n"


def _source_of(stack_dir: Path) -> Path | None:
    try:
        text = (stack_dir / SOURCE_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    return (stack_dir / (text or ".")).resolve()
