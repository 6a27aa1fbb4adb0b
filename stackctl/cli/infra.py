"""engine ensure|stop|status and images build: make a bare Debian host able to run the stack."""

from __future__ import annotations

from typing import Annotated

import typer

from stackctl.adapters.docker import engine_answers
from stackctl.cli.common import JsonFlag, console
from stackctl.core.engine import ensure_engine, stop_engine
from stackctl.core.images import LOCAL_IMAGE_ENV, build_images
from stackctl.errors import EngineError

engine_app = typer.Typer(help="Install and start a Docker engine on this host, or stop the one stackctl started.")
images_app = typer.Typer(help="Build the stack's images from Debian packages (no registry needed).")


@engine_app.command("ensure")
def engine_ensure(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Make a Docker engine and Compose v2 answer; change nothing if they already do."""
    out = console(ctx)
    report = ensure_engine(report=out.progress_line)
    if json_out:
        out.json({**report.__dict__, "log_file": str(report.log_file) if report.log_file else None})
        return
    if report.changed:
        where = f" (dockerd pid {report.pid}, log {report.log_file})" if report.pid else ""
        out.success(f"engine ready after {len(report.steps)} step(s){where}")
    else:
        out.success("engine already running; nothing changed")


@engine_app.command("stop")
def engine_stop(ctx: typer.Context) -> None:
    """Stop the engine, only if stackctl started it."""
    out = console(ctx)
    report = stop_engine(report=out.progress_line)
    out.success("; ".join(report.steps) or "nothing to stop")


@engine_app.command("status")
def engine_status(ctx: typer.Context) -> None:
    """Exit 0 if a Docker engine answers."""
    if not engine_answers():
        raise EngineError("no Docker engine answers", hint="run `stackctl engine ensure`")
    console(ctx).success("engine answers")


@images_app.command("build")
def images_build(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild images that already exist.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Build the base, python, postgres, redis and nginx images from Debian packages."""
    out = console(ctx)
    results = build_images(rebuild=rebuild, report=out.progress_line)
    if json_out:
        out.json({"images": [r.__dict__ for r in results], "env": LOCAL_IMAGE_ENV})
        return
    for r in results:
        out.data(f"{r.status:>8}  {', '.join(r.tags)}  {r.size_bytes / 1e6:.0f} MB  {r.seconds:.1f}s")
    out.info("select them in your env file (stackctl init --local-images does it for you):")
    for key, value in LOCAL_IMAGE_ENV.items():
        out.data(f"{key}={value}")
