"""Print the migrations a release would apply, each operation classified, as one JSON line
(stackctl, verbatim).

`python /opt/stackctl/stackctl_migrations.py` in a one-off container of the new web image,
against the live database: Django loads as daphne does (stackctl_verify.load_django), then
MigrationExecutor(connection).migration_plan(the leaf nodes) lists what `migrate` would apply.
Each operation is held against the project state just before it (built as `migrate` builds
it: the applied migrations, then the plan in its order), by its class (never by its text), and
marked for the release that is still serving while it runs, whose code knows the state of the
applied migrations only (what a pending migration made and unmade, it never uses):
- breaking: that release would fail (it reads a column that goes, writes a row without a new
  NOT NULL column, meets a new column type or table name);
- review: stackctl cannot tell (RunSQL, RunPython, an unknown operation) or it may fail
  (a new constraint the old code's writes may violate);
- neither: safe beside the old release.
Each migration says whether it can be reversed (every operation reversible), for a rollback.
Only the JSON line goes to stdout; whatever Django or the project logs goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from stackctl_verify import load_django


class Verdict:
    """How one operation treats the release still serving."""

    def __init__(self, breaking: bool = False, review: bool = False, reason: str = "") -> None:
        self.breaking = breaking
        self.review = review
        self.reason = reason

    def as_dict(self) -> dict[str, Any]:
        return {"breaking": self.breaking, "review": self.review, "reason": self.reason}


SAFE = Verdict()


def _model_state(state: Any, app: str, name: str) -> Any:
    return state.models.get((app, name.lower()))


def _has_table(state: Any, app: str, name: str) -> bool:
    """Whether a model of the state is a table of its own (managed, not a proxy)."""
    model = _model_state(state, app, name)
    if model is None:
        return False
    return bool(model.options.get("managed", True)) and not model.options.get("proxy", False)


def _field(state: Any, app: str, model: str, name: str) -> Any:
    """The field bound to its rendered model: what the schema editor itself looks at."""
    return state.apps.get_model(app, model)._meta.get_field(name)


def _db_type(field: Any, connection: Any) -> str:
    return str(field.db_parameters(connection=connection).get("type") or "")


def _has_db_default(field: Any) -> bool:
    from django.db.models.fields import NOT_PROVIDED

    return getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED


def _widened(old: str, new: str) -> bool:
    """varchar(N) -> varchar(M) with M > N, or -> text: the old release's rows and writes still
    fit, and postgres changes only the catalogue (no rewrite of the table)."""
    import re

    a, b = (re.fullmatch(r"varchar\((\d+)\)", t) for t in (old, new))
    if a and new == "text":
        return True
    return bool(a and b and int(b.group(1)) >= int(a.group(1)))


class Serving:
    """The release still serving: the state of the migrations applied in the database (what
    its code knows), and the database connection the column types are rendered for."""

    def __init__(self, state: Any, connection: Any) -> None:
        self.state = state
        self.connection = connection

    def knows(self, app: str, model: str, field: str | None = None) -> bool:
        """Whether its code uses this table (and column): not made by a pending migration."""
        if not _has_table(self.state, app, model):
            return False
        return field is None or field in _model_state(self.state, app, model).fields


NOT_SERVED = Verdict(reason="made by a pending migration: the release still serving does not use it")


def _add_field(op: Any, app: str, before: Any, serving: Serving) -> Verdict:
    field = op.field
    if field.many_to_many:
        return Verdict(reason="a new join table; the release still serving ignores it")
    if field.null or _has_db_default(field) or getattr(field, "generated", False):
        return SAFE
    if not _has_table(before, app, op.model_name):
        return SAFE
    if not serving.knows(app, op.model_name):
        return NOT_SERVED
    return Verdict(
        True,
        reason="NOT NULL without a database default (db_default): the release still serving inserts rows without it",
    )


def _alter_field(op: Any, app: str, before: Any, after: Any, serving: Serving) -> Verdict:
    if not _has_table(before, app, op.model_name) or not serving.knows(app, op.model_name):
        return SAFE
    old = _field(before, app, op.model_name, op.name)
    new = _field(after, app, op.model_name, op.name)
    if old.many_to_many or new.many_to_many:
        return Verdict(review=True, reason="a many-to-many field changes: review by hand")
    old_type, new_type = _db_type(old, serving.connection), _db_type(new, serving.connection)
    if old_type != new_type and not _widened(old_type, new_type):
        # ALTER COLUMN ... TYPE rewrites the table under a lock, whoever uses the column
        return Verdict(
            True,
            reason=f"changes the column type from {old_type} to {new_type}: the table is rewritten under a lock "
            "and the release still serving reads the old type",
        )
    if not serving.knows(app, op.model_name, op.name):
        return NOT_SERVED
    if old.column != new.column:
        return Verdict(
            True,
            reason=f"renames the column {old.column} to {new.column}: the release still serving reads {old.column}",
        )
    if old.null and not new.null:
        if old.has_default() or _has_db_default(new):
            return Verdict(
                review=True,
                reason="makes the column NOT NULL: the release still serving writes NULL only where it sets None",
            )
        return Verdict(
            True, reason="makes the column NOT NULL without a default: the release still serving writes NULL into it"
        )
    if new.unique and not old.unique:
        return Verdict(review=True, reason="adds a unique constraint the release still serving may violate")
    return SAFE


def _rename_field(op: Any, app: str, before: Any, after: Any, serving: Serving) -> Verdict:
    if not _has_table(before, app, op.model_name):
        return SAFE
    if not serving.knows(app, op.model_name, op.old_name):
        return NOT_SERVED
    old = _field(before, app, op.model_name, op.old_name)
    new = _field(after, app, op.model_name, op.new_name)
    if old.column == new.column:
        return Verdict(reason="the column keeps its name (db_column)")
    return Verdict(True, reason=f"renames the column {old.column}: the release still serving reads {old.column}")


def _table(state: Any, app: str, model: str) -> str:
    return str(state.apps.get_model(app, model)._meta.db_table)


def _rename_model(op: Any, app: str, before: Any, after: Any, serving: Serving) -> Verdict:
    if not _has_table(before, app, op.old_name):
        return SAFE
    if not serving.knows(app, op.old_name):
        return NOT_SERVED
    old, new = _table(before, app, op.old_name), _table(after, app, op.new_name)
    if old == new:
        return Verdict(reason="the table keeps its name (db_table)")
    return Verdict(True, reason=f"renames the table {old}: the release still serving reads {old}")


def _alter_table(op: Any, app: str, before: Any, after: Any, serving: Serving) -> Verdict:
    if not _has_table(before, app, op.name):
        return SAFE
    if not serving.knows(app, op.name):
        return NOT_SERVED
    old, new = _table(before, app, op.name), _table(after, app, op.name)
    if old == new:
        return SAFE
    return Verdict(True, reason=f"renames the table {old} to {new}: the release still serving reads {old}")


def _removal(app: str, before: Any, serving: Serving, model: str, field: str | None, what: str) -> Verdict:
    if not _has_table(before, app, model):
        return SAFE
    if not serving.knows(app, model, field):
        return NOT_SERVED
    return Verdict(True, reason=f"the release still serving reads this {what}")


def classify(op: Any, app: str, before: Any, after: Any, serving: Serving) -> Verdict:
    """One operation, against the project states just before and just after it."""
    from django.db import migrations as m

    if isinstance(op, m.SeparateDatabaseAndState):
        return _separate(op, app, before, serving)
    if isinstance(op, m.RemoveField):
        return _removal(app, before, serving, op.model_name, op.name, "column")
    if isinstance(op, m.DeleteModel):
        return _removal(app, before, serving, op.name, None, "table")
    if isinstance(op, m.RenameField):
        return _rename_field(op, app, before, after, serving)
    if isinstance(op, m.RenameModel):
        return _rename_model(op, app, before, after, serving)
    if isinstance(op, m.AlterModelTable):
        return _alter_table(op, app, before, after, serving)
    if isinstance(op, m.AlterField):
        return _alter_field(op, app, before, after, serving)
    if isinstance(op, m.AddField):
        return _add_field(op, app, before, serving)
    if isinstance(op, m.AddConstraint | m.AlterUniqueTogether):
        return Verdict(review=True, reason="rows the release still serving writes may violate the new constraint")
    if isinstance(op, m.RunSQL | m.RunPython):
        return Verdict(review=True, reason="runs code stackctl cannot read: review by hand")
    if isinstance(op, m.AlterOrderWithRespectTo):
        return Verdict(review=True, reason="adds or drops the _order column: review by hand")
    if isinstance(op, _safe_operations(m)):
        return SAFE
    return Verdict(
        review=True, reason=f"{type(op).__module__}.{type(op).__name__} is not known to stackctl: review by hand"
    )


def _safe_operations(m: Any) -> tuple[type, ...]:
    """Operations that leave every table and column the old release uses as they were."""
    return (
        m.CreateModel,
        m.AddIndex,
        m.RemoveIndex,
        m.RenameIndex,
        m.RemoveConstraint,
        m.AlterModelOptions,
        m.AlterModelManagers,
        m.AlterIndexTogether,
        *((m.AlterModelTableComment,) if hasattr(m, "AlterModelTableComment") else ()),
    )


def _separate(op: Any, app: str, before: Any, serving: Serving) -> Verdict:
    """SeparateDatabaseAndState: what its database operations do to the old release."""
    state = before.clone()
    found: list[Verdict] = []
    for inner in op.database_operations:
        inner_before = state.clone()
        inner.state_forwards(app, state)
        found.append(classify(inner, app, inner_before, state, serving))
    for verdict in found:
        if verdict.breaking:
            return Verdict(True, reason=f"its database operations: {verdict.reason}")
    for verdict in found:
        if verdict.review:
            return Verdict(review=True, reason=f"its database operations: {verdict.reason}")
    return Verdict(reason="only the state changes" if not op.database_operations else "")


def _target(op: Any, app: str) -> str:
    """app.Model[.field] the operation acts on, when it names one."""
    from django.db.migrations.operations.fields import FieldOperation
    from django.db.migrations.operations.models import ModelOperation

    if isinstance(op, FieldOperation):  # RenameField's name is its old name
        return f"{app}.{op.model_name}.{op.name}"
    if isinstance(op, ModelOperation):  # RenameModel's name is its old name
        return f"{app}.{op.name}"
    model = getattr(op, "model_name", None)  # indexes and constraints
    return f"{app}.{model}" if isinstance(model, str) else ""


def _reversible(op: Any) -> bool:
    """Whether `migrate` can undo it: SeparateDatabaseAndState undoes its database operations."""
    from django.db import migrations as m

    if isinstance(op, m.SeparateDatabaseAndState):
        return all(_reversible(inner) for inner in op.database_operations)
    return bool(op.reversible)


def _operation(op: Any, app: str, migration: str, before: Any, after: Any, serving: Serving) -> dict[str, Any]:
    verdict = classify(op, app, before, after, serving)
    return {
        "app": app,
        "migration": migration,
        "operation": type(op).__name__,
        "target": _target(op, app),
        "description": str(op.describe()),
        "reversible": _reversible(op),
        **verdict.as_dict(),
    }


def _proper_name(state: Any, target: str, app: str) -> str:
    """notes.note.title -> notes.Note.title: the model's own spelling, from the state."""
    parts = target.split(".")
    if len(parts) >= 2:
        model = _model_state(state, app, parts[1])
        if model is not None:
            parts[1] = model.name
    return ".".join(parts)


def _migration(migration: Any, state: Any, serving: Serving) -> dict[str, Any]:
    """One pending migration's operations; `state` (the project state before it) is moved on."""
    app = migration.app_label
    operations = []
    for op in migration.operations:
        before = state.clone()
        op.state_forwards(app, state)
        entry = _operation(op, app, migration.name, before, state, serving)
        entry["target"] = _proper_name(before, entry["target"], app) if entry["target"] else ""
        operations.append(entry)
    return {
        "app": app,
        "name": migration.name,
        "reversible": all(o["reversible"] for o in operations),
        "atomic": bool(getattr(migration, "atomic", True)),
        "operations": operations,
    }


def report() -> dict[str, Any]:
    load_django()
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.state import ProjectState

    executor = MigrationExecutor(connection)
    loader = executor.loader
    conflicts = {app: sorted(names) for app, names in loader.detect_conflicts().items()}
    applied = {f"{app}.{name}" for app, name in loader.applied_migrations}
    known = {f"{app}.{name}" for app, name in loader.graph.nodes}
    pending = []
    if not conflicts:
        applied_nodes = [node for node in loader.applied_migrations if node in loader.graph.nodes]
        if applied_nodes:
            served = loader.project_state(applied_nodes, at_end=True)
        else:
            served = ProjectState(real_apps=loader.unmigrated_apps)
        serving = Serving(served, connection)
        # as `migrate` does: from the applied state, each migration of the plan in its order
        state = served.clone()
        plan = executor.migration_plan(loader.graph.leaf_nodes())
        pending = [_migration(migration, state, serving) for migration, backwards in plan if not backwards]
    return {
        "vendor": connection.vendor,
        "pending": pending,
        "conflicts": conflicts,
        # applied in the database but not in this image: the database is ahead of this release
        "unknown_applied": sorted(applied - known),
    }


def main() -> None:
    # Run as a file, Python puts /opt/stackctl first on sys.path, not the working directory
    # (the project, as for `python -m`): put it back so the project's modules import.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # logs printed to stdout go to stderr
    out.write(json.dumps(report(), sort_keys=True) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
