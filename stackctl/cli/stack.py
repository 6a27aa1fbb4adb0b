"""up, down, status, logs, manage: the stack commands."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from stackctl.cli.common import (
    JsonFlag,
    ProdFlag,
    ProjectDir,
    YesFlag,
    confirm_destructive,
    console,
    profile_of,
    project,
    show_problems,
)
from stackctl.config import load_config
from stackctl.core.backup import backup_status
from stackctl.core.stack import Stack, StackStatus


def _stack(project_dir: object, prod: bool) -> Stack:
    proj = project(project_dir)  # type: ignore[arg-type]
    profile = profile_of(prod)
    loaded = load_config(proj.env_file(profile), profile=profile)
    return Stack(proj, profile, config=loaded.config)


def _status_json(status: StackStatus) -> dict[str, object]:
    return {
        "project": status.project,
        "profile": status.profile,
        "healthy": status.healthy,
        "urls": status.urls,
        "services": [s.__dict__ for s in status.services],
        **status.extra,
    }


def _status_table(status: StackStatus) -> Table:
    table = Table(title=f"{status.project} ({status.profile})", title_justify="left")
    for column in ("service", "state", "health", "ports"):
        table.add_column(column)
    for s in status.services:
        table.add_row(s.service, s.state, s.health or "-", ", ".join(s.ports) or "-")
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        ctx: typer.Context,
        prod: ProdFlag = False,
        timeout: Annotated[int, typer.Option(help="Seconds to wait for every service to be healthy.")] = 240,
        no_build: Annotated[bool, typer.Option("--no-build", help="Do not build images first.")] = False,
        project_dir: ProjectDir = None,
        json_out: JsonFlag = False,
    ) -> None:
        """Render if stale, build, start the stack and wait until every service is healthy."""
        out = console(ctx)
        proj = project(project_dir)
        profile = profile_of(prod)
        loaded = load_config(proj.env_file(profile), profile=profile)
        show_problems(out, loaded.warnings)
        stack = Stack(proj, profile, config=loaded.config)
        out.info(f"bringing up {stack.name} ({profile})")
        result = stack.up(report=out.progress_line, timeout=timeout, build=not no_build)
        if json_out:
            out.json({"seconds": round(result.seconds, 1), "rendered": result.rendered, **_status_json(result.status)})
            return
        out.table(_status_table(result.status))
        out.success(f"{stack.name} is healthy after {result.seconds:.0f}s")
        for url in result.status.urls:
            out.data(url)

    @app.command()
    def down(
        ctx: typer.Context,
        prod: ProdFlag = False,
        volumes: Annotated[
            bool, typer.Option("--volumes", help="Also delete the volumes: database, media, backups.")
        ] = False,
        yes: YesFlag = False,
        project_dir: ProjectDir = None,
    ) -> None:
        """Stop and remove the stack's containers (and with --volumes, its data)."""
        out = console(ctx)
        stack = _stack(project_dir, prod)
        if volumes:
            confirm_destructive(out, f"Delete every volume of {stack.name} (database, media, backups)?", yes=yes)
        stack.down(volumes=volumes)
        out.success(f"{stack.name} is down" + (" and its volumes are deleted" if volumes else ""))

    @app.command()
    def status(
        ctx: typer.Context,
        prod: ProdFlag = False,
        project_dir: ProjectDir = None,
        json_out: JsonFlag = False,
    ) -> None:
        """Services, health, published ports and URLs (and the backup schedule in prod)."""
        out = console(ctx)
        stack = _stack(project_dir, prod)
        result = stack.status()
        if stack.profile == "prod":
            result.extra.update(backup_status(stack, result))  # next scheduled backup, age of the last one
        if json_out:
            out.json(_status_json(result))
        else:
            out.table(_status_table(result))
            for url in result.urls:
                out.data(url)
            for key, value in result.extra.items():
                out.data(f"{key}: {value}")
        if not result.healthy:
            raise typer.Exit(1)

    @app.command()
    def logs(
        ctx: typer.Context,
        service: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
        tail: Annotated[int | None, typer.Option(help="Only the last N lines per service.")] = None,
        prod: ProdFlag = False,
        project_dir: ProjectDir = None,
    ) -> None:
        """Show the stack's logs."""
        stack = _stack(project_dir, prod)
        for _source, line in stack.logs(service, follow=follow, tail=tail):
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def manage(
        ctx: typer.Context,
        args: Annotated[list[str] | None, typer.Argument(help="Arguments for manage.py.")] = None,
        prod: ProdFlag = False,
        project_dir: ProjectDir = None,
    ) -> None:
        """Run manage.py in the web container (interactive when there is a terminal)."""
        stack = _stack(project_dir, prod)
        tty = sys.stdin.isatty() and sys.stdout.isatty()
        output = stack.manage(list(args or []) + list(ctx.args), tty=tty)
        if output:
            console(ctx).data(output.rstrip())
