"""init, render, check: the generator commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stackctl.cli.common import (
    DryRunFlag,
    JsonFlag,
    ProdFlag,
    ProjectDir,
    console,
    problems_json,
    profile_of,
    project,
    show_problems,
)
from stackctl.config import load_config
from stackctl.core.images import LOCAL_IMAGE_ENV
from stackctl.core.init import run_init
from stackctl.core.plan import RenderPlan, apply_plan, plan_files
from stackctl.core.render import render_set
from stackctl.errors import ConfigError, StackctlError

ForceFlag = Annotated[bool, typer.Option("--force", help="Overwrite files that were edited by hand.")]


def _show_plan(ctx: typer.Context, plan: RenderPlan, *, json_out: bool, extra: dict[str, object] | None = None) -> None:
    out = console(ctx)
    if json_out:
        out.json({"files": plan.as_json(), "summary": plan.summary(), **(extra or {})})
        return
    for item in plan.files:
        out.data(f"{item.action.value:>10}  {item.path}")


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        ctx: typer.Context,
        directory: Annotated[str, typer.Argument(help="The Django project folder.")] = ".",
        dry_run: DryRunFlag = False,
        force: ForceFlag = False,
        local_images: Annotated[
            bool, typer.Option("--local-images", help="Use the images `stackctl images build` makes (no registry).")
        ] = False,
        json_out: JsonFlag = False,
    ) -> None:
        """Detect the Django project, write .env/.env.prod with fresh secrets, and render the stack."""
        out = console(ctx)
        result = run_init(
            project(Path(directory)).root,
            dry_run=dry_run,
            force=force,
            local_images=dict(LOCAL_IMAGE_ENV) if local_images else None,
        )
        show_problems(out, result.warnings)
        detected = result.detected
        _show_plan(ctx, result.plan, json_out=json_out, extra={"detected": detected.__dict__, "dry_run": dry_run})
        if not json_out:
            out.info(
                f"Django project: {detected.project_dir} (settings {detected.settings_module}, "
                f"ASGI {detected.asgi_application}, deps {detected.dependency_file})"
            )
            if dry_run:
                out.info("dry run: nothing was written")
            else:
                out.success(f"{len(result.written)} file(s) written; next: stackctl up")

    @app.command()
    def render(
        ctx: typer.Context,
        prod: ProdFlag = False,
        check: Annotated[
            bool, typer.Option("--check", help="Exit 1 if the files on disk drift; write nothing.")
        ] = False,
        dry_run: DryRunFlag = False,
        force: ForceFlag = False,
        project_dir: ProjectDir = None,
        json_out: JsonFlag = False,
    ) -> None:
        """Re-render the stack's files from .env (or .env.prod with --prod)."""
        out = console(ctx)
        proj = project(project_dir)
        profile = profile_of(prod)
        loaded = load_config(proj.env_file(profile), profile=profile)
        show_problems(out, loaded.warnings)
        plan = plan_files(proj.root, render_set(loaded.config))
        _show_plan(ctx, plan, json_out=json_out, extra={"profile": profile})
        if check:
            drift = plan.changes
            if drift:
                raise StackctlError(
                    f"{len(drift)} file(s) drift from {proj.env_file(profile).name}: "
                    + ", ".join(f.path for f in drift),
                    hint=f"run `stackctl render{' --prod' if prod else ''}`",
                )
            out.success("every rendered file matches the config")
            return
        if dry_run:
            out.info("dry run: nothing was written")
            return
        written = apply_plan(plan, force=force)
        out.success(f"{len(written)} file(s) written, {len(plan.files) - len(written)} identical")

    @app.command()
    def check(
        ctx: typer.Context,
        prod: ProdFlag = False,
        project_dir: ProjectDir = None,
        json_out: JsonFlag = False,
    ) -> None:
        """Validate .env (or .env.prod with --prod, applying the production policy)."""
        out = console(ctx)
        proj = project(project_dir)
        profile = profile_of(prod)
        env_file = proj.env_file(profile)
        try:
            loaded = load_config(env_file, profile=profile)
        except ConfigError as exc:
            if json_out:
                out.json({"ok": False, "file": str(env_file), "problems": problems_json(exc.problems)})
                raise typer.Exit(1) from None
            raise
        if json_out:
            out.json({"ok": True, "file": str(env_file), "problems": problems_json(loaded.warnings)})
            return
        show_problems(out, loaded.warnings)
        out.success(f"{env_file.name} is valid ({profile}), {len(loaded.warnings)} warning(s)")
