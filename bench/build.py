"""Section `build`: cold build, no-change rebuild and code-only redeploy, stackctl's image vs a naive one.

Both images build through compose (BuildKit in the engine), in the same project, with the same
context and .dockerignore. "Redeploy" is timed from the command until the stack reports
healthy: `stackctl up --prod` for stackctl, `docker compose up -d --build --wait` for naive.
"""

from __future__ import annotations

import uuid
from typing import Any

from bench.host import log, run
from bench.lab import NAIVE_DOCKERFILE, Lab, WebSetup

CODE_FILE = "example/notes/views.py"
PIP_CACHE_MOUNT = "--mount=type=cache,target=/root/.cache/pip"


def image_size(tag: str) -> int:
    out = run(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip()
    return int(out)


def change_code(lab: Lab) -> None:
    """A code-only change: one comment line appended to a .py file (content changes, deps do not)."""
    path = lab.root / CODE_FILE
    path.write_text(path.read_text() + f"# bench: code-only change {uuid.uuid4().hex}\n")


def _timed(lab: Lab, what: str, *args: str, overrides: list[str] | None = None) -> float:
    seconds = lab.compose(*args, overrides=overrides or [], timeout=1200).seconds
    log(f"  {what}: {seconds:.1f} s")
    return round(seconds, 2)


def _stackctl_image(lab: Lab) -> dict[str, Any]:
    r: dict[str, Any] = {"image": lab.web_image}
    r["cold_build_warm_pip_cache_seconds"] = _timed(lab, "stackctl cold build (no layer cache)", "build", "--no-cache", "web")
    r["cold_build_fresh_pip_cache_seconds"] = _fresh_pip_cache_build(lab)
    r["rebuild_no_change_seconds"] = _timed(lab, "stackctl rebuild, no change", "build", "web")
    r["image_bytes"] = image_size(lab.web_image)
    change_code(lab)
    redeploy = lab.stackctl("up", "--prod", timeout=900)
    r["code_change_redeploy_seconds"] = round(redeploy.seconds, 2)
    log(f"  stackctl code-only change, `stackctl up --prod` to healthy: {redeploy.seconds:.1f} s")
    change_code(lab)
    r["code_change_build_only_seconds"] = _timed(lab, "stackctl code-only change, build only", "build", "web")
    r["code_change_up_only_seconds"] = _timed(lab, "stackctl deploy only (up --wait)", "up", "-d", "--wait")
    return r


def _fresh_pip_cache_build(lab: Lab) -> float:
    """stackctl's Dockerfile with a pip cache mount of its own: a cold build on a fresh host."""
    token = uuid.uuid4().hex[:12]
    dockerfile = lab.root.parent / "Dockerfile.fresh-pip-cache"
    text = (lab.root / "compose" / "Dockerfile").read_text()
    dockerfile.write_text(text.replace(PIP_CACHE_MOUNT, f"--mount=type=cache,id=bench-{token},target=/root/.cache/pip"))
    image = f"{lab.name}-web-freshcache:latest"
    lab.images.add(image)
    env = {"BENCH_FRESH_IMAGE": image, "BENCH_FRESH_DOCKERFILE": str(dockerfile)}
    seconds = lab.compose("build", "--no-cache", "web", overrides=["fresh-pip-cache.yml"], env=env, timeout=1200).seconds
    log(f"  stackctl cold build, empty pip cache: {seconds:.1f} s")
    run(["docker", "image", "rm", "--force", image], check=False)
    # the cache mount it filled (engine-wide, so only this one, by its id)
    run(["docker", "builder", "prune", "--force", "--filter", f"id=bench-{token}"], check=False, timeout=120)
    return round(seconds, 2)


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
    change_code(lab)
    r["code_change_redeploy_seconds"] = timed(
        "naive code-only change, `compose up -d --build --wait` to healthy", "up", "-d", "--build", "--wait"
    )
    change_code(lab)
    r["code_change_build_only_seconds"] = timed("naive code-only change, build only", "build", "web")
    r["code_change_up_only_seconds"] = timed("naive deploy only (up --wait)", "up", "-d", "--wait")
    return r


def _fast_health(lab: Lab) -> dict[str, Any]:
    """What-if: stackctl's image with 1 s healthcheck intervals on web and nginx."""
    over = ["fast-health.yml"]
    lab.compose("up", "-d", "--build", "--wait", overrides=over, timeout=900)
    change_code(lab)
    seconds = _timed(lab, "what-if 1 s healthchecks: code-only change, up --build --wait", "up", "-d", "--build", "--wait", overrides=over)
    return {"code_change_redeploy_seconds": seconds, "override": "bench/compose/fast-health.yml"}


def run_section(lab: Lab) -> dict[str, Any]:
    lab.apply(WebSetup())
    results = {"stackctl": _stackctl_image(lab), "naive": _naive_image(lab), "fast_healthcheck": _fast_health(lab)}
    lab.current = None  # the next section re-applies the default set-up
    return results
