"""The two stacks a project has: dev (.env) and prod (.env.prod)."""

from typing import Literal

Profile = Literal["dev", "prod"]
