"""Which of the names stackctl once set for every web process a project's settings require.

Earlier stackctl versions put SECRET_KEY, DEBUG, ALLOWED_HOSTS and DATABASE_URL into every
process of the web image. It no longer adds any name the env file does not set, so `init`
writes those of them the settings read without a default (`os.environ["DEBUG"]`,
`env.db("DATABASE_URL")`, decouple's `config("SECRET_KEY")`) into the env files: the user
sees them there, and the settings import as they would under the project's own environment.

Pure: parses the settings module's folder (its siblings are imported by split settings), never
imports the user's code. A read whose value is `int(...)`ed is reported as such, so that DEBUG
is written as 0/1 rather than False/True.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# The names stackctl_env used to set, which `init` now writes when a project needs them.
FORMER_ALIASES = ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL")
# Readers (django-environ, environs, python-decouple) whose second positional is the default.
_READERS = frozenset({"env", "config", "str", "bool", "int", "list", "db", "db_url", "json", "url", "path"})
# django-environ's env.db() / env.db_url() read DATABASE_URL when no name is given.
_DB_READERS = frozenset({"db", "db_url"})


@dataclass(frozen=True)
class RequiredRead:
    name: str
    as_int: bool  # int(os.environ["DEBUG"]): 0/1, not False/True


def settings_files(project_dir: Path, module: str) -> list[Path]:
    """The settings module's file and the other modules of its folder."""
    base = project_dir.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return sorted(candidate.parent.glob("*.py"))
    return []


def required_reads(files: list[Path], names: tuple[str, ...] = FORMER_ALIASES) -> dict[str, RequiredRead]:
    """Each of `names` that one of `files` reads at import with no default."""
    found: dict[str, RequiredRead] = {}
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            name = _required_name(node)
            if name in names and name not in found:
                found[name] = RequiredRead(name, _inside_int(node, parents))
    return found


def _required_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Subscript) and _is_environ(node.value) and not isinstance(node.ctx, ast.Store):
        return _string(node.slice)
    if not isinstance(node, ast.Call) or any(k.arg == "default" for k in node.keywords):
        return None
    func = node.func
    reader = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if reader not in _READERS or (isinstance(func, ast.Attribute) and _is_environ(func.value)):
        return None  # os.environ.get(...) and the like return None rather than fail
    if not node.args:
        return "DATABASE_URL" if reader in _DB_READERS else None
    return _string(node.args[0]) if len(node.args) == 1 else None


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _inside_int(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    parent = parents.get(id(node))
    return isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "int"
