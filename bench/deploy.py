"""Section `deploy`: a code-only change shipped by `stackctl deploy --prod` (zero-downtime
switch) against today's `stackctl up --prod` (recreates web), and `stackctl rollback --prod`.

Each one is timed from the command to the moment the new code serves: for `up --prod`, the
command's end (web is recreated, the stack healthy); for deploy and rollback, their own
`switch_seconds` (from the command to nginx's switch; the old release then drains, which
serves requests and is reported apart). A probe sends a GET every 20 ms through nginx
meanwhile and counts the requests that failed.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from statistics import median
from typing import Any

from bench.build import change_code
from bench.host import log
from bench.lab import Lab

RUNS = 3


class Probe:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as resp:
                    ok = resp.status == 200
            except (urllib.error.URLError, OSError):
                ok = False
            self.sent += 1
            self.failed += 0 if ok else 1
            time.sleep(max(0.0, 0.02 - (time.monotonic() - started)))

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def _timed(lab: Lab, what: str, *args: str) -> dict[str, Any]:
    if args[0] != "rollback":
        change_code(lab)
    with Probe(f"{lab.base}/healthz") as probe:
        ran = lab.stackctl(*args, timeout=900)
    row: dict[str, Any] = {"seconds": round(ran.seconds, 2), "requests": probe.sent, "failed": probe.failed}
    if "--json" in args:
        result = json.loads(ran.stdout)
        row["switch_seconds"] = result["switch_seconds"]
        row["drain_seconds"] = result["drain_seconds"]
    log(f"  {what}: {row}")
    return row


def _summary(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {
        "runs": rows,
        f"median_{key}": median(r[key] for r in rows),
        "failed_requests": sum(r["failed"] for r in rows),
        "requests": sum(r["requests"] for r in rows),
    }


def run_section(lab: Lab) -> dict[str, Any]:
    lab.stackctl("up", "--prod", timeout=900)
    up = [_timed(lab, "code-only change, `stackctl up --prod`", "up", "--prod") for _ in range(RUNS)]
    deploys = [
        _timed(lab, "code-only change, `stackctl deploy --prod`", "deploy", "--prod", "--json") for _ in range(RUNS)
    ]
    rollback = [_timed(lab, "`stackctl rollback --prod`", "rollback", "--prod", "--yes", "--json")]
    r = {
        "up_prod": _summary(up, "seconds"),
        "deploy": _summary(deploys, "switch_seconds"),
        "rollback": _summary(rollback, "switch_seconds"),
    }
    r["deploy_switch_over_up_prod"] = round(r["deploy"]["median_switch_seconds"] / r["up_prod"]["median_seconds"], 2)
    return r
