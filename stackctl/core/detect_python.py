"""Which Python versions a Django project asks for, read from the files that usually say so.

Pure: reads .python-version, runtime.txt, pyproject.toml and Pipfile; never runs anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from stackctl.core.detect_deps import load_toml, relative
from stackctl.errors import StackctlError


@dataclass(frozen=True)
class PythonBound:
    """One hard bound on the interpreter, as a file states it: `spec` is PEP 440, `label` names
    the file and the key, e.g. "pyproject.toml [project].requires-python"."""

    source: str
    label: str
    spec: str
    states_range: bool = False  # the label says the versions itself ("... supports Python 3.10 to 3.14")

    def allows(self, version: str) -> bool:
        return SpecifierSet(self.spec).contains(version, prereleases=True)

    def describe(self) -> str:
        return self.label if self.states_range else f"{self.label} {self.spec}"


@dataclass(frozen=True)
class PythonPreference:
    """A Python version a file names as the one it runs on (runtime.txt, .python-version): a
    wish, not a bound. `written` is the text as found ("python-3.10.2"), `version` what it
    reads as ("3.10.2", or "3.12" when no patch is given), `implementation` "cpython" or "pypy"."""

    source: str
    written: str
    version: str
    implementation: str = "cpython"

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class PythonRequirement:
    """What a project says about its Python.

    `spec` is the PEP 440 intersection of the hard bounds (requires-python, Poetry's python,
    Pipfile's python_version), None when there is none; `sources` lists the files they come
    from (relative to the root) and `source` joins them with ", ". `bounds` holds each bound
    apart, to name the one that refuses. `preferences` are the versions runtime.txt and
    .python-version name, in the order they weigh: the interpreter is chosen near them.
    """

    spec: str | None
    source: str | None
    sources: tuple[str, ...] = ()
    preferences: tuple[PythonPreference, ...] = ()
    bounds: tuple[PythonBound, ...] = field(default=(), compare=False)

    def allows(self, version: str) -> bool:
        """Whether an interpreter of this version (e.g. "3.13.5") satisfies the hard bounds."""
        if self.spec is None:
            return True
        return SpecifierSet(self.spec).contains(version, prereleases=True)


_VERSION = re.compile(r"(?:c?python|pypy)?[-@]?(\d+)(?:\.(\d+))?(?:\.(\d+))?", re.IGNORECASE)
_POETRY_TERM = re.compile(r"(\^|~=|~|>=|<=|==|!=|>|<|=)?\s*(\d+(?:\.\d+)*(?:\.\*)?)")


def version_spec(text: str) -> str | None:
    """ "3.12" -> "==3.12.*", "3.12.4" / "python-3.12.4" -> "==3.12.4", ">=3.12" kept; None if unreadable."""
    text = text.strip()
    if text[:1] in ("<", ">", "=", "~", "!"):
        return _valid(text)
    match = _VERSION.match(text)
    if match is None:
        return None  # "system", a virtualenv name, ...
    parts = [p for p in match.groups() if p is not None]
    return "==" + ".".join(parts) + ("" if len(parts) == 3 else ".*")


def poetry_python_spec(text: str) -> str | None:
    """Poetry's python constraint as PEP 440: "^3.12" -> ">=3.12,<4.0", "~3.12" -> ">=3.12,<3.13".

    A union ("^3.10 || ^3.12") has no PEP 440 form; it reads as saying nothing (None).
    """
    if "||" in text or "|" in text:
        return None
    terms = [_poetry_term(op or "", version) for op, version in _POETRY_TERM.findall(text)]
    return _valid(",".join(terms)) if terms else None


def _poetry_term(op: str, version: str) -> str:
    parts = [int(p) for p in version.split(".") if p != "*"]
    if op == "^":
        bump = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1)
        return f">={version},<{_upper(parts[:bump], parts[bump])}"
    if op == "~" or (op == "~=" and len(parts) < 2):
        bump = 1 if len(parts) >= 2 else 0
        return f">={version},<{_upper(parts[:bump], parts[bump])}"
    if op in ("", "=", "=="):
        return version_spec(version) or f"=={version}"
    return f"{op}{version}"


def _upper(head: list[int], bumped: int) -> str:
    upper = [*head, bumped + 1]
    return ".".join(str(p) for p in (upper if len(upper) > 1 else [*upper, 0]))


def _valid(spec: str) -> str | None:
    """`spec` with its blanks removed, in the order written, or None when it is not PEP 440."""
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        return None
    return ",".join(term.strip() for term in spec.split(",") if term.strip())


# "3.12", "3.12.1", "python-3.10.2" (Heroku), "python-3.12.x", "pypy3.10-7.3.12" (pyenv),
# "cpython-3.12.3-linux-x86_64-gnu" (uv), "3.13t" (free-threaded): the implementation and the version.
_PREFERENCE = re.compile(r"(?:(c?python|pypy)[-@]?)?(\d+)\.(\d+)(?:\.(\d+))?", re.IGNORECASE)
# The files that name the version a project runs on, in the order they weigh: runtime.txt
# names the deployed runtime (Heroku gives it precedence over .python-version too), while
# .python-version is often the developer's own pyenv or uv choice.
PREFERENCE_FILES = ("runtime.txt", ".python-version")


def preference_of(source: str, text: str) -> PythonPreference | None:
    """The version a runtime.txt or .python-version line names, None when it names none ("system",
    a virtualenv name, a bare major "3", or a range, which uv allows and which says no version)."""
    written = text.strip()
    match = _PREFERENCE.match(written)
    if match is None:
        return None
    implementation = "pypy" if (match.group(1) or "").lower() == "pypy" else "cpython"
    version = ".".join(part for part in match.groups()[1:] if part is not None)
    return PythonPreference(source, written, version, implementation)


def _first_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    return next((ln for ln in lines if ln and not ln.startswith("#")), "")


def _from_pyproject(root: Path, path: Path) -> list[PythonBound]:
    data = load_toml(root, path)
    source = relative(root, path)
    bounds: list[PythonBound] = []
    requires = data.get("project", {}).get("requires-python")
    if requires is not None:
        spec = _valid(str(requires))
        if spec is None:
            raise StackctlError(
                f"{source}: [project].requires-python {requires!r} is not a PEP 440 specifier",
                hint='write it like ">=3.12" or ">=3.12,<3.14"',
            )
        bounds.append(PythonBound(source, f"{source} [project].requires-python", spec))
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
    if isinstance(poetry, str) and (spec := poetry_python_spec(poetry)):
        bounds.append(PythonBound(source, f"{source} [tool.poetry.dependencies].python {poetry!r}", spec))
    return bounds


def _from_pipfile(root: Path, path: Path) -> list[PythonBound]:
    requires: dict[str, Any] = load_toml(root, path).get("requires", {})
    key = "python_full_version" if requires.get("python_full_version") else "python_version"
    text = requires.get(key)
    spec = version_spec(str(text)) if text else None
    source = relative(root, path)
    return [PythonBound(source, f"{source} [requires].{key} {str(text)!r}", spec)] if spec else []


def find_python(root: Path, project_dir: Path) -> PythonRequirement:
    """The project's Python: hard bounds from pyproject.toml ([project].requires-python, Poetry's
    python dependency) and Pipfile ([requires] python_full_version or python_version),
    intersected; preferences from runtime.txt and .python-version. Each file is read from
    project_dir, else from the root."""
    folders = [project_dir] if project_dir == root else [project_dir, root]

    def found(name: str) -> Path | None:
        return next((f / name for f in folders if (f / name).is_file()), None)

    bounds: list[PythonBound] = []
    for name, read in (("pyproject.toml", _from_pyproject), ("Pipfile", _from_pipfile)):
        path = found(name)
        bounds += read(root, path) if path else []
    preferences = [
        preference
        for name in PREFERENCE_FILES
        if (path := found(name)) and (preference := preference_of(relative(root, path), _first_line(path)))
    ]
    terms: list[str] = []
    for bound in bounds:
        terms += [t for t in bound.spec.split(",") if t not in terms]
    sources = tuple(dict.fromkeys(bound.source for bound in bounds))
    return PythonRequirement(
        ",".join(terms) or None, ", ".join(sources) or None, sources, tuple(preferences), tuple(bounds)
    )


def newest_allowed(requirement: PythonRequirement, candidates: list[str]) -> str | None:
    """The newest of `candidates` (e.g. the Python images stackctl can build) the project allows."""
    allowed = [c for c in candidates if _parses(c) and requirement.allows(c)]
    return max(allowed, key=Version, default=None)


def _parses(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True
