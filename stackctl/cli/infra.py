"""engine ensure|stop|status and images build: make a bare Debian host able to run the stack."""

from __future__ import annotations

from typing import Annotated

import typer

from stackctl.cli.common import Application, JsonFlag, application
from stackctl.errors import EngineError, StackctlError

engine_app = typer.Typer(help="Install and start a Docker engine on this host, or stop the one stackctl started.")
images_app = typer.Typer(help="Build the stack's images from Debian packages (no registry needed).")


def _here_only(app: Application, command: str) -> Application:
    """engine ensure/stop and images build act on this machine: refuse a remote --host."""
    if app.host and app.host.startswith("ssh://"):
        raise StackctlError(
            f"`stackctl {command}` works on this machine only, not on --host {app.host}",
            hint=f"run `stackctl {command}` on that host itself (over ssh)",
        )
    return app


@engine_app.command("ensure")
def engine_ensure(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Make a Docker engine and Compose v2 answer; change nothing if they already do."""
    from stackctl.core.engine import ensure_engine

    out = _here_only(application(ctx), "engine ensure").console
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
    from stackctl.core.engine import stop_engine

    out = _here_only(application(ctx), "engine stop").console
    report = stop_engine(report=out.progress_line)
    out.success("; ".join(report.steps) or "nothing to stop")


@engine_app.command("status")
def engine_status(ctx: typer.Context) -> None:
    """Exit 0 if a Docker engine answers (the one of --host / DOCKER_HOST, else the local one)."""
    from stackctl.adapters.docker import engine_answers, engine_client, require_engine

    app = application(ctx)
    if app.host:  # another engine: what is wrong with it, and the fix
        require_engine(engine_client(app.host))
    elif not engine_answers():
        raise EngineError("no Docker engine answers", hint="run `stackctl engine ensure`")
    app.console.success(f"engine at {app.host} answers" if app.host else "engine answers")


@images_app.command("build")
def images_build(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild images that already exist.")] = False,
    suite: Annotated[
        str, typer.Option("--suite", help="The Debian release: trixie (Python 3.13, PostgreSQL 17) or bookworm.")
    ] = "trixie",
    json_out: JsonFlag = False,
) -> None:
    """Build the base, python, postgres, redis and nginx images from Debian packages."""
    from stackctl.core.images import build_images, local_image_env

    out = _here_only(application(ctx), "images build").console
    results = build_images(rebuild=rebuild, report=out.progress_line, suite=suite)
    env = local_image_env(suite)
    if json_out:
        out.json({"images": [r.__dict__ for r in results], "env": env})
        return
    for r in results:
        out.data(f"{r.status:>8}  {', '.join(r.tags)}  {r.size_bytes / 1e6:.0f} MB  {r.seconds:.1f}s")
    out.info("select them in your env file (stackctl init --local-images does it for you):")
    for key, value in env.items():
        out.data(f"{key}={value}")
