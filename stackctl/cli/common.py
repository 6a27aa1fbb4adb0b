"""What every command shares: the Application (resolved once per invocation), the options,
confirmation, and how configuration problems are shown.

Nothing heavy is imported here at module level: `stackctl --help` and `--version` load only
typer and this package's command modules; the core (pydantic, python-on-whales, jinja2) is
imported by the commands that use it, when they run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stackctl.console import Console
from stackctl.errors import Aborted, ConfigProblem

if TYPE_CHECKING:
    from stackctl.config import LoadedConfig
    from stackctl.config.profile import Environment
    from stackctl.core.project import Project
    from stackctl.core.stack import Stack, StackView

ProjectDir = Annotated[
    Path | None, typer.Option("--project-dir", "-C", help="The project folder (default: current folder).")
]
ProdFlag = Annotated[bool, typer.Option("--prod", help="The prod stack (.env.prod + docker-compose.prod.yml).")]
EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        metavar="NAME",
        help="A named environment: .env.NAME + docker-compose.NAME.yml (`stackctl init --env NAME` makes one); "
        "--env prod is --prod, --env dev the default.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
YesFlag = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunFlag = Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")]


class Application:
    """One per invocation: the console, and the project, configs and stacks it resolves, each
    once (a command that needs the prod stack twice validates .env.prod once)."""

    def __init__(self, console: Console, *, host: str | None = None) -> None:
        self.console = console
        self.host = host  # the engine's address (--host / DOCKER_HOST); None: the local one
        self._loaded: dict[tuple[Path, str], LoadedConfig] = {}

    def environment(self, prod: bool, name: str | None, *, default: str = "dev") -> Environment:
        """The environment that --prod / --env NAME select (neither: `default`). --env prod is
        --prod; --prod with another --env is an error."""
        from stackctl.config.profile import Environment

        if prod and name not in (None, "prod"):
            raise typer.BadParameter(f"--prod selects prod: give --prod or --env {name}, not both")
        return Environment.named("prod" if prod else name or default)

    def project(self, directory: Path | None) -> Project:
        from stackctl.core.project import Project

        return Project.at(directory)

    def config(self, directory: Path | None, env: Environment, *, warn: bool = False) -> LoadedConfig:
        """The validated config of one environment. Its warnings are shown (once) only by the
        commands that apply the env file, with `warn`: `render`, `up` and `deploy` (`init` and
        `check` show their own). The commands that look at or work on a stack already started
        (status, logs, manage, down, backup, restore, releases, rollback, certs) do not repeat them:
        they were shown when the stack was started, and `stackctl check` shows them any time."""
        from stackctl.config import load_config
        from stackctl.core.identity import remember_identity
        from stackctl.core.stack import StackIdentity

        project = self.project(directory)
        key = (project.root, env.name)
        if key not in self._loaded:
            self._loaded[key] = load_config(project.env_file(env), profile=env.profile, env_name=env.name)
            if warn:
                show_problems(self.console, self._loaded[key].warnings)
            remember_identity(project, env, StackIdentity.of(self._loaded[key].config))
        return self._loaded[key]

    def stack(self, directory: Path | None, env: Environment, *, warn: bool = False) -> Stack:
        from stackctl.core.stack import Stack

        config = self.config(directory, env, warn=warn).config
        return Stack(self.project(directory), env, config=config, host=self.host)

    def view(self, directory: Path | None, env: Environment) -> StackView:
        """The running stack, for commands that only look at it (status): from the identity
        cached for this exact env file when there is one, else by validating the config."""
        from stackctl.core.identity import cached_identity
        from stackctl.core.stack import StackView

        project = self.project(directory)
        identity = cached_identity(project, env)
        if identity is None:
            return self.stack(directory, env)
        self.console.debug(f"{project.env_file(env).name} is unchanged since it was validated: cached identity")
        return StackView(project, env, identity, host=self.host)

    def confirm(self, question: str, *, yes: bool, flag: str = "--yes") -> None:
        """Ask before destroying data. Without a terminal and without --yes, refuse."""
        if yes:
            return
        if not self.console.interactive:
            raise Aborted(
                f"refusing: {question.rstrip('?')} needs confirmation and no terminal can answer", hint=f"pass {flag}"
            )
        if not self.console.confirm(question):
            raise Aborted("aborted: nothing was changed")


def application(ctx: typer.Context) -> Application:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Application) else Application(Console())


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


def size(n: int) -> str:
    """Bytes for people: 865 B, 1.2 MB."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"
