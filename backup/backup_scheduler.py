#!/usr/bin/env python3
"""backup_scheduler.py [--run-now KIND]...: run backup_db.sh and backup_media.sh on their
cron schedules (DB_BACKUP_CRON, MEDIA_BACKUP_CRON), and with ACME certificates
`certctl.py renew --scheduled` on ACME_RENEW_CRON; --run-now starts KIND's job (db, media
or certs) at once, then follows its schedule.

The backup container's main process. A croniter loop, not a cron daemon: one log line per
event on stdout (never a secret), its state in /backups/.scheduler.json, and on SIGTERM
or SIGINT it lets a running job finish (up to BACKUP_STOP_FINISH_SECONDS, default 40),
else stops that job's whole process group (its trap removes the partial file), and
exits 0. A job that runs longer than BACKUP_JOB_TIMEOUT_SECONDS (a pg_dump hung on a lock,
an off-site copy that never returns) is stopped the same way and counts as failed, so
that it never blocks the runs after it. Jobs run one at a time: a job that falls due while the other runs is delayed,
and starts as soon as that one ends. Runs are never caught up: a job runs once however
many of its times went by while it was delayed or running, and times that went by while
the container was down are skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backupctl import EX_CONFIG, STATED_BY, UTC, Settings, SettingsError, iso, next_runs

KINDS = ("db", "media", "certs")


def log(text: str) -> None:
    print(f"{iso(dt.datetime.now(UTC))} backup_scheduler: {text}", flush=True)


@dataclass
class Job:
    kind: str
    cron: str
    command: list[str]
    next_run: dt.datetime
    last_run: dt.datetime | None = None
    last_success: dt.datetime | None = None
    last_exit: int | None = None
    running: bool = False

    def schedule(self, now: dt.datetime) -> None:
        self.next_run = next_runs(self.cron, now, 1)[0]

    def state(self) -> dict[str, Any]:
        return {
            "cron": self.cron,
            "next_run": iso(self.next_run),
            "last_run": iso(self.last_run),
            "last_success": iso(self.last_success),
            "last_exit": self.last_exit,
            "running": self.running,
        }


def utc_now() -> dt.datetime:
    return dt.datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        jobs: list[Job],
        *,
        finish_seconds: float,
        job_timeout: float | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.finish_seconds = finish_seconds
        self.job_timeout = job_timeout
        self.clock = clock
        self.stop = threading.Event()
        self.started = clock()

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stop.is_set():
            log(f"received {signal.Signals(signum).name}; stopping")
        self.stop.set()

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "started": iso(self.started),
            "updated": iso(self.clock()),
            "stopping": self.stop.is_set(),
            "jobs": {job.kind: job.state() for job in self.jobs},
        }
        path = self.settings.state_file
        tmp = path.with_name(f".tmp-scheduler-{os.getpid()}.json")
        try:
            tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log(f"warning: could not write {path}: {exc.strerror}")

    def next_job(self, now: dt.datetime) -> tuple[Job, float]:
        """The job that comes first and the seconds until it is due (0 or less: due now). A job
        whose time went by while the other ran is the first, and due at once."""
        job = min(self.jobs, key=lambda j: j.next_run)
        return job, (job.next_run - now).total_seconds()

    def run(self, *, run_now: Collection[str] = ()) -> int:
        now = self.clock()
        for job in self.jobs:
            job.schedule(now)
            if job.kind in run_now:
                job.next_run = now
            log(f"{job.kind}: cron {job.cron!r}, next run {iso(job.next_run)}")
        self.write_state()
        while not self.stop.is_set():
            job, wait = self.next_job(self.clock())
            if wait > 0:
                self.stop.wait(min(wait, 30.0))  # wake up now and then: the clock may jump
                continue
            self.run_job(job)
            job.schedule(self.clock())  # from the end of the run: times that went by are not caught up
            log(f"{job.kind}: next run {iso(job.next_run)}")
            self.write_state()
        self.write_state()
        log("stopped")
        return 0

    def run_job(self, job: Job) -> None:
        job.running, job.last_run = True, self.clock()
        self.write_state()
        log(f"{job.kind}: starting {' '.join(job.command)}")
        proc = subprocess.Popen(job.command, start_new_session=True)
        code = self._wait(proc, job)
        job.running, job.last_exit = False, code
        if code == 0:
            job.last_success = self.clock()
            log(f"{job.kind}: succeeded")
        else:
            log(f"{job.kind}: failed with exit code {code}")

    def _wait(self, proc: subprocess.Popen[bytes], job: Job) -> int:
        started = time.monotonic()
        while proc.poll() is None:
            if not self.stop.wait(0.5):
                if self.job_timeout and time.monotonic() - started > self.job_timeout:
                    log(f"{job.kind}: timed out after {self.job_timeout:.0f}s (BACKUP_JOB_TIMEOUT_SECONDS)")
                    return self._abort(proc, job)
                continue
            log(f"{job.kind}: waiting up to {self.finish_seconds:.0f}s for the running job to finish")
            try:
                return proc.wait(timeout=self.finish_seconds)
            except subprocess.TimeoutExpired:
                return self._abort(proc, job)
        return proc.returncode

    def _abort(self, proc: subprocess.Popen[bytes], job: Job) -> int:
        log(f"{job.kind}: stopping the running job; it removes its partial file")
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                return proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        return proc.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backup_scheduler.py", description="run the backups on their schedules")
    parser.add_argument("--run-now", choices=KINDS, action="append", default=[], metavar="KIND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        log(f"error: {exc}")
        return EX_CONFIG
    finish = float(os.environ.get("BACKUP_STOP_FINISH_SECONDS") or 40)
    timeout = os.environ.get("BACKUP_JOB_TIMEOUT_SECONDS", "")
    if not (timeout.isascii() and timeout.isdigit() and int(timeout) > 0):
        what = f"not a whole number of seconds: {timeout!r}" if timeout else f"not set ({STATED_BY})"
        log(f"error: BACKUP_JOB_TIMEOUT_SECONDS: {what}")
        return EX_CONFIG
    epoch = utc_now()
    jobs = [
        Job("db", settings.db_cron, ["backup_db.sh"], epoch),
        Job("media", settings.media_cron, ["backup_media.sh"], epoch),
    ]
    if os.environ.get("ACME_DOMAINS"):  # TLS_CERT_SOURCE=acme: the certificate's renewal check
        jobs.append(Job("certs", os.environ.get("ACME_RENEW_CRON", ""), ["certctl.py", "renew", "--scheduled"], epoch))
        subprocess.run(["certctl.py", "bootstrap"], check=False, stdout=subprocess.DEVNULL)
    try:
        for job in jobs:
            next_runs(job.cron, epoch, 1)
    except (ValueError, KeyError) as exc:
        log(f"error: invalid cron expression: {exc}")
        return EX_CONFIG
    scheduler = Scheduler(settings, jobs, finish_seconds=finish, job_timeout=float(timeout))
    signal.signal(signal.SIGTERM, scheduler.request_stop)
    signal.signal(signal.SIGINT, scheduler.request_stop)
    log(f"started (db backups in {settings.db_dir}, media archives in {settings.media_dir})")
    return scheduler.run(run_now=args.run_now)


if __name__ == "__main__":
    sys.exit(main())
