"""The `stackctl` command: global options, command groups, and the one error edge."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from stackctl import __version__
from stackctl.cli import backup, generate, infra, stack
from stackctl.cli.common import show_problems
from stackctl.console import Console
from stackctl.errors import ConfigError, StackctlError, StackUnhealthy

app = typer.Typer(
    name="stackctl",
    help="Generate and manage a production Docker Compose stack for a Django ASGI app.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stackctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More output.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and data.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Generate and manage a production Docker Compose stack for a Django ASGI app."""
    ctx.obj = Console(verbosity=-1 if quiet else verbose)


generate.register(app)
stack.register(app)
app.add_typer(backup.backup_app, name="backup")
app.add_typer(backup.restore_app, name="restore")
app.add_typer(infra.engine_app, name="engine")
app.add_typer(infra.images_app, name="images")


def _report(out: Console, exc: StackctlError) -> None:
    if isinstance(exc, ConfigError):
        show_problems(out, exc.problems)
        errors = sum(1 for p in exc.problems if p.severity == "error")
        out.error(f"{errors} configuration error(s); nothing was written or started")
        return
    if isinstance(exc, StackUnhealthy):
        for service, text in exc.logs.items():
            out.info(f"--- last log lines of {service} ---")
            out.info(text.rstrip())
    out.error(exc.message)
    if exc.hint:
        out.info(f"hint: {exc.hint}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map every stackctl error to its exit code."""
    out = Console()
    debug = os.environ.get("STACKCTL_DEBUG") == "1"
    try:
        # standalone mode: typer itself turns usage errors into exit 2 and typer.Exit into its code
        app(args=argv, prog_name="stackctl")
    except StackctlError as exc:
        if debug:
            traceback.print_exc()
        _report(out, exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        out.error("interrupted")
        sys.exit(130)
    except Exception as exc:  # the last line of defence: no raw traceback unless asked
        if debug:
            raise
        out.error(f"unexpected {type(exc).__name__}: {exc}")
        out.info("hint: rerun with STACKCTL_DEBUG=1 for a traceback, and report it")
        sys.exit(70)
