"""`stackctl deploy` and `stackctl rollback`: a release built, checked against the live database
in its own image, then switched to without dropping a request (core/switch.py).

deploy:  lock -> build <project>-web:<release> -> pre-flight in the new image (the settings
         verification with `check --deploy`, the pending migrations classified) -> a backup
         when migrations are pending -> start beside the old, health gate -> switch -> drain
         -> record the release -> prune all but the last KEEP_RELEASES.
         A breaking migration refuses before anything changes; with allow_downtime it runs
         behind the maintenance page (old stopped, new migrates and starts, page off).
rollback: the same switch to a recorded release's image; when the database is ahead of it,
         it says so and needs one of: migrating back (reversible migrations only), or
         restoring the backup recorded with the later release, each confirmed.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from stackctl.config.webimage import IMAGE_DIR
from stackctl.core import releases, switch
from stackctl.core.lock import deploy_lock
from stackctl.core.preflight import MIGRATIONS_SCRIPT, MigrationPlan, check_plan, parse_migration_plan
from stackctl.core.progress import Report, quiet
from stackctl.core.releases import Release
from stackctl.core.switch import WebContainer, web_image
from stackctl.errors import DockerCommandError, StackctlError, StackUnhealthy, stderr_tail

if TYPE_CHECKING:
    from stackctl.core.handoff import Handoff
    from stackctl.core.stack import Stack
    from stackctl.core.verify import SettingsReport

SEPARATOR = "--- stackctl: migrations ---"
PACKAGES_SCRIPT = f"{IMAGE_DIR}/stackctl_packages.py"

# Runs a script or module (argv[1]) as __main__, then leaves with os._exit: a project's
# connection pools (psycopg_pool) otherwise wait up to 5 s per pool for their threads at exit,
# which made the two pre-flight steps take 7 s and 24 s instead of 2 s each.
FAST_EXIT = """
import os, runpy, sys, traceback
target = sys.argv.pop(1)
code = 0
try:
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
except SystemExit as exc:
    if isinstance(exc.code, int) or exc.code is None:
        code = exc.code or 0
    else:
        print(exc.code, file=sys.stderr)
        code = 1
except BaseException:
    traceback.print_exc()
    code = 1
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""


@dataclass(frozen=True)
class DeployOptions:
    ref: str | None = None
    allow_downtime: bool = False
    strict: bool = False  # migrations to review refuse the zero-downtime path too
    drain_seconds: float = 30.0
    health_timeout: float = 60.0
    lock_timeout: float = 300.0
    keep: int = releases.KEEP_RELEASES


@dataclass
class DeployResult:
    release: Release
    previous: str | None
    seconds: float
    switch_seconds: float  # from the command to the switch
    drain_seconds: float
    downtime: bool = False
    plan: MigrationPlan | None = None
    pruned: list[str] = field(default_factory=list)
    migrated_back: list[str] = field(default_factory=list)
    restored: str | None = None


@dataclass(frozen=True)
class Preflight:
    settings: SettingsReport
    plan: MigrationPlan


def timed(report: Report, started: float) -> Report:
    """Each progress line with the seconds since the command started: where a deploy spends them."""
    return lambda text: report(f"[{time.monotonic() - started:5.1f}s] {text}")


def serving(stack: Stack) -> list[WebContainer]:
    found = switch.web_containers(stack)
    if not found:
        raise StackctlError(f"the web service of {stack.name} is not running", hint=f"start it: {stack.up_command}")
    return found


def serving_release(client_releases: list[Release], serving_now: list[WebContainer], stack: Stack) -> str | None:
    """The recorded release whose image the serving web container runs."""
    image_ids = {c.image_id for c in serving_now}
    for release in client_releases:
        try:
            if stack.client.image.inspect(release.image).id in image_ids:
                return release.id
        except DockerException:
            continue
    return None


def config_digest(stack: Stack) -> str:
    """sha256 of the env file and the stack files rendered from it (no value is shown)."""
    from stackctl.core.render import render_set

    digest = hashlib.sha256(stack.env_file.read_bytes())
    for path, (content, _mode) in sorted(render_set(stack.config).items()):
        digest.update(path.encode() + b"\0" + content)
    return digest.hexdigest()[:16]


def build(stack: Stack, image: str, report: Report, *, builder: DockerClient | None = None, what: str = "") -> None:
    """Build web as `image` (with `builder`, default the stack's build client), then send it to
    the stack's engine if it was built on this host for another one."""
    stack.ensure_local_images(report)
    report(f"building {image}")
    try:
        with web_image(image):
            for _source, line in (builder or stack.build_client()).compose.build(["web"], stream_logs=True):
                text = line.decode(errors="replace").rstrip()
                if text:
                    report(text)
    except DockerException as exc:
        raise DockerCommandError(f"building {image}{what} failed\n{stderr_tail(exc.stderr)}") from None
    if stack.ship([image], report):
        stack.builds_here.image.remove(image)  # type: ignore[union-attr]  # the stack's engine keeps it


def render_and_build(stack: Stack, image: str, *, ref: str | None, report: Report) -> None:
    """The stack files re-rendered if stale, then the release image: from the working tree,
    or from a clean export of `ref`; then the config volumes filled (the pre-flight reads them)."""
    for path in stack.ensure_rendered():
        report(f"rendered {path}")
    if ref:
        from stackctl.core.gitref import build_ref

        build_ref(stack, ref, image, report)
    else:
        build(stack, image, report)
    if stack.profile == "prod":
        from stackctl.core.configvolumes import sync

        sync(stack, report)


def preflight(stack: Stack, image: str, report: Report) -> Preflight:
    """In a one-off container of `image` against the live database: the settings verification
    (with `check --deploy`), then the migration plan, classified. One container for both."""
    from stackctl.config.webimage import VERIFY_MODULE
    from stackctl.core.verify import verify_settings

    report(f"pre-flight in {image}: settings, check --deploy, pending migrations")
    script = f'python -c "$1" {VERIFY_MODULE} && echo "{SEPARATOR}" && python -c "$1" {MIGRATIONS_SCRIPT}'
    command = ["sh", "-c", script, "preflight", FAST_EXIT]
    try:
        with web_image(image):
            output = str(stack.client.compose.run("web", command, remove=True, dependencies=False, tty=False) or "")
    except DockerException as exc:
        step = "the migration check" if SEPARATOR in (exc.stdout or "") else "the settings verification"
        raise StackUnhealthy(
            f"pre-flight failed in the new image: {step} exited {exc.return_code}; nothing was changed",
            logs={"pre-flight": stderr_tail(exc.stderr, 40)},
            hint="the old release keeps serving; fix the release, then deploy again",
        ) from None
    settings_text, _, plan_text = output.partition(SEPARATOR)
    settings = verify_settings(stack, probe=lambda _stack: settings_text)
    return Preflight(settings, parse_migration_plan(plan_text))


def _backup(stack: Stack, release_id: str, report: Report) -> str | None:
    if stack.profile != "prod":
        report("migrations pending: no backup service in dev, none taken")
        return None
    from stackctl.core.backup import take_backup

    report("migrations pending: backing up the database first")
    result = take_backup(stack, "db", label=f"pre-deploy-{release_id}")
    report(f"backup {result.file} ({result.bytes} bytes)")
    return result.file


def _zero_downtime(
    stack: Stack, image: str, old: list[WebContainer], options: DeployOptions, report: Report, started: float
) -> tuple[float, float]:
    _new, switched, waited = switch.replace_serving(
        stack, image, old, timeout=options.health_timeout, drain_seconds=options.drain_seconds, report=report
    )
    return switched - started, waited


def _behind_maintenance(
    stack: Stack, image: str, old: list[WebContainer], options: DeployOptions, report: Report, started: float
) -> tuple[float, float]:
    report("maintenance page on; stopping the old release once its requests are answered")
    switch.maintenance(stack, old[0], on=True)
    # new requests get the maintenance page now; the ones in flight finish first
    waited = switch.drain(stack, old, seconds=options.drain_seconds, report=report)
    new = switch.start_beside(stack, image, [], report)
    try:
        switch.wait_ready(stack, new, timeout=max(options.health_timeout, 180))
    except StackctlError:
        switch.remove(stack, new, stop_seconds=2)
        report("the new release did not start: starting the previous image again (the maintenance page stays on)")
        back = switch.start_beside(stack, old[0].image or old[0].image_id, [], report)
        switch.wait_ready(stack, back, timeout=options.health_timeout)
        switch.maintenance(stack, back, on=False)
        raise
    switch.maintenance(stack, new, on=False)
    report("maintenance page off")
    return time.monotonic() - started, waited


def deploy(
    stack: Stack, options: DeployOptions = DeployOptions(), report: Report = quiet, *, command: str = "stackctl deploy"
) -> DeployResult:
    """Build the working tree (or options.ref) as a new release and switch to it."""
    started = time.monotonic()
    report = timed(report, started)
    old = serving(stack)
    release_id = releases.new_release_id()
    image = releases.image_of(stack.name, release_id)
    with deploy_lock(
        stack.client, stack.name, image=old[0].image_id, command=command, timeout=options.lock_timeout, report=report
    ):
        old = serving(stack)  # another deploy may have switched while we waited
        known = releases.list_releases(stack.client, stack.name)
        previous = serving_release(known, old, stack)
        render_and_build(stack, image, ref=options.ref, report=report)
        try:
            checked = preflight(stack, image, report)
            if not options.allow_downtime:
                check_plan(checked.plan, strict=options.strict)
            downtime = bool(checked.plan.refusing(strict=options.strict))
            pending = [m.label for m in checked.plan.pending]
            backup = _backup(stack, release_id, report) if pending else None
            step = _behind_maintenance if downtime else _zero_downtime
            switched, waited = step(stack, image, old, options, report, started)
        except BaseException:
            _drop_image(stack, image)
            raise
        release = Release(
            id=release_id,
            image=image,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            ref=options.ref,
            config_digest=config_digest(stack),
            migrations=pending,
            unknown_applied=list(checked.plan.unknown_applied),
            backup=backup,
            previous=previous,
        )
        releases.record(stack.client, stack.name, release)
        switch.tag_as_default(stack, image)
        pruned = releases.prune(stack.client, stack.name, keep=options.keep, protect={release_id})
        for gone in pruned:
            report(f"pruned release {gone}")
    return DeployResult(release, previous, time.monotonic() - started, switched, waited, downtime, checked.plan, pruned)


def plan(stack: Stack, options: DeployOptions = DeployOptions(), report: Report = quiet) -> Handoff:
    """What a deploy would change, and change nothing that serves: the release is built (under
    a throwaway tag, removed afterwards), checked like a deploy checks it (settings, `check
    --deploy`, pending migrations classified against the live database), and compared with
    the serving release: packages, variables of .env.example missing from the env file, and
    whether web is recreated. These are the handoff notes of the release."""
    from stackctl.core.handoff import (
        Handoff,
        ServiceState,
        missing_variables,
        package_changes,
        parse_packages,
        services_to_recreate,
    )

    started = time.monotonic()
    report = timed(report, started)
    old = serving(stack)
    image = releases.image_of(stack.name, "plan-" + releases.new_release_id())
    render_and_build(stack, image, ref=options.ref, report=report)
    try:
        checked = preflight(stack, image, report)
        report("listing the packages of both releases")
        packages_command = ["python", PACKAGES_SCRIPT]
        try:
            before = str(stack.client.container.execute(old[0].name, packages_command, tty=False) or "")
        except DockerException as exc:
            raise DockerCommandError(
                f"could not list the packages of the serving release (exit {exc.return_code})",
                hint=f"is it built by this version of stackctl? `{stack.up_command}` rebuilds it",
            ) from None
        after = _run_in(stack, image, packages_command)
        new_id = stack.client.image.inspect(image).id
    finally:
        _drop_image(stack, image)
    example = stack.project.root / ".env.example"
    missing = missing_variables(example.read_text(), stack.env_file.read_text()) if example.is_file() else ()
    notes = [] if example.is_file() else [f"no {example}: variables not compared"]
    refusing = checked.plan.refusing(strict=options.strict)
    if refusing:
        notes.append("a deploy refuses these migrations without --allow-downtime (maintenance page)")
    return Handoff(
        packages=package_changes(parse_packages(before), parse_packages(after)),
        migrations=checked.plan,
        missing_variables=missing,
        services=services_to_recreate({"web": ServiceState(old[0].image_id)}, {"web": ServiceState(new_id)}),
        env_file=stack.env_file.name,
        notes=tuple(notes),
    )


def _drop_image(stack: Stack, image: str) -> None:
    with contextlib.suppress(DockerException):
        stack.client.image.remove(image, force=True)


@dataclass(frozen=True)
class RollbackOptions:
    migrate_back: bool = False
    restore_backup: bool = False
    drain_seconds: float = 30.0
    health_timeout: float = 60.0
    lock_timeout: float = 300.0


def rollback_target(stack: Stack, wanted: str | None) -> tuple[Release, str | None, list[Release]]:
    """The release to go back to (the one before the serving one by default), the serving
    release's id, and every recorded release."""
    known = releases.list_releases(stack.client, stack.name)
    current = serving_release(known, serving(stack), stack)
    if wanted:
        target = releases.find_release(known, wanted)
    else:
        ids = [r.id for r in known]
        older = known[ids.index(current) + 1 :] if current in ids else known[1:]
        if not older:
            raise releases.UnknownRelease("there is no earlier release to roll back to", hint="see `stackctl releases`")
        target = older[0]
    if target.id == current:
        raise StackctlError(f"release {target.id} is the one serving already; nothing to do")
    if not releases.image_present(stack.client, target.image):
        raise releases.UnknownRelease(f"the image of release {target.id} ({target.image}) is gone from the engine")
    return target, current, known


REVERSIBLE_PROBE = """
import json, os, sys
from stackctl_verify import load_django
load_django()
from django.db.migrations.loader import MigrationLoader
loader = MigrationLoader(None, ignore_no_migrations=True)
out = {}
for label in sys.argv[1:]:
    app, name = label.split(".", 1)
    migration = loader.disk_migrations.get((app, name))
    out[label] = migration is not None and all(op.reversible for op in migration.operations)
print(json.dumps(out), flush=True)
os._exit(0)
"""

LEAVES_PROBE = """
import json, os
from stackctl_verify import load_django
load_django()
from django.db.migrations.loader import MigrationLoader
print(json.dumps(sorted(MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes())), flush=True)
os._exit(0)
"""


def _run_in(stack: Stack, image: str, command: list[str]) -> str:
    try:
        with web_image(image):
            return str(stack.client.compose.run("web", command, remove=True, dependencies=False, tty=False) or "")
    except DockerException as exc:
        raise DockerCommandError(f"`{command[0]} ...` failed in {image}\n{stderr_tail(exc.stderr)}") from None


def _last_json(text: str) -> object:
    import json

    lines = [line for line in text.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def _migrate_back(stack: Stack, newer_image: str, target_image: str, ahead: list[str], report: Report) -> list[str]:
    """`migrate APP LEAF` for each app the database is ahead in, with the newer image (it has
    the migrations to reverse), each app to the target release's leaf (or zero)."""
    reversible = _last_json(_run_in(stack, newer_image, ["python", "-c", REVERSIBLE_PROBE, *ahead]))
    blocked = [label for label in ahead if not (isinstance(reversible, dict) and reversible.get(label))]
    if blocked:
        raise StackctlError(
            f"these migrations cannot be reversed: {', '.join(blocked)}; nothing was changed",
            hint="roll back with --restore-backup instead (the backup recorded with the later release)",
        )
    found = _last_json(_run_in(stack, target_image, ["python", "-c", LEAVES_PROBE]))
    leaves = {str(pair[0]): str(pair[1]) for pair in (found if isinstance(found, list) else [])}
    done = []
    for app in sorted({label.split(".", 1)[0] for label in ahead}):
        to = leaves.get(app, "zero")
        report(f"migrating {app} back to {to}")
        _run_in(stack, newer_image, ["python", "-m", "stackctl_manage", "migrate", app, to, "--no-input"])
        done.append(f"{app} -> {to}")
    return done


def rollback(
    stack: Stack,
    wanted: str | None,
    options: RollbackOptions = RollbackOptions(),
    report: Report = quiet,
    *,
    confirm: Callable[[str], None],
) -> DeployResult:
    """Switch back to a recorded release with the zero-downtime switch, minding the database."""
    started = time.monotonic()
    report = timed(report, started)
    target, current, known = rollback_target(stack, wanted)
    old = serving(stack)
    with deploy_lock(
        stack.client,
        stack.name,
        image=old[0].image_id,
        command="stackctl rollback",
        timeout=options.lock_timeout,
        report=report,
    ):
        checked = preflight(stack, target.image, report)
        ahead = list(checked.plan.unknown_applied)
        later = next((r for r in known if r.id == current), None)
        if ahead and not (options.migrate_back or options.restore_backup):
            backup = later.backup if later else None
            raise StackctlError(
                f"the database is ahead of release {target.id}: it has {', '.join(ahead)} applied, "
                "which that release does not know; nothing was changed",
                hint="roll back with --migrate-back (reverses them, when reversible)"
                + (f" or --restore-backup (restores {backup}, taken before them)" if backup else ""),
            )
        if ahead and options.restore_backup and not (later and later.backup):
            raise StackctlError(
                f"no backup is recorded with release {current}; nothing was changed", hint="use --migrate-back"
            )
        newer = old[0].image or old[0].image_id
        if ahead and options.migrate_back:
            confirm(f"Reverse {', '.join(ahead)} in the database after switching to {target.id}?")
        restored_file = later.backup if (ahead and options.restore_backup and later) else None
        if restored_file:
            confirm(
                f"Restore {restored_file} (the backup taken before release {current}) after switching to {target.id}?"
            )
        run = DeployOptions(drain_seconds=options.drain_seconds, health_timeout=options.health_timeout)
        switched, waited = _zero_downtime(stack, target.image, old, run, report, started)
        switch.tag_as_default(stack, target.image)
        result = DeployResult(replace(target), current, 0.0, switched, waited, plan=checked.plan)
        if ahead and options.migrate_back:
            result.migrated_back = _migrate_back(stack, newer, target.image, ahead, report)
        elif restored_file:
            from stackctl.core.restore import restore_db

            with web_image(target.image):
                restore_db(stack, restored_file, confirm=lambda _q: None, report=report)
            result.restored = restored_file
    result.seconds = time.monotonic() - started
    return result
