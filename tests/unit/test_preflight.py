"""stackctl.core.preflight: the migration plan the image's script prints, read and judged.

The script itself runs against a real database in tests/e2e/test_preflight.py; here each test
hands the parser a JSON line, and the runner is a stub."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from stackctl.core.preflight import (
    MIGRATIONS_COMMAND,
    BreakingMigrations,
    ClassifiedOperation,
    MigrationCheckFailed,
    check_plan,
    parse_migration_plan,
    read_migration_plan,
    refusal_message,
)
from stackctl.core.render import templates_dir
from stackctl.errors import DockerCommandError, StackctlError


def op(
    migration: str, operation: str, target: str, *, breaking: bool = False, review: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "app": "notes",
        "migration": migration,
        "operation": operation,
        "target": target,
        "description": extra.pop("description", f"{operation} {target}"),
        "reversible": extra.pop("reversible", True),
        "breaking": breaking,
        "review": review,
        "reason": extra.pop("reason", ""),
    }


def line(*migrations: tuple[str, list[dict[str, Any]]], **extra: Any) -> str:
    pending = [
        {
            "app": "notes",
            "name": name,
            "reversible": all(o["reversible"] for o in ops),
            "atomic": True,
            "operations": ops,
        }
        for name, ops in migrations
    ]
    return json.dumps({"vendor": "postgresql", "pending": pending, "conflicts": {}, "unknown_applied": [], **extra})


REMOVE = op(
    "0003_remove_note_title",
    "RemoveField",
    "notes.Note.title",
    breaking=True,
    reason="the release still serving reads this column",
)
ADD_NULL = op("0002_note_summary", "AddField", "notes.Note.summary")
RUN_PYTHON = op(
    "0004_fill",
    "RunPython",
    "",
    review=True,
    reversible=False,
    description="Raw Python operation",
    reason="runs code stackctl cannot read: review by hand",
)
PLAN = line(("0002_note_summary", [ADD_NULL]), ("0003_remove_note_title", [REMOVE]), ("0004_fill", [RUN_PYTHON]))


def test_parses_the_plan_into_frozen_dataclasses() -> None:
    plan = parse_migration_plan("some log line on stdout\n" + PLAN + "\n")
    assert [m.label for m in plan.pending] == [
        "notes.0002_note_summary",
        "notes.0003_remove_note_title",
        "notes.0004_fill",
    ]
    assert [m.classification for m in plan.pending] == ["safe", "breaking", "review"]
    assert [m.reversible for m in plan.pending] == [True, True, False]
    assert not plan.reversible
    assert plan.breaking == (
        ClassifiedOperation(
            app="notes",
            migration="0003_remove_note_title",
            operation="RemoveField",
            description="RemoveField notes.Note.title",
            breaking=True,
            review=False,
            reason="the release still serving reads this column",
            target="notes.Note.title",
            reversible=True,
        ),
    )
    assert [o.operation for o in plan.review] == ["RunPython"]
    with pytest.raises(AttributeError):
        plan.pending[0].name = "x"  # type: ignore[misc]


def test_refusal_names_each_breaking_operation() -> None:
    plan = parse_migration_plan(PLAN)
    assert refusal_message(plan) == (
        "1 pending migration operation(s) would break the release still serving:\n"
        "  notes.0003_remove_note_title: RemoveField notes.Note.title — the release still serving reads this column"
    )


def test_strict_refuses_what_needs_review_too() -> None:
    plan = parse_migration_plan(PLAN)
    assert [o.operation for o in plan.refusing(strict=True)] == ["RemoveField", "RunPython"]
    # an operation without a target is named by its class and Django's description
    assert "notes.0004_fill: RunPython (Raw Python operation) — runs code stackctl cannot read" in refusal_message(
        plan, strict=True
    )


def test_nothing_to_refuse() -> None:
    plan = parse_migration_plan(line(("0002_note_summary", [ADD_NULL])))
    assert refusal_message(plan) == ""
    check_plan(plan)  # no error
    assert parse_migration_plan(line()).pending == ()


def test_check_plan_raises_with_the_operations() -> None:
    with pytest.raises(BreakingMigrations) as caught:
        check_plan(parse_migration_plan(PLAN))
    assert [o.target for o in caught.value.operations] == ["notes.Note.title"]
    assert "--allow-downtime" in (caught.value.hint or "")
    assert caught.value.exit_code == 1


def test_conflicting_migrations_are_refused() -> None:
    plan = parse_migration_plan(line(conflicts={"notes": ["0002_b", "0002_a"]}))
    assert plan.conflicts == ("notes: 0002_b, 0002_a",)
    with pytest.raises(StackctlError, match=r"conflicting migrations.*notes: 0002_b, 0002_a"):
        check_plan(plan)


def test_unknown_applied_migrations_are_kept() -> None:
    plan = parse_migration_plan(line(unknown_applied=["notes.0009_later"]))
    assert plan.unknown_applied == ("notes.0009_later",)
    assert plan.to_json()["unknown_applied"] == ["notes.0009_later"]


def test_to_json_is_data() -> None:
    data = parse_migration_plan(PLAN).to_json()
    assert json.loads(json.dumps(data)) == data
    assert [m["class"] for m in data["pending"]] == ["safe", "breaking", "review"]  # type: ignore[index]
    assert data["breaking"] == [
        "notes.0003_remove_note_title: RemoveField notes.Note.title — the release still serving reads this column"
    ]


@pytest.mark.parametrize("output", ["", "not json\n", '{"vendor": "postgresql"}', "[1, 2]"])
def test_output_without_a_plan_is_an_error(output: str) -> None:
    with pytest.raises(StackctlError, match="printed no migration plan") as caught:
        parse_migration_plan(output)
    assert "built by this version of stackctl" in (caught.value.hint or "")


def test_the_runner_gets_the_script_command() -> None:
    seen: list[list[str]] = []

    def run(command: list[str]) -> str:
        seen.append(command)
        return PLAN

    assert len(read_migration_plan(run).pending) == 3
    assert seen == [list(MIGRATIONS_COMMAND)] == [["python", "/opt/stackctl/stackctl_migrations.py"]]


def test_a_script_failure_carries_the_exit_code_and_stderr_tail() -> None:
    stderr = "\n".join(f"noise {i}" for i in range(40)) + "\ndjango.db.utils.OperationalError: connection refused\n"

    def run(command: list[str]) -> str:
        raise DockerException(["docker", "compose", "run", *command], 1, b"", stderr.encode())

    with pytest.raises(MigrationCheckFailed) as caught:
        read_migration_plan(run)
    error = caught.value
    assert isinstance(error, DockerCommandError) and error.exit_code == 5
    assert error.return_code == 1
    assert error.message.startswith("the migration check failed in the new web image (exit 1)\n")
    assert error.message.endswith("django.db.utils.OperationalError: connection refused")
    assert "noise 0\n" not in error.message  # only the tail
    assert error.stderr.splitlines()[-1] == "django.db.utils.OperationalError: connection refused"


def test_an_image_without_the_script_says_to_rebuild() -> None:
    def run(command: list[str]) -> str:
        message = f"python: can't open file '{command[1]}': [Errno 2] No such file or directory"
        raise DockerException(command, 2, b"", message.encode())

    with pytest.raises(MigrationCheckFailed) as caught:
        read_migration_plan(run)
    assert caught.value.return_code == 2
    assert "build it again" in (caught.value.hint or "")


def test_the_image_script_treats_only_a_widening_as_the_same_column_type() -> None:
    """stackctl_migrations.py imports without Django (it loads it in report()); its pure
    helpers are checked here, its classification against a real database in tests/e2e."""
    folder = str(templates_dir() / "compose" / "stackctl")
    sys.path.insert(0, folder)
    try:
        script = importlib.import_module("stackctl_migrations")
    finally:
        sys.path.remove(folder)
    assert script._widened("varchar(200)", "varchar(300)")
    assert script._widened("varchar(200)", "varchar(200)")
    assert script._widened("varchar(200)", "text")
    assert not script._widened("varchar(300)", "varchar(200)")
    assert not script._widened("integer", "bigint")
    assert not script._widened("text", "varchar(200)")
