"""Run the benchmarks in one go: prints a table and writes every raw number to bench/results/.

    .venv/bin/python -m bench.run [--quick] [--only requests,static,build,backup,restore,cli,deploy] [--keep]
                                  [--rounds N] [--setups a_stackctl_default,c_gunicorn_uvicorn_nginx,...]

Full run: about 25 minutes on a 2-core host. --quick is a smoke run (a few seconds per load
point, a small database) and writes bench/results/quick.json instead of latest.json.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import backup, build, cli, deploy, requests, static
from bench.host import BenchError, host_info, load_average, log
from bench.lab import Lab
from bench.load import LoadSettings
from bench.report import render_table, summary

SECTIONS = ("requests", "static", "build", "backup", "restore", "cli", "deploy")
RESULTS = Path(__file__).resolve().parent / "results"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: short load points, small database")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument(
        "--out", type=Path, help="JSON path (default bench/results/latest.json, quick.json with --quick)"
    )
    parser.add_argument("--rounds", type=int, help="rounds of the repeated GraphQL set-ups (default 3; 1 with --quick)")
    parser.add_argument(
        "--setups",
        help="comma-separated keys of the `requests` set-ups to run (default: all; see bench/requests.py)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running (for debugging)")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    if args.setups:
        keys = {key for key, _, _ in requests.setups()}
        unknown = set(args.setups.split(",")) - keys
        if unknown:
            parser.error(f"unknown set-up(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(keys))}")
    return args


def _plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"load": LoadSettings(seconds=3, warmup_seconds=1), "rows_per_table": 50_000, "cli_runs": 5, "rounds": 1}
    return {"load": LoadSettings(seconds=8, warmup_seconds=2), "rows_per_table": 1_250_000, "cli_runs": 20, "rounds": 3}


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    plan = _plan(args.quick)
    if args.rounds:
        plan["rounds"] = args.rounds
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    chosen = [s for s in SECTIONS if s in args.only.split(",")]
    data: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "sections_run": chosen,
        "host": host_info(),
        "load_before": load_average(),
        "note": "the host is shared with other test runs: numbers are noisy; see load_before/load_after",
        "sections": {},
        "section_seconds": {},
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    lab = Lab.create()
    try:
        runners = {
            "requests": lambda: requests.run_section(
                lab, plan["load"], keys=set(args.setups.split(",")) if args.setups else None, rounds=plan["rounds"]
            ),
            "static": lambda: static.run_section(lab, plan["load"]),
            "build": lambda: build.run_section(lab),
            "backup": lambda: backup.run_section(lab, rows_per_table=plan["rows_per_table"]),
            "restore": lambda: backup.run_restore_section(
                lab, rows_per_table=plan["rows_per_table"], rounds=plan["rounds"]
            ),
            "cli": lambda: cli.run_section(lab, runs=plan["cli_runs"]),
            "deploy": lambda: deploy.run_section(lab),
        }
        for name in chosen:
            log(f"=== {name} ===")
            t0 = time.monotonic()
            data["sections"][name] = {"load_before": load_average()}
            try:
                data["sections"][name] = {**runners[name](), "load_before": data["sections"][name]["load_before"]}
            except BenchError as exc:
                log(f"{name} failed: {exc}")
                data["sections"][name]["error"] = str(exc)
            data["sections"][name]["load_after"] = load_average()
            data["section_seconds"][name] = round(time.monotonic() - t0, 1)
            _write(out, data)
    finally:
        data["load_after"] = load_average()
        data["total_seconds"] = round(time.monotonic() - started, 1)
        if args.keep:
            log(f"kept: {lab.project} in {lab.root}")
        else:
            lab.close()
    data.update(summary(data))
    _write(out, data)
    print(render_table(data))
    log(f"wrote {out} ({data['total_seconds']:.0f} s in all)")
    return 1 if any("error" in s for s in data["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
