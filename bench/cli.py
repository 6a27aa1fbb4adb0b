"""Section `cli`: `stackctl status --prod` vs a bare `docker compose ps` on the same project, and
the start-up of `stackctl --version` and `stackctl --help` (targets: status at most 1.5x
compose ps, --version and --help at most 0.15 s; interleaved medians of one run)."""

from __future__ import annotations

from typing import Any

from bench.host import STACKCTL, log, median, run
from bench.lab import Lab, WebSetup


def run_section(lab: Lab, *, runs: int) -> dict[str, Any]:
    if lab.current is None:
        lab.apply(WebSetup())
    status_argv = [str(STACKCTL), "status", "--prod"]
    ps_argv = [*lab.compose_argv(), "ps"]
    run(status_argv, cwd=lab.root, timeout=60)  # warm the page cache for both
    run(ps_argv, cwd=lab.root, timeout=60)
    # Where stackctl's time goes: its start-up (imports) and the engine check it makes first.
    version_argv = [str(STACKCTL), "--version"]
    help_argv = [str(STACKCTL), "--help"]
    info_argv = ["docker", "info", "--format", "{{json .}}"]
    status: list[float] = []
    ps: list[float] = []
    version: list[float] = []
    helps: list[float] = []
    info: list[float] = []
    for _ in range(runs):  # interleaved, so that drift in the host's load hits every command alike
        status.append(round(run(status_argv, cwd=lab.root, timeout=60).seconds, 4))
        ps.append(round(run(ps_argv, cwd=lab.root, timeout=60).seconds, 4))
        version.append(round(run(version_argv, timeout=60).seconds, 4))
        helps.append(round(run(help_argv, timeout=60).seconds, 4))
        info.append(round(run(info_argv, timeout=60).seconds, 4))
    log(f"  stackctl status --prod: median {median(status):.3f} s; docker compose ps: median {median(ps):.3f} s")
    log(f"  stackctl --version: median {median(version):.3f} s; --help: median {median(helps):.3f} s")
    return {
        "runs": runs,
        "stackctl_status": {"argv": "stackctl status --prod", "seconds": status, "median": median(status)},
        "compose_ps": {
            "argv": "docker compose -p NAME -f ... --env-file .env.prod ps",
            "seconds": ps,
            "median": median(ps),
        },
        "breakdown": {
            "stackctl_version": {"argv": "stackctl --version", "seconds": version, "median": median(version)},
            "stackctl_help": {"argv": "stackctl --help", "seconds": helps, "median": median(helps)},
            "docker_info": {"argv": "docker info --format '{{json .}}'", "seconds": info, "median": median(info)},
        },
    }
