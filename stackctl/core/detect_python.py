"""Which Python versions a Django project asks for, read from the files that usually say so.

Pure: reads .python-version, runtime.txt, pyproject.toml and Pipfile; never runs anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from stackctl.core.detect_deps import load_toml, relative
from stackctl.errors import StackctlError


@dataclass(frozen=True)
class PythonRequirement:
    """A PEP 440 specifier set the interpreter must satisfy, or None when the project says nothing.

    When several files state a version, `spec` is their intersection, `sources` lists each file
    (relative to the root) and `source` joins them with ", ".
    """

    spec: str | None
    source: str | None
    sources: tuple[str, ...] = ()

    def allows(self, version: str) -> bool:
        """Whether an interpreter of this version (e.g. "3.13.5") satisfies the project."""
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


def _from_python_version(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    first = next((ln for ln in lines if ln and not ln.startswith("#")), "")
    spec = version_spec(first) if first else None
    return [spec] if spec else []


def _from_runtime_txt(path: Path) -> list[str]:
    spec = version_spec(path.read_text(encoding="utf-8", errors="replace").strip())
    return [spec] if spec else []


def _from_pyproject(root: Path, path: Path) -> list[str]:
    data = load_toml(root, path)
    specs: list[str] = []
    requires = data.get("project", {}).get("requires-python")
    if requires is not None:
        spec = _valid(str(requires))
        if spec is None:
            raise StackctlError(
                f"{relative(root, path)}: [project].requires-python {requires!r} is not a PEP 440 specifier",
                hint='write it like ">=3.12" or ">=3.12,<3.14"',
            )
        specs.append(spec)
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
    if isinstance(poetry, str) and (spec := poetry_python_spec(poetry)):
        specs.append(spec)
    return specs


def _from_pipfile(root: Path, path: Path) -> list[str]:
    requires: dict[str, Any] = load_toml(root, path).get("requires", {})
    text = requires.get("python_full_version") or requires.get("python_version")
    spec = version_spec(str(text)) if text else None
    return [spec] if spec else []


def find_python(root: Path, project_dir: Path) -> PythonRequirement:
    """Every Python version the project states, intersected. Each file is read from project_dir,
    else from the root: .python-version, runtime.txt, pyproject.toml ([project].requires-python,
    Poetry's python dependency), Pipfile ([requires] python_full_version or python_version)."""
    readers: dict[str, Callable[[Path], list[str]]] = {
        ".python-version": _from_python_version,
        "runtime.txt": _from_runtime_txt,
        "pyproject.toml": lambda p: _from_pyproject(root, p),
        "Pipfile": lambda p: _from_pipfile(root, p),
    }
    folders = [project_dir] if project_dir == root else [project_dir, root]
    terms: list[str] = []
    sources: list[str] = []
    for name, read in readers.items():
        path = next((f / name for f in folders if (f / name).is_file()), None)
        specs = read(path) if path else []
        terms += [t for spec in specs for t in spec.split(",") if t not in terms]
        if specs and path:
            sources.append(relative(root, path))
    if not sources:
        return PythonRequirement(None, None)
    return PythonRequirement(",".join(terms), ", ".join(sources), tuple(sources))


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
