"""Detect the shape of a user's Django project: where manage.py is, which settings modules dev
and prod use, the ASGI/WSGI entry points, the dependency files and the Python it asks for.

Pure: reads files only (no docker, no output, never imports the user's code). Paths in the
result are POSIX and relative to the root given to `detect_project` (the image's build
context), "." for the root itself. Module names are dotted and relative to `project_dir`, the
folder holding manage.py, which is the import root when Django runs.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from stackctl.core.detect_deps import Dependencies, find_dependencies, relative
from stackctl.core.detect_python import PythonRequirement, find_python
from stackctl.errors import StackctlError

__all__ = ["Dependencies", "DjangoProject", "PythonRequirement", "SettingsModules", "detect_project"]

SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", "site-packages", ".tox"})
SCAN_DEPTH = 4  # folders below project_dir searched for asgi.py, wsgi.py and settings
PROD_NAMES = ("production", "prod", "live")
DEV_NAMES = ("dev", "local", "development")
# Modules of a split package that are neither dev nor prod: prod's choice when no prod module exists.
NEUTRAL_NAMES = ("base", "common", "settings", "default", "defaults", "shared")
# A package holding one of these modules is a split settings package (settings/base.py, ...).
SPLIT_MARKERS = frozenset({*PROD_NAMES, *DEV_NAMES, "base", "common", "defaults"})
SETTINGS_HINT = "add os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings') to manage.py"

_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_DEFAULT = re.compile(r"""(?:setdefault\(\s*|\[\s*)["']DJANGO_SETTINGS_MODULE["']\s*(?:,|\]\s*=)\s*["']([\w.]+)["']""")


@dataclass(frozen=True)
class SettingsModules:
    """The settings module each stack runs, e.g. prod "config.settings.production", dev "config.settings.local".

    `source` is the file the default was read from ("manage.py", "src/config/wsgi.py"), or the
    settings file found by scanning when no file sets a default. `package` is the split settings
    package ("config.settings"), None for a single module. `prod_guessed` is True when a split
    package has no production module: prod is then the module named, unless it is a dev one, else
    a neutral module (base, common...), else the dev module; `prod_reason` says which and why.
    """

    prod: str
    dev: str
    source: str
    package: str | None = None
    prod_guessed: bool = False
    prod_reason: str = ""  # when guessed: why prod runs this module


@dataclass(frozen=True)
class DjangoProject:
    project_dir: str  # folder holding manage.py, relative to the root, POSIX, "." for the root
    settings: SettingsModules
    asgi_application: str | None  # "pkg.asgi:application", None when the project has no asgi.py
    wsgi_application: str | None  # "pkg.wsgi:application" when found (informative)
    dependencies: Dependencies
    python: PythonRequirement

    def has_package(self, *names: str) -> bool:
        """Whether the dependencies list any of `names` directly (compared PEP 503-normalised)."""
        return any(canonicalize_name(name) in self.dependencies.packages for name in names)


@dataclass(frozen=True)
class _Default:
    module: str
    file: str  # relative to the root


def detect_project(root: Path) -> DjangoProject:
    """Detect the Django project in `root` (manage.py here or one folder down).

    Raises StackctlError naming the file and the fix when a part cannot be found.
    """
    root = root.resolve()
    manage = find_manage(root)
    project = manage.parent
    primary = _default_in(root, manage)
    chain = _prefixes(primary.module) if primary else [""]
    asgi = _pick_entry(project, "asgi.py", "get_asgi_application", chain)
    wsgi = _pick_entry(project, "wsgi.py", "get_wsgi_application", chain)
    hints = [d for d in (_default_in(root, p) for p in (asgi, wsgi) if p) if d]
    primary = primary or (hints[0] if hints else None) or _scan_settings(root, project)
    return DjangoProject(
        project_dir=relative(root, project),
        settings=_resolve_settings(root, project, primary, hints),
        asgi_application=_application(project, asgi),
        wsgi_application=_application(project, wsgi),
        dependencies=find_dependencies(root, project),
        python=find_python(root, project),
    )


def find_manage(root: Path) -> Path:
    """root/manage.py, else the only manage.py one folder down."""
    if (root / "manage.py").is_file():
        return root / "manage.py"
    found = [d / "manage.py" for d in _subfolders(root) if (d / "manage.py").is_file()]
    if len(found) > 1:
        names = ", ".join(relative(root, f) for f in found)
        raise StackctlError(
            f"several Django projects in {root}: {names}",
            hint="run `stackctl init` in the folder of the project to deploy",
        )
    if not found:
        raise StackctlError(
            f"no Django project found in {root}: looked for manage.py here and one folder down",
            hint="run `stackctl init` in your project's root (the folder holding manage.py or its parent)",
        )
    return found[0]


# --- walking the tree -----------------------------------------------------------------------


def _skipped(folder: Path) -> bool:
    return folder.name in SKIP_DIRS or folder.name.startswith(".") or (folder / "pyvenv.cfg").is_file()


def _subfolders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not _skipped(d))


def _files_named(project: Path, name: str) -> Iterator[Path]:
    """Every file called `name` under project (SCAN_DEPTH folders deep), skipping venvs and caches."""
    for folder, subfolders, files in os.walk(project):
        here = Path(folder)
        depth = len(here.relative_to(project).parts)
        subfolders[:] = [] if depth >= SCAN_DEPTH else sorted(d for d in subfolders if not _skipped(here / d))
        if name in files:
            yield here / name


def _module_name(project: Path, path: Path) -> str | None:
    """The dotted module a file under project imports as ("config/asgi.py" -> "config.asgi")."""
    parts = list(path.relative_to(project).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    module = ".".join(parts)
    return module if parts and _MODULE.fullmatch(module) else None


def _module_path(project: Path, module: str) -> Path | None:
    """The file a dotted module name loads from under project, if it exists."""
    base = project.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


# --- DJANGO_SETTINGS_MODULE defaults ----------------------------------------------------------


def _default_in(root: Path, path: Path) -> _Default | None:
    module = settings_default(_read(path))
    return _Default(module, relative(root, path)) if module else None


def settings_default(source: str) -> str | None:
    """The DJANGO_SETTINGS_MODULE default a Python file sets (setdefault or assignment), if any."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # newer syntax than this interpreter's: fall back to a regex
        match = _DEFAULT.search(source)
        return match.group(1) if match else None
    for node in ast.walk(tree):
        value = _default_value(node)
        if value is not None and _MODULE.fullmatch(value):
            return value
    return None


def _default_value(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setdefault":
        if len(node.args) != 2:
            return None
        key, value = node.args
    elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Subscript):
        key, value = node.targets[0].slice, node.value
    else:
        return None
    if _constant(key) == "DJANGO_SETTINGS_MODULE":
        return _constant(value)
    return None


def _constant(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


# --- settings modules -----------------------------------------------------------------------


def _scan_settings(root: Path, project: Path) -> _Default:
    """A settings.py (or settings/ package) under project; the ones beside urls.py/wsgi.py first."""
    found = [*_files_named(project, "settings.py")]
    found += [p for p in _files_named(project, "__init__.py") if p.parent.name == "settings"]

    def rank(path: Path) -> tuple[bool, int, str]:
        folder = path.parent if path.name == "settings.py" else path.parent.parent
        beside = any((folder / name).is_file() for name in ("urls.py", "wsgi.py", "asgi.py"))
        return (not beside, len(path.relative_to(project).parts), path.as_posix())

    for path in sorted(found, key=rank):
        module = _module_name(project, path)
        if module:
            return _Default(module, relative(root, path))
    raise StackctlError(
        f"no settings module found for {relative(root, project / 'manage.py')}: manage.py, asgi.py and wsgi.py "
        f"set no DJANGO_SETTINGS_MODULE default, and no settings.py is under {relative(root, project)}",
        hint=SETTINGS_HINT,
    )


def _resolve_settings(root: Path, project: Path, primary: _Default, hints: list[_Default]) -> SettingsModules:
    path = _module_path(project, primary.module)
    if path is None:
        where = relative(root, project.joinpath(*primary.module.split(".")))
        raise StackctlError(
            f"{primary.file}: DJANGO_SETTINGS_MODULE default {primary.module!r} names no module "
            f"(no {where}.py, no {where}/__init__.py)",
            hint=f"fix the DJANGO_SETTINGS_MODULE default in {primary.file}, or create the module",
        )
    named = None if path.name == "__init__.py" else path.stem
    package = primary.module if named is None else primary.module.rpartition(".")[0]
    modules = _split_modules(path.parent) if package else set()
    others = [h.module for h in hints if h.module != primary.module and _module_path(project, h.module)]
    prod_hint = next((m for m in others if not _words(m) & set(DEV_NAMES)), None)
    if not modules:
        prod = prod_hint or _sibling_prod(path, primary.module) or primary.module
        return SettingsModules(prod, primary.module, primary.file)
    init_has_settings = named is None and _has_statements(path)
    return _split_settings(primary, package, named, modules, prod_hint, init_has_settings)


def _split_settings(
    primary: _Default, package: str, named: str | None, modules: set[str], prod_hint: str | None, init_used: bool
) -> SettingsModules:
    """prod: the module named if it is a prod one, the asgi/wsgi default, production/prod/live;
    dev: the module named if it is a dev one (or the package when its __init__ holds settings),
    dev/local/development. What is still missing falls back to the module named; a prod still
    missing is guessed (_guess_prod), never a dev module while a neutral one exists."""
    prod_name = next((n for n in PROD_NAMES if n in modules), None)
    dev_name = next((n for n in DEV_NAMES if n in modules), None)
    prod = primary.module if named in PROD_NAMES else prod_hint or (prod_name and f"{package}.{prod_name}")
    if named in DEV_NAMES or init_used:
        dev: str | None = primary.module
    else:
        dev = dev_name and f"{package}.{dev_name}"
    fallback = primary.module if named is not None or init_used else None
    dev = dev or fallback or prod
    if dev is None:
        raise StackctlError(
            f"{primary.file}: DJANGO_SETTINGS_MODULE default {primary.module!r} is a package whose __init__.py "
            f"sets nothing, and it has no dev or production module ({', '.join(sorted(modules))})",
            hint=f"point the default at one of its modules, e.g. {package}.{sorted(modules)[0]}",
        )
    if prod is not None:
        return SettingsModules(prod, dev, primary.file, package)
    prod, reason = _guess_prod(primary, package, named, modules, init_used, dev)
    return SettingsModules(prod, dev, primary.file, package, prod_guessed=True, prod_reason=reason)


def _guess_prod(
    primary: _Default, package: str, named: str | None, modules: set[str], init_used: bool, dev: str
) -> tuple[str, str]:
    """prod for a split package with no production module, and why: the module the project
    names when it is not a dev one, else a neutral module, else the dev one."""
    none = f"{package} has no {'/'.join(PROD_NAMES)} module"
    if init_used:
        return primary.module, f"{none}; {primary.module}/__init__.py holds settings of its own"
    if named is not None and named not in DEV_NAMES:
        return primary.module, f"{none}; {primary.file} names {primary.module}"
    neutral = next((n for n in NEUTRAL_NAMES if n in modules), None)
    if neutral is not None:
        return f"{package}.{neutral}", f"{none}; {neutral} is the shared base, not the dev module {dev}"
    return dev, f"{none}, and no base/common one: it runs the dev module {dev}"


def _split_modules(folder: Path) -> set[str]:
    """The modules of a split settings package, or an empty set when `folder` is not one."""
    if not (folder / "__init__.py").is_file():
        return set()
    names = {p.stem for p in folder.glob("*.py") if p.stem != "__init__" and p.stem.isidentifier()}
    return names if names & SPLIT_MARKERS else set()


def _sibling_prod(path: Path, module: str) -> str | None:
    """settings_production.py / prod_settings.py beside a single settings.py."""
    head = module.rpartition(".")[0]
    for name in PROD_NAMES:
        for stem in (f"{path.stem}_{name}", f"{name}_{path.stem}"):
            if (path.parent / f"{stem}.py").is_file():
                return f"{head}.{stem}" if head else stem
    return None


def _words(module: str) -> set[str]:
    return set(module.rpartition(".")[2].split("_"))


def _has_statements(path: Path) -> bool:
    """Whether a module does anything beyond a docstring (an __init__ that holds or imports settings)."""
    try:
        body = ast.parse(_read(path)).body
    except (SyntaxError, ValueError):
        return True
    return any(not isinstance(s, ast.Pass) and not (isinstance(s, ast.Expr) and _constant(s.value)) for s in body)


# --- ASGI / WSGI ------------------------------------------------------------------------------


def _prefixes(module: str) -> list[str]:
    """ "config.settings.local" -> ["config.settings.local", "config.settings", "config", ""]."""
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), -1, -1)]


def _pick_entry(project: Path, name: str, marker: str, chain: list[str]) -> Path | None:
    """The asgi.py/wsgi.py to serve: the one in the settings' package (or nearest above it),
    then one that calls get_asgi_application/get_wsgi_application, then the shallowest."""

    def rank(path: Path) -> tuple[int, bool, int, str]:
        package = (_module_name(project, path) or "").rpartition(".")[0]
        near = chain.index(package) if package in chain else len(chain)
        return (near, marker not in _read(path), len(path.relative_to(project).parts), path.as_posix())

    found = [p for p in _files_named(project, name) if _module_name(project, p)]
    return min(found, key=rank, default=None)


def _application(project: Path, path: Path | None) -> str | None:
    return f"{_module_name(project, path)}:application" if path else None
