"""backup now|list|verify|prune and restore db|media: always the PROD stack (.env.prod)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from stackctl.cli.common import JsonFlag, ProjectDir, YesFlag, confirm_destructive, console, project
from stackctl.config import load_config
from stackctl.console import Console
from stackctl.core import backup as core
from stackctl.core import restore as restoring
from stackctl.core.stack import Stack

PROD_NOTE = "Works on the prod stack (.env.prod, docker-compose.prod.yml), which must be up."
backup_app = typer.Typer(help=f"Take, list, verify and prune backups. {PROD_NOTE}", no_args_is_help=True)
restore_app = typer.Typer(help=f"Restore the database or the media from a backup. {PROD_NOTE}", no_args_is_help=True)

FileArg = Annotated[str, typer.Argument(help="A backup name (see `stackctl backup list`) or a host path.")]
Identity = Annotated[
    Path | None,
    typer.Option("--age-identity", help="Host path of the age identity (private key) for an encrypted backup."),
]
Timeout = Annotated[int, typer.Option(help="Seconds to wait for web to be healthy again.")]


def _prod_stack(project_dir: Path | None) -> Stack:
    proj = project(project_dir)
    return Stack(proj, "prod", config=load_config(proj.env_file("prod"), profile="prod").config)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


@backup_app.command("now")
def backup_now(
    ctx: typer.Context,
    kind: Annotated[Literal["db", "media", "all"], typer.Argument(help="What to back up.")] = "all",
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Take a backup now: db (pg_dump), media (tar.gz of the media volume) or all."""
    out = console(ctx)
    results = core.backup_now(_prod_stack(project_dir), kind, report=out.progress_line)
    if json_out:
        out.json([asdict(r) for r in results])
        return
    for r in results:
        out.data(f"{r.file}  {_size(r.bytes)}  {r.seconds:.1f}s")
    out.success(f"{len(results)} backup(s) written to the backups volume")


@backup_app.command("list")
def backup_list(ctx: typer.Context, project_dir: ProjectDir = None, json_out: JsonFlag = False) -> None:
    """List every backup, newest first, with its checksum state."""
    out = console(ctx)
    backups = core.list_backups(_prod_stack(project_dir))
    if json_out:
        out.json([asdict(b) for b in backups])
        return
    table = Table(title_justify="left")
    for column in ("name", "kind", "size", "created", "checksum"):
        table.add_column(column)
    for b in backups:
        state = {True: "ok", False: "MISMATCH", None: "no sidecar"}[b.sha256_ok]
        table.add_row(b.name, b.kind, _size(b.bytes), f"{b.created:%Y-%m-%d %H:%M} UTC", state)
    out.table(table)
    if not backups:
        out.info("no backups yet: `stackctl backup now` takes one")


@backup_app.command("verify")
def backup_verify(
    ctx: typer.Context,
    file: FileArg,
    age_identity: Identity = None,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Verify a backup: checksum, then restore it into a scratch database and count (media: list it)."""
    out = console(ctx)
    result = core.verify_backup(_prod_stack(project_dir), file, identity=age_identity)
    if json_out:
        out.json(asdict(result))
        return
    content = f"{result.files} files" if result.kind == "media" else f"{result.tables} tables, {result.rows} rows"
    out.success(f"{result.name}: checksum {result.checksum}, {content} ({result.seconds:.1f}s)")


@backup_app.command("prune")
def backup_prune(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")] = False,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Apply the retention policy (DB_BACKUP_KEEP_DAILY/WEEKLY, DB_BACKUP_RETENTION_DAYS)."""
    out = console(ctx)
    result = core.prune_backups(_prod_stack(project_dir), dry_run=dry_run)
    if json_out:
        out.json(asdict(result))
        return
    for name in result.deleted:
        out.data(f"{'would delete' if dry_run else 'deleted'}  {name}")
    out.success(
        f"kept {len(result.kept)}, {'would delete' if dry_run else 'deleted'} {len(result.deleted)}"
        f", {len(result.orphans)} stale temp file(s)"
    )


def _confirm(out: Console, yes: bool) -> Callable[[str], None]:
    """The core asks through this: a terminal answers, or --yes; else it refuses (exit 9)."""

    def ask(question: str) -> None:
        confirm_destructive(out, question, yes=yes)

    return ask


def _show_restore(out: Console, result: restoring.RestoreResult, json_out: bool) -> None:
    if json_out:
        out.json(asdict(result))
        return
    content = f"{result.files} files" if result.kind == "media" else f"{result.tables} tables, {result.rows} rows"
    out.success(f"restored {result.file}: {content} in {result.seconds:.0f}s")
    if result.safety_backup:
        out.data(f"safety backup: {result.safety_backup}")
    if result.old_database:
        out.warning(f"the previous database is kept as {result.old_database}")


def _restore(
    ctx: typer.Context,
    restore: Callable[..., restoring.RestoreResult],
    file: str,
    *,
    yes: bool,
    identity: Path | None,
    timeout: int,
    project_dir: Path | None,
    json_out: bool,
) -> None:
    out = console(ctx)
    result = restore(
        _prod_stack(project_dir),
        file,
        confirm=_confirm(out, yes),
        report=out.progress_line,
        identity=identity,
        timeout=timeout,
    )
    _show_restore(out, result, json_out)


@restore_app.command("db")
def restore_db(
    ctx: typer.Context,
    file: FileArg,
    yes: YesFlag = False,
    age_identity: Identity = None,
    timeout: Timeout = 180,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Replace the database with a backup: checked first, into a scratch database, then swapped in."""
    _restore(
        ctx,
        restoring.restore_db,
        file,
        yes=yes,
        identity=age_identity,
        timeout=timeout,
        project_dir=project_dir,
        json_out=json_out,
    )


@restore_app.command("media")
def restore_media(
    ctx: typer.Context,
    file: FileArg,
    yes: YesFlag = False,
    age_identity: Identity = None,
    timeout: Timeout = 180,
    project_dir: ProjectDir = None,
    json_out: JsonFlag = False,
) -> None:
    """Replace the media volume's content with an archive: checked, extracted beside it, then swapped."""
    _restore(
        ctx,
        restoring.restore_media,
        file,
        yes=yes,
        identity=age_identity,
        timeout=timeout,
        project_dir=project_dir,
        json_out=json_out,
    )
