"""Load points with wrk: loopback only, bounded in time and in requests, every number kept."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.host import BenchError, log, run

LUA = Path(__file__).resolve().parent / "lua" / "bench.lua"
GRAPHQL_QUERY = "{ notes(limit: 20) { id title } }"
GRAPHQL_BODY = json.dumps({"query": GRAPHQL_QUERY})
# A safety cap: wrk stops a thread after this many requests per second of the run (far above
# anything this stack reaches; a capped point is flagged, because wrk then under-reports its rate).
CAP_PER_THREAD_SECOND = 25_000


@dataclass(frozen=True)
class LoadSettings:
    threads: int = 2
    connections: int = 32
    seconds: int = 10
    warmup_seconds: int = 2
    timeout_seconds: int = 5


@dataclass
class Endpoint:
    path: str
    body: str = ""  # a POST body (JSON) when set
    accept_encoding: str = ""
    expect: bytes = b""  # a sanity check on one response, before the load


@dataclass
class LoadPoint:
    url: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    bytes: int
    errors: dict[str, int]
    capped: bool
    settings: dict[str, int] = field(default_factory=dict)
    # CPU time of the web container over the measured run, per request (None: not measured)
    web_cpu_ms_per_request: float | None = None

    @property
    def ok(self) -> bool:
        return self.requests > 0 and sum(self.errors.values()) == 0 and not self.capped


HEALTHZ = Endpoint("/healthz", expect=b'"status": "ok"')
GRAPHQL = Endpoint("/graphql", body=GRAPHQL_BODY, expect=b'"notes"')
NGINX_HEALTH = Endpoint("/nginx-health", expect=b"ok")


def _loopback(url: str) -> str:
    if not url.startswith("http://127.0.0.1:"):
        raise BenchError(f"refusing to send load anywhere but 127.0.0.1: {url}")
    return url


def probe(url: str, endpoint: Endpoint) -> bytes:
    """One request, checked: the load only starts on a URL that answers as expected."""
    _loopback(url)
    data = endpoint.body.encode() if endpoint.body else None
    headers = {"Content-Type": "application/json"} if data else {}
    if endpoint.accept_encoding:
        headers["Accept-Encoding"] = endpoint.accept_encoding
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            body: bytes = response.read()
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        raise BenchError(f"{url} does not answer: {exc}") from exc
    if status != 200 or endpoint.expect not in body:
        raise BenchError(f"{url} answered {status} without {endpoint.expect!r}: {body[:300]!r}")
    return body


def _wrk(url: str, endpoint: Endpoint, settings: LoadSettings, seconds: int) -> dict[str, Any]:
    cap = CAP_PER_THREAD_SECOND * seconds
    env = {
        "BENCH_BODY": endpoint.body,
        "BENCH_ACCEPT_ENCODING": endpoint.accept_encoding,
        "BENCH_MAX_REQUESTS": str(cap),
    }
    argv = [
        "wrk",
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{seconds}s",
        f"--timeout={settings.timeout_seconds}s",
        "-s",
        str(LUA),
        _loopback(url),
    ]
    ran = run(argv, env=env, timeout=seconds + 30)
    for line in ran.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            raw["cap"] = cap * settings.threads
            return raw
    raise BenchError(f"wrk printed no result for {url}:\n{ran.stdout[-800:]}{ran.stderr[-800:]}")


def measure(
    base: str, endpoint: Endpoint, settings: LoadSettings, *, cpu: Callable[[], float | None] | None = None
) -> LoadPoint:
    """Probe, warm up (discarded), then one measured wrk run; `cpu` reads the web container's
    CPU seconds, before and after the measured run."""
    url = base.rstrip("/") + endpoint.path
    probe(url, endpoint)
    if settings.warmup_seconds:
        _wrk(url, endpoint, settings, settings.warmup_seconds)
    cpu_before = cpu() if cpu else None
    raw = _wrk(url, endpoint, settings, settings.seconds)
    cpu_after = cpu() if cpu else None
    lat = raw["latency_us"]
    seconds = raw["duration_us"] / 1e6
    point = LoadPoint(
        url=url,
        requests=raw["requests"],
        seconds=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=round(lat["p50"] / 1000, 2),
        p90_ms=round(lat["p90"] / 1000, 2),
        p99_ms=round(lat["p99"] / 1000, 2),
        max_ms=round(lat["max"] / 1000, 2),
        mean_ms=round(lat["mean"] / 1000, 2),
        bytes=raw["bytes"],
        errors=raw["errors"],
        capped=raw["requests"] >= raw["cap"],
        settings={**asdict(settings), "cap_requests": raw["cap"]},
    )
    if cpu_before is not None and cpu_after is not None and raw["requests"]:
        point.web_cpu_ms_per_request = round((cpu_after - cpu_before) * 1000 / raw["requests"], 3)
    flag = "" if point.ok else f"  !! errors={point.errors} capped={point.capped}"
    cpu_note = "" if point.web_cpu_ms_per_request is None else f"  web CPU {point.web_cpu_ms_per_request:.2f} ms/req"
    log(
        f"  {endpoint.path:<40} {point.rps:>9.1f} req/s  p50 {point.p50_ms:.1f} ms  p99 {point.p99_ms:.1f} ms"
        f"{cpu_note}{flag}"
    )
    return point
