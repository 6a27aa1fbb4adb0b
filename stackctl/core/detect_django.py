"""Which Django a project installs, and the Pythons that Django supports: a hard bound on the
interpreter, like requires-python.

Pure: reads the dependency files `find_dependencies` found (the lock when there is one),
never runs anything.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from stackctl.core.detect_deps import Dependencies, requirement_lines
from stackctl.core.detect_python import PythonBound

# Each Django feature release and the Python minors it supports (first, last), from Django's
# release notes ("What Python version can I use with Django?"). The one place this is kept.
DJANGO_PYTHONS: dict[str, tuple[str, str]] = {
    "3.2": ("3.6", "3.10"),
    "4.0": ("3.8", "3.10"),
    "4.1": ("3.8", "3.11"),
    "4.2": ("3.8", "3.12"),
    "5.0": ("3.10", "3.12"),
    "5.1": ("3.10", "3.13"),
    "5.2": ("3.10", "3.14"),
    "6.0": ("3.12", "3.14"),
}
_PATCHES = 64  # patch releases tried per feature release when matching a range


@dataclass(frozen=True)
class DjangoPin:
    """What the dependency files say of Django: `spec` ("==5.2.8", "==5.2.*", ">=4.2") and where."""

    source: str  # e.g. "requirements.txt", "poetry.lock"
    spec: str

    @property
    def series(self) -> list[str]:
        """The feature releases of DJANGO_PYTHONS the spec admits."""
        specifier = SpecifierSet(self.spec)
        return [
            series
            for series in DJANGO_PYTHONS
            if any(specifier.contains(f"{series}.{patch}", prereleases=True) for patch in range(_PATCHES))
            or specifier.contains(f"{series}a1", prereleases=True)
        ]


def find_django(root: Path, dependencies: Dependencies) -> DjangoPin | None:
    """The Django the dependency set installs: the locked version, else the requirement's
    specifier (every requirements and constraints file read, intersected). None when no file
    names Django or its version cannot be read."""
    for file in dependencies.files:
        path = root / file
        name = path.name
        if name in ("poetry.lock", "uv.lock"):
            return _from_toml_lock(file, path)
        if name == "Pipfile.lock":
            return _from_pipfile_lock(file, path)
    specs: list[str] = []
    sources: list[str] = []
    for file in dependencies.files:
        path = root / file
        lines = _pyproject_lines(path) if path.name == "pyproject.toml" else _requirements_lines(path)
        for line in lines:
            spec = _django_spec(line)
            if spec is not None:
                specs += [spec] if spec else []
                sources += [file] if file not in sources else []
    joined = ",".join(s for s in specs if s)
    return DjangoPin(", ".join(sources), joined) if sources else None


def django_python_bound(pin: DjangoPin | None) -> PythonBound | None:
    """The Pythons the pinned Django supports, as a bound; None when the spec admits no release
    of the table (a Django too new for it, or unknown): then Django bounds nothing."""
    series = pin.series if pin else []
    if pin is None or not series:
        return None
    first = min((DJANGO_PYTHONS[s][0] for s in series), key=_minor)
    last = max((DJANGO_PYTHONS[s][1] for s in series), key=_minor)
    major, minor = _minor(last)
    django = series[0] if len(series) == 1 else f"{series[0]} to {series[-1]}"
    names = f"Django{pin.spec}" if pin.spec else "Django, unversioned"
    label = f"Django {django} ({pin.source}: {names}) supports Python {first} to {last}"
    return PythonBound(pin.source, label, f">={first},<{major}.{minor + 1}", states_range=True)


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _django_spec(line: str) -> str | None:
    """The specifier of a `django...` requirement line ("" when unversioned), None for other lines."""
    try:
        requirement = Requirement(line.split(" --")[0].strip())
    except InvalidRequirement:
        return None
    if requirement.name.lower() != "django":
        return None
    return str(requirement.specifier)


def _requirements_lines(path: Path) -> list[str]:
    return [line for _number, line in requirement_lines(path)]


def _toml(path: Path) -> dict[str, Any]:
    """The file's TOML, or nothing when it does not parse (the install itself will say why)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def _pyproject_lines(path: Path) -> list[str]:
    lines = _toml(path).get("project", {}).get("dependencies", [])
    return [str(line) for line in lines]


def _from_toml_lock(file: str, path: Path) -> DjangoPin | None:
    packages = _toml(path).get("package", [])
    if not isinstance(packages, list):
        return None
    found = (p.get("version") for p in packages if isinstance(p, dict) and str(p.get("name", "")).lower() == "django")
    version = next(found, None)
    return DjangoPin(file, f"=={version}") if version else None


def _from_pipfile_lock(file: str, path: Path) -> DjangoPin | None:
    try:
        default = json.loads(path.read_text(encoding="utf-8")).get("default", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    entry = next((v for k, v in default.items() if k.lower() == "django"), None)
    version = entry.get("version") if isinstance(entry, dict) else None
    return DjangoPin(file, str(version)) if version else None
