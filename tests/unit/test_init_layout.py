"""`stackctl init` on projects stackctl did not write: the layout, the images, the env values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stackctl.core import init as init_mod

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"


@pytest.fixture(autouse=True)
def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on the CI host: no image registry answers (the DNS lookup is the only probe)."""
    import stackctl.adapters.host as host

    monkeypatch.setattr(host, "registry_answers", lambda *a, **k: False)


def copy(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return dict(pairs)


def test_the_projects_own_files_stay_untouched_and_the_stack_gets_its_own_folder(cli, tmp_path: Path) -> None:
    root = copy("src_layout_docker", tmp_path)
    before = tree(root)
    result = cli("init", "--json", cwd=root)
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert payload["stack_dir"] == "stack"
    assert {"docker-compose.yml", "Dockerfile", ".dockerignore"} <= set(payload["in_the_way"])
    after = tree(root)
    assert {k: v for k, v in after.items() if not k.startswith("stack/")} == before  # byte for byte
    for name in ("stack/.env", "stack/.env.prod", "stack/docker-compose.yml", "stack/compose/Dockerfile"):
        assert name in after, name
    # --force overwrites only what stackctl rendered: the project's own files are never in its plan
    assert cli("init", "--force", cwd=root).code == 0
    assert {k: v for k, v in tree(root).items() if not k.startswith("stack/")} == before
    # every command finds the stack from the project's root
    assert cli("check", "--prod", cwd=root).code == 0


def test_a_project_with_nothing_in_the_way_keeps_the_top_level_layout(cli, tmp_path: Path) -> None:
    root = copy("sqlite_dburl", tmp_path)
    result = cli("init", "--json", cwd=root)
    assert result.code == 0, result.err
    assert json.loads(result.out)["stack_dir"] == "."
    assert (root / "docker-compose.yml").is_file() and not (root / "stack").exists()


def test_split_settings_give_prod_and_dev_their_own_modules(cli, tmp_path: Path) -> None:
    root = copy("split_settings", tmp_path)
    assert cli("init", cwd=root).code == 0
    prod, dev = env(root / ".env.prod"), env(root / ".env")
    assert prod["DJANGO_SETTINGS_MODULE"].endswith(".production"), prod
    assert dev["DJANGO_SETTINGS_MODULE"].endswith(".local"), dev


def test_no_asgi_py_serves_djangos_own_handler_and_adds_no_file(cli, tmp_path: Path) -> None:
    root = copy("wsgi_only", tmp_path)
    result = cli("init", cwd=root)
    assert result.code == 0, result.err
    assert env(root / ".env.prod")["DJANGO_ASGI_APPLICATION"] == init_mod.FALLBACK_ASGI_APPLICATION
    assert "Django's own ASGI handler" in result.err
    assert not list(root.rglob("asgi.py"))


def test_a_requirements_folder_lists_every_include(cli, tmp_path: Path) -> None:
    root = copy("requirements_folder", tmp_path)
    assert cli("init", cwd=root).code == 0
    values = env(root / ".env.prod")
    files = {values["DJANGO_DEPENDENCY_FILE"], *values.get("DJANGO_DEPENDENCY_INCLUDES", "").split(",")}
    # what requirements.txt includes, transitively across folders; not requirements/local.txt
    assert files == {"requirements.txt", "requirements/production.txt", "requirements/base.txt", "constraints.txt"}


@pytest.mark.parametrize(
    ("name", "lock"), [("poetry_project", "poetry.lock"), ("uv_project", "uv.lock"), ("pipenv_project", "Pipfile.lock")]
)
def test_locked_installs_name_their_lock(cli, tmp_path: Path, name: str, lock: str) -> None:
    root = copy(name, tmp_path)
    assert cli("init", cwd=root).code == 0
    assert env(root / ".env.prod")["DJANGO_DEPENDENCY_FILE"].endswith(lock)


def test_no_registry_selects_the_local_images_and_says_so(cli, tmp_path: Path) -> None:
    root = copy("startproject52", tmp_path)
    result = cli("init", cwd=root)
    assert result.code == 0, result.err
    values = env(root / ".env.prod")
    assert values["POSTGRES_IMAGE"].startswith("stackctl/postgres:") and values["PYTHON_IMAGE"].startswith("stackctl/")
    assert "no image registry answers" in result.err
    # the stack adds what a bare startproject lacks, and says so
    assert "the image adds daphne" in result.err and "psycopg" in result.err


def test_python_312_or_newer_gets_a_python_that_satisfies_it(cli, tmp_path: Path) -> None:
    root = copy("django60_py312", tmp_path)
    assert cli("init", cwd=root).code == 0
    assert env(root / ".env.prod")["PYTHON_IMAGE"] == "stackctl/python:3.13-trixie"


def test_an_unsatisfiable_python_is_refused_by_name_and_nothing_is_written(cli, tmp_path: Path) -> None:
    root = copy("startproject52", tmp_path)
    (root / "pyproject.toml").write_text('[project]\nrequires-python = "==3.12.*"\n')
    before = tree(root)
    result = cli("init", cwd=root)
    assert result.code == 1
    assert "pyproject.toml [project].requires-python ==3.12.*" in result.err
    assert tree(root) == before


def test_a_python_version_file_is_a_preference_not_a_bound(cli, tmp_path: Path) -> None:
    root = copy("startproject52", tmp_path)
    (root / ".python-version").write_text("3.12\n")
    result = cli("init", cwd=root)
    assert result.code == 0, result.err
    assert env(root / ".env.prod")["PYTHON_IMAGE"] == "stackctl/python:3.13-trixie"
    assert ".python-version asks for 3.12: Python 3.13.5" in result.err


def test_the_python_flag_chooses_and_rewrites_only_the_python_image(cli, tmp_path: Path) -> None:
    root = copy("heroku_pins", tmp_path)
    result = cli("init", cwd=root)
    assert result.code == 0, result.err
    assert "runtime.txt asks for python-3.10.2, .python-version asks for 3.12: Python 3.11.2" in result.err
    old = (root / ".env.prod").read_text()
    assert env(root / ".env.prod")["PYTHON_IMAGE"] == "stackctl/python:3.11-bookworm"
    result = cli("init", "--python", "3.13", cwd=root)
    assert result.code == 0, result.err
    new = (root / ".env.prod").read_text()
    changed = {a.split("=")[0] for a, b in zip(old.splitlines(), new.splitlines(), strict=True) if a != b}
    assert changed == {"PYTHON_IMAGE"}
    assert env(root / ".env.prod")["PYTHON_IMAGE"] == "stackctl/python:3.13-trixie"
    result = cli("init", "--python", "3.10", cwd=root)
    assert result.code == 1
    assert "there is no local Python 3.10 image" in result.err and "--official-images" in result.err
    assert (root / ".env.prod").read_text() == new


def test_image_flags_on_an_existing_project_rewrite_only_the_image_lines(cli, tmp_path: Path) -> None:
    root = copy("startproject52", tmp_path)
    assert cli("init", cwd=root).code == 0
    old = (root / ".env.prod").read_text()
    assert cli("init", "--official-images", cwd=root).code == 0
    new = (root / ".env.prod").read_text()
    changed = {a.split("=")[0] for a, b in zip(old.splitlines(), new.splitlines(), strict=True) if a != b}
    assert changed == {"PYTHON_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE", "NGINX_IMAGE"}
    assert env(root / ".env.prod")["POSTGRES_IMAGE"].startswith("postgres:")
    assert cli("init", "--local-images", cwd=root).code == 0
    assert (root / ".env.prod").read_text() == old


def test_init_is_fast_enough_to_be_unnoticed_on_every_fixture(cli, tmp_path: Path) -> None:
    """Every fixture of the corpus goes through init (no timer: the bench measures speed)."""
    for fixture in sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()):
        root = copy(fixture, tmp_path)
        result = cli("init", "--dry-run", "--json", cwd=root)
        assert result.code == 0, (fixture, result.err)
        assert json.loads(result.out)["dry_run"] is True
