"""Deploy pre-flight pieces (issue 14) on a real engine: the migration classification and the
package listing, run in a one-off container of a new web image against the live database.

One stack for the module: the django60_py312 corpus project, initialised and up (`up --prod`).
New migrations are then added to its notes app, one of each class, and the web image is
rebuilt by `docker compose run --build --rm --no-deps web python /opt/stackctl/...`, while the
old release keeps serving. The script must list exactly the new migrations, in order, and
classify each operation from Django's own classes and the state before it. The stack is
removed with its volumes and the images it built, even when a test fails.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from stackctl.adapters.docker import compose_client
from stackctl.config.profile import PROD
from stackctl.core.handoff import package_changes, parse_packages
from stackctl.core.preflight import (
    BreakingMigrations,
    MigrationCheckFailed,
    MigrationPlan,
    check_plan,
    compose_runner,
    read_migration_plan,
    refusal_message,
)
from stackctl.core.project import Project
from tests.e2e.stackenv import REPO, Proj, free_port, http, read_env
from tests.e2e.test_real_projects import _init, _prepare_env, _remove_images, _up

pytestmark = pytest.mark.engine

FIXTURE = "django60_py312"
PACKAGES_COMMAND = ["python", "/opt/stackctl/stackctl_packages.py"]

# One migration of each class, chained after the fixture's 0001_initial.
NEW_MIGRATIONS = {
    "0002_note_summary": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [
        migrations.AddField("note", "summary", models.TextField(null=True)),
        migrations.AddField("note", "rank", models.IntegerField(db_default=1)),
    ]
""",
    "0003_remove_note_attachment": """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_note_summary")]
    operations = [migrations.RemoveField("note", "attachment")]
""",
    "0004_rename_note_title": """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notes", "0003_remove_note_attachment")]
    operations = [migrations.RenameField("note", "title", "heading")]
""",
    "0005_note_priority": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0004_rename_note_title")]
    operations = [migrations.AddField("note", "priority", models.IntegerField(default=0), preserve_default=False)]
""",
    "0006_fill_summary": """
from django.db import migrations


def fill(apps, schema_editor):
    apps.get_model("notes", "Note").objects.filter(summary=None).update(summary="")


class Migration(migrations.Migration):
    dependencies = [("notes", "0005_note_priority")]
    operations = [
        migrations.RunPython(fill),
        migrations.AlterField("note", "summary", models.TextField(null=True, blank=True)),
        migrations.AlterField("note", "heading", models.CharField(max_length=300)),
        migrations.AlterField("note", "rank", models.BigIntegerField(db_default=1)),
    ]
""".replace("from django.db import migrations\n", "from django.db import migrations, models\n"),
    # what only pending migrations made, the release still serving never uses: all safe
    "0007_scratch": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0006_fill_summary")]
    operations = [
        migrations.CreateModel("Scratch", [("id", models.BigAutoField(primary_key=True))]),
        migrations.AddField("scratch", "size", models.IntegerField(default=0), preserve_default=False),
        migrations.RemoveField("note", "summary"),
        migrations.DeleteModel("Scratch"),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AlterModelOptions("note", {"ordering": ["id"]})],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL("ALTER TABLE notes_note ALTER COLUMN rank SET DEFAULT 2")],
        ),
    ]
""",
}


@dataclass
class PreflightStack:
    proj: Proj
    project: Project
    source: Path  # the project's own root (its notes app)

    def client(self) -> DockerClient:
        return compose_client(
            project_dir=self.project.root,
            compose_files=self.project.compose_files(PROD),
            env_file=self.project.env_file(PROD),
            project_name=self.proj.name,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreflightStack]:
    root = tmp_path_factory.mktemp(FIXTURE) / FIXTURE
    corpus = REPO / "tests" / "fixtures" / "projects" / FIXTURE
    shutil.copytree(corpus, root, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3", "media"))
    init = _init(root)
    env_file = root / init["stack_dir"] / ".env.prod"
    name, http_port, https_port = f"e2e{uuid.uuid4().hex[:8]}", free_port(), free_port()
    _prepare_env(env_file, name, http_port, https_port)
    proj = Proj(root, f"{name}-prod", http_port, https_port, True, read_env(env_file))
    try:
        _up(proj)
        yield PreflightStack(proj, Project.at(root), root)
    finally:
        proj.stackctl("down", "--volumes", "--yes", timeout=300)
        _remove_images(proj.name)  # the first web image, and each one `run --build` made
        left = DockerClient().image.list(filters=[("label", f"com.docker.compose.project={proj.name}")])
        assert not left, f"images of {proj.name} left behind: {[i.id for i in left]}"


def _add_migrations(source: Path) -> None:
    folder = source / "notes" / "migrations"
    for name, text in NEW_MIGRATIONS.items():
        (folder / f"{name}.py").write_text(text.lstrip())


@pytest.fixture(scope="module")
def plan(stack: PreflightStack) -> MigrationPlan:
    """The new release's plan: migrations added, web image rebuilt, script run in it."""
    before = read_migration_plan(compose_runner(stack.client()))
    assert before.pending == (), before  # the running release migrated everything it has
    _add_migrations(stack.source)
    return read_migration_plan(compose_runner(stack.client(), build=True))


def test_lists_exactly_the_new_migrations_in_order(plan: MigrationPlan) -> None:
    assert [m.label for m in plan.pending] == [f"notes.{name}" for name in NEW_MIGRATIONS]
    assert plan.conflicts == ()
    assert plan.unknown_applied == ()


def test_each_operation_is_classified(plan: MigrationPlan) -> None:
    ops = {(op.migration, op.operation, op.target): op for op in plan.operations}
    got = {key: ("breaking" if op.breaking else "review" if op.review else "safe") for key, op in ops.items()}
    assert got == {
        ("0002_note_summary", "AddField", "notes.Note.summary"): "safe",  # null=True
        ("0002_note_summary", "AddField", "notes.Note.rank"): "safe",  # db_default
        ("0003_remove_note_attachment", "RemoveField", "notes.Note.attachment"): "breaking",
        ("0004_rename_note_title", "RenameField", "notes.Note.title"): "breaking",
        ("0005_note_priority", "AddField", "notes.Note.priority"): "breaking",  # NOT NULL, no db_default
        ("0006_fill_summary", "RunPython", ""): "review",
        ("0006_fill_summary", "AlterField", "notes.Note.summary"): "safe",  # blank only
        ("0006_fill_summary", "AlterField", "notes.Note.heading"): "safe",  # varchar widened
        ("0006_fill_summary", "AlterField", "notes.Note.rank"): "breaking",  # integer -> bigint
        ("0007_scratch", "CreateModel", "notes.Scratch"): "safe",
        ("0007_scratch", "AddField", "notes.Scratch.size"): "safe",  # a table the old release never inserts into
        ("0007_scratch", "RemoveField", "notes.Note.summary"): "safe",  # added by 0002, unknown to the old release
        ("0007_scratch", "DeleteModel", "notes.Scratch"): "safe",
        ("0007_scratch", "SeparateDatabaseAndState", ""): "review",  # its RunSQL
    }
    separate = [op for op in plan.operations if op.operation == "SeparateDatabaseAndState"]
    assert [(op.breaking, op.review) for op in separate] == [(False, False), (False, True)]
    assert "its database operations: runs code stackctl cannot read" in separate[1].reason
    assert "reads this column" in ops[("0003_remove_note_attachment", "RemoveField", "notes.Note.attachment")].reason
    assert "inserts rows without it" in ops[("0005_note_priority", "AddField", "notes.Note.priority")].reason


def test_reversibility_per_migration(plan: MigrationPlan) -> None:
    reversible = {m.name: m.reversible for m in plan.pending}
    # a RunPython without reverse_code, and a RunSQL without reverse_sql (even inside
    # SeparateDatabaseAndState) cannot be undone; every other operation can
    assert reversible == {name: name not in {"0006_fill_summary", "0007_scratch"} for name in NEW_MIGRATIONS}
    assert not plan.reversible


def test_refusal_names_each_breaking_operation(plan: MigrationPlan) -> None:
    message = refusal_message(plan)
    assert "notes.0003_remove_note_attachment: RemoveField notes.Note.attachment — " in message
    assert "notes.0004_rename_note_title: RenameField notes.Note.title" in message
    assert "notes.0005_note_priority: AddField notes.Note.priority" in message
    assert (
        "notes.0006_fill_summary: AlterField notes.Note.rank — changes the column type from integer to bigint"
        in message
    )
    assert "0002_note_summary" not in message and "RunPython" not in message
    assert "notes.0006_fill_summary: RunPython (Raw Python operation) — " in refusal_message(plan, strict=True)
    with pytest.raises(BreakingMigrations) as caught:
        check_plan(plan)
    assert [op.operation for op in caught.value.operations] == [
        "RemoveField",
        "RenameField",
        "AddField",
        "AlterField",
    ]


def test_old_release_still_serves_and_database_is_untouched(stack: PreflightStack, plan: MigrationPlan) -> None:
    assert plan.pending  # the check ran against this database
    assert http(f"{stack.proj.base}/admin/login/").status == 200
    db = stack.client().compose.execute(
        "db",
        [
            "psql",
            "-U",
            stack.proj.env.get("POSTGRES_USER") or "django",
            "-d",
            stack.proj.env.get("POSTGRES_DB") or "django",
            "-tAc",
            "SELECT name FROM django_migrations WHERE app = 'notes' ORDER BY id",
        ],
        tty=False,
    )
    assert str(db).split() == ["0001_initial"]


def test_packages_of_the_running_and_new_image(stack: PreflightStack, plan: MigrationPlan) -> None:
    assert plan.pending
    running = parse_packages(str(stack.client().compose.execute("web", PACKAGES_COMMAND, tty=False)))
    new = parse_packages(compose_runner(stack.client())(PACKAGES_COMMAND))
    assert running["django"] == "6.0.10"
    assert "daphne" in running and "psycopg" in running
    assert package_changes(running, new) == ()  # a code-only change: the same packages


def test_script_failure_is_an_error_with_exit_code_and_stderr(stack: PreflightStack, plan: MigrationPlan) -> None:
    assert plan.pending
    broken = stack.source / "notes" / "migrations" / "0007_broken.py"
    broken.write_text("raise RuntimeError('migration module does not import')\n")
    try:
        with pytest.raises(MigrationCheckFailed) as caught:
            read_migration_plan(compose_runner(stack.client(), build=True))
    finally:
        broken.unlink()
    assert caught.value.return_code == 1
    assert "migration module does not import" in caught.value.stderr
    assert "exit 1" in caught.value.message


def test_plan_json_roundtrip(plan: MigrationPlan) -> None:
    data = json.loads(json.dumps(plan.to_json()))
    assert [m["class"] for m in data["pending"]] == ["safe", "breaking", "breaking", "breaking", "breaking", "review"]
