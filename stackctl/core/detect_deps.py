"""Which files a Django project's locked install needs, and which packages it lists directly.

Pure: reads files, never runs anything. Every path in a result is POSIX and relative to the
root given to `stackctl.core.detect.detect_project` (the image's build context), so a
Dockerfile can COPY it as it is.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from stackctl.errors import StackctlError

DependencyKind = Literal["requirements", "poetry", "uv", "pipenv", "pep621"]
# The requirements file an install starts from, first found wins (relative to the folder searched).
REQUIREMENTS_ENTRIES = (
    "requirements.txt",
    "requirements/production.txt",
    "requirements/prod.txt",
    "requirements/base.txt",
)
NO_DEPENDENCIES_HINT = (
    "add a requirements.txt listing your packages with their versions (`pip freeze > requirements.txt`), "
    "or lock your pyproject.toml with `uv lock` or `poetry lock`"
)


@dataclass(frozen=True)
class Dependencies:
    """The dependency set an image installs.

    `entry` and `files` are relative to the ROOT (the build context), not to project_dir:
    `entry` is the file the install starts from ("requirements/production.txt", "pyproject.toml"
    for poetry/uv/pep621, "Pipfile.lock"), `files` is every file the locked install reads
    (followed `-r`/`-c` includes too), sorted. `base` is the folder they were found in: the
    project_dir, or "." when the project_dir (a subfolder) had none and the root had them.
    `packages` holds the PEP 503 names of the direct runtime dependencies (no extras, markers
    or dev groups); for Pipfile.lock it is every package of its "default" section.
    """

    kind: DependencyKind
    entry: str
    files: tuple[str, ...]
    packages: frozenset[str]
    base: str = "."


def relative(root: Path, path: Path) -> str:
    """`path` relative to `root`, POSIX, "." for the root itself."""
    return path.relative_to(root).as_posix() or "."


def load_toml(root: Path, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StackctlError(
            f"{relative(root, path)}: not valid TOML ({exc})", hint=f"fix the syntax of {relative(root, path)}"
        ) from exc


@dataclass(frozen=True)
class _Folder:
    """One folder searched for dependency files, with its parsed pyproject.toml if any."""

    root: Path
    path: Path
    pyproject: dict[str, Any] | None

    def rel(self, name: str) -> str:
        return relative(self.root, self.path / name)

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def found(self, kind: DependencyKind, entry: str, names: tuple[str, ...], packages: set[str]) -> Dependencies:
        files = tuple(sorted(self.rel(n) for n in names if self.has(n)))
        return Dependencies(kind, self.rel(entry), files, frozenset(packages), relative(self.root, self.path))


def find_dependencies(root: Path, project_dir: Path) -> Dependencies:
    """The dependency set of project_dir, else of the root: uv, poetry, pipenv, requirements, PEP 621.

    A folder whose only candidate cannot be installed as locked (a Pipfile without Pipfile.lock,
    a Poetry project without poetry.lock) does not stop the search; it is the error raised when
    nothing else is found.
    """
    folders = [project_dir] if project_dir == root else [project_dir, root]
    blocked: list[StackctlError] = []
    for path in folders:
        pyproject = path / "pyproject.toml"
        folder = _Folder(root, path, load_toml(root, pyproject) if pyproject.is_file() else None)
        for finder in (_uv, _poetry, _pipenv, _requirements, _pep621):
            result = finder(folder)
            if isinstance(result, Dependencies):
                return result
            if result is not None:
                blocked.append(result)
    if blocked:
        raise blocked[0]
    looked = ", ".join(["uv.lock", "poetry.lock", "Pipfile.lock", *REQUIREMENTS_ENTRIES, "pyproject.toml"])
    where = " and ".join(relative(root, f) for f in folders)
    raise StackctlError(f"no dependency file in {where}: looked for {looked}", hint=NO_DEPENDENCIES_HINT)


def _uv(folder: _Folder) -> Dependencies | StackctlError | None:
    if not folder.has("uv.lock"):
        return None
    if folder.pyproject is None:
        return StackctlError(
            f"{folder.rel('uv.lock')}: no pyproject.toml beside it",
            hint="uv.lock is read together with the pyproject.toml it was locked from; commit that file too",
        )
    packages = _pep621_packages(folder.pyproject, folder.rel("pyproject.toml"))
    return folder.found("uv", "pyproject.toml", ("pyproject.toml", "uv.lock"), packages)


def _poetry(folder: _Folder) -> Dependencies | StackctlError | None:
    pyproject = folder.pyproject
    if folder.has("poetry.lock"):
        if pyproject is None:
            return StackctlError(
                f"{folder.rel('poetry.lock')}: no pyproject.toml beside it",
                hint="poetry.lock is read together with the pyproject.toml it was locked from; commit that file too",
            )
        packages = _poetry_packages(pyproject) | _pep621_packages(pyproject, folder.rel("pyproject.toml"))
        return folder.found("poetry", "pyproject.toml", ("poetry.lock", "pyproject.toml"), packages)
    if pyproject is not None and _is_poetry(pyproject):
        return StackctlError(
            f"{folder.rel('pyproject.toml')}: a Poetry project without poetry.lock",
            hint=f"run `poetry lock` in {relative(folder.root, folder.path)} and commit poetry.lock "
            "(the image installs the locked versions)",
        )
    return None


def _pipenv(folder: _Folder) -> Dependencies | StackctlError | None:
    if folder.has("Pipfile.lock"):
        lock = folder.path / "Pipfile.lock"
        try:
            default = json.loads(lock.read_text(encoding="utf-8")).get("default", {})
        except (ValueError, AttributeError) as exc:
            raise StackctlError(
                f"{folder.rel('Pipfile.lock')}: not a valid Pipfile.lock ({exc})",
                hint="regenerate it with `pipenv lock`",
            ) from exc
        packages: set[str] = {canonicalize_name(name) for name in default}
        return folder.found("pipenv", "Pipfile.lock", ("Pipfile", "Pipfile.lock"), packages)
    if folder.has("Pipfile"):
        return StackctlError(
            f"{folder.rel('Pipfile')}: no Pipfile.lock beside it",
            hint="run `pipenv lock` and commit Pipfile.lock (the image installs the locked versions)",
        )
    return None


def _requirements(folder: _Folder) -> Dependencies | None:
    entry = next((name for name in REQUIREMENTS_ENTRIES if folder.has(name)), None)
    if entry is None:
        return None
    walk = _RequirementsWalk(folder.root)
    walk.visit(folder.path / entry, constraint=False)
    return Dependencies(
        "requirements",
        folder.rel(entry),
        tuple(sorted(walk.files)),
        frozenset(walk.packages),
        relative(folder.root, folder.path),
    )


def _pep621(folder: _Folder) -> Dependencies | StackctlError | None:
    project = (folder.pyproject or {}).get("project")
    if not isinstance(project, dict) or _is_poetry(folder.pyproject or {}):
        return None  # a Poetry project is installed from its poetry.lock or not at all
    if "dependencies" in project.get("dynamic", []):
        return StackctlError(
            f"{folder.rel('pyproject.toml')}: [project].dependencies is dynamic, so it cannot be read without building",
            hint="list the dependencies in [project].dependencies, or add a requirements.txt",
        )
    if "dependencies" not in project:
        return None
    packages = _pep621_packages(folder.pyproject or {}, folder.rel("pyproject.toml"))
    return folder.found("pep621", "pyproject.toml", ("pyproject.toml",), packages)


def _is_poetry(pyproject: dict[str, Any]) -> bool:
    backend = str(pyproject.get("build-system", {}).get("build-backend", ""))
    return "poetry" in pyproject.get("tool", {}) or backend.startswith("poetry")


def _pep621_packages(pyproject: dict[str, Any], file: str) -> set[str]:
    names: set[str] = set()
    for line in pyproject.get("project", {}).get("dependencies", []):
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except (InvalidRequirement, TypeError) as exc:
            raise StackctlError(
                f"{file}: [project].dependencies: {line!r} is not a valid requirement ({exc})",
                hint='write it as PEP 508 says, e.g. "django>=5.2,<6"',
            ) from exc
    return names


def _poetry_packages(pyproject: dict[str, Any]) -> set[str]:
    """[tool.poetry.dependencies] minus python and the optional ones (extras only)."""
    table = pyproject.get("tool", {}).get("poetry", {}).get("dependencies", {})
    return {
        canonicalize_name(name)
        for name, spec in table.items()
        if name.lower() != "python" and not (isinstance(spec, dict) and spec.get("optional"))
    }


# --- requirements files -------------------------------------------------------------------

_COMMENT = re.compile(r"(^|\s+)#.*$")
_TRAILING_OPTIONS = re.compile(r"\s+--?[A-Za-z].*$")  # `pkg==1 --hash=sha256:...`
_EGG = re.compile(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_INCLUDES = (("--requirement", False), ("--constraint", True), ("-r", False), ("-c", True))


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) with `\\` continuations joined and comments stripped, as pip reads them."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.endswith("\\"):
            buffer += raw[:-1]
            continue
        line = _COMMENT.sub("", buffer + raw).strip()
        buffer = ""
        if line:
            yield start, line
    if buffer.strip():
        yield start, _COMMENT.sub("", buffer).strip()


def _decode(data: bytes) -> str:
    """A requirements file's text; like pip, honour a UTF-16 BOM (`pip freeze >` in PowerShell writes one)."""
    for bom, encoding in ((b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"), (b"\xef\xbb\xbf", "utf-8-sig")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    return data.decode("utf-8", errors="replace")


def _include(line: str) -> tuple[bool, str] | None:
    """(is a constraint, target) for a `-r`/`-c`/`--requirement`/`--constraint` line."""
    for option, constraint in _INCLUDES:
        if line.startswith(option):
            rest = line[len(option) :]
            if option.startswith("--") and rest[:1] not in ("=", " ", "\t"):
                continue
            return constraint, rest.lstrip("= \t").strip()
    return None


def requirement_name(line: str) -> str | None:
    """The normalised project name a requirement line installs, or None (options, paths, bare URLs)."""
    if line.startswith(("-e", "--editable")):
        egg = _EGG.search(line)
        return canonicalize_name(egg.group(1)) if egg else None
    if line.startswith("-"):
        return None
    line = _TRAILING_OPTIONS.sub("", line)
    if "://" in line.split("@")[0] or line.startswith(("git+", "hg+", "svn+", "bzr+", ".", "/", "file:")):
        egg = _EGG.search(line)
        return canonicalize_name(egg.group(1)) if egg else None
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return None  # a local path or archive, or a form pip understands and we do not need


@dataclass
class _RequirementsWalk:
    """Follows the includes of a requirements file, collecting every file read and every name."""

    root: Path
    files: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    _seen: set[tuple[Path, bool]] = field(default_factory=set)

    def visit(self, path: Path, *, constraint: bool) -> None:
        if (path, constraint) in self._seen:
            return
        self._seen.add((path, constraint))
        rel = relative(self.root, path)
        self.files.add(rel)
        for number, line in _logical_lines(_decode(path.read_bytes())):
            include = _include(line)
            if include is not None:
                self._follow(path, f"{rel}:{number}", line, include, constraint=constraint)
            elif not constraint and (name := requirement_name(line)):
                self.packages.add(name)

    def _follow(self, path: Path, where: str, line: str, include: tuple[bool, str], *, constraint: bool) -> None:
        is_constraint, target = include
        if "://" in target:
            return  # pip fetches remote includes itself; nothing to copy
        resolved = Path(os.path.normpath(path.parent / target))
        if not resolved.is_relative_to(self.root):
            raise StackctlError(
                f"{where}: `{line}` names {resolved}, outside the project root",
                hint="the image is built from the project root only; move the file inside it and fix the path",
            )
        if not resolved.is_file():
            raise StackctlError(
                f"{where}: `{line}` names {relative(self.root, resolved)}, which does not exist",
                hint=f"fix the path (it is relative to the folder of {relative(self.root, path)}) or create the file",
            )
        self.visit(resolved, constraint=constraint or is_constraint)


def requirement_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, logical line) of a requirements file, as pip reads them (BOM, `\\`, comments)."""
    return _logical_lines(_decode(path.read_bytes()))
