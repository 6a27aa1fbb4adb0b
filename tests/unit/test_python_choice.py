"""Which Python image `stackctl init` picks: hard bounds (requires-python, Poetry's and Pipenv's
python, the locked Django's supported versions) and preferences (runtime.txt, .python-version)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackctl.core.detect import detect_project
from stackctl.core.detect_django import DJANGO_PYTHONS, DjangoPin, django_python_bound, find_django
from stackctl.core.detect_python import PythonBound, PythonPreference, PythonRequirement, preference_of
from stackctl.core.images import OFFICIAL_PYTHON_MINORS
from stackctl.core.init import select_images
from stackctl.core.python_choice import choose_python, python_candidates
from stackctl.errors import StackctlError

LOCAL_313, LOCAL_311 = "stackctl/python:3.13-trixie", "stackctl/python:3.11-bookworm"
MANAGE = "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_pkg.settings')\n"


def project(root: Path, files: dict[str, str], *, django: str = "Django==5.2.19") -> Path:
    tree = {"manage.py": MANAGE, "site_pkg/__init__.py": "", "site_pkg/settings.py": "", **files}
    if not any(name in files for name in ("poetry.lock", "uv.lock", "Pipfile.lock")):
        tree.setdefault("requirements.txt", django + "\n")
    for name, text in tree.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def chosen(root: Path, *, local: bool = True, python: str | None = None) -> tuple[str, str]:
    """(PYTHON_IMAGE, why) that init writes for the project in `root`."""
    selection = select_images(detect_project(root), "local" if local else "official", root=root, python=python)
    return selection.env["PYTHON_IMAGE"], selection.python_why


def refusal(root: Path, *, local: bool = True, python: str | None = None) -> StackctlError:
    with pytest.raises(StackctlError) as caught:
        chosen(root, local=local, python=python)
    return caught.value


@pytest.mark.parametrize(
    ("text", "preference"),
    [
        ("python-3.10.2", ("3.10.2", "3.10", "cpython")),
        ("python-3.12.x", ("3.12", "3.12", "cpython")),
        ("3.12", ("3.12", "3.12", "cpython")),
        ("3.12.1", ("3.12.1", "3.12", "cpython")),
        ("pypy3.10-7.3.12", ("3.10", "3.10", "pypy")),
        ("cpython-3.12.3-linux-x86_64-gnu", ("3.12.3", "3.12", "cpython")),
        ("3.13t", ("3.13", "3.13", "cpython")),
        ("system", None),
        ("3", None),
        ("my-virtualenv", None),
    ],
)
def test_preference_shapes(text: str, preference: tuple[str, str, str] | None) -> None:
    found = preference_of("runtime.txt", text)
    assert (None if found is None else (found.version, found.minor, found.implementation)) == preference


@pytest.mark.parametrize(
    ("files", "local", "image", "said"),
    [
        # Heroku's runtime.txt: no 3.10 image here, 3.11 is the nearest Django 5.2 allows
        ({"runtime.txt": "python-3.10.2\n"}, True, LOCAL_311, "runtime.txt asks for python-3.10.2"),
        ({"runtime.txt": "python-3.12.x\n"}, True, LOCAL_313, "as near as 3.11: the newer wins"),
        ({".python-version": "3.12\n"}, True, LOCAL_313, "no Python 3.12 image here"),
        ({".python-version": "3.12.1\n"}, True, LOCAL_313, ".python-version asks for 3.12.1"),
        ({".python-version": "3.11.9\n"}, True, LOCAL_311, "the same minor as .python-version"),
        ({".python-version": "pypy3.10-7.3.12\n"}, True, LOCAL_311, "the images run CPython, not PyPy"),
        # both files: runtime.txt weighs first, .python-version breaks its tie
        ({"runtime.txt": "python-3.10.2\n", ".python-version": "3.12\n"}, True, LOCAL_311, ".python-version asks"),
        # official images: every minor from 3.10 to 3.14 exists, the same minor wins
        ({"runtime.txt": "python-3.10.2\n"}, False, "python:3.10-slim-trixie", "the same minor as runtime.txt"),
        ({".python-version": "3.12\n"}, False, "python:3.12-slim-trixie", "the same minor"),
        # nothing preferred: the newest the bounds allow
        ({}, True, LOCAL_313, "the newest image within the hard bounds: Django 5.2"),
        ({}, False, "python:3.14-slim-trixie", "Django 5.2 (requirements.txt: Django==5.2.19)"),
    ],
)
def test_preferences_pick_the_nearest_allowed(
    tmp_path: Path, files: dict[str, str], local: bool, image: str, said: str
) -> None:
    got, why = chosen(project(tmp_path, files), local=local)
    assert got == image, why
    assert said in why


@pytest.mark.parametrize(
    ("files", "local", "image"),
    [
        ({"pyproject.toml": '[project]\nrequires-python = ">=3.10,<3.13"\n'}, True, LOCAL_311),
        ({"pyproject.toml": '[project]\nrequires-python = ">=3.10,<3.13"\n'}, False, "python:3.12-slim-trixie"),
        ({"pyproject.toml": '[project]\nrequires-python = "~=3.11"\n'}, True, LOCAL_313),
        ({"pyproject.toml": '[project]\nrequires-python = "~=3.11.0"\n'}, True, LOCAL_311),
        # a preference outside the bound gives way to the bound
        (
            {"pyproject.toml": '[project]\nrequires-python = ">=3.12"\n', ".python-version": "3.11\n"},
            True,
            LOCAL_313,
        ),
        ({"Pipfile": '[requires]\npython_version = "3.11"\n'}, False, "python:3.11-slim-trixie"),
        ({"Pipfile": '[requires]\npython_full_version = "3.11.2"\n'}, True, LOCAL_311),
    ],
)
def test_hard_bounds_limit_the_choice(tmp_path: Path, files: dict[str, str], local: bool, image: str) -> None:
    assert chosen(project(tmp_path, files), local=local)[0] == image


def test_poetry_python_is_a_hard_bound(tmp_path: Path) -> None:
    pyproject = '[tool.poetry]\npackage-mode = false\n[tool.poetry.dependencies]\npython = "^3.10"\ndjango = "^5.2"\n'
    lock = '[[package]]\nname = "django"\nversion = "5.2.19"\n'
    root = project(tmp_path, {"pyproject.toml": pyproject, "poetry.lock": lock, ".python-version": "3.10\n"})
    image, why = chosen(root)
    assert image == LOCAL_311 and "no Python 3.10 image here" in why
    root = project(tmp_path, {"pyproject.toml": pyproject.replace("^3.10", "~3.12")})
    error = refusal(root)
    assert "pyproject.toml [tool.poetry.dependencies].python '~3.12' >=3.12,<3.13" in error.message
    assert chosen(root, local=False)[0] == "python:3.12-slim-trixie"


def test_django_60_lock_with_a_311_bound_is_refused_naming_djangos_bound(tmp_path: Path) -> None:
    lock = {"_meta": {}, "default": {"django": {"version": "==6.0.1"}}}
    files = {"Pipfile": '[requires]\npython_version = "3.11"\n', "Pipfile.lock": json.dumps(lock)}
    error = refusal(project(tmp_path, files))
    assert "Django 6.0 (Pipfile.lock: Django==6.0.1) supports Python 3.12 to 3.14" in error.message
    assert "Pipfile [requires].python_version '3.11' ==3.11.*" in error.message
    assert "Pipfile.lock (another Django version)" in (error.hint or "")
    # no official image fits both either: no --official-images proposed
    assert "--official-images" not in (error.hint or "")
    assert "3.11.2 (stackctl/python:3.11-bookworm)" in error.message


def test_django_60_and_a_preferred_311_choose_313_and_say_why(tmp_path: Path) -> None:
    image, why = chosen(project(tmp_path, {".python-version": "3.11\n"}, django="Django==6.0.1"))
    assert image == LOCAL_313
    assert ".python-version asks for 3.11" in why and "Python 3.11 is outside the hard bounds" in why


def test_python_flag_chooses_explicitly(tmp_path: Path) -> None:
    root = project(tmp_path, {".python-version": "3.13\n"})
    image, why = chosen(root, python="3.11")
    assert image == LOCAL_311 and "--python 3.11" in why
    assert chosen(root, python="3.10", local=False)[0] == "python:3.10-slim-trixie"


def test_python_flag_outside_the_bounds_is_refused_naming_the_bound(tmp_path: Path) -> None:
    error = refusal(project(tmp_path, {}, django="Django==6.0.1"), python="3.11")
    assert error.message.startswith("--python 3.11 is outside the hard bounds: Django 6.0 (requirements.txt")
    assert error.hint == "choose one the hard bounds allow: --python 3.13"


def test_python_flag_without_such_an_image_names_the_images_there_are(tmp_path: Path) -> None:
    error = refusal(project(tmp_path, {}), python="3.12")
    assert "there is no local Python 3.12 image" in error.message and "3.13.5" in error.message
    assert "--official-images" in (error.hint or "")


def test_a_bound_that_excludes_every_image_is_named(tmp_path: Path) -> None:
    error = refusal(project(tmp_path, {"pyproject.toml": '[project]\nrequires-python = "==3.12.*"\n'}))
    assert "pyproject.toml [project].requires-python ==3.12.*" in error.message
    assert "python:3.12-slim" in (error.hint or "")


@pytest.mark.parametrize(
    ("spec", "series", "bound"),
    [
        ("==5.2.19", ["5.2"], ">=3.10,<3.15"),
        ("==5.2.*", ["5.2"], ">=3.10,<3.15"),
        ("==6.0.1", ["6.0"], ">=3.12,<3.15"),
        (">=4.2,<5.0", ["4.2"], ">=3.8,<3.13"),
        (">=5.0,<5.2", ["5.0", "5.1"], ">=3.10,<3.14"),
        ("~=4.2.0", ["4.2"], ">=3.8,<3.13"),
        ("", list(DJANGO_PYTHONS), ">=3.6,<3.15"),
    ],
)
def test_django_series_and_their_pythons(spec: str, series: list[str], bound: str) -> None:
    pin = DjangoPin("requirements.txt", spec)
    assert pin.series == series
    found = django_python_bound(pin)
    assert found is not None and found.spec == bound


def test_a_django_newer_than_the_table_bounds_nothing() -> None:
    assert django_python_bound(DjangoPin("requirements.txt", "==7.1.0")) is None
    assert django_python_bound(None) is None


def test_django_is_read_from_includes_and_locks(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "requirements.txt": "-r requirements/base.txt\n",
            "requirements/base.txt": "django>=5.1 --hash=sha256:abc\n-c ../constraints.txt\n",
            "constraints.txt": "Django<5.2\n",
        },
    )
    pin = find_django(root, detect_project(root).dependencies)
    assert pin is not None and pin.series == ["5.1"]
    uv = project(
        tmp_path / "uv", {"pyproject.toml": '[project]\nname = "x"\nversion = "0"\ndependencies = ["django"]\n'}
    )
    (uv / "uv.lock").write_text('version = 1\n[[package]]\nname = "django"\nversion = "4.2.20"\n')
    pin = find_django(uv, detect_project(uv).dependencies)
    assert pin == DjangoPin("uv.lock", "==4.2.20")


def test_the_corpus_heroku_pins_gets_311_with_no_flag() -> None:
    root = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "heroku_pins"
    assert detect_project(root).python.preferences == (
        PythonPreference("runtime.txt", "python-3.10.2", "3.10.2"),
        PythonPreference(".python-version", "3.12", "3.12"),
    )
    image, why = chosen(root)
    assert image == LOCAL_311
    assert why.startswith("runtime.txt asks for python-3.10.2, .python-version asks for 3.12: Python 3.11.2")


def test_python_flag_must_be_a_version(tmp_path: Path) -> None:
    error = refusal(project(tmp_path, {}), python="latest")
    assert error.message == "--python 'latest' is not a Python version"


def test_an_unreadable_lock_bounds_nothing(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "x"\nversion = "0"\ndependencies = ["django"]\n'
    root = project(tmp_path, {"pyproject.toml": pyproject, "uv.lock": "not = [toml"})
    assert find_django(root, detect_project(root).dependencies) is None
    assert chosen(root)[0] == LOCAL_313


@pytest.mark.parametrize(
    ("spec", "local", "image", "suite"),
    [
        (">=3.12", True, LOCAL_313, "trixie"),
        (">=3.10", True, LOCAL_313, "trixie"),
        ("<3.12", True, LOCAL_311, "bookworm"),
        ("==3.11.*", True, LOCAL_311, "bookworm"),
        (">=3.12", False, "python:3.14-slim-trixie", "trixie"),
        ("==3.12.*", False, "python:3.12-slim-trixie", "trixie"),
        ("<3.12", False, "python:3.11-slim-trixie", "trixie"),
        (">=3.10,<3.11", False, "python:3.10-slim-trixie", "trixie"),
    ],
)
def test_a_bound_alone_gets_the_newest_it_allows(spec: str, local: bool, image: str, suite: str) -> None:
    bound = PythonBound("pyproject.toml", "pyproject.toml [project].requires-python", spec)
    requirement = PythonRequirement(spec, "pyproject.toml", ("pyproject.toml",), (), (bound,))
    picked = choose_python(requirement, python_candidates(local=local))
    assert (picked.image, picked.suite) == (image, suite)


def test_candidates_are_the_exact_local_versions_and_the_official_minors() -> None:
    assert [c.version for c in python_candidates(local=True)] == ["3.13.5", "3.11.2"]
    assert [c.version for c in python_candidates(local=False)] == list(OFFICIAL_PYTHON_MINORS)
