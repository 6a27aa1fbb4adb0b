"""ci github: write the project's CI workflow (tests and ruff, then deploy over SSH)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stackctl.cli.common import DryRunFlag, JsonFlag, ProjectDir, application

ci_app = typer.Typer(help="Generate a CI workflow that tests the project, then deploys it over SSH.")


@ci_app.command("github")
def github(
    ctx: typer.Context,
    directory: ProjectDir = None,
    branch: Annotated[str, typer.Option("--branch", help="The branch whose pushes deploy.")] = "main",
    env: Annotated[str, typer.Option("--env", help="The environment deployed: prod, or a named one.")] = "prod",
    stackctl_spec: Annotated[
        str | None,
        typer.Option("--stackctl", metavar="SPEC", help="What the runner pip-installs (default: this version)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a different existing workflow.")] = False,
    dry_run: DryRunFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Write .github/workflows/deploy.yml: on push to the branch, run the project's tests and
    ruff, then `stackctl deploy` to the host, key and known_hosts in the repository's secrets."""
    from stackctl.core.ciworkflow import WORKFLOW_PATH, plan_workflow, write_workflow

    out = application(ctx).console
    root = (directory or Path.cwd()).resolve()
    workflow = plan_workflow(root, branch=branch, env=env, stackctl_spec=stackctl_spec)
    if dry_run:
        if json_out:
            out.json({"path": WORKFLOW_PATH, "action": workflow.action, "content": workflow.text})
        else:
            out.data(workflow.text.rstrip("\n"))
            out.info(f"{workflow.action}: {WORKFLOW_PATH} (dry run: nothing written)")
        return
    written = write_workflow(workflow, force=force)
    if json_out:
        out.json({"path": WORKFLOW_PATH, "action": written.action})
        return
    out.success(f"{written.action}: {WORKFLOW_PATH}")
    out.info(f"dependencies: {written.dependencies}; tests: {written.tests}")
    out.info(
        "add the secrets it names (DEPLOY_HOST, DEPLOY_USER, DEPLOY_SSH_KEY, DEPLOY_KNOWN_HOSTS, and the env file)"
    )
