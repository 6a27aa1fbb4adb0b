"""backup now|list|verify|prune and restore db|media."""

from __future__ import annotations

import typer

from stackctl.errors import NotImplementedYet

backup_app = typer.Typer(help="Take, list, verify and prune backups.", no_args_is_help=True)
restore_app = typer.Typer(help="Restore the database or the media from a backup.", no_args_is_help=True)


@backup_app.command("now")
def backup_now() -> None:
    """Take a backup now: db, media or all."""
    raise NotImplementedYet("backup now", "Backups and restore")


@backup_app.command("list")
def backup_list() -> None:
    """List backups."""
    raise NotImplementedYet("backup list", "Backups and restore")


@backup_app.command("verify")
def backup_verify() -> None:
    """Verify a backup by restoring it into a scratch database."""
    raise NotImplementedYet("backup verify", "Backups and restore")


@backup_app.command("prune")
def backup_prune() -> None:
    """Apply the retention policy."""
    raise NotImplementedYet("backup prune", "Backups and restore")


@restore_app.command("db")
def restore_db() -> None:
    """Restore the database from a backup."""
    raise NotImplementedYet("restore db", "Backups and restore")


@restore_app.command("media")
def restore_media() -> None:
    """Restore the media volume from a backup."""
    raise NotImplementedYet("restore media", "Backups and restore")
