"""Section `static`: one hashed admin CSS file through nginx vs the same file through WhiteNoise."""

from __future__ import annotations

import os
import re
import urllib.request
from dataclasses import asdict
from typing import Any

from bench.host import BenchError, log
from bench.lab import Lab, WebSetup
from bench.load import Endpoint, LoadSettings, measure

CORES = os.cpu_count() or 2
HASHED_CSS = re.compile(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"')
WHITENOISE = WebSetup(
    "WhiteNoise: gunicorn + UvicornWorker x cores, direct",
    server="gunicorn",
    workers=CORES,
    direct=True,
    whitenoise=True,
)


def hashed_css_path(base: str) -> str:
    with urllib.request.urlopen(f"{base}/admin/login/", timeout=15) as response:
        found = HASHED_CSS.search(response.read())
    if not found:
        raise BenchError("the admin login page names no hashed base.css (is ManifestStaticFilesStorage on?)")
    return found.group(1).decode()


def _headers(url: str, encoding: str) -> dict[str, str]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": encoding} if encoding else {})
    with urllib.request.urlopen(request, timeout=15) as response:
        body = response.read()
        headers = {k.lower(): v for k, v in response.headers.items()}
    keep = ("server", "content-encoding", "cache-control", "content-type")
    return {**{k: headers[k] for k in keep if k in headers}, "body_bytes": str(len(body))}


def run_section(lab: Lab, settings: LoadSettings) -> dict[str, Any]:
    if lab.current is None:
        lab.apply(WebSetup())
    path = hashed_css_path(lab.base)
    log(f"static file: {path}")
    results: dict[str, Any] = {"path": path, "points": {}}
    for encoding in ("", "gzip"):
        suffix = "gzip" if encoding else "identity"
        endpoint = Endpoint(path, accept_encoding=encoding, expect=b"{")
        results["points"][f"nginx_{suffix}"] = {
            "server": "nginx (stack's static location)",
            "response": _headers(lab.base + path, encoding),
            **asdict(measure(lab.base, endpoint, settings)),
        }
    lab.apply(WHITENOISE)
    for encoding in ("", "gzip"):
        suffix = "gzip" if encoding else "identity"
        endpoint = Endpoint(path, accept_encoding=encoding, expect=b"{")
        results["points"][f"whitenoise_{suffix}"] = {
            "server": WHITENOISE.label,
            "response": _headers(lab.direct_base + path, encoding),
            **asdict(measure(lab.direct_base, endpoint, settings)),
        }
    return results
