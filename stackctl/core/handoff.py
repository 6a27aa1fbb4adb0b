"""The handoff notes of a deploy (`stackctl plan`): what a release changes, as data.

- **Packages** added, removed or changed between the running web image and the new one:
  each image prints its listing with `python /opt/stackctl/stackctl_packages.py`
  ({"packages": {name: version}}, names normalised); `pip freeze` text is read too.
- **Migrations** pending, and their class (stackctl.core.preflight).
- **Variables** of .env.example missing from the env file, read with stackctl's own env
  parsing (stackctl.config.loader.parse_env).
- **Services** that would be recreated. Compose's `com.docker.compose.config-hash` label is
  a hash of compose's internal model of a service, computed differently from one compose
  release to the next, so stackctl does not try to reproduce it. Instead each service is
  compared by two things stackctl can read for sure: the id of the image its container runs
  against the id of the image the new release would run, and a digest of the service's
  definition in `docker compose config --format json` (`service_digests`) against the digest
  recorded with the running release. Either one differing, or a service that appears or
  goes, means compose recreates it. A running service with no recorded digest is compared by
  image only, and said so.

Everything here is pure: the deploy gathers the inputs, these functions compare them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stackctl.config.loader import parse_env
from stackctl.core.preflight import MigrationPlan
from stackctl.errors import StackctlError

PACKAGES_SCRIPT = "/opt/stackctl/stackctl_packages.py"
ChangeKind = Literal["added", "removed", "changed"]


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it (the image's script does the same)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_packages(text: str) -> dict[str, str]:
    """The listing printed by stackctl_packages.py (its last JSON line), or `pip freeze` text."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[-1].startswith("{"):
        try:
            data = json.loads(lines[-1])
            packages = data["packages"]
            return {normalise(str(k)): str(v) for k, v in packages.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    elif lines:
        return parse_freeze(text)
    raise StackctlError(
        f"{PACKAGES_SCRIPT} printed no package listing",
        hint="is the web image built by this version of stackctl? run `stackctl render`, then build it again",
    )


def parse_freeze(text: str) -> dict[str, str]:
    """`pip freeze` lines: name==version, name @ url (version: the url), comments skipped."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        if "==" in line:
            name, _, version = line.partition("==")
        elif " @ " in line:
            name, _, version = line.partition(" @ ")
        else:
            continue
        found[normalise(name.split("[", 1)[0].strip())] = version.strip()
    return found


@dataclass(frozen=True)
class PackageChange:
    name: str
    before: str | None  # None: not in the running image
    after: str | None  # None: not in the new image

    @property
    def kind(self) -> ChangeKind:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"

    def render(self) -> str:
        if self.kind == "added":
            return f"+ {self.name} {self.after}"
        if self.kind == "removed":
            return f"- {self.name} {self.before}"
        return f"~ {self.name} {self.before} -> {self.after}"


def package_changes(running: Mapping[str, str], new: Mapping[str, str]) -> tuple[PackageChange, ...]:
    """Packages added, removed or at another version, by name."""
    old = {normalise(k): v for k, v in running.items()}
    now = {normalise(k): v for k, v in new.items()}
    return tuple(
        PackageChange(name, old.get(name), now.get(name))
        for name in sorted(old.keys() | now.keys())
        if old.get(name) != now.get(name)
    )


def missing_variables(example_text: str, env_text: str) -> tuple[str, ...]:
    """Variables .env.example sets that the env file does not, in the example's order."""
    have = parse_env(env_text)
    return tuple(name for name in parse_env(example_text) if name not in have)


def service_digests(config: Mapping[str, Any]) -> dict[str, str]:
    """service -> sha256 of its definition in `docker compose config --format json` (the
    python-on-whales `compose.config(return_json=True)` dict), keys sorted."""
    services = config.get("services") or {}
    return {
        name: hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()
        for name, definition in sorted(services.items())
    }


@dataclass(frozen=True)
class ServiceState:
    """What decides whether compose recreates a service's container."""

    image_id: str | None = None  # the image the container runs, or would run
    config_digest: str | None = None  # service_digests() of its definition; None if not recorded


@dataclass(frozen=True)
class ServiceChange:
    name: str
    reasons: tuple[str, ...]

    def render(self) -> str:
        return f"{self.name}: {', '.join(self.reasons)}"


def _reasons(old: ServiceState, new: ServiceState) -> list[str]:
    reasons = []
    if old.image_id and new.image_id and old.image_id != new.image_id:
        reasons.append("new image")
    if old.config_digest and new.config_digest and old.config_digest != new.config_digest:
        reasons.append("its configuration changed")
    return reasons


def services_to_recreate(
    running: Mapping[str, ServiceState], new: Mapping[str, ServiceState]
) -> tuple[ServiceChange, ...]:
    """Services whose image or definition differs, services that appear, and ones that go."""
    changes = []
    for name in sorted(running.keys() | new.keys()):
        if name not in running:
            changes.append(ServiceChange(name, ("not running yet",)))
        elif name not in new:
            changes.append(ServiceChange(name, ("removed from the configuration",)))
        else:
            reasons = _reasons(running[name], new[name])
            if reasons and running[name].config_digest is None:
                reasons.append("configuration not recorded: compared by image only")
            if reasons:
                changes.append(ServiceChange(name, tuple(reasons)))
    return tuple(changes)


@dataclass(frozen=True)
class Handoff:
    """The handoff notes of one release: `stackctl plan` and `deploy --dry-run` print them."""

    packages: tuple[PackageChange, ...] = ()
    migrations: MigrationPlan | None = None  # None: not checked (no database to check against)
    missing_variables: tuple[str, ...] = ()
    services: tuple[ServiceChange, ...] = ()
    env_file: str = ".env"
    notes: tuple[str, ...] = ()

    def render_text(self) -> str:
        sections = [
            self._packages_text(),
            self._migrations_text(),
            self._variables_text(),
            self._services_text(),
        ]
        if self.notes:
            sections.append("Notes:\n" + "\n".join(f"  {note}" for note in self.notes))
        return "\n\n".join(sections) + "\n"

    def _packages_text(self) -> str:
        if not self.packages:
            return "Packages: no change"
        return f"Packages ({len(self.packages)} changed):\n" + "\n".join(f"  {c.render()}" for c in self.packages)

    def _migrations_text(self) -> str:
        if self.migrations is None:
            return "Migrations: not checked"
        if not self.migrations.pending:
            return "Migrations: none pending"
        lines = [f"Migrations ({len(self.migrations.pending)} pending):"]
        for migration in self.migrations.pending:
            undo = "" if migration.reversible else ", not reversible"
            lines.append(f"  {migration.label} [{migration.classification}{undo}]")
            lines += [f"    {op.render()}" for op in migration.operations if op.breaking or op.review]
        return "\n".join(lines)

    def _variables_text(self) -> str:
        if not self.missing_variables:
            return f"Variables: none missing from {self.env_file}"
        names = "\n".join(f"  {name}" for name in self.missing_variables)
        return f"Variables of .env.example missing from {self.env_file}:\n{names}"

    def _services_text(self) -> str:
        if not self.services:
            return "Services: none recreated"
        return "Services recreated:\n" + "\n".join(f"  {s.render()}" for s in self.services)

    def to_json(self) -> dict[str, Any]:
        return {
            "packages": [
                {"name": c.name, "change": c.kind, "before": c.before, "after": c.after} for c in self.packages
            ],
            "migrations": None if self.migrations is None else self.migrations.to_json(),
            "missing_variables": list(self.missing_variables),
            "env_file": self.env_file,
            "services": [{"name": s.name, "reasons": list(s.reasons)} for s in self.services],
            "notes": list(self.notes),
        }
