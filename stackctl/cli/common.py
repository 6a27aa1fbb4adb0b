"""What every command shares: the console, the project folder, confirmation, config errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stackctl.console import Console
from stackctl.core.project import Profile, Project
from stackctl.errors import Aborted, ConfigError, ConfigProblem

ProjectDir = Annotated[
    Path | None, typer.Option("--project-dir", "-C", help="The project folder (default: current folder).")
]
ProdFlag = Annotated[bool, typer.Option("--prod", help="The prod stack (.env.prod + docker-compose.prod.yml).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
YesFlag = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunFlag = Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")]


def console(ctx: typer.Context) -> Console:
    obj = ctx.find_root().obj
    if isinstance(obj, Console):
        return obj
    return Console()


def project(path: Path | None) -> Project:
    return Project.at(path)


def profile_of(prod: bool) -> Profile:
    return "prod" if prod else "dev"


def confirm_destructive(out: Console, question: str, *, yes: bool, flag: str = "--yes") -> None:
    """Ask before destroying data. Without a terminal and without --yes, refuse."""
    if yes:
        return
    if not out.interactive:
        raise Aborted(
            f"refusing: {question.rstrip('?')} needs confirmation and no terminal can answer", hint=f"pass {flag}"
        )
    if not out.confirm(question):
        raise Aborted("aborted: nothing was changed")


def show_problems(out: Console, problems: list[ConfigProblem]) -> None:
    for problem in problems:
        if problem.severity == "error":
            out.error(problem.render())
        else:
            out.warning(problem.render())


def problems_json(problems: list[ConfigProblem]) -> list[dict[str, str | None]]:
    return [
        {
            "severity": p.severity,
            "file": p.file,
            "variable": p.variable,
            "group": p.group,
            "message": p.message,
            "value": p.value,
            "hint": p.hint,
        }
        for p in problems
    ]


def config_error_problems(exc: ConfigError) -> list[ConfigProblem]:
    return exc.problems
