"""Section `requests`: req/s and latency of /healthz and a GraphQL query that reads the database."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from bench.host import log
from bench.lab import Lab, WebSetup
from bench.load import GRAPHQL, GRAPHQL_QUERY, HEALTHZ, NGINX_HEALTH, LoadSettings, measure

CORES = os.cpu_count() or 2


def setups() -> list[tuple[str, WebSetup, bool]]:
    """(key, set-up, through nginx?) in the order that needs the fewest restarts."""
    return [
        ("a_stackctl_default", WebSetup("(a) stackctl default: daphne x WEB_CONCURRENCY, pool, nginx"), True),
        (
            "option_granian_nginx",
            WebSetup("(option) ASGI_SERVER=granian x WEB_CONCURRENCY, pool, nginx", server="granian"),
            True,
        ),
        (
            "b_daphne_1_seed_nginx",
            WebSetup(
                "(b) seed: daphne x1, no pool, access log, asyncio loop, nginx",
                concurrency=1,
                db_pool=False,
                access_log=True,
                loop="asyncio",
            ),
            True,
        ),
        ("daphne_1_nginx", WebSetup("daphne x1, pool, nginx", concurrency=1), True),
        ("d_daphne_1_direct", WebSetup("(d) daphne x1, pool, direct", concurrency=1, direct=True), False),
        ("daphne_3_nginx", WebSetup("daphne x3, pool, nginx", concurrency=3), True),
        ("daphne_4_nginx", WebSetup("daphne x4, pool, nginx", concurrency=4), True),
        (
            "granian_4_nginx",
            WebSetup("ASGI_SERVER=granian x4, pool, nginx", server="granian", concurrency=4),
            True,
        ),
        ("a_no_pool_nginx", WebSetup("(a) without the pool: daphne x default, nginx", db_pool=False), True),
        ("a_asyncio_loop_nginx", WebSetup("(a) on the asyncio loop, not uvloop", loop="asyncio"), True),
        ("a_access_log_nginx", WebSetup("(a) with daphne's access log", access_log=True), True),
        (
            "a_upstream_keepalive_nginx",
            WebSetup("(a) with nginx keep-alive to the upstream (what-if)", upstream_keepalive=True),
            True,
        ),
        (
            "c_gunicorn_uvicorn_nginx",
            WebSetup("(c) gunicorn + UvicornWorker x cores, pool, nginx", server="gunicorn", workers=CORES),
            True,
        ),
        (
            "c_gunicorn_uvicorn_2x_nginx",
            WebSetup("(c) with twice the workers: x 2 cores", server="gunicorn", workers=2 * CORES),
            True,
        ),
        (
            "c_upstream_keepalive_nginx",
            WebSetup(
                "(c) with nginx keep-alive to the upstream (what-if)",
                server="gunicorn",
                workers=CORES,
                upstream_keepalive=True,
            ),
            True,
        ),
        (
            "d_gunicorn_uvicorn_direct",
            WebSetup("(d) gunicorn + UvicornWorker x cores, direct", server="gunicorn", workers=CORES, direct=True),
            False,
        ),
        (
            "c_gunicorn_uvicorn_no_pool_nginx",
            WebSetup("(c) without the pool, nginx", server="gunicorn", workers=CORES, db_pool=False),
            True,
        ),
    ]


def run_section(lab: Lab, settings: LoadSettings, *, keys: set[str] | None = None, rounds: int = 1) -> dict[str, Any]:
    results: dict[str, Any] = {"load_settings": asdict(settings), "graphql_query": GRAPHQL_QUERY, "setups": {}}
    seeded = False
    for key, setup, via_nginx in setups():
        if keys is not None and key not in keys:
            continue
        switch_seconds = lab.apply(setup)
        if not seeded:
            lab.seed_notes(50)
            seeded = True
        base = lab.base if via_nginx else lab.direct_base
        log(f"{setup.label} ({base})")
        entry: dict[str, Any] = {
            "label": setup.label,
            "setup": asdict(setup),
            "web_concurrency": effective_concurrency(lab, setup),
            "via_nginx": via_nginx,
            "nginx_upstream_sockets": len(lab.web_sockets()),
            "switch_seconds": round(switch_seconds, 2),
            "healthz": asdict(measure(base, HEALTHZ, settings, cpu=lab.web_cpu_seconds)),
            "graphql": asdict(measure(base, GRAPHQL, settings, cpu=lab.web_cpu_seconds)),
        }
        if key == "a_stackctl_default":
            results["e_nginx_alone"] = {
                "label": "(e) nginx alone: /nginx-health",
                "nginx_health": asdict(measure(lab.base, NGINX_HEALTH, settings)),
            }
        results["setups"][key] = entry
    _repeat(lab, settings, results["setups"], rounds, keys)
    return results


# GraphQL req/s moves by 10-25 % from one run to the next on a shared 2-core host; the set-ups
# the targets and the WEB_CONCURRENCY default rest on get more rounds, interleaved, so that
# drift in the host's load hits them alike, and their median counts.
REPEATED = (
    "a_stackctl_default",
    "option_granian_nginx",
    "b_daphne_1_seed_nginx",
    "c_gunicorn_uvicorn_nginx",
    "daphne_3_nginx",
    "daphne_4_nginx",
    "granian_4_nginx",
    "c_gunicorn_uvicorn_2x_nginx",
    "a_upstream_keepalive_nginx",
    "c_upstream_keepalive_nginx",
)


def _repeat(lab: Lab, settings: LoadSettings, entries: dict[str, Any], rounds: int, keys: set[str] | None) -> None:
    chosen = [(k, s, n) for k, s, n in setups() if k in REPEATED and k in entries and (keys is None or k in keys)]
    runs: dict[str, list[dict[str, Any]]] = {k: [entries[k]["graphql"]] for k, _, _ in chosen}
    for number in range(2, rounds + 1):
        for key, setup, via_nginx in chosen:
            lab.apply(setup)
            log(f"round {number}: {setup.label}")
            base = lab.base if via_nginx else lab.direct_base
            runs[key].append(asdict(measure(base, GRAPHQL, settings, cpu=lab.web_cpu_seconds)))
    for key, points in runs.items():
        ordered = sorted(points, key=lambda point: point["rps"])
        entries[key]["graphql_runs_rps"] = [point["rps"] for point in points]
        entries[key]["graphql"] = ordered[(len(ordered) - 1) // 2]  # the median run (lower middle)


def effective_concurrency(lab: Lab, setup: WebSetup) -> int:
    if setup.server == "gunicorn":
        return setup.workers
    if setup.concurrency:
        return setup.concurrency
    out = lab.compose("exec", "-T", "web", "printenv", "WEB_CONCURRENCY", check=False).stdout.strip()
    return int(out) if out.isdigit() else 0
