"""The `stackctl` command: global options, the command groups, and the one error edge.

Every command group is a module with its own Typer: `commands` (merged at the top level) or
a named group (`backup`, `restore`, `engine`, `images`). The root callback builds the one
Application of this invocation (console, verbosity, the docker command log).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from stackctl import __version__
from stackctl.cli import backup, certs, ci, deploy, generate, infra, stack
from stackctl.cli.common import Application, show_problems
from stackctl.console import Console
from stackctl.errors import CommandExited, ConfigError, StackctlError, StackUnhealthy

app = typer.Typer(
    name="stackctl",
    help="Generate and manage a production Docker Compose stack for a Django ASGI app.",
    no_args_is_help=True,
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
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Show each docker command run (-vv: and more).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and data.")] = False,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            envvar="DOCKER_HOST",
            metavar="ssh://USER@HOST[:PORT]",
            help="The Docker engine to use, over SSH (default: DOCKER_HOST, else the local one).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Generate and manage a production Docker Compose stack for a Django ASGI app."""
    out = Console(verbosity=-1 if quiet else verbose)
    if verbose and not ctx.resilient_parsing:  # not while completing a word in the shell
        from stackctl.adapters.docker import log_commands

        log_commands(out.debug, verbosity=verbose)
    if host:
        from stackctl.adapters.remote import check_host

        host = check_host(host)
    ctx.obj = Application(out, host=host or None)


app.add_typer(generate.commands)
app.add_typer(stack.commands)
app.add_typer(deploy.commands)
app.add_typer(backup.backup_app, name="backup")
app.add_typer(backup.restore_app, name="restore")
app.add_typer(infra.engine_app, name="engine")
app.add_typer(infra.images_app, name="images")
app.add_typer(certs.certs_app, name="certs")
app.add_typer(ci.ci_app, name="ci")


def _report(out: Console, exc: StackctlError) -> None:
    if isinstance(exc, CommandExited):
        if exc.message:  # docker's own code (126, 137): what it means
            out.error(exc.message)
        return  # otherwise the command's own output said why
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


def hoist_host(args: list[str]) -> list[str]:
    """`stackctl deploy --host ssh://…` means `stackctl --host ssh://… deploy`: --host is the
    app's option, so it is moved in front of the command. Not after `manage` (its arguments
    are manage.py's) or after `--`."""
    command_at = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if command_at is None:
        return args
    head, rest = args[: command_at + 1], args[command_at + 1 :]
    if args[command_at] == "manage":
        return args
    moved: list[str] = []
    kept: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            kept.extend(rest[i:])
            break
        if arg == "--host" and i + 1 < len(rest):
            moved += rest[i : i + 2]
            i += 2
            continue
        if arg.startswith("--host="):
            moved.append(arg)
        else:
            kept.append(arg)
        i += 1
    return [*moved, *head, *kept] if moved else args


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map every stackctl error to its exit code."""
    args = hoist_host(sys.argv[1:] if argv is None else argv)
    out = Console()
    debug = os.environ.get("STACKCTL_DEBUG") == "1"
    try:
        # standalone mode: typer itself turns usage errors into exit 2 and typer.Exit into its code
        app(args=args, prog_name="stackctl")
    except StackctlError as exc:
        if debug:
            import traceback

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
