"""A project's environments: dev (.env), prod (.env.prod), and any number of named ones.

An environment has a name and a kind (`Profile`). The kind decides the policy, the compose
template and the hardening: "dev" is only the environment named dev; prod and every named
environment (staging, demo...) are of kind "prod". The name decides the files
(`.env.NAME`, `docker-compose.NAME.yml`, ...), the compose project and the secrets folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from stackctl.errors import StackctlError

Profile = Literal["dev", "prod"]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
RESERVED = ("example",)  # .env.example documents the variables


@dataclass(frozen=True)
class Environment:
    name: str  # dev, prod, or a named one (staging)
    profile: Profile  # its kind

    @classmethod
    def named(cls, name: str) -> Environment:
        """The environment called `name`; a bad name is an error naming the fix."""
        if not NAME_PATTERN.match(name) or name in RESERVED:
            raise StackctlError(
                f"{name!r} is not an environment name",
                hint="use lowercase letters, digits and '-', starting with a letter, at most 31 characters "
                "(e.g. staging); not example",
            )
        return cls(name, "dev" if name == "dev" else "prod")

    @property
    def is_named(self) -> bool:
        """Neither of the built-in dev and prod."""
        return self.name not in ("dev", "prod")

    @property
    def suffix(self) -> str:
        """What the prod set's file names carry: "" (dev), ".prod", ".staging"."""
        return "" if self.profile == "dev" else f".{self.name}"

    @property
    def env_file(self) -> str:
        return f".env{self.suffix}"

    @property
    def flag(self) -> str:
        """How a command line selects it: "", "--prod", "--env staging"."""
        return "" if self.name == "dev" else "--prod" if self.name == "prod" else f"--env {self.name}"

    def command(self, verb: str) -> str:
        """`stackctl VERB` for this environment: "stackctl up --env staging"."""
        return f"stackctl {verb}{' ' + self.flag if self.flag else ''}"


DEV = Environment("dev", "dev")
PROD = Environment("prod", "prod")


def environment_of(profile: Profile) -> Environment:
    """The built-in environment of a kind."""
    return PROD if profile == "prod" else DEV
