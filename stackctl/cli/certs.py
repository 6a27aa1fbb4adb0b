"""certs status|renew: the prod stack's ACME certificate (TLS_CERT_SOURCE=acme)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stackctl.cli.backup import BackupEnv
from stackctl.cli.backup import _stack as backup_stack
from stackctl.cli.common import DryRunFlag, JsonFlag, ProjectDir, application

if TYPE_CHECKING:
    from stackctl.cli.common import Application
    from stackctl.core.stack import Stack

certs_app = typer.Typer(
    help="The ACME certificate of the prod stack (or a named one with --env NAME): its state, and renewing it now.",
    no_args_is_help=True,
)


def _stack(app: Application, project_dir: Path | None, env: str) -> Stack:
    """The prod-kind stack, as the backup commands select it (the backup service renews the
    certificate), which must use ACME certificates."""
    from stackctl.core.certs import require_acme

    stack = backup_stack(app, project_dir, env)
    require_acme(stack.config.nginx.acme, stack.env.env_file)
    return stack


@certs_app.command("status")
def certs_status(
    ctx: typer.Context, project_dir: ProjectDir = None, env: BackupEnv = "prod", json_out: JsonFlag = False
) -> None:
    """The domains, issuer, serial and expiry of the certificate nginx serves, the last renewal
    and the next check; exit 1 when it is near expiry and not renewing, or temporary after a failure."""
    from stackctl.core import certs

    app = application(ctx)
    out = app.console
    cert = certs.status(_stack(app, project_dir, env))
    if json_out:
        out.json(asdict(cert))
    else:
        rows = [
            ("domains", " ".join(cert.domains)),
            ("served", "temporary self-signed" if cert.temporary else ", ".join(cert.names)),
            ("issuer", cert.issuer or "-"),
            ("serial", cert.serial or "-"),
            (
                "not after",
                f"{cert.not_after or '-'}"
                + (f" ({cert.days_left:.0f} days left)" if cert.days_left is not None else ""),
            ),
            ("directory", cert.directory),
            ("last attempt", cert.last_attempt or "never"),
            ("last renewal", cert.last_success or "never"),
            ("next check", cert.next_check or "-"),
        ]
        out.table(("", ""), rows)
        if cert.last_error:
            out.warning(f"the last attempt failed ({cert.last_error.reason}): {cert.last_error.message}")
            out.info(f"fix: {cert.last_error.hint}")
        if cert.ok:
            out.success("the certificate is fine")
        else:
            out.error(f"certificate: {cert.problem}")
    if not cert.ok:
        raise typer.Exit(1)


@certs_app.command("renew")
def certs_renew(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Ask the CA even if the certificate is not due (mind its rate limits).")
    ] = False,
    dry_run: DryRunFlag = False,
    project_dir: ProjectDir = None,
    env: BackupEnv = "prod",
    json_out: JsonFlag = False,
) -> None:
    """Renew now if the certificate is due (within ACME_RENEW_DAYS of expiry, other domains or
    directory, or none from the CA yet), or with --force. nginx serves it from its next handshake,
    with no reload; if the CA does not issue one, nginx keeps the one it has."""
    from stackctl.cli.stack import show_renewal
    from stackctl.core import certs

    app = application(ctx)
    out = app.console
    result = certs.renew(_stack(app, project_dir, env), force=force, dry_run=dry_run, report=out.progress_line)
    if json_out:
        out.json(asdict(result))
        return
    if dry_run:
        cert = result.status
        served = "a temporary self-signed certificate" if cert.temporary else f"serial {cert.serial}"
        if result.reason:
            out.info(f"would ask {cert.directory} for a certificate for {', '.join(cert.domains)}: {result.reason}")
        else:
            out.info(f"nothing is due: nginx serves {served} until {cert.not_after}")
        return
    show_renewal(out, result)
