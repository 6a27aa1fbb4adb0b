"""up, down, status, logs, manage: the stack commands."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stackctl.cli.common import EnvOption, JsonFlag, ProdFlag, ProjectDir, YesFlag, application

if TYPE_CHECKING:
    from stackctl.console import Console
    from stackctl.core.backup import BackupSchedule
    from stackctl.core.certs import CertStatus, RenewResult
    from stackctl.core.stack import StackStatus
    from stackctl.core.verify import SettingsReport

commands = typer.Typer()


def _status_json(status: StackStatus, schedule: BackupSchedule | None = None) -> dict[str, Any]:
    from dataclasses import asdict

    payload: dict[str, Any] = {
        "project": status.project,
        "env": status.env,
        "profile": status.profile,
        "healthy": status.healthy,
        "urls": status.urls,
        "services": [asdict(s) for s in status.services],
    }
    if schedule is not None:
        payload["backups"] = asdict(schedule)
    return payload


def settings_json(report: SettingsReport) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "settings_module": report.settings_module,
        "ok": report.ok,
        "failures": [asdict(f) for f in report.failures],
        "allowed": [asdict(f) for f in report.allowed],
        "warnings": [asdict(f) for f in report.warnings],
        "silenced": [asdict(f) for f in report.silenced],
        "notes": list(report.notes),
        "seen": report.seen.model_dump(),
    }


def show_settings(out: Console, report: SettingsReport) -> None:
    """What was verified in web, and what is accepted: the TLS warnings with TLS off, the
    check messages that are only warnings, those DJANGO_SILENCED_CHECKS silenced."""
    db = report.seen.database
    out.success(
        f"settings in effect verified in web ({report.settings_module}): DEBUG {report.seen.debug}, "
        f"database {db.vendor} at {db.host}, STATIC_ROOT {report.seen.static_root}, MEDIA_ROOT {report.seen.media_root}"
    )
    for finding in report.allowed:
        out.warning(f"allowed while TLS is off: {finding.render()}")
    for finding in report.warnings:
        out.warning(f"check --deploy warning (not fatal): {finding.setting}: {finding.found}; {finding.fix}")
    for finding in report.silenced:
        out.info(f"{finding.expected}: {finding.setting}: {finding.found}")
    for note in report.notes:
        out.warning(note)


def show_renewal(out: Console, result: RenewResult) -> None:
    cert = result.status
    if result.error:
        out.warning(result.error + (f"\n  fix: {result.hint}" if result.hint else ""))
    elif result.action == "issued":
        out.success(
            f"certificate issued for {', '.join(cert.names)} by {cert.issuer} "
            f"(serial {cert.serial}, until {cert.not_after})"
        )
    else:
        out.success(
            f"certificate in place for {', '.join(cert.names)} (serial {cert.serial}, until {cert.not_after}); "
            "nothing asked of the CA"
        )


def _status_table(out: Console, status: StackStatus) -> None:
    rows = [(s.service, s.state, s.health or "-", ", ".join(s.ports) or "-") for s in status.services]
    out.table(("service", "state", "health", "ports"), rows, title=f"{status.project} ({status.env})")


def _ago(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    hours, rest = divmod(max(seconds, 0), 3600)
    return f"{hours // 24}d {hours % 24}h ago" if hours >= 24 else f"{hours}h {rest // 60}m ago"


def _schedule_lines(schedule: BackupSchedule) -> list[str]:
    if schedule.error:
        return [f"backups: unavailable: {schedule.error}"]
    lines = [f"backups: {'healthy' if schedule.healthy else 'UNHEALTHY'}"]
    for kind, entry in (("db", schedule.db), ("media", schedule.media)):
        if entry is not None:
            lines.append(
                f"backups.{kind}: next {entry.next_run or '-'}, last success {_ago(entry.last_success_age_seconds)}"
            )
    if schedule.certificate is not None:
        lines.append(certificate_line(schedule.certificate))
    if schedule.pitr_window is not None:
        window = schedule.pitr_window
        last = schedule.pitr_last_backup or {}
        state = "" if last.get("ok", True) else f"; LAST BACKUP FAILED: {last.get('error') or '?'}"
        lines.append(
            f"recoverable window (pgBackRest): {window.get('start')} to {window.get('end')} (`restore db --to`){state}"
        )
    return lines


def certificate_line(cert: CertStatus) -> str:
    served = "a temporary self-signed certificate" if cert.temporary else f"serial {cert.serial} from {cert.issuer}"
    left = f" ({cert.days_left:.0f} days left)" if cert.days_left is not None else ""
    state = "ok" if cert.ok else f"PROBLEM: {cert.problem}"
    return f"certificate: {state}; {served}, until {cert.not_after or '-'}{left}; next check {cert.next_check or '-'}"


@commands.command()
def up(
    ctx: typer.Context,
    prod: ProdFlag = False,
    env: EnvOption = None,
    timeout: Annotated[int, typer.Option(help="Seconds to wait for every service to be healthy.")] = 240,
    no_build: Annotated[bool, typer.Option("--no-build", help="Do not build images first.")] = False,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Render if stale, build, start the stack and wait until every service is healthy."""
    app = application(ctx)
    out = app.console
    stack = app.stack(project_dir, app.environment(prod, env), warn=True)
    out.info(f"bringing up {stack.name} ({stack.env.name})")
    result = stack.up(report=out.progress_line, timeout=timeout, build=not no_build)
    if json_out:
        payload = {"seconds": round(result.seconds, 1), "rendered": result.rendered, **_status_json(result.status)}
        if result.settings:
            payload["settings"] = settings_json(result.settings)
        if result.certificate:
            from dataclasses import asdict

            payload["certificate"] = asdict(result.certificate)
        out.json(payload)
        return
    _status_table(out, result.status)
    if result.settings:
        show_settings(out, result.settings)
    if result.certificate:
        show_renewal(out, result.certificate)
    out.success(f"{stack.name} is healthy after {result.seconds:.0f}s")
    for url in result.status.urls:
        out.data(url)


@commands.command()
def down(
    ctx: typer.Context,
    prod: ProdFlag = False,
    env: EnvOption = None,
    volumes: Annotated[
        bool, typer.Option("--volumes", help="Also delete the volumes: database, media, backups.")
    ] = False,
    yes: YesFlag = False,
    project_dir: ProjectDir = None,
) -> None:
    """Stop and remove the stack's containers (and with --volumes, its data)."""
    app = application(ctx)
    stack = app.stack(project_dir, app.environment(prod, env))
    if volumes:
        app.confirm(f"Delete every volume of {stack.name} (database, media, backups)?", yes=yes)
    stack.down(volumes=volumes)
    app.console.success(f"{stack.name} is down" + (" and its volumes are deleted" if volumes else ""))


@commands.command()
def status(
    ctx: typer.Context,
    prod: ProdFlag = False,
    env: EnvOption = None,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Services, health, published ports and URLs (and the backup schedule in prod)."""
    app = application(ctx)
    out = app.console
    stack = app.view(project_dir, app.environment(prod, env))
    result = stack.status()
    schedule = None
    if stack.profile == "prod":
        from stackctl.core.backup import backup_status

        schedule = backup_status(stack, result)  # next scheduled backups, the last successes
    if json_out:
        out.json(_status_json(result, schedule))
    else:
        _status_table(out, result)
        for url in result.urls:
            out.data(url)
        for line in _schedule_lines(schedule) if schedule else []:
            out.data(line)
    if not result.healthy:
        raise typer.Exit(1)


@commands.command()
def logs(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines per service.")] = None,
    prod: ProdFlag = False,
    env: EnvOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Show the stack's logs."""
    app = application(ctx)
    stack = app.stack(project_dir, app.environment(prod, env))
    for _source, line in stack.logs(service, follow=follow, tail=tail):
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()


@commands.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def manage(
    ctx: typer.Context,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for manage.py.")] = None,
    prod: ProdFlag = False,
    env: EnvOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Run manage.py in the web container: its output as it comes, and its exit code."""
    app = application(ctx)
    stack = app.stack(project_dir, app.environment(prod, env))
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    for source, line in stack.manage(list(args or []) + list(ctx.args), tty=tty):
        stream = sys.stderr if source == "stderr" else sys.stdout
        stream.write(line.decode(errors="replace"))
        stream.flush()
