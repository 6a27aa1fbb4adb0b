"""`detect_project`: the shapes real Django projects have, each rule and each error, and the
fixture corpus of real projects (tests/fixtures/projects) with the exact result expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stackctl.core.detect import (
    Dependencies,
    DjangoProject,
    PythonRequirement,
    SettingsModules,
    detect_project,
    settings_default,
)
from stackctl.core.detect_deps import requirement_name
from stackctl.core.detect_python import PythonPreference, newest_allowed, poetry_python_spec, version_spec
from stackctl.errors import StackctlError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"
REQUIREMENTS = {"requirements.txt": "Django==5.2.19\n"}


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def manage(module: str) -> str:
    return f'import os\n\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "{module}")\n'


def site(root: Path, files: dict[str, str] | None = None, *, module: str = "mysite.settings") -> Path:
    """A startproject-like tree: manage.py, mysite/{settings,asgi,wsgi}.py, requirements.txt."""
    base = {
        "manage.py": manage(module),
        "mysite/__init__.py": "",
        "mysite/settings.py": "DEBUG = True\n",
        "mysite/asgi.py": "from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n",
        "mysite/wsgi.py": "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
        **REQUIREMENTS,
    }
    return make(root, {**base, **(files or {})})


def raises(root: Path, *fragments: str, hint: str = "") -> StackctlError:
    with pytest.raises(StackctlError) as caught:
        detect_project(root)
    for fragment in fragments:
        assert fragment in caught.value.message
    assert hint in (caught.value.hint or "")
    return caught.value


# --- manage.py ------------------------------------------------------------------------------


def test_startproject_layout(tmp_path: Path) -> None:
    found = detect_project(site(tmp_path))
    assert found.project_dir == "."
    assert found.settings == SettingsModules("mysite.settings", "mysite.settings", "manage.py")
    assert (found.asgi_application, found.wsgi_application) == ("mysite.asgi:application", "mysite.wsgi:application")


def test_manage_py_one_folder_down_skips_venvs(tmp_path: Path) -> None:
    site(tmp_path / "backend")
    make(tmp_path, {".venv/lib/manage.py": manage("x.settings"), "node_modules/manage.py": manage("x.settings")})
    make(tmp_path, {"env/pyvenv.cfg": "home = /usr/bin\n", "env/manage.py": manage("x.settings")})
    found = detect_project(tmp_path)
    assert found.project_dir == "backend"
    assert found.settings.source == "backend/manage.py"


def test_no_manage_py(tmp_path: Path) -> None:
    make(tmp_path, {"src/app.py": "", "a/b/manage.py": manage("x.settings")})  # two levels down: not looked at
    raises(tmp_path, "no Django project found", "manage.py", hint="run `stackctl init`")


def test_several_projects_one_folder_down(tmp_path: Path) -> None:
    site(tmp_path / "one")
    site(tmp_path / "two")
    raises(tmp_path, "several Django projects", "one/manage.py", "two/manage.py")


# --- DJANGO_SETTINGS_MODULE defaults -------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "a.settings")',
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'a.settings')",
        'os.environ.setdefault(\n    "DJANGO_SETTINGS_MODULE",\n    "a.settings",\n)',
        'os.environ["DJANGO_SETTINGS_MODULE"] = "a.settings"',
        "environ.setdefault( 'DJANGO_SETTINGS_MODULE' , \"a.settings\" )",
        '# os.environ["DJANGO_SETTINGS_MODULE"] = "old"\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "a.settings")',
        'def main(:\n    os.environ.setdefault(\n  "DJANGO_SETTINGS_MODULE", "a.settings")',  # unparsable: regex
    ],
)
def test_settings_default_forms(source: str) -> None:
    assert settings_default(source) == "a.settings"


def test_settings_default_absent() -> None:
    assert settings_default('os.environ.setdefault("OTHER", "x")\nos.environ["X"] = "y"\n') is None


def test_default_from_asgi_when_manage_sets_none(tmp_path: Path) -> None:
    site(tmp_path, {"manage.py": "import sys\n", "mysite/asgi.py": manage("mysite.settings")})
    assert detect_project(tmp_path).settings == SettingsModules("mysite.settings", "mysite.settings", "mysite/asgi.py")


def test_scan_prefers_settings_beside_urls(tmp_path: Path) -> None:
    make(tmp_path, {**REQUIREMENTS, "manage.py": "import sys\n", "blog/settings.py": "", "blog/models.py": ""})
    make(tmp_path, {"proj/settings.py": "", "proj/urls.py": "", "proj/__init__.py": ""})
    found = detect_project(tmp_path)
    assert found.settings == SettingsModules("proj.settings", "proj.settings", "proj/settings.py")
    assert found.asgi_application is None and found.wsgi_application is None


def test_scan_finds_a_settings_package(tmp_path: Path) -> None:
    make(tmp_path, {**REQUIREMENTS, "manage.py": "", "core/settings/__init__.py": "", "core/settings/dev.py": ""})
    make(tmp_path, {"core/settings/live.py": ""})
    assert detect_project(tmp_path).settings == SettingsModules(
        "core.settings.live", "core.settings.dev", "core/settings/__init__.py", "core.settings"
    )


def test_no_settings_module(tmp_path: Path) -> None:
    make(tmp_path, {**REQUIREMENTS, "manage.py": "import sys\n", "app/models.py": ""})
    raises(tmp_path, "no settings module found for manage.py", hint="DJANGO_SETTINGS_MODULE")


def test_default_names_a_missing_module(tmp_path: Path) -> None:
    site(tmp_path, {"manage.py": manage("mysite.settngs")})
    raises(tmp_path, "manage.py", "'mysite.settngs' names no module", "mysite/settngs.py", hint="fix the")


# --- split settings packages ---------------------------------------------------------------

SPLIT = {
    "config/__init__.py": "",
    "config/settings/__init__.py": "",
    "config/settings/base.py": "DEBUG = False\n",
    "config/settings/local.py": "from .base import *\n",
    "config/settings/production.py": "from .base import *\n",
    "config/asgi.py": "from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n",
    **REQUIREMENTS,
}


def split(root: Path, default: str, extra: dict[str, str] | None = None, *, drop: tuple[str, ...] = ()) -> Path:
    files = {k: v for k, v in {**SPLIT, **(extra or {})}.items() if k not in drop}
    return make(root, {**files, "manage.py": manage(default)})


def test_split_manage_points_at_local(tmp_path: Path) -> None:
    found = detect_project(split(tmp_path, "config.settings.local"))
    assert found.settings == SettingsModules(
        "config.settings.production", "config.settings.local", "manage.py", "config.settings"
    )
    assert found.asgi_application == "config.asgi:application"


def test_split_prod_name_order(tmp_path: Path) -> None:
    extra = {"config/settings/live.py": "", "config/settings/prod.py": "", "config/settings/development.py": ""}
    found = detect_project(split(tmp_path, "config.settings.base", extra, drop=("config/settings/production.py",)))
    assert (found.settings.prod, found.settings.dev) == ("config.settings.prod", "config.settings.local")


def test_split_manage_points_at_production(tmp_path: Path) -> None:
    found = detect_project(split(tmp_path, "config.settings.production"))
    assert (found.settings.prod, found.settings.dev) == ("config.settings.production", "config.settings.local")


def test_split_manage_points_at_base(tmp_path: Path) -> None:
    found = detect_project(split(tmp_path, "config.settings.base"))
    assert (found.settings.prod, found.settings.dev) == ("config.settings.production", "config.settings.local")


def test_split_without_prod_module_runs_base_not_the_dev_module_named(tmp_path: Path) -> None:
    found = detect_project(split(tmp_path, "config.settings.local", drop=("config/settings/production.py",)))
    assert found.settings == SettingsModules(
        "config.settings.base",
        "config.settings.local",
        "manage.py",
        "config.settings",
        prod_guessed=True,
        prod_reason="config.settings has no production/prod/live module; "
        "base is the shared base, not the dev module config.settings.local",
    )


# A settings package with no default anywhere and only an example production module.
NO_PROD = {
    "manage.py": "import sys\nfrom django.core.management import execute_from_command_line\n",
    "app/__init__.py": "",
    "app/urls.py": "urlpatterns = []\n",
    "app/wsgi.py": "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
    "app/settings/__init__.py": "",
    "app/settings/base.py": "DEBUG = False\n",
    "app/settings/development.py": "from .base import *\nDEBUG = True\n",
    "app/settings/production.example.py": "from .base import *\n",
    **REQUIREMENTS,
}


@pytest.mark.parametrize(
    ("neutral", "prod"),
    [("base", "app.settings.base"), ("common", "app.settings.common"), (None, "app.settings.development")],
)
def test_no_default_and_no_prod_module_prefers_a_neutral_module(tmp_path: Path, neutral: str | None, prod: str) -> None:
    files = {k: v for k, v in NO_PROD.items() if k != "app/settings/base.py"}
    if neutral:
        files[f"app/settings/{neutral}.py"] = "DEBUG = False\n"
    settings = detect_project(make(tmp_path, files)).settings
    assert (settings.prod, settings.dev, settings.prod_guessed) == (prod, "app.settings.development", True)
    assert settings.prod_reason.startswith("app.settings has no production/prod/live module")
    if neutral is None:
        assert settings.prod_reason.endswith("and no base/common one: it runs the dev module app.settings.development")


def test_a_named_module_that_is_not_a_dev_one_stays_prod(tmp_path: Path) -> None:
    extra = {"config/settings/staging.py": "from .base import *\n"}
    found = detect_project(split(tmp_path, "config.settings.staging", extra, drop=("config/settings/production.py",)))
    assert (found.settings.prod, found.settings.dev) == ("config.settings.staging", "config.settings.local")
    assert found.settings.prod_reason.endswith("; manage.py names config.settings.staging")


def test_a_prod_module_found_is_no_guess(tmp_path: Path) -> None:
    found = detect_project(split(tmp_path, "config.settings.local"))
    assert not found.settings.prod_guessed and found.settings.prod_reason == ""


def test_split_wsgi_default_names_prod(tmp_path: Path) -> None:
    """cookiecutter-django: manage.py runs local, wsgi.py/asgi.py run the production module."""
    extra = {"config/settings/server.py": "", "config/wsgi.py": manage("config.settings.server")}
    found = detect_project(split(tmp_path, "config.settings.local", extra))
    assert found.settings.prod == "config.settings.server"
    assert found.wsgi_application == "config.wsgi:application"


def test_split_package_whose_init_imports_a_module(tmp_path: Path) -> None:
    extra = {"config/settings/__init__.py": '"""Settings."""\nfrom .local import *  # noqa\n'}
    found = detect_project(split(tmp_path, "config.settings", extra))
    assert found.settings == SettingsModules(
        "config.settings.production", "config.settings", "manage.py", "config.settings"
    )


def test_split_package_with_an_empty_init(tmp_path: Path) -> None:
    found = detect_project(split(tmp_path, "config.settings", {"config/settings/__init__.py": '"""Empty."""\n'}))
    assert (found.settings.prod, found.settings.dev) == ("config.settings.production", "config.settings.local")


def test_split_package_with_an_empty_init_and_no_env_module(tmp_path: Path) -> None:
    split(tmp_path, "config.settings", drop=("config/settings/local.py", "config/settings/production.py"))
    raises(tmp_path, "'config.settings' is a package whose __init__.py sets nothing", hint="config.settings.base")


def test_a_package_of_other_modules_is_not_split(tmp_path: Path) -> None:
    """mysite/ holds settings.py, urls.py, asgi.py: one settings module, not a split package."""
    assert detect_project(site(tmp_path)).settings.package is None


def test_single_settings_with_a_production_sibling(tmp_path: Path) -> None:
    found = detect_project(site(tmp_path, {"mysite/settings_production.py": "from .settings import *\n"}))
    assert (found.settings.prod, found.settings.dev) == ("mysite.settings_production", "mysite.settings")


# --- ASGI / WSGI ---------------------------------------------------------------------------


def test_asgi_in_the_settings_package_wins(tmp_path: Path) -> None:
    extra = {"other/asgi.py": "from django.core.asgi import get_asgi_application\n", "mysite/asgi.py": "app = 1\n"}
    assert detect_project(site(tmp_path, extra)).asgi_application == "mysite.asgi:application"


def test_asgi_that_calls_get_asgi_application_wins_elsewhere(tmp_path: Path) -> None:
    """Settings in config/, no asgi.py there: the one calling get_asgi_application, however deep."""
    make(tmp_path, {"manage.py": manage("config.settings"), "config/settings.py": "", **REQUIREMENTS})
    make(tmp_path, {"a/asgi.py": "print()\n", "zz/deep/asgi.py": "from django.core.asgi import get_asgi_application\n"})
    assert detect_project(tmp_path).asgi_application == "zz.deep.asgi:application"


def test_no_asgi_py(tmp_path: Path) -> None:
    site(tmp_path, {".venv/lib/x/asgi.py": "get_asgi_application"})
    (tmp_path / "mysite/asgi.py").unlink()
    found = detect_project(tmp_path)
    assert found.asgi_application is None
    assert found.wsgi_application == "mysite.wsgi:application"


# --- dependencies: requirements files -------------------------------------------------------


def deps(root: Path, files: dict[str, str]) -> Dependencies:
    return detect_project(site(root, files)).dependencies


def test_requirements_includes_followed_across_folders(tmp_path: Path) -> None:
    found = deps(
        tmp_path,
        {
            "requirements.txt": "-r requirements/production.txt\n",
            "requirements/production.txt": "-r base.txt\n-c ../constraints.txt\ngunicorn==27.0.1\n",
            "requirements/base.txt": "--requirement=extra/more.txt\nDjango==5.2.19\n-r base.txt\n",
            "requirements/extra/more.txt": "--constraint ../../pins.txt\nwhitenoise[brotli]>=6 ; python_version>'3'\n",
            "constraints.txt": "asgiref==3.13.0\n-r constraint-includes.txt\n",
            "constraint-includes.txt": "sqlparse==0.6.1\n",
            "pins.txt": "brotli==1.2\n",
            "requirements/local.txt": "pytest\n",  # not included: not read
        },
    )
    assert found == Dependencies(
        "requirements",
        "requirements.txt",
        (
            "constraint-includes.txt",
            "constraints.txt",
            "pins.txt",
            "requirements.txt",
            "requirements/base.txt",
            "requirements/extra/more.txt",
            "requirements/production.txt",
        ),
        frozenset({"django", "gunicorn", "whitenoise"}),
        ".",
    )


def test_requirements_lines_pip_understands(tmp_path: Path) -> None:
    text = """\
        # comment
        --index-url https://pypi.org/simple
        -i https://mirror/simple
        --extra-index-url https://x/simple
        Django==5.2.19 \\
            --hash=sha256:aaaa \\
            --hash=sha256:bbbb
        psycopg[binary]==3.3.9  # the driver
        Pillow>=11; sys_platform != "win32"
        -e git+https://github.com/org/django-thing.git@v1#egg=django_thing
        -e .
        ./local/pkg
        https://example.com/archive.zip
        git+https://github.com/org/Other_Lib@main#egg=Other_Lib
        mylib @ https://example.com/mylib-1.0.whl
        zope.interface>=8
    """
    assert deps(tmp_path, {"requirements.txt": text}).packages == {
        "django",
        "psycopg",
        "pillow",
        "django-thing",
        "other-lib",
        "mylib",
        "zope-interface",
    }


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-8"])
def test_requirements_encodings(tmp_path: Path, encoding: str) -> None:
    site(tmp_path)
    (tmp_path / "requirements.txt").write_bytes("Django==5.2.19\r\ngunicorn==27.0.1\r\n".encode(encoding))
    assert detect_project(tmp_path).dependencies.packages == {"django", "gunicorn"}


@pytest.mark.parametrize(
    ("line", "name"),
    [("Django", "django"), ("Foo_Bar.baz[x]==1", "foo-bar-baz"), ("--pre", None), ("-e ./x", None), ("%%", None)],
)
def test_requirement_name(line: str, name: str | None) -> None:
    assert requirement_name(line) == name


def test_requirements_missing_include(tmp_path: Path) -> None:
    site(tmp_path, {"requirements.txt": "Django\n\n-r requirements/prod.txt\n"})
    raises(
        tmp_path,
        "requirements.txt:3: `-r requirements/prod.txt` names requirements/prod.txt, which does not exist",
        hint="relative to the folder of requirements.txt",
    )


def test_requirements_include_outside_the_root(tmp_path: Path) -> None:
    site(tmp_path / "repo", {"requirements.txt": "-c ../shared.txt\n"})
    make(tmp_path, {"shared.txt": "django\n"})
    raises(tmp_path / "repo", "requirements.txt:1", "outside the project root", hint="move the file inside it")


@pytest.mark.parametrize(
    ("names", "entry"),
    [
        (("requirements/production.txt", "requirements/prod.txt", "requirements/base.txt"), "production"),
        (("requirements/prod.txt", "requirements/base.txt"), "prod"),
        (("requirements/base.txt", "requirements/local.txt"), "base"),
    ],
)
def test_requirements_folder_entry(tmp_path: Path, names: tuple[str, ...], entry: str) -> None:
    site(tmp_path, {name: "django\n" for name in names})
    (tmp_path / "requirements.txt").unlink()
    assert detect_project(tmp_path).dependencies.entry == f"requirements/{entry}.txt"


def test_dependencies_in_the_root_when_project_is_a_subfolder(tmp_path: Path) -> None:
    site(tmp_path / "src")
    (tmp_path / "src/requirements.txt").unlink()
    make(tmp_path, {"requirements.txt": "-r reqs/base.txt\n", "reqs/base.txt": "Django\n"})
    found = detect_project(tmp_path)
    assert found.project_dir == "src"
    assert found.dependencies == Dependencies(
        "requirements", "requirements.txt", ("reqs/base.txt", "requirements.txt"), frozenset({"django"}), "."
    )


def test_dependencies_of_the_subfolder_first(tmp_path: Path) -> None:
    site(tmp_path / "src")
    make(tmp_path, {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["flask"]\n'})
    assert detect_project(tmp_path).dependencies.files == ("src/requirements.txt",)
    assert detect_project(tmp_path).dependencies.base == "src"


def test_no_dependency_file(tmp_path: Path) -> None:
    site(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length = 100\n"})
    (tmp_path / "requirements.txt").unlink()
    raises(tmp_path, "no dependency file in .", "requirements.txt", "uv.lock", hint="pip freeze > requirements.txt")


# --- dependencies: lock files and pyproject.toml ---------------------------------------------

POETRY1 = """\
[tool.poetry]
name = "shop"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.12"
Django = "^5.2"
psycopg = {extras = ["binary"], version = "^3.3"}
sentry-sdk = {version = "^2", optional = true}

[tool.poetry.group.dev.dependencies]
pytest = "^9"

[tool.poetry.dev-dependencies]
black = "*"
"""


def test_poetry_classic_tables(tmp_path: Path) -> None:
    found = detect_project(site(tmp_path, {"pyproject.toml": POETRY1, "poetry.lock": "# lock\n"}))
    assert found.dependencies == Dependencies(
        "poetry", "pyproject.toml", ("poetry.lock", "pyproject.toml"), frozenset({"django", "psycopg"}), "."
    )
    assert found.python == PythonRequirement(">=3.12,<4.0", "pyproject.toml", ("pyproject.toml",))


def test_poetry_without_lock(tmp_path: Path) -> None:
    site(tmp_path, {"pyproject.toml": POETRY1})
    (tmp_path / "requirements.txt").unlink()
    raises(tmp_path, "pyproject.toml: a Poetry project without poetry.lock", hint="run `poetry lock`")


def test_poetry_backend_without_lock(tmp_path: Path) -> None:
    pyproject = """\
        [project]
        name = "x"
        dependencies = ["django"]
        [build-system]
        build-backend = "poetry.core.masonry.api"
    """
    site(tmp_path, {"pyproject.toml": pyproject})
    (tmp_path / "requirements.txt").unlink()
    raises(tmp_path, "without poetry.lock", hint="poetry lock")


def test_poetry_without_lock_falls_back_to_requirements(tmp_path: Path) -> None:
    assert deps(tmp_path, {"pyproject.toml": POETRY1}).kind == "requirements"


def test_uv_lock_first(tmp_path: Path) -> None:
    pyproject = """\
        [project]
        name = "x"
        version = "0"
        dependencies = ["Django>=5.2", "channels[daphne]>=4"]
        [project.optional-dependencies]
        docs = ["sphinx"]
        [dependency-groups]
        dev = ["pytest"]
        [tool.uv]
        dev-dependencies = ["ruff"]
    """
    locks = {"uv.lock": "version = 1\n", "poetry.lock": "", "Pipfile.lock": "{}"}
    found = deps(tmp_path, {"pyproject.toml": pyproject, **locks})
    assert found == Dependencies(
        "uv", "pyproject.toml", ("pyproject.toml", "uv.lock"), frozenset({"django", "channels"}), "."
    )


def test_uv_lock_without_pyproject(tmp_path: Path) -> None:
    site(tmp_path, {"uv.lock": "version = 1\n"})
    (tmp_path / "requirements.txt").unlink()
    raises(tmp_path, "uv.lock: no pyproject.toml beside it", hint="commit that file too")


def test_poetry_lock_without_pyproject(tmp_path: Path) -> None:
    assert deps(tmp_path, {"poetry.lock": ""}).kind == "requirements"
    (tmp_path / "requirements.txt").unlink()
    raises(tmp_path, "poetry.lock: no pyproject.toml beside it")


def test_pipfile_lock(tmp_path: Path) -> None:
    lock = '{"_meta": {}, "default": {"Django": {"version": "==5.2.19"}, "sqlparse": {}}, "develop": {"pytest": {}}}'
    found = deps(tmp_path, {"Pipfile": "[packages]\ndjango = '*'\n", "Pipfile.lock": lock})
    assert found == Dependencies(
        "pipenv", "Pipfile.lock", ("Pipfile", "Pipfile.lock"), frozenset({"django", "sqlparse"}), "."
    )


def test_pipfile_without_lock(tmp_path: Path) -> None:
    site(tmp_path, {"Pipfile": "[packages]\ndjango = '*'\n"})
    (tmp_path / "requirements.txt").unlink()
    raises(tmp_path, "Pipfile: no Pipfile.lock beside it", hint="run `pipenv lock`")


def test_invalid_pipfile_lock(tmp_path: Path) -> None:
    site(tmp_path, {"Pipfile.lock": "{not json"})
    raises(tmp_path, "Pipfile.lock: not a valid Pipfile.lock", hint="pipenv lock")


def test_pep621_dependencies(tmp_path: Path) -> None:
    site(tmp_path, {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["django (>=5.2,<6.0)", "Redis"]\n'})
    (tmp_path / "requirements.txt").unlink()
    assert detect_project(tmp_path).dependencies == Dependencies(
        "pep621", "pyproject.toml", ("pyproject.toml",), frozenset({"django", "redis"}), "."
    )


def test_pep621_dynamic_dependencies(tmp_path: Path) -> None:
    site(tmp_path, {"pyproject.toml": '[project]\nname = "x"\ndynamic = ["dependencies"]\n'})
    (tmp_path / "requirements.txt").unlink()
    raises(tmp_path, "[project].dependencies is dynamic", hint="requirements.txt")


def test_pep621_invalid_dependency(tmp_path: Path) -> None:
    site(tmp_path, {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["django >>> 5"]\n'})
    (tmp_path / "requirements.txt").unlink()
    raises(tmp_path, "pyproject.toml: [project].dependencies: 'django >>> 5' is not a valid requirement")


def test_invalid_toml(tmp_path: Path) -> None:
    site(tmp_path, {"pyproject.toml": "[project\n"})
    raises(tmp_path, "pyproject.toml: not valid TOML", hint="fix the syntax of pyproject.toml")


def test_has_package(tmp_path: Path) -> None:
    found = detect_project(site(tmp_path, {"requirements.txt": "Django\npsycopg[binary]\n"}))
    assert found.has_package("daphne", "psycopg")
    assert found.has_package("DJANGO")
    assert not found.has_package("daphne", "psycopg2")


# --- Python version ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("3.12", "==3.12.*"),
        ("3.12.4\n", "==3.12.4"),
        ("python-3.12.1", "==3.12.1"),
        ("cpython@3.13", "==3.13.*"),
        ("pypy3.10-7.3.12", "==3.10.*"),
        (">=3.12", ">=3.12"),
        ("system", None),
        (">=nope", None),
    ],
)
def test_version_spec(text: str, spec: str | None) -> None:
    assert version_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("^3.12", ">=3.12,<4.0"),
        ("~3.12", ">=3.12,<3.13"),
        ("~3.12.1", ">=3.12.1,<3.13"),
        ("^3", ">=3,<4.0"),
        (">=3.10,<3.14", ">=3.10,<3.14"),
        (">= 3.10 < 3.14", ">=3.10,<3.14"),
        ("3.12", "==3.12.*"),
        ("3.12.*", "==3.12.*"),
        ("~=3.12", "~=3.12"),
        ("*", None),
        ("^3.10 || ^3.12", None),
    ],
)
def test_poetry_python_spec(text: str, spec: str | None) -> None:
    assert poetry_python_spec(text) == spec


def test_python_sources_combined(tmp_path: Path) -> None:
    pipfile = '[requires]\npython_version = "3.12"\n'
    site(tmp_path / "src", {".python-version": "3.12.4\n# comment\n", "Pipfile": pipfile, "Pipfile.lock": "{}"})
    make(tmp_path, {"runtime.txt": "python-3.12.4\n", "pyproject.toml": '[project]\nrequires-python = ">=3.11"\n'})
    python = detect_project(tmp_path).python
    # requires-python and Pipfile bound; runtime.txt and .python-version only say what is preferred
    assert python.spec == ">=3.11,==3.12.*"
    assert python.sources == ("pyproject.toml", "src/Pipfile")
    assert python.source == "pyproject.toml, src/Pipfile"
    assert python.preferences == (
        PythonPreference("runtime.txt", "python-3.12.4", "3.12.4"),
        PythonPreference("src/.python-version", "3.12.4", "3.12.4"),
    )
    assert [b.label for b in python.bounds] == [
        "pyproject.toml [project].requires-python",
        "src/Pipfile [requires].python_version '3.12'",
    ]
    assert python.allows("3.12.4") and python.allows("3.12.5") and not python.allows("3.13.0")


def test_python_full_version_from_pipfile(tmp_path: Path) -> None:
    pipfile = '[requires]\npython_version = "3.12"\npython_full_version = "3.12.7"\n'
    python = detect_project(site(tmp_path, {"Pipfile": pipfile, "Pipfile.lock": "{}"})).python
    assert python == PythonRequirement("==3.12.7", "Pipfile", ("Pipfile",))


def test_python_unstated(tmp_path: Path) -> None:
    python = detect_project(site(tmp_path, {".python-version": "system\n"})).python
    assert python == PythonRequirement(None, None)
    assert python.allows("3.11.2")


def test_python_invalid_requires_python(tmp_path: Path) -> None:
    site(tmp_path, {"pyproject.toml": '[project]\nrequires-python = "3.12+"\n'})
    raises(tmp_path, "pyproject.toml: [project].requires-python '3.12+' is not a PEP 440 specifier")


def test_newest_allowed() -> None:
    requirement = PythonRequirement(">=3.12", "pyproject.toml", ("pyproject.toml",))
    assert newest_allowed(requirement, ["3.11.2", "3.12.9", "3.13.5", "bad"]) == "3.13.5"
    assert newest_allowed(PythonRequirement("==3.10.*", ".python-version"), ["3.11.2"]) is None


# --- the fixture corpus ----------------------------------------------------------------------


def single(package: str, source: str = "manage.py") -> SettingsModules:
    return SettingsModules(f"{package}.settings", f"{package}.settings", source)


def entries(package: str, *, asgi: bool = True) -> dict[str, str | None]:
    return {
        "asgi_application": f"{package}.asgi:application" if asgi else None,
        "wsgi_application": f"{package}.wsgi:application",
    }


def requirements(*names: str, files: tuple[str, ...] = ("requirements.txt",)) -> Dependencies:
    return Dependencies("requirements", "requirements.txt", files, frozenset(names), ".")


NO_PYTHON = PythonRequirement(None, None)

EXPECTED = {
    "sqlite_dburl": DjangoProject(
        ".",
        single("notesite"),
        **entries("notesite"),
        dependencies=requirements("django", "dj-database-url", "gunicorn", "whitenoise"),
        python=PythonRequirement(None, None, (), (PythonPreference("runtime.txt", "python-3.11", "3.11"),)),
    ),
    "static_at_import": DjangoProject(
        ".",
        single("shelf"),
        **entries("shelf"),
        dependencies=requirements("django", "django-compressor"),
        python=NO_PYTHON,
    ),
    "hardcoded_debug": DjangoProject(
        ".",
        single("journal"),
        **entries("journal"),
        dependencies=requirements("django", "psycopg2-binary"),
        python=NO_PYTHON,
    ),
    "split_settings": DjangoProject(
        ".",
        SettingsModules("config.settings.production", "config.settings.local", "manage.py", "config.settings"),
        **entries("config"),
        dependencies=requirements("django", "django-environ", "psycopg"),
        python=NO_PYTHON,
    ),
    "strict_settings": DjangoProject(
        ".",
        single("ledger"),
        **entries("ledger"),
        dependencies=requirements("django", "psycopg"),
        python=NO_PYTHON,
    ),
    "wsgi_only": DjangoProject(
        ".",
        single("library"),
        **entries("library", asgi=False),
        dependencies=requirements("django", "gunicorn"),
        python=NO_PYTHON,
    ),
    "compiled_deps": DjangoProject(
        ".",
        single("project"),
        **entries("project"),
        dependencies=requirements("django", "psycopg2"),
        python=NO_PYTHON,
    ),
    "requirements_folder": DjangoProject(
        ".",
        single("project"),
        **entries("project"),
        dependencies=requirements(
            "django",
            "gunicorn",
            files=("constraints.txt", "requirements.txt", "requirements/base.txt", "requirements/production.txt"),
        ),
        python=NO_PYTHON,
    ),
    "poetry_project": DjangoProject(
        ".",
        single("notebook"),
        **entries("notebook"),
        dependencies=Dependencies(
            "poetry", "pyproject.toml", ("poetry.lock", "pyproject.toml"), frozenset({"django", "gunicorn"}), "."
        ),
        python=PythonRequirement(">=3.11,<4.0", "pyproject.toml", ("pyproject.toml",)),
    ),
    "uv_project": DjangoProject(
        ".",
        single("backend"),
        **entries("backend"),
        dependencies=Dependencies(
            "uv", "pyproject.toml", ("pyproject.toml", "uv.lock"), frozenset({"django", "gunicorn"}), "."
        ),
        python=PythonRequirement(
            ">=3.11", "pyproject.toml", ("pyproject.toml",), (PythonPreference(".python-version", "3.11", "3.11"),)
        ),
    ),
    "pipenv_project": DjangoProject(
        ".",
        single("mysite"),
        **entries("mysite"),
        dependencies=Dependencies(
            "pipenv",
            "Pipfile.lock",
            ("Pipfile", "Pipfile.lock"),
            frozenset({"asgiref", "dj-database-url", "django", "sqlparse"}),
            ".",
        ),
        python=PythonRequirement("==3.11.*", "Pipfile", ("Pipfile",)),
    ),
    "django60_py312": DjangoProject(
        ".",
        single("mysite"),
        **entries("mysite"),
        dependencies=requirements("django"),
        python=PythonRequirement(
            ">=3.12", "pyproject.toml", ("pyproject.toml",), (PythonPreference(".python-version", "3.13", "3.13"),)
        ),
    ),
    "src_layout_docker": DjangoProject(
        "src",
        single("shop", "src/manage.py"),
        **entries("shop"),
        dependencies=requirements("django", "gunicorn"),
        python=NO_PYTHON,
    ),
    "startproject52": DjangoProject(
        ".", single("mysite"), **entries("mysite"), dependencies=requirements("django"), python=NO_PYTHON
    ),
    "startproject60": DjangoProject(
        ".",
        single("mysite"),
        **entries("mysite"),
        dependencies=requirements("django"),
        python=PythonRequirement(None, None, (), (PythonPreference(".python-version", "3.13", "3.13"),)),
    ),
    "heroku_pins": DjangoProject(
        ".",
        single("pinboard"),
        **entries("pinboard"),
        dependencies=requirements("django", "gunicorn"),
        python=PythonRequirement(
            None,
            None,
            (),
            (
                PythonPreference("runtime.txt", "python-3.10.2", "3.10.2"),
                PythonPreference(".python-version", "3.12", "3.12"),
            ),
        ),
    ),
}


def test_every_fixture_is_expected() -> None:
    on_disk = {p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    assert detect_project(FIXTURES / name) == EXPECTED[name]


def test_fixture_python_requirements() -> None:
    assert not EXPECTED["django60_py312"].python.allows("3.11.2")
    assert EXPECTED["django60_py312"].python.allows("3.13.5")
    assert EXPECTED["uv_project"].python.allows("3.11.2")
