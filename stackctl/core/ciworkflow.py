"""The GitHub Actions workflow `stackctl ci github` writes: the project's tests and ruff on every
push to the main branch, then `stackctl deploy` to the server over SSH.

Pure but for reading the project: it finds how the project installs its dependencies
(stackctl.core.detect_deps, as the image does) and how it runs its tests (pytest when the
project configures it, else `manage.py test`), renders the workflow in memory, and says what
writing it would do. The template (stackctl/ci/github-deploy.yml.j2) is not part of the
stack's render set: it uses `[[ ]]` / `[% %]` delimiters, so GitHub's `${{ }}` stays as it is.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jinja2

from stackctl import __version__
from stackctl.adapters.files import read_bytes_or_none, write_atomic
from stackctl.config.profile import NAME_PATTERN, Environment
from stackctl.core.detect import detect_project
from stackctl.core.detect_deps import Dependencies, load_toml
from stackctl.core.project import Project
from stackctl.errors import ConflictError, StackctlError

TEMPLATE = Path(__file__).resolve().parent.parent / "ci" / "github-deploy.yml.j2"
WORKFLOW_PATH = ".github/workflows/deploy.yml"
PYTHONS = ("3.13", "3.12", "3.11", "3.10")  # the newest one the project allows runs its tests
# Files a requirements project keeps its test tools in, beside the production entry.
DEV_REQUIREMENTS = (
    "requirements-dev.txt",
    "requirements-test.txt",
    "dev-requirements.txt",
    "requirements/dev.txt",
    "requirements/test.txt",
    "requirements/local.txt",
)
_RUN = {"requirements": "", "pep621": "", "poetry": "poetry run ", "uv": "uv run ", "pipenv": "pipenv run "}

Action = Literal["create", "identical", "overwrite", "conflict"]


@dataclass(frozen=True)
class Workflow:
    """The rendered workflow and what writing it does."""

    path: Path
    text: str
    action: Action
    dependencies: str  # "requirements (requirements.txt)", "poetry (pyproject.toml)", ...
    tests: str  # the test command


def _python(spec_allows: object) -> str:
    allows = getattr(spec_allows, "allows", None)
    for version in PYTHONS:
        if allows is None or allows(f"{version}.0"):
            return version
    return PYTHONS[0]


def _pytest_config(folder: Path) -> bool:
    """Whether pytest is configured in `folder` (its own files, as pytest looks for them)."""
    if any((folder / name).is_file() for name in ("pytest.ini", ".pytest.ini", "conftest.py")):
        return True
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file() and "pytest" in load_toml(folder, pyproject).get("tool", {}):
        return True
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        if (folder / name).is_file():
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read(folder / name, encoding="utf-8")
            except configparser.Error:
                continue
            if parser.has_section(section):
                return True
    return False


def _requirement_files(root: Path, deps: Dependencies) -> list[str]:
    base = Path(deps.base)
    extra = [(base / name).as_posix() for name in DEV_REQUIREMENTS if (root / base / name).is_file()]
    return [deps.entry, *(name for name in extra if name != deps.entry)]


def env_file_of(project: Project, env: str) -> Path:
    return project.env_file(Environment.named(env))


def workflow_context(
    root: Path, *, branch: str = "main", env: str = "prod", stackctl_spec: str | None = None
) -> dict[str, object]:
    """What the template needs, read from the project at `root` (the repository's root)."""
    if not NAME_PATTERN.match(env) or env == "dev":
        raise StackctlError(f"--env {env!r} is not a deploy environment", hint="use prod or a name like staging")
    if not re.match(r"^[\w./-]+$", branch):
        raise StackctlError(f"--branch {branch!r} is not a branch name", hint="use e.g. main")
    project = Project.at(root)
    django = detect_project(project.source)
    deps = django.dependencies
    run = _RUN[deps.kind]
    test_dir = django.project_dir
    if _pytest_config(project.source):
        tests, test_dir = f"{run}python -m pytest" if run else "python -m pytest", "."
    elif _pytest_config(project.source / django.project_dir):
        tests = f"{run}python -m pytest" if run else "python -m pytest"
    else:
        tests = f"{run}python manage.py test"
    install_files = _requirement_files(project.source, deps) if deps.kind == "requirements" else []
    env_path = env_file_of(project, env).relative_to(project.source).as_posix()
    return {
        "source": str(project.source),
        "version": __version__,
        "branch": branch,
        "env_name": env,
        "env_flag": Environment.named(env).flag,
        "env_file": Path(env_path).name,
        "env_path": env_path,
        "env_secret": "STACKCTL_ENV_" + env.upper().replace("-", "_"),
        "kind": deps.kind,
        "entry": deps.entry,
        "install_files": install_files,
        "python": _python(django.python),
        "ruff": "uvx ruff check ." if deps.kind == "uv" else "pipx run ruff check .",
        "tests": tests,
        "project_dir": test_dir,
        "stackctl_spec": stackctl_spec or f"stackctl=={__version__}",
    }


def render_workflow(context: dict[str, object]) -> str:
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
    )
    return environment.from_string(TEMPLATE.read_text(encoding="utf-8")).render(**context)


def plan_workflow(root: Path, *, branch: str = "main", env: str = "prod", stackctl_spec: str | None = None) -> Workflow:
    """Render the workflow in memory and compare it with what is on disk."""
    context = workflow_context(root, branch=branch, env=env, stackctl_spec=stackctl_spec)
    text = render_workflow(context)
    path = Path(str(context["source"])) / WORKFLOW_PATH
    current = read_bytes_or_none(path)
    action: Action = "create" if current is None else "identical" if current == text.encode() else "conflict"
    return Workflow(path, text, action, f"{context['kind']} ({context['entry']})", str(context["tests"]))


def write_workflow(workflow: Workflow, *, force: bool = False) -> Workflow:
    """Write it unless it is identical; a different existing file needs `force`."""
    if workflow.action == "identical":
        return workflow
    if workflow.action == "conflict" and not force:
        raise ConflictError(
            f"{WORKFLOW_PATH} exists and differs from the workflow stackctl would write",
            hint="review it (`stackctl ci github --dry-run` prints the new one), then pass --force to overwrite",
        )
    write_atomic(workflow.path, workflow.text.encode())
    action: Action = "overwrite" if workflow.action == "conflict" else "create"
    return Workflow(workflow.path, workflow.text, action, workflow.dependencies, workflow.tests)
