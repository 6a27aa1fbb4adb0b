"""stackctl.core.handoff: the handoff notes of a release, from listings the deploy gathers."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest

from stackctl.core.handoff import (
    Handoff,
    PackageChange,
    ServiceChange,
    ServiceState,
    missing_variables,
    package_changes,
    parse_freeze,
    parse_packages,
    service_digests,
    services_to_recreate,
)
from stackctl.core.preflight import parse_migration_plan
from stackctl.core.render import templates_dir
from stackctl.errors import StackctlError


def test_parses_the_image_listing_and_normalises_names() -> None:
    text = 'a log line\n{"packages": {"Django": "6.0.10", "django_environ": "0.14.0", "zope.interface": "7.2"}}\n'
    assert parse_packages(text) == {"django": "6.0.10", "django-environ": "0.14.0", "zope-interface": "7.2"}


def test_parses_pip_freeze() -> None:
    text = """
# a comment
Django==6.0.10
psycopg[binary]==3.3.9
-e git+https://example.com/x.git#egg=x
mylib @ file:///wheels/mylib-1.0-py3-none-any.whl
Twisted==25.5.0  # via daphne
"""
    assert parse_freeze(text) == {
        "django": "6.0.10",
        "psycopg": "3.3.9",
        "mylib": "file:///wheels/mylib-1.0-py3-none-any.whl",
        "twisted": "25.5.0",
    }
    assert parse_packages(text) == parse_freeze(text)


@pytest.mark.parametrize("text", ["", "\n\n", '{"nothing": 1}', "{not json"])
def test_no_listing_is_an_error(text: str) -> None:
    with pytest.raises(StackctlError, match="printed no package listing"):
        parse_packages(text)


def test_package_changes() -> None:
    running = {"django": "5.2.8", "daphne": "4.2.3", "six": "1.17.0"}
    new = {"Django": "6.0.10", "daphne": "4.2.3", "Pillow": "12.0.0"}
    changes = package_changes(running, new)
    assert changes == (  # daphne is the same in both
        PackageChange("django", "5.2.8", "6.0.10"),
        PackageChange("pillow", None, "12.0.0"),
        PackageChange("six", "1.17.0", None),
    )
    assert [c.kind for c in changes] == ["changed", "added", "removed"]
    assert [c.render() for c in changes] == ["~ django 5.2.8 -> 6.0.10", "+ pillow 12.0.0", "- six 1.17.0"]
    assert package_changes(running, dict(running)) == ()


def test_missing_variables_use_the_env_parsing() -> None:
    example = """
# Django
DJANGO_DEBUG=false
export DJANGO_SECRET_KEY=change-me
SENTRY_DSN=
# OPTIONAL_COMMENTED=1
REDIS_URL="redis://redis:6379/0"
"""
    env = "DJANGO_DEBUG=true\nSENTRY_DSN=\nEXTRA=1\n"
    assert missing_variables(example, env) == ("DJANGO_SECRET_KEY", "REDIS_URL")
    assert missing_variables(example, example) == ()


def test_service_digests_are_stable_and_per_service() -> None:
    config = {
        "name": "shop-prod",
        "services": {
            "web": {"image": "shop-web", "environment": {"B": "2", "A": "1"}},
            "db": {"image": "postgres:17"},
        },
    }
    reordered = {
        "services": {"db": {"image": "postgres:17"}, "web": {"environment": {"A": "1", "B": "2"}, "image": "shop-web"}}
    }
    digests = service_digests(config)
    assert list(digests) == ["db", "web"]
    assert digests == service_digests(reordered)
    changed = {"services": {"db": {"image": "postgres:17"}, "web": {"image": "shop-web", "environment": {"A": "2"}}}}
    assert service_digests(changed)["db"] == digests["db"]
    assert service_digests(changed)["web"] != digests["web"]
    assert service_digests({}) == {}


def test_services_to_recreate() -> None:
    running = {
        "web": ServiceState("sha256:old", "d1"),
        "nginx": ServiceState("sha256:n", "d2"),
        "db": ServiceState("sha256:p", "d3"),
        "redis": ServiceState("sha256:r", None),  # no digest recorded
        "gone": ServiceState("sha256:g", "d5"),
    }
    new = {
        "web": ServiceState("sha256:new", "d1"),
        "nginx": ServiceState("sha256:n", "d2-changed"),
        "db": ServiceState("sha256:p", "d3"),
        "redis": ServiceState("sha256:r2", "d4"),
        "backup": ServiceState("sha256:b", "d6"),
    }
    assert services_to_recreate(running, new) == (
        ServiceChange("backup", ("not running yet",)),
        ServiceChange("gone", ("removed from the configuration",)),
        ServiceChange("nginx", ("its configuration changed",)),
        ServiceChange("redis", ("new image", "configuration not recorded: compared by image only")),
        ServiceChange("web", ("new image",)),
    )
    assert services_to_recreate(running, running) == ()


PLAN = json.dumps(
    {
        "pending": [
            {
                "app": "notes",
                "name": "0002_note_summary",
                "reversible": True,
                "operations": [
                    {
                        "app": "notes",
                        "migration": "0002_note_summary",
                        "operation": "AddField",
                        "target": "notes.Note.summary",
                        "description": "Add field summary to note",
                        "reversible": True,
                        "breaking": False,
                        "review": False,
                        "reason": "",
                    }
                ],
            },
            {
                "app": "notes",
                "name": "0003_remove_note_title",
                "reversible": True,
                "operations": [
                    {
                        "app": "notes",
                        "migration": "0003_remove_note_title",
                        "operation": "RemoveField",
                        "target": "notes.Note.title",
                        "description": "Remove field title from note",
                        "reversible": True,
                        "breaking": True,
                        "review": False,
                        "reason": "the release still serving reads this column",
                    }
                ],
            },
        ]
    }
)


def handoff() -> Handoff:
    return Handoff(
        packages=package_changes({"django": "5.2.8"}, {"django": "6.0.10", "pillow": "12.0.0"}),
        migrations=parse_migration_plan(PLAN),
        missing_variables=("SENTRY_DSN",),
        services=(ServiceChange("web", ("new image",)),),
        env_file=".env.prod",
    )


def test_render_text() -> None:
    assert handoff().render_text() == (
        "Packages (2 changed):\n"
        "  ~ django 5.2.8 -> 6.0.10\n"
        "  + pillow 12.0.0\n"
        "\n"
        "Migrations (2 pending):\n"
        "  notes.0002_note_summary [safe]\n"
        "  notes.0003_remove_note_title [breaking]\n"
        "    notes.0003_remove_note_title: RemoveField notes.Note.title — the release still serving reads this column\n"
        "\n"
        "Variables of .env.example missing from .env.prod:\n"
        "  SENTRY_DSN\n"
        "\n"
        "Services recreated:\n"
        "  web: new image\n"
    )


def test_render_text_with_nothing_to_say() -> None:
    assert Handoff(env_file=".env.prod").render_text() == (
        "Packages: no change\n\n"
        "Migrations: not checked\n\n"
        "Variables: none missing from .env.prod\n\n"
        "Services: none recreated\n"
    )
    empty = Handoff(migrations=parse_migration_plan('{"pending": []}'), notes=("the database was not reachable",))
    assert "Migrations: none pending\n" in empty.render_text()
    assert empty.render_text().endswith("Notes:\n  the database was not reachable\n")


def test_to_json_is_data() -> None:
    data = handoff().to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["packages"] == [
        {"name": "django", "change": "changed", "before": "5.2.8", "after": "6.0.10"},
        {"name": "pillow", "change": "added", "before": None, "after": "12.0.0"},
    ]
    assert data["missing_variables"] == ["SENTRY_DSN"]
    assert data["services"] == [{"name": "web", "reasons": ["new image"]}]
    assert [m["class"] for m in data["migrations"]["pending"]] == ["safe", "breaking"]
    assert Handoff().to_json()["migrations"] is None


def test_the_image_script_lists_this_interpreter_s_distributions() -> None:
    """stackctl_packages.py needs only the standard library: run it here, read it back."""
    script = templates_dir() / "compose" / "stackctl" / "stackctl_packages.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60)
    assert len(done.stdout.splitlines()) == 1
    listed = parse_packages(done.stdout)
    assert listed["pydantic"] == version("pydantic")
    assert listed["python-on-whales"] == version("python-on-whales")  # normalised: python_on_whales
    assert all(name == name.lower() and "_" not in name and "." not in name for name in listed)
