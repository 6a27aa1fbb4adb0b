"""The pending migrations of a release, classified against the release still serving.

The web image ships `stackctl_migrations.py` (templates/compose/stackctl/): run in a one-off
container of the new image against the live database, it prints one JSON line, the
migrations `migrate` would apply, each operation marked *breaking* (the old release fails
beside it: a column or table goes or is renamed, a NOT NULL column without a database default
appears, a column changes type) or *review* (RunSQL, RunPython, a new constraint, an
operation stackctl does not know). The classification is the script's, made from Django's
operation classes and the project state before each one, never from the migration's text.

`parse_migration_plan` reads that line; `read_migration_plan` runs the script through a
runner (`compose_runner` for `docker compose run --rm --no-deps web`, or the deploy's own)
and turns a failure into MigrationCheckFailed with its exit code and the tail of stderr;
`refusal_message` names each operation that refuses the zero-downtime path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError
from python_on_whales.exceptions import DockerException

from stackctl.config.webimage import IMAGE_DIR
from stackctl.errors import DockerCommandError, StackctlError, stderr_tail

if TYPE_CHECKING:
    from python_on_whales import DockerClient

MIGRATIONS_SCRIPT = f"{IMAGE_DIR}/stackctl_migrations.py"
MIGRATIONS_COMMAND = ("python", MIGRATIONS_SCRIPT)
REBUILD_HINT = "is the web image built by this version of stackctl? run `stackctl render`, then build it again"

# Runs a command in a container of the new web image and returns its stdout.
Runner = Callable[[list[str]], str]


class MigrationCheckFailed(DockerCommandError):
    """The migration script failed in the new image (exit code 5): its exit code and stderr."""

    def __init__(self, message: str, *, return_code: int | None, stderr: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.return_code = return_code
        self.stderr = stderr


class BreakingMigrations(StackctlError):
    """Pending migrations would break the release still serving (exit code 1)."""

    def __init__(self, message: str, *, operations: tuple[ClassifiedOperation, ...], hint: str | None = None):
        super().__init__(message, hint=hint)
        self.operations = operations


class _OperationSeen(BaseModel):
    app: str
    migration: str
    operation: str
    target: str = ""
    description: str
    reversible: bool
    breaking: bool
    review: bool
    reason: str = ""


class _MigrationSeen(BaseModel):
    app: str
    name: str
    reversible: bool
    atomic: bool = True
    operations: list[_OperationSeen]


class _PlanSeen(BaseModel):
    vendor: str = ""
    pending: list[_MigrationSeen]
    conflicts: dict[str, list[str]] = Field(default_factory=dict)
    unknown_applied: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class ClassifiedOperation:
    """One operation of a pending migration, as the release still serving meets it."""

    app: str
    migration: str
    operation: str  # the class name: RemoveField, AddField, RunPython, ...
    description: str  # Django's own describe()
    breaking: bool
    review: bool
    reason: str
    target: str = ""  # app.Model[.field], when the operation names one
    reversible: bool = True

    @property
    def where(self) -> str:
        return f"{self.app}.{self.migration}"

    def render(self) -> str:
        """notes.0003_remove_note_title: RemoveField notes.Note.title — the release ... column"""
        what = f"{self.operation} {self.target}" if self.target else f"{self.operation} ({self.description})"
        return f"{self.where}: {what} — {self.reason}" if self.reason else f"{self.where}: {what}"


@dataclass(frozen=True)
class PendingMigration:
    app: str
    name: str
    reversible: bool  # every operation can be reversed: `migrate` back works for a rollback
    operations: tuple[ClassifiedOperation, ...]

    @property
    def label(self) -> str:
        return f"{self.app}.{self.name}"

    @property
    def classification(self) -> str:
        """breaking, review or safe: its worst operation."""
        if any(op.breaking for op in self.operations):
            return "breaking"
        if any(op.review for op in self.operations):
            return "review"
        return "safe"


@dataclass(frozen=True)
class MigrationPlan:
    pending: tuple[PendingMigration, ...]
    conflicts: tuple[str, ...] = ()  # apps with several leaf migrations (makemigrations --merge)
    unknown_applied: tuple[str, ...] = ()  # applied in the database, absent from the image

    @property
    def operations(self) -> tuple[ClassifiedOperation, ...]:
        return tuple(op for migration in self.pending for op in migration.operations)

    @property
    def breaking(self) -> tuple[ClassifiedOperation, ...]:
        return tuple(op for op in self.operations if op.breaking)

    @property
    def review(self) -> tuple[ClassifiedOperation, ...]:
        """Operations to read by hand (not breaking unless the deploy is strict)."""
        return tuple(op for op in self.operations if op.review and not op.breaking)

    @property
    def reversible(self) -> bool:
        return all(m.reversible for m in self.pending)

    def refusing(self, *, strict: bool = False) -> tuple[ClassifiedOperation, ...]:
        """What refuses the zero-downtime path: the breaking operations, and with `strict`
        the ones to review too."""
        return tuple(op for op in self.operations if op.breaking or (strict and op.review))

    def to_json(self) -> dict[str, object]:
        return {
            "pending": [
                {
                    "app": m.app,
                    "name": m.name,
                    "reversible": m.reversible,
                    "class": m.classification,
                    "operations": [
                        {
                            "operation": op.operation,
                            "target": op.target,
                            "description": op.description,
                            "breaking": op.breaking,
                            "review": op.review,
                            "reversible": op.reversible,
                            "reason": op.reason,
                        }
                        for op in m.operations
                    ],
                }
                for m in self.pending
            ],
            "breaking": [op.render() for op in self.breaking],
            "review": [op.render() for op in self.review],
            "reversible": self.reversible,
            "conflicts": list(self.conflicts),
            "unknown_applied": list(self.unknown_applied),
        }


def parse_migration_plan(json_text: str) -> MigrationPlan:
    """The last non-blank line of the script's stdout, as a MigrationPlan."""
    lines = [line for line in json_text.splitlines() if line.strip()]
    try:
        seen = _PlanSeen.model_validate(json.loads(lines[-1]))
    except (IndexError, ValueError, ValidationError) as exc:
        raise StackctlError(
            f"{MIGRATIONS_SCRIPT} printed no migration plan ({type(exc).__name__})", hint=REBUILD_HINT
        ) from None
    pending = tuple(
        PendingMigration(
            m.app,
            m.name,
            m.reversible,
            tuple(
                ClassifiedOperation(
                    app=op.app,
                    migration=op.migration,
                    operation=op.operation,
                    description=op.description,
                    breaking=op.breaking,
                    review=op.review,
                    reason=op.reason,
                    target=op.target,
                    reversible=op.reversible,
                )
                for op in m.operations
            ),
        )
        for m in seen.pending
    )
    conflicts = tuple(f"{app}: {', '.join(names)}" for app, names in sorted(seen.conflicts.items()))
    return MigrationPlan(pending, conflicts, tuple(seen.unknown_applied))


def refusal_message(plan: MigrationPlan, *, strict: bool = False) -> str:
    """Why the zero-downtime path is refused, one line per operation; "" when it is not."""
    refused = plan.refusing(strict=strict)
    if not refused:
        return ""
    lines = "\n".join(f"  {op.render()}" for op in refused)
    return f"{len(refused)} pending migration operation(s) would break the release still serving:\n{lines}"


def check_plan(plan: MigrationPlan, *, strict: bool = False) -> None:
    """Raise BreakingMigrations when the plan refuses the zero-downtime path; a plan whose
    apps have conflicting migrations is refused too (migrate would stop on it)."""
    if plan.conflicts:
        raise StackctlError(
            "conflicting migrations (several leaves) in: " + "; ".join(plan.conflicts),
            hint="merge them: `stackctl manage makemigrations --merge`, then deploy again",
        )
    message = refusal_message(plan, strict=strict)
    if message:
        raise BreakingMigrations(
            message,
            operations=plan.refusing(strict=strict),
            hint="split the change (expand, deploy, then contract), or deploy with --allow-downtime",
        )


def compose_runner(client: DockerClient, *, service: str = "web", build: bool = False) -> Runner:
    """Run a command in a one-off container of `service` (`docker compose run --rm --no-deps`,
    `--build` first with `build`): the image compose would start, against the live database."""

    def run(command: list[str]) -> str:
        output = client.compose.run(service, command, remove=True, dependencies=False, tty=False, build=build)
        return str(output or "")

    return run


def read_migration_plan(run: Runner) -> MigrationPlan:
    """Run the migration script through `run` and parse what it prints; a failure of the
    script (settings that do not load, a database that does not answer, ...) raises
    MigrationCheckFailed with its exit code and the tail of its stderr."""
    try:
        output = run(list(MIGRATIONS_COMMAND))
    except DockerException as exc:
        tail = stderr_tail(exc.stderr)
        raise MigrationCheckFailed(
            f"the migration check failed in the new web image (exit {exc.return_code})\n{tail}".rstrip(),
            return_code=exc.return_code,
            stderr=tail,
            hint=REBUILD_HINT if "No such file" in tail and MIGRATIONS_SCRIPT in tail else None,
        ) from None
    return parse_migration_plan(output)
