"""Section `build`: cold build, no-change rebuild and code-only redeploy, stackctl's image vs a naive one.

Both images build through compose (BuildKit in the engine), in the same project, with the same
context and .dockerignore. On this host pip's cache stays empty even in stackctl's cache mount
(the TLS-intercepting proxy's responses are not cacheable), so every cold build downloads.
"Redeploy" is timed from the command until the stack reports healthy: `stackctl up --prod` for
stackctl, `docker compose up -d --build --wait` for naive.
"""

from __future__ import annotations

import uuid
from statistics import median
from typing import Any

from bench.host import log, run
from bench.lab import NAIVE_DOCKERFILE, Lab, WebSetup

CODE_FILE = "example/notes/views.py"
REDEPLOY_RUNS = 3  # the code-only redeploy is short and noisy: the median of three


def image_size(tag: str) -> int:
    out = run(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip()
    return int(out)


def change_code(lab: Lab) -> None:
    """A code-only change: one comment line appended to a .py file (content changes, deps do not)."""
    path = lab.root / CODE_FILE
    path.write_text(path.read_text() + f"# bench: code-only change {uuid.uuid4().hex}\n")


def container_ids(lab: Lab) -> dict[str, str]:
    out = lab.compose("ps", "--all", "--format", "{{.Service}} {{.ID}}").stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def recreated(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(service for service, cid in after.items() if before.get(service) != cid)


def _timed(lab: Lab, what: str, *args: str, overrides: list[str] | None = None) -> float:
    seconds = lab.compose(*args, overrides=overrides or [], timeout=1200).seconds
    log(f"  {what}: {seconds:.1f} s")
    return round(seconds, 2)


def _stackctl_image(lab: Lab) -> dict[str, Any]:
    r: dict[str, Any] = {"image": lab.web_image}
    r["cold_build_seconds"] = _timed(lab, "stackctl cold build (no layer cache)", "build", "--no-cache", "web")
    r["rebuild_no_change_seconds"] = _timed(lab, "stackctl rebuild, no change", "build", "web")
    r["image_bytes"] = image_size(lab.web_image)
    runs = []
    for _ in range(REDEPLOY_RUNS):
        change_code(lab)
        before = container_ids(lab)
        redeploy = lab.stackctl("up", "--prod", timeout=900)
        runs.append(round(redeploy.seconds, 2))
        r["code_change_redeploy_recreated"] = recreated(before, container_ids(lab))
        log(f"  stackctl code-only change, `stackctl up --prod` to healthy: {redeploy.seconds:.1f} s")
    r["code_change_redeploy_runs"] = runs
    r["code_change_redeploy_seconds"] = median(runs)
    change_code(lab)
    r["code_change_build_only_seconds"] = _timed(lab, "stackctl code-only change, build only", "build", "web")
    r["code_change_up_only_seconds"] = _timed(lab, "stackctl deploy only (up --wait)", "up", "-d", "--wait")
    return r


def _naive_image(lab: Lab) -> dict[str, Any]:
    image = f"{lab.name}-web-naive:latest"
    lab.images.add(image)
    env = {"BENCH_NAIVE_IMAGE": image, "BENCH_NAIVE_DOCKERFILE": str(NAIVE_DOCKERFILE)}
    over = ["naive.yml"]

    def timed(what: str, *args: str) -> float:
        seconds = lab.compose(*args, overrides=over, env=env, timeout=1200).seconds
        log(f"  {what}: {seconds:.1f} s")
        return round(seconds, 2)

    r: dict[str, Any] = {"image": image, "dockerfile": "bench/naive.Dockerfile"}
    r["cold_build_seconds"] = timed("naive cold build (no layer cache)", "build", "--no-cache", "web")
    r["rebuild_no_change_seconds"] = timed("naive rebuild, no change", "build", "web")
    r["image_bytes"] = image_size(image)
    r["first_deploy_seconds"] = timed("naive first deploy (up --wait)", "up", "-d", "--wait")
    runs = []
    for _ in range(REDEPLOY_RUNS):
        change_code(lab)
        before = container_ids(lab)
        runs.append(
            timed("naive code-only change, `compose up -d --build --wait` to healthy", "up", "-d", "--build", "--wait")
        )
        r["code_change_redeploy_recreated"] = recreated(before, container_ids(lab))
    r["code_change_redeploy_runs"] = runs
    r["code_change_redeploy_seconds"] = median(runs)
    change_code(lab)
    r["code_change_build_only_seconds"] = timed("naive code-only change, build only", "build", "web")
    r["code_change_up_only_seconds"] = timed("naive deploy only (up --wait)", "up", "-d", "--wait")
    return r


def _slow_health(lab: Lab) -> dict[str, Any]:
    """What-if: stackctl's image with web's healthcheck every 2 s (the default before 1 s)."""
    over = ["slow-health.yml"]
    lab.compose("up", "-d", "--build", "--wait", overrides=over, timeout=900)
    change_code(lab)
    seconds = _timed(
        lab,
        "what-if web healthcheck every 2 s: code-only change, up --build --wait",
        "up",
        "-d",
        "--build",
        "--wait",
        overrides=over,
    )
    lab.compose("up", "-d", "--wait", timeout=900)  # back to the default healthcheck
    return {"code_change_redeploy_seconds": seconds, "override": "bench/compose/slow-health.yml"}


def run_section(lab: Lab) -> dict[str, Any]:
    lab.apply(WebSetup())
    results = {"stackctl": _stackctl_image(lab), "naive": _naive_image(lab), "slow_healthcheck": _slow_health(lab)}
    lab.current = None  # the next section re-applies the default set-up
    return results
