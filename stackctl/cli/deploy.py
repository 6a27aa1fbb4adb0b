"""deploy, releases, rollback: zero-downtime releases of the running stack."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stackctl.cli.common import EnvOption, JsonFlag, ProdFlag, ProjectDir, YesFlag, application

if TYPE_CHECKING:
    from stackctl.console import Console
    from stackctl.core.deploy import DeployResult
    from stackctl.core.releases import Release

commands = typer.Typer()

DrainOption = Annotated[
    float, typer.Option("--drain", help="Seconds the old release may take to finish its requests and websockets.")
]
HealthOption = Annotated[float, typer.Option("--health-timeout", help="Seconds the new release has to be healthy.")]
LockOption = Annotated[
    float, typer.Option("--lock-timeout", help="Seconds to wait for another deploy of this stack to finish.")
]


def release_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for `rollback`: the recorded release ids, newest first. Completion must
    never fail: when the releases cannot be read it offers nothing."""
    from stackctl.core.releases import list_releases

    try:
        app = application(ctx)
        app.console.verbosity = -1
        directory = ctx.params.get("project_dir")
        environment = app.environment(bool(ctx.params.get("prod")), ctx.params.get("env"))
        stack = app.stack(Path(directory) if directory else None, environment)
        known = list_releases(stack.client, stack.name)
    except Exception:  # completion runs inside the user's shell: say nothing
        return []
    return [r.id for r in known if r.id.startswith(incomplete)]


def _result_json(result: DeployResult) -> dict[str, Any]:
    return {
        "release": result.release.to_json(),
        "previous": result.previous,
        "seconds": round(result.seconds, 2),
        "switch_seconds": round(result.switch_seconds, 2),
        "drain_seconds": round(result.drain_seconds, 2),
        "downtime": result.downtime,
        "migrations": result.plan.to_json() if result.plan else None,
        "pruned": result.pruned,
        "migrated_back": result.migrated_back,
        "restored": result.restored,
    }


def _show(out: Console, verb: str, result: DeployResult) -> None:
    release = result.release
    behind = " behind the maintenance page" if result.downtime else ""
    out.success(
        f"{verb} {release.id}{behind}: switched {result.switch_seconds:.1f}s after the start, "
        f"old release drained in {result.drain_seconds:.1f}s, {result.seconds:.1f}s in all"
    )
    if release.migrations:
        out.info(f"migrations applied: {', '.join(release.migrations)}")
    if release.backup:
        out.info(f"backup taken first: {release.backup}")


@commands.command()
def deploy(
    ctx: typer.Context,
    prod: ProdFlag = False,
    env: EnvOption = None,
    ref: Annotated[
        str | None, typer.Option("--ref", metavar="GIT_REF", help="Build this commit (a clean git archive export).")
    ] = None,
    allow_downtime: Annotated[
        bool, typer.Option("--allow-downtime", help="Run breaking migrations behind the maintenance page.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Migrations stackctl cannot classify refuse the zero-downtime path too.")
    ] = False,
    drain: DrainOption = 30.0,
    health_timeout: HealthOption = 60.0,
    lock_timeout: LockOption = 300.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what the deploy would change (as `stackctl plan`); switch nothing.")
    ] = False,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Build a release, check it against the live database, and switch to it without downtime."""
    from stackctl.core.deploy import DeployOptions
    from stackctl.core.deploy import deploy as run_deploy

    if dry_run:
        _plan(ctx, prod, env, ref, strict, project_dir, json_out)
        return
    app = application(ctx)
    out = app.console
    stack = app.stack(project_dir, app.environment(prod, env), warn=True)
    out.info(f"deploying {stack.name} ({stack.env.name})")
    options = DeployOptions(
        ref=ref,
        allow_downtime=allow_downtime,
        strict=strict,
        drain_seconds=drain,
        health_timeout=health_timeout,
        lock_timeout=lock_timeout,
    )
    result = run_deploy(stack, options, report=out.progress_line)
    if json_out:
        out.json(_result_json(result))
        return
    _show(out, "deployed", result)


@commands.command()
def plan(
    ctx: typer.Context,
    prod: ProdFlag = False,
    env: EnvOption = None,
    ref: Annotated[
        str | None, typer.Option("--ref", metavar="GIT_REF", help="Plan this commit (a clean git archive export).")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Count migrations to review as refusing too.")] = False,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """The handoff notes of the next deploy: packages, pending migrations and their class,
    variables missing from the env file, services recreated. Builds the release, changes nothing."""
    _plan(ctx, prod, env, ref, strict, project_dir, json_out)


def _plan(
    ctx: typer.Context, prod: bool, env: str | None, ref: str | None, strict: bool, project_dir: Any, json_out: bool
) -> None:
    from stackctl.core.deploy import DeployOptions
    from stackctl.core.deploy import plan as run_plan

    app = application(ctx)
    out = app.console
    stack = app.stack(project_dir, app.environment(prod, env))
    out.info(f"planning a deploy of {stack.name} ({stack.env.name}): nothing that serves changes")
    handoff = run_plan(stack, DeployOptions(ref=ref, strict=strict), report=out.progress_line)
    if json_out:
        out.json({"project": stack.name, **handoff.to_json()})
        return
    out.data(handoff.render_text().rstrip("\n"))


def _release_row(release: Release, serving: str | None) -> tuple[str, ...]:
    return (
        release.id + (" *" if release.id == serving else ""),
        release.created,
        (release.ref or "working tree")[:12],
        str(len(release.migrations)),
        release.backup or "-",
    )


@commands.command()
def releases(
    ctx: typer.Context,
    prod: ProdFlag = False,
    env: EnvOption = None,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """List the recorded releases, newest first (* marks the one serving)."""
    from stackctl.core.deploy import serving, serving_release
    from stackctl.core.releases import image_present, list_releases

    app = application(ctx)
    stack = app.stack(project_dir, app.environment(prod, env))
    known = list_releases(stack.client, stack.name)
    running = [c for c in serving(stack)] if stack.status().running("web") else []
    current = serving_release(known, running, stack) if running else None
    if json_out:
        app.console.json(
            {
                "project": stack.name,
                "serving": current,
                "releases": [{**r.to_json(), "image_present": image_present(stack.client, r.image)} for r in known],
            }
        )
        return
    if not known:
        app.console.info(f"no release of {stack.name} is recorded yet: `stackctl deploy` records one")
        return
    app.console.table(
        ("release", "created", "ref", "migrations", "backup"),
        [_release_row(r, current) for r in known],
        title=f"{stack.name} releases",
    )


@commands.command()
def rollback(
    ctx: typer.Context,
    release: Annotated[
        str | None,
        typer.Argument(help="The release to go back to (default: the previous one).", autocompletion=release_ids),
    ] = None,
    prod: ProdFlag = False,
    env: EnvOption = None,
    migrate_back: Annotated[
        bool, typer.Option("--migrate-back", help="When the database is ahead: reverse its newer migrations.")
    ] = False,
    restore_backup: Annotated[
        bool,
        typer.Option("--restore-backup", help="When the database is ahead: restore the backup of the later release."),
    ] = False,
    yes: YesFlag = False,
    drain: DrainOption = 30.0,
    health_timeout: HealthOption = 60.0,
    lock_timeout: LockOption = 300.0,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Switch back to an earlier release with the same zero-downtime switch."""
    from stackctl.core.deploy import RollbackOptions
    from stackctl.core.deploy import rollback as run_rollback
    from stackctl.errors import StackctlError

    if migrate_back and restore_backup:
        raise StackctlError("--migrate-back and --restore-backup are two ways back: choose one")
    app = application(ctx)
    out = app.console
    stack = app.stack(project_dir, app.environment(prod, env))
    options = RollbackOptions(
        migrate_back=migrate_back,
        restore_backup=restore_backup,
        drain_seconds=drain,
        health_timeout=health_timeout,
        lock_timeout=lock_timeout,
    )
    result = run_rollback(stack, release, options, report=out.progress_line, confirm=lambda q: app.confirm(q, yes=yes))
    if json_out:
        out.json(_result_json(result))
        return
    _show(out, "rolled back to", result)
