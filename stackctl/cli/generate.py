"""init, render, check: the generator commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stackctl.cli.common import (
    DryRunFlag,
    EnvOption,
    JsonFlag,
    ProdFlag,
    ProjectDir,
    application,
    problems_json,
    show_problems,
)
from stackctl.errors import ConfigError, StackctlError

if TYPE_CHECKING:
    from stackctl.console import Console
    from stackctl.core.init import InitResult
    from stackctl.core.layout import ImageChoice
    from stackctl.core.plan import RenderPlan

commands = typer.Typer()

ForceFlag = Annotated[bool, typer.Option("--force", help="Overwrite files that were edited by hand.")]


def _show_plan(out: Console, plan: RenderPlan, *, json_out: bool, extra: dict[str, object] | None = None) -> None:
    if json_out:
        out.json({"files": plan.as_json(), "summary": plan.summary(), **(extra or {})})
        return
    for item in plan.files:
        out.data(f"{item.action.value:>10}  {item.path}")


@commands.command()
def init(
    ctx: typer.Context,
    directory: Annotated[str, typer.Argument(help="The Django project folder.")] = ".",
    dry_run: DryRunFlag = False,
    force: ForceFlag = False,
    local_images: Annotated[
        bool,
        typer.Option(
            "--local-images", help="Use the images `stackctl images build` makes (default when no registry answers)."
        ),
    ] = False,
    official_images: Annotated[
        bool, typer.Option("--official-images", help="Use the official images from a registry.")
    ] = False,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            metavar="X.Y",
            help="The Python of the web image, chosen explicitly (within requires-python, Poetry's or "
            "Pipenv's python and the Pythons the locked Django supports); default: the nearest to "
            "runtime.txt or .python-version.",
        ),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            metavar="NAME",
            help="In an initialised project: make the named environment NAME (.env.NAME from .env.prod, "
            "fresh secrets, its own ports) and render its files.",
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Detect the Django project, write .env/.env.prod with fresh secrets, and render the stack.

    On a project that has them already, --local-images and --official-images rewrite only the
    image lines of .env and .env.prod; --env NAME adds a named environment beside them."""
    from dataclasses import asdict

    from stackctl.core.init import run_init

    if local_images and official_images:
        raise typer.BadParameter("give --local-images or --official-images, not both")
    app = application(ctx)
    out = app.console
    if env is not None:
        if local_images or official_images or python:
            raise typer.BadParameter(
                "--env NAME takes the images of .env.prod: no --local-images/--official-images/--python"
            )
        _init_env(out, Path(directory).resolve(), env, dry_run=dry_run, force=force, json_out=json_out)
        return
    choice: ImageChoice = "local" if local_images else "official" if official_images else "auto"
    result = run_init(Path(directory).resolve(), dry_run=dry_run, force=force, images=choice, python=python)
    show_problems(out, result.warnings)
    extra = {
        "detected": asdict(result.detected),
        "dry_run": dry_run,
        "stack_dir": result.stack_dir,
        "in_the_way": result.in_the_way,
        "images": asdict(result.images),
        "overlay": [asdict(o) for o in result.overlay],
        "added_packages": [p.requirement for p in result.added_packages],
        "asgi_fallback": result.asgi_fallback,
    }
    _show_plan(out, result.plan, json_out=json_out, extra=extra)
    if json_out:
        return
    _explain(out, result)
    if dry_run:
        out.info("dry run: nothing was written")
    else:
        out.success(f"{len(result.written)} file(s) written; next: stackctl up")


def _init_env(out: Console, root: Path, name: str, *, dry_run: bool, force: bool, json_out: bool) -> None:
    from stackctl.core.envinit import run_init_env

    result = run_init_env(root, name, dry_run=dry_run, force=force)
    show_problems(out, result.warnings)
    extra = {
        "env": result.env.name,
        "env_file": result.env_file,
        "compose_project": result.compose_project,
        "ports": result.ports,
        "hosts": result.hosts,
        "dry_run": dry_run,
    }
    _show_plan(out, result.plan, json_out=json_out, extra=extra)
    if json_out:
        return
    ports = ", ".join(f"{k}={v}" for k, v in result.ports.items())
    out.info(f"{result.env_file}: compose project {result.compose_project}, {ports}, fresh secrets")
    for variable, value in result.hosts.items():
        out.info(f"  {variable}={value}")
    if dry_run:
        out.info("dry run: nothing was written")
    else:
        out.success(f"{len(result.written)} file(s) written; next: {result.env.command('up')}")


def _explain(out: Console, result: InitResult) -> None:
    d = result.detected
    out.info(
        f"Django project: {d.project_dir} (settings: prod {d.settings.prod}, dev {d.settings.dev}, "
        f"from {d.settings.source}; dependencies: {d.dependencies.kind}, {d.dependencies.entry})"
    )
    if d.settings.prod_guessed:
        out.warning(
            f"prod runs {d.settings.prod}, a guess: {d.settings.prod_reason}; "
            "to run another, set DJANGO_SETTINGS_MODULE in .env.prod"
        )
    if result.stack_dir != ".":
        out.info(
            f"the project has its own {', '.join(result.in_the_way)}: the stack is in {result.stack_dir}/ "
            "and those files are left as they are; every stackctl command finds it there"
        )
    images = result.images
    out.info(
        f"images: {images.mode} ({images.reason}); Python image {images.env['PYTHON_IMAGE']}"
        + (f" for {images.python_source}" if images.python_source else "")
    )
    if images.python_why:
        out.info(f"  {images.python_why}")
    if images.build_commands:
        commands = " and ".join(f"`{command}`" for command in images.build_commands)
        out.info(f"  `stackctl up` builds any that are missing (no registry needed); ahead of it: {commands}")
    if result.asgi_fallback:
        out.info("no asgi.py in the project: the stack serves Django's own ASGI handler for the settings module")
    for package in result.added_packages:
        out.info(f"the image adds {package.requirement} ({package.why}); list your own to pin another version")
    if result.overlay:
        out.info("the settings overlay sets, from the env files (DJANGO_SETTINGS_OVERLAY=false turns it off):")
        for item in result.overlay:
            note = f" ({item.note})" if item.note else ""
            out.info(f"  {item.setting} <- {item.variables}{note}")


@commands.command()
def render(
    ctx: typer.Context,
    prod: ProdFlag = False,
    env: EnvOption = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the files on disk drift; write nothing.")] = False,
    dry_run: DryRunFlag = False,
    force: ForceFlag = False,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Re-render the stack's files from .env (or .env.prod with --prod, .env.NAME with --env NAME)."""
    from stackctl.core.plan import apply_plan, plan_files
    from stackctl.core.render import render_set

    app = application(ctx)
    out = app.console
    environment = app.environment(prod, env)
    loaded = app.config(project_dir, environment, warn=True)
    root = app.project(project_dir).root
    plan = plan_files(root, render_set(loaded.config))
    _show_plan(out, plan, json_out=json_out, extra={"profile": environment.profile, "env": environment.name})
    if check:
        drift = plan.changes
        if drift:
            raise StackctlError(
                f"{len(drift)} file(s) drift from {loaded.env_file.name}: " + ", ".join(f.path for f in drift),
                hint=f"run `{environment.command('render')}`",
            )
        out.success("every rendered file matches the config")
        return
    if dry_run:
        out.info("dry run: nothing was written")
        return
    written = apply_plan(plan, force=force)
    out.success(f"{len(written)} file(s) written, {len(plan.files) - len(written)} identical")


@commands.command()
def check(
    ctx: typer.Context,
    prod: ProdFlag = False,
    env: EnvOption = None,
    runtime: Annotated[
        bool,
        typer.Option(
            "--runtime", help="Also ask the running web container for the settings really in effect (needs it up)."
        ),
    ] = False,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Validate .env (or .env.prod with --prod, .env.NAME with --env NAME, applying the production policy); with
    --runtime, verify the settings in effect in the running web container too."""
    from stackctl.config import load_config

    app = application(ctx)
    out = app.console
    environment = app.environment(prod, env)
    env_file = app.project(project_dir).env_file(environment)
    try:
        loaded = load_config(env_file, profile=environment.profile, env_name=environment.name)
    except ConfigError as exc:
        if json_out:
            out.json({"ok": False, "file": str(env_file), "problems": problems_json(exc.problems)})
            raise typer.Exit(1) from None
        raise
    report = None
    if runtime:
        from stackctl.cli.stack import settings_json, show_settings
        from stackctl.core.stack import Stack
        from stackctl.core.verify import verify_settings

        report = verify_settings(Stack(app.project(project_dir), environment, config=loaded.config))
    if json_out:
        payload: dict[str, object] = {"ok": True, "file": str(env_file), "problems": problems_json(loaded.warnings)}
        payload["app_variables"] = [
            {"name": v.name, "secret": v.secret, "value": None if v.secret else v.value.get_secret_value()}
            for v in loaded.config.app_variables
        ]
        if report:
            payload["settings"] = settings_json(report)
        out.json(payload)
        return
    show_problems(out, loaded.warnings)
    if loaded.config.app_variables:
        out.info(f"passed to the app: {', '.join(v.shown for v in loaded.config.app_variables)}")
    out.success(f"{env_file.name} is valid ({environment.name}), {len(loaded.warnings)} warning(s)")
    if report:
        show_settings(out, report)
