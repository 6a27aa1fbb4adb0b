"""backup now|list|verify|prune and restore db|media: the prod stack (.env.prod), or a named
environment of the prod kind with --env NAME (the dev stack has no backup service)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from stackctl.cli.common import JsonFlag, ProjectDir, YesFlag, application, size
from stackctl.errors import BackupError

if TYPE_CHECKING:
    from stackctl.cli.common import Application
    from stackctl.core.restore import RestoreResult
    from stackctl.core.stack import Stack

PROD_NOTE = (
    "Works on the prod stack (.env.prod, docker-compose.prod.yml), or a named one with --env NAME, which must be up."
)
BackupEnv = Annotated[
    str, typer.Option("--env", metavar="NAME", help="The environment: prod, or a named one (.env.NAME).")
]


def _stack(app: Application, project_dir: Path | None, env: str) -> Stack:
    environment = app.environment(False, env, default="prod")
    if environment.profile == "dev":
        raise typer.BadParameter("the dev stack has no backup service: give --env prod or a named environment")
    return app.stack(project_dir, environment)


backup_app = typer.Typer(help=f"Take, list, verify and prune backups. {PROD_NOTE}", no_args_is_help=True)
restore_app = typer.Typer(help=f"Restore the database or the media from a backup. {PROD_NOTE}", no_args_is_help=True)


def _backup_names(kind: str | None) -> Callable[[typer.Context, str], list[str]]:
    """Shell completion: the names `stackctl backup list` shows (of one kind), newest first.
    Completion must never fail: with no stack running it offers nothing."""

    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        from stackctl.core.backup import list_backups

        try:
            app = application(ctx)
            app.console.verbosity = -1
            directory = ctx.params.get("project_dir")
            stack: Stack = _stack(app, Path(directory) if directory else None, ctx.params.get("env") or "prod")
            found = list_backups(stack)
        except Exception:  # completion runs inside the user's shell: say nothing
            return []
        return [b.name for b in found if (kind is None or b.kind == kind) and b.name.startswith(incomplete)]

    return complete


def _file_arg(kind: str | None) -> object:
    return typer.Argument(
        help="A backup name (see `stackctl backup list`) or a host path.", autocompletion=_backup_names(kind)
    )


AnyBackup = Annotated[str, _file_arg(None)]
DbBackup = Annotated[str, _file_arg("db")]
MediaBackup = Annotated[str, _file_arg("media")]
Identity = Annotated[
    Path | None,
    typer.Option("--age-identity", help="Host path of the age identity (private key) for an encrypted backup."),
]
Timeout = Annotated[int, typer.Option(help="Seconds to wait for web to be healthy again.")]
NoChecksum = Annotated[
    bool,
    typer.Option(
        "--no-checksum",
        help="Accept a backup without a .sha256 sidecar (a dump from elsewhere); it is still read through and checked.",
    ),
]
AllowForeign = Annotated[
    bool,
    typer.Option(
        "--allow-foreign",
        help="Restore it even when it does not look like this app's database (no django_migrations table, "
        "or a migration history that does not fit).",
    ),
]


@backup_app.command("now")
def backup_now(
    ctx: typer.Context,
    kind: Annotated[
        Literal["db", "media", "all", "pitr"],
        typer.Argument(help="What to back up: db (pg_dump), media, all (both), or pitr (a pgBackRest backup)."),
    ] = "all",
    pitr_type: Annotated[
        Literal["full", "diff", "incr"], typer.Option("--type", help="pitr: the pgBackRest backup's type.")
    ] = "incr",
    project_dir: ProjectDir = None,
    env: BackupEnv = "prod",
    json_out: JsonFlag = False,
) -> None:
    """Take a backup now: db (pg_dump), media (tar.gz of the media volume), all, or pitr
    (pgBackRest: an incremental backup by default, in every repository)."""
    from dataclasses import asdict

    from stackctl.core import backup as core

    app = application(ctx)
    out = app.console
    if kind == "pitr":
        from stackctl.core import pitr

        repos = pitr.pitr_backup(_stack(app, project_dir, env), pitr_type, report=out.progress_line)
        if json_out:
            out.json({"type": pitr_type, "repos": repos})
            return
        out.success(f"pgBackRest {pitr_type} backup taken in repo {', '.join(map(str, repos))}")
        return
    results = core.backup_now(_stack(app, project_dir, env), kind, report=out.progress_line)
    if json_out:
        out.json([asdict(r) for r in results])
        return
    for r in results:
        out.data(f"{r.file}  {size(r.bytes)}  {r.seconds:.1f}s")
    out.success(f"{len(results)} backup(s) written to the backups volume")


@backup_app.command("list")
def backup_list(
    ctx: typer.Context, project_dir: ProjectDir = None, env: BackupEnv = "prod", json_out: JsonFlag = False
) -> None:
    """List every backup, newest first, with its checksum state; with point-in-time recovery
    on, pgBackRest's backups and the recoverable window too.

    --json: {"backups": [the dumps], "pitr": {"window", "backups", ...} or null}."""
    from dataclasses import asdict

    from stackctl.core import backup as core
    from stackctl.core import pitr

    app = application(ctx)
    out = app.console
    stack = _stack(app, project_dir, env)
    backups = core.list_backups(stack)
    physical, unavailable = None, None
    if stack.config.backups.pitr_enabled:
        try:  # the dumps are listed even when pgBackRest cannot answer
            physical = pitr.pitr_info(stack)
        except BackupError as exc:
            unavailable = exc.message.splitlines()[0]
    if json_out:  # the dumps, and pgBackRest's backups and window beside them (null when PITR is off)
        payload: dict[str, object] = {
            "backups": [asdict(b) for b in backups],
            "pitr": asdict(physical) if physical else None,
        }
        if unavailable:
            payload["pitr_error"] = unavailable
        out.json(payload)
        return
    if unavailable:
        out.warning(f"pgBackRest's backups and window are unavailable: {unavailable}")
    states = {True: "ok", False: "MISMATCH", None: "no sidecar"}
    rows: list[tuple[str, str, str, str, str]] = [
        (b.name, b.kind, size(b.bytes), f"{b.created:%Y-%m-%d %H:%M} UTC", states[b.sha256_ok]) for b in backups
    ]
    if physical is not None:
        rows += [
            (p.label, f"pitr {p.type}, repo {p.repo}", size(p.repo_bytes or 0), _utc(p.stop), "pgbackrest")
            for p in physical.backups
        ]
    out.table(("name", "kind", "size", "created", "checksum"), rows)
    if not backups:
        out.info("no logical backups yet: `stackctl backup now` takes one")
    if physical is not None:
        out.data(pitr_window_line(physical))
        for point in physical.safety_points[-5:]:
            out.data(
                f"safety point {point.get('name')} ({point.get('time')}, timeline {point.get('timeline')}): "
                f"`restore db --to {point.get('name')}` goes back to it"
            )


@backup_app.command("verify")
def backup_verify(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(
            help="A backup name (see `stackctl backup list`) or a host path; none: pgBackRest's repositories only.",
            autocompletion=_backup_names(None),
        ),
    ] = None,
    age_identity: Identity = None,
    project_dir: ProjectDir = None,
    env: BackupEnv = "prod",
    json_out: JsonFlag = False,
) -> None:
    """Verify a backup: checksum, then restore it into a scratch database and count (media: list it).

    With point-in-time recovery on, pgBackRest's check (WAL reaches every repository) and
    verify (every file in them is sound) run too.
    """
    from dataclasses import asdict

    from stackctl.core import backup as core
    from stackctl.core import pitr

    app = application(ctx)
    out = app.console
    stack = _stack(app, project_dir, env)
    if file is None and not stack.config.backups.pitr_enabled:
        raise typer.BadParameter("give a backup to verify (see `stackctl backup list`)")
    result = core.verify_backup(stack, file, identity=age_identity) if file is not None else None
    repos = None
    if stack.config.backups.pitr_enabled:
        try:
            repos = pitr.check_repositories(stack, report=out.progress_line)
        except BackupError as exc:
            if file is None or result is None:
                raise
            # the dump verified; pgBackRest's part could not run (its service is not running)
            out.warning(f"pgBackRest's check and verify did not run: {exc.message.splitlines()[0]}")
    if json_out:
        payload = asdict(result) if result is not None else {}
        if repos is not None:
            payload["pgbackrest"] = asdict(repos)
        out.json(payload)
        return
    if result is not None:
        content = f"{result.files} files" if result.kind == "media" else f"{result.tables} tables, {result.rows} rows"
        out.success(f"{result.name}: checksum {result.checksum}, {content} ({result.seconds:.1f}s)")
    if repos is not None:
        out.success(
            f"pgBackRest: check and verify passed, repo {', '.join(map(str, repos.verified))} ({repos.seconds:.1f}s)"
        )


@backup_app.command("prune")
def backup_prune(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")] = False,
    project_dir: ProjectDir = None,
    env: BackupEnv = "prod",
    json_out: JsonFlag = False,
) -> None:
    """Apply the retention policy (DB_BACKUP_KEEP_DAILY/WEEKLY, DB_BACKUP_RETENTION_DAYS)."""
    from dataclasses import asdict

    from stackctl.core import backup as core

    app = application(ctx)
    out = app.console
    result = core.prune_backups(_stack(app, project_dir, env), dry_run=dry_run)
    if json_out:
        out.json(asdict(result))
        return
    verb = "would delete" if dry_run else "deleted"
    for name in result.deleted:
        out.data(f"{verb}  {name}")
    for name in result.damaged:
        out.warning(f"damaged (its hash does not match its .sha256 sidecar): {name}")
    for name in result.unclassified:
        out.warning(f"left alone, not a backup prune can classify (no sidecar, or not a backup's name): {name}")
    out.success(f"kept {len(result.kept)}, {verb} {len(result.deleted)}, {len(result.orphans)} stale temp file(s)")


def _restore(
    app: Application,
    kind: Literal["db", "media"],
    file: str,
    *,
    yes: bool,
    identity: Path | None,
    timeout: int,
    project_dir: Path | None,
    env: str,
    json_out: bool,
    no_checksum: bool,
    allow_foreign: bool = False,
) -> None:
    from dataclasses import asdict

    from stackctl.core import restore as restoring

    out = app.console
    stack = _stack(app, project_dir, env)

    def confirm(question: str) -> None:
        app.confirm(question, yes=yes)

    result: RestoreResult
    if kind == "db":
        result = restoring.restore_db(
            stack,
            file,
            confirm=confirm,
            report=out.progress_line,
            identity=identity,
            timeout=timeout,
            no_checksum=no_checksum,
            allow_foreign=allow_foreign,
        )
    else:
        result = restoring.restore_media(
            stack,
            file,
            confirm=confirm,
            report=out.progress_line,
            identity=identity,
            timeout=timeout,
            no_checksum=no_checksum,
        )
    if json_out:
        out.json(asdict(result))
        return
    content = f"{result.files} files" if result.kind == "media" else f"{result.tables} tables, {result.rows} rows"
    out.success(f"restored {result.file}: {content} in {result.seconds:.0f}s")
    if result.safety_backup:
        out.data(f"safety backup: {result.safety_backup}")
    if result.old_database:
        out.warning(f"the previous database is kept as {result.old_database}")


def _utc(iso: str | None) -> str:
    return f"{iso[:10]} {iso[11:16]} UTC" if iso else "?"


def pitr_window_line(info: object) -> str:
    """The recoverable window, for `backup list` and `status`."""
    window = getattr(info, "window", None)
    if window is None:
        return "recoverable window (pgBackRest): none yet, no physical backup"
    return f"recoverable window (pgBackRest): {window.start} to {window.end} (last archived WAL), `restore db --to`"


@restore_app.command("db")
def restore_db(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(
            help="A backup name (see `stackctl backup list`) or a host path; or none, with --to.",
            autocompletion=_backup_names("db"),
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="latest|TIME|POINT",
            help="Point-in-time recovery with pgBackRest: the whole cluster to `latest`, to a time "
            'with its zone ("2026-12-01T10:00:00Z"), or back to a safety point (stackctl-pre-restore-…).',
        ),
    ] = None,
    repo: Annotated[
        int | None, typer.Option("--repo", help="--to: recover from this pgBackRest repository only (1 or 2).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="--to: check the target against the window and say what would stop; change nothing."
        ),
    ] = False,
    yes: YesFlag = False,
    age_identity: Identity = None,
    no_checksum: NoChecksum = False,
    allow_foreign: AllowForeign = False,
    timeout: Timeout = 180,
    project_dir: ProjectDir = None,
    env: BackupEnv = "prod",
    json_out: JsonFlag = False,
) -> None:
    """Replace the database with a backup: checked first, into a scratch database, then swapped in.

    FILE is a pg_dump archive (custom, tar or directory format) or plain SQL, maybe gzipped
    (.sql.gz); one from elsewhere, without a .sha256 sidecar, needs --no-checksum.

    --to recovers the whole cluster instead, from pgBackRest's backups and WAL archive (delta
    restore), after recording a safety point; a time outside the recoverable window is refused.
    """
    if (file is None) == (to is None):
        raise typer.BadParameter("give either a backup FILE or --to latest|TIME (not both)")
    if to is not None:
        _restore_to(
            application(ctx),
            to,
            repo=repo,
            yes=yes,
            dry_run=dry_run,
            timeout=timeout,
            project_dir=project_dir,
            env=env,
            json_out=json_out,
        )
        return
    if repo is not None or dry_run:
        raise typer.BadParameter("--repo and --dry-run go with --to")
    assert file is not None
    _restore(
        application(ctx),
        "db",
        file,
        yes=yes,
        identity=age_identity,
        timeout=timeout,
        project_dir=project_dir,
        env=env,
        json_out=json_out,
        no_checksum=no_checksum,
        allow_foreign=allow_foreign,
    )


def _restore_to(
    app: Application,
    to: str,
    *,
    repo: int | None,
    yes: bool,
    dry_run: bool,
    timeout: int,
    project_dir: Path | None,
    env: str,
    json_out: bool,
) -> None:
    from dataclasses import asdict

    from stackctl.core import pitr

    out = app.console
    result = pitr.restore_to(
        _stack(app, project_dir, env),
        to,
        confirm=lambda question: app.confirm(question, yes=yes),
        report=out.progress_line,
        repo=repo,
        timeout=max(timeout, 300),
        dry_run=dry_run,
    )
    if json_out:
        out.json(asdict(result))
        return
    anew = ", ".join(f"repo{key}" for key in result.reset_repos)
    if result.dry_run:
        other = ""
        if result.other_cluster:
            other = " db holds another cluster than the repository's: it would be dumped first;"
        out.success(
            f"would recover to {result.target}: inside the recoverable window {result.window.start} to now;{other} "
            f"would stop {', '.join(result.would_stop)}{f'; would start {anew} anew' if anew else ''}; "
            "nothing was changed"
        )
        return
    out.success(
        f"recovered to {result.target} in {result.seconds:.0f}s (pgBackRest's restore {result.restore_seconds:.1f}s)"
    )
    if result.other_cluster:
        out.data(f"safety backup: {result.safety_backup} (a logical dump of the cluster db held before)")
    else:
        out.data(
            f"safety point: {result.safety_point} at {result.safety_time}, timeline {result.safety_timeline}: every "
            f"commit made before the restore is archived; `restore db --to {result.safety_point}` goes back to it"
        )
    if anew:
        out.data(f"{anew}: started anew for the restored cluster; the pgbackrest service takes a full backup there now")


@restore_app.command("media")
def restore_media(
    ctx: typer.Context,
    file: MediaBackup,
    yes: YesFlag = False,
    age_identity: Identity = None,
    no_checksum: NoChecksum = False,
    timeout: Timeout = 180,
    project_dir: ProjectDir = None,
    env: BackupEnv = "prod",
    json_out: JsonFlag = False,
) -> None:
    """Replace the media volume's content with an archive: checked, extracted beside it, then swapped."""
    _restore(
        application(ctx),
        "media",
        file,
        yes=yes,
        identity=age_identity,
        timeout=timeout,
        project_dir=project_dir,
        env=env,
        json_out=json_out,
        no_checksum=no_checksum,
    )
