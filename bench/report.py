"""Ratios, targets and the printed table, computed from the results JSON alone (no engine needed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MB = 1e6


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    goal: str  # ">= 2.0" or "<= 0.25"
    source: str  # how the value is computed from the JSON

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        op, _, bound = self.goal.partition(" ")
        return self.value >= float(bound) if op == ">=" else self.value <= float(bound)


def _get(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def ratio(data: dict[str, Any], top: str, bottom: str) -> float | None:
    """data[top] / data[bottom] for dotted paths; None when either is missing or zero."""
    a, b = _get(data, top), _get(data, bottom)
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    return round(a / b, 3)


REQ = "sections.requests.setups"
RATIOS: dict[str, tuple[str, str]] = {
    # requests
    "graphql_rps_a_over_b": (f"{REQ}.a_stackctl_default.graphql.rps", f"{REQ}.b_daphne_1_seed_nginx.graphql.rps"),
    "graphql_rps_a_over_c": (f"{REQ}.a_stackctl_default.graphql.rps", f"{REQ}.c_gunicorn_uvicorn_nginx.graphql.rps"),
    "healthz_rps_a_over_b": (f"{REQ}.a_stackctl_default.healthz.rps", f"{REQ}.b_daphne_1_seed_nginx.healthz.rps"),
    "healthz_rps_a_over_c": (f"{REQ}.a_stackctl_default.healthz.rps", f"{REQ}.c_gunicorn_uvicorn_nginx.healthz.rps"),
    # the ASGI_SERVER option (granian) against cookiecutter-django's server and against the default
    "graphql_rps_option_over_c": (
        f"{REQ}.option_granian_nginx.graphql.rps",
        f"{REQ}.c_gunicorn_uvicorn_nginx.graphql.rps",
    ),
    "healthz_rps_option_over_c": (
        f"{REQ}.option_granian_nginx.healthz.rps",
        f"{REQ}.c_gunicorn_uvicorn_nginx.healthz.rps",
    ),
    "graphql_rps_option_over_a": (f"{REQ}.option_granian_nginx.graphql.rps", f"{REQ}.a_stackctl_default.graphql.rps"),
    "graphql_rps_daphne_1_nginx_over_direct": (
        f"{REQ}.daphne_1_nginx.graphql.rps",
        f"{REQ}.d_daphne_1_direct.graphql.rps",
    ),
    "graphql_rps_c_over_d_gunicorn": (
        f"{REQ}.c_gunicorn_uvicorn_nginx.graphql.rps",
        f"{REQ}.d_gunicorn_uvicorn_direct.graphql.rps",
    ),
    "healthz_rps_e_over_a": (
        "sections.requests.e_nginx_alone.nginx_health.rps",
        f"{REQ}.a_stackctl_default.healthz.rps",
    ),
    "graphql_rps_a_over_a_no_pool": (
        f"{REQ}.a_stackctl_default.graphql.rps",
        f"{REQ}.a_no_pool_nginx.graphql.rps",
    ),
    "graphql_rps_a_over_c_no_pool": (
        f"{REQ}.a_stackctl_default.graphql.rps",
        f"{REQ}.c_gunicorn_uvicorn_no_pool_nginx.graphql.rps",
    ),
    "graphql_rps_a_over_daphne_1_pool": (
        f"{REQ}.a_stackctl_default.graphql.rps",
        f"{REQ}.daphne_1_nginx.graphql.rps",
    ),
    # static
    "static_rps_nginx_over_whitenoise": (
        "sections.static.points.nginx_identity.rps",
        "sections.static.points.whitenoise_identity.rps",
    ),
    "static_rps_nginx_over_whitenoise_gzip": (
        "sections.static.points.nginx_gzip.rps",
        "sections.static.points.whitenoise_gzip.rps",
    ),
    # build
    "redeploy_stackctl_over_naive": (
        "sections.build.stackctl.code_change_redeploy_seconds",
        "sections.build.naive.code_change_redeploy_seconds",
    ),
    "code_change_build_stackctl_over_naive": (
        "sections.build.stackctl.code_change_build_only_seconds",
        "sections.build.naive.code_change_build_only_seconds",
    ),
    "redeploy_2s_healthcheck_over_naive": (
        "sections.build.slow_healthcheck.code_change_redeploy_seconds",
        "sections.build.naive.code_change_redeploy_seconds",
    ),
    "cold_build_stackctl_over_naive": (
        "sections.build.stackctl.cold_build_seconds",
        "sections.build.naive.cold_build_seconds",
    ),
    "image_bytes_stackctl_over_naive": ("sections.build.stackctl.image_bytes", "sections.build.naive.image_bytes"),
    # backup: speed-ups over cookiecutter's gunzip | psql (higher is faster)
    "restore_speedup_cli": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.stackctl.restore_cli_seconds",
    ),
    "restore_speedup_script": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.stackctl.restore_script_wall_seconds",
    ),
    # pgBackRest (PITR_ENABLED): `stackctl restore db --to latest` end to end (safety point,
    # stops, delta restore, WAL replay, promotion, starts), and its restore into an empty folder
    "restore_speedup_pgbackrest_cli": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.pgbackrest.restore_cli_seconds",
    ),
    "restore_speedup_pgbackrest_empty": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.pgbackrest.restore_empty_seconds",
    ),
    "restore_speedup_pg_restore_j2": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.stackctl.pg_restore_j2_seconds",
    ),
    "restore_speedup_pg_restore_j1": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.stackctl.pg_restore_j1_seconds",
    ),
    "restore_speedup_pg_restore_j4": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.stackctl.pg_restore_j4_seconds",
    ),
    "restore_speedup_raw_psql": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.raw_plain.restore_seconds",
    ),
    "restore_speedup_z1_j2": (
        "sections.backup.cookiecutter.restore_seconds",
        "sections.backup.custom_z1.pg_restore_j2_seconds",
    ),
    "backup_seconds_stackctl_over_cookiecutter": (
        "sections.backup.stackctl.backup_script_seconds",
        "sections.backup.cookiecutter.backup_seconds",
    ),
    "backup_bytes_stackctl_over_cookiecutter": ("sections.backup.stackctl.bytes", "sections.backup.cookiecutter.bytes"),
    # cli
    "status_over_compose_ps": ("sections.cli.stackctl_status.median", "sections.cli.compose_ps.median"),
}


def compute_ratios(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {"value": ratio(data, top, bottom), "top": top, "bottom": bottom}
        for name, (top, bottom) in RATIOS.items()
    }


def targets(data: dict[str, Any]) -> list[Target]:
    r = {name: item["value"] for name, item in compute_ratios(data).items()}
    return [
        Target(
            "GraphQL req/s, (a) / (c) gunicorn+uvicorn", r["graphql_rps_a_over_c"], ">= 1.0", "graphql_rps_a_over_c"
        ),
        Target(
            "GraphQL req/s, ASGI_SERVER=granian / (c)",
            r["graphql_rps_option_over_c"],
            ">= 1.2",
            "graphql_rps_option_over_c",
        ),
        Target("GraphQL req/s, (a) / (b) one daphne", r["graphql_rps_a_over_b"], ">= 2.0", "graphql_rps_a_over_b"),
        Target(
            "static req/s, nginx / WhiteNoise",
            r["static_rps_nginx_over_whitenoise"],
            ">= 5.0",
            "static_rps_nginx_over_whitenoise",
        ),
        Target(
            "code-only redeploy, stackctl / naive",
            r["redeploy_stackctl_over_naive"],
            "<= 0.25",
            "redeploy_stackctl_over_naive",
        ),
        Target(
            "restore speed-up over gunzip|psql: `stackctl restore db` end to end",
            r["restore_speedup_cli"],
            ">= 1.5",
            "restore_speedup_cli",
        ),
        Target(
            "restore speed-up over gunzip|psql: pgBackRest, `restore db --to latest` end to end",
            r["restore_speedup_pgbackrest_cli"],
            ">= 3.0",
            "restore_speedup_pgbackrest_cli",
        ),
        Target(
            "restore speed-up over gunzip|psql: pgBackRest restore into an empty folder",
            r["restore_speedup_pgbackrest_empty"],
            ">= 3.0",
            "restore_speedup_pgbackrest_empty",
        ),
        Target(
            "restore speed-up over gunzip|psql: restore_db.sh (checks+load+swap)",
            r["restore_speedup_script"],
            ">= 1.5",
            "restore_speedup_script",
        ),
        Target(
            "restore speed-up over gunzip|psql: pg_restore -j 2 load step",
            r["restore_speedup_pg_restore_j2"],
            ">= 1.5",
            "restore_speedup_pg_restore_j2",
        ),
        Target(
            "`stackctl status` / `docker compose ps`", r["status_over_compose_ps"], "<= 1.5", "status_over_compose_ps"
        ),
        Target("`stackctl --version`, s", _get(data, f"{CLI_VERSION}.median"), "<= 0.15", CLI_VERSION),
        Target("`stackctl --help`, s", _get(data, f"{CLI_HELP}.median"), "<= 0.15", CLI_HELP),
    ]


CLI_VERSION = "sections.cli.breakdown.stackctl_version"
CLI_HELP = "sections.cli.breakdown.stackctl_help"


# -- the printed table ---------------------------------------------------------------------------------
def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _requests(sec: dict[str, Any]) -> list[str]:
    s = sec["load_settings"]
    out = [
        f"== Requests: wrk -t{s['threads']} -c{s['connections']} -d{s['seconds']}s"
        f" (after {s['warmup_seconds']}s warm-up), 127.0.0.1 =="
    ]
    rows = []
    for key, e in sec["setups"].items():
        h, g = e["healthz"], e["graphql"]
        bad = "" if sum(h["errors"].values()) + sum(g["errors"].values()) == 0 else " !errors"
        if len(e.get("graphql_runs_rps", [])) > 1:
            bad += f" (GraphQL: median of {len(e['graphql_runs_rps'])})"
        rows.append(
            [
                key + bad,
                str(e["web_concurrency"]),
                _fmt(h["rps"]),
                _fmt(h["p50_ms"]),
                _fmt(h["p99_ms"]),
                _fmt(g["rps"]),
                _fmt(g["p50_ms"]),
                _fmt(g["p99_ms"]),
                _fmt(g.get("web_cpu_ms_per_request"), ".2f"),
            ]
        )
    if "e_nginx_alone" in sec:
        n = sec["e_nginx_alone"]["nginx_health"]
        rows.append(
            ["e_nginx_alone (/nginx-health)", "-", _fmt(n["rps"]), _fmt(n["p50_ms"]), _fmt(n["p99_ms"])] + ["-"] * 4
        )
    header = ["setup", "procs", "healthz r/s", "p50 ms", "p99 ms", "GraphQL r/s", "p50 ms", "p99 ms", "web CPU ms/req"]
    out += _rows(header, rows)
    return out


def _static(sec: dict[str, Any]) -> list[str]:
    out = [f"== Static: {sec['path']} =="]
    rows = [
        [
            k,
            p["response"].get("content-encoding", "identity"),
            p["response"]["body_bytes"],
            _fmt(p["rps"]),
            _fmt(p["p50_ms"]),
            _fmt(p["p99_ms"]),
        ]
        for k, p in sec["points"].items()
    ]
    return out + _rows(["server", "encoding", "bytes", "req/s", "p50 ms", "p99 ms"], rows)


def _build(sec: dict[str, Any]) -> list[str]:
    s, n = sec["stackctl"], sec["naive"]
    rows = [
        ["cold build (no layer cache)", _fmt(s["cold_build_seconds"]), _fmt(n["cold_build_seconds"])],
        ["rebuild, no change", _fmt(s["rebuild_no_change_seconds"]), _fmt(n["rebuild_no_change_seconds"])],
        [
            "code-only change: build only",
            _fmt(s["code_change_build_only_seconds"]),
            _fmt(n["code_change_build_only_seconds"]),
        ],
        [
            "code-only change: deploy only (up --wait)",
            _fmt(s["code_change_up_only_seconds"]),
            _fmt(n["code_change_up_only_seconds"]),
        ],
        [
            "code-only change: rebuild + redeploy to healthy",
            _fmt(s["code_change_redeploy_seconds"]),
            _fmt(n["code_change_redeploy_seconds"]),
        ],
        [
            "  what-if web healthcheck every 2 s",
            _fmt(sec["slow_healthcheck"]["code_change_redeploy_seconds"]),
            "-",
        ],
        ["image size (MB)", _fmt(s["image_bytes"] / MB, ".0f"), _fmt(n["image_bytes"] / MB, ".0f")],
    ]
    return ["== Build and deploy (seconds) ==", *_rows(["step", "stackctl", "naive"], rows)]


def _backup(sec: dict[str, Any]) -> list[str]:
    st, cc, raw, z1 = sec["stackctl"], sec["cookiecutter"], sec["raw_plain"], sec["custom_z1"]
    head = (
        f"== Backup and restore: {sec['rows']} rows in {sec['tables']} tables, "
        f"database {sec['database_bytes'] / MB:.0f} MB (seconds; MB) =="
    )
    rows = [
        [
            "stackctl backup now db (custom, default -Z)",
            _fmt(st["backup_cli_seconds"]),
            _fmt(st["bytes"] / MB, ".0f"),
            f"stackctl restore db (end to end): {_fmt(st['restore_cli_seconds'])}",
        ],
        ["", "", "", f"restore_db.sh (checks+load+swap): {_fmt(st['restore_script_wall_seconds'])}"],
        [
            "",
            "",
            "",
            f"pg_restore -j 1 / -j 2 / -j 4: {_fmt(st['pg_restore_j1_seconds'])} / "
            f"{_fmt(st['pg_restore_j2_seconds'])} / {_fmt(st['pg_restore_j4_seconds'])}",
        ],
        [
            "",
            "",
            "",
            f"integrity: sha256 {_fmt(st['sha256_seconds'])}, read-through {_fmt(st['read_through_seconds'])}",
        ],
        [
            "cookiecutter: pg_dump | gzip",
            _fmt(cc["backup_seconds"]),
            _fmt(cc["bytes"] / MB, ".0f"),
            f"gunzip | psql: {_fmt(cc['restore_seconds'])}",
        ],
        *(
            [
                [
                    "pgBackRest full backup (backup now pitr)",
                    _fmt(sec["pgbackrest"]["backup_cli_seconds"]),
                    "",
                    f"restore db --to latest (end to end): {_fmt(sec['pgbackrest']['restore_cli_seconds'])}; "
                    f"into an empty folder: {_fmt(sec['pgbackrest']['restore_empty_seconds'])}",
                ]
            ]
            if "pgbackrest" in sec
            else []
        ),
        [
            "raw plain pg_dump (ceiling)",
            _fmt(raw["backup_seconds"]),
            _fmt(raw["bytes"] / MB, ".0f"),
            f"psql -f: {_fmt(raw['restore_seconds'])}",
        ],
        [
            "what-if: custom -Z 1",
            _fmt(z1["backup_seconds"]),
            _fmt(z1["bytes"] / MB, ".0f"),
            f"pg_restore -j 2: {_fmt(z1['pg_restore_j2_seconds'])}",
        ],
    ]
    return [head, *_rows(["method", "backup s", "MB", "restore"], rows)]


def _cli(sec: dict[str, Any]) -> list[str]:
    return [
        f"== CLI: median of {sec['runs']} runs ==",
        f"stackctl status --prod {sec['stackctl_status']['median']:.3f} s; "
        f"docker compose ps {sec['compose_ps']['median']:.3f} s",
        f"  of which stackctl start-up (`stackctl --version`) {sec['breakdown']['stackctl_version']['median']:.3f} s, "
        f"`docker info` {sec['breakdown']['docker_info']['median']:.3f} s",
        f"stackctl --help {_fmt((sec['breakdown'].get('stackctl_help') or {}).get('median'), '.3f')} s",
    ]


def render_table(data: dict[str, Any]) -> str:
    out: list[str] = []
    host = data.get("host", {})
    out.append(
        f"host: {host.get('nproc')} cores, {host.get('memory_bytes', 0) / 2**30:.1f} GiB, kernel {host.get('kernel')}, "
        f"docker {host.get('docker_server')}, {host.get('date')}; load average before {data.get('load_before')} "
        f"after {data.get('load_after')}"
    )
    sections = data.get("sections", {})
    for name, fn in (
        ("requests", _requests),
        ("static", _static),
        ("build", _build),
        ("backup", _backup),
        ("cli", _cli),
    ):
        if isinstance(sections.get(name), dict) and "error" not in sections[name]:
            out += ["", *fn(sections[name])]
        elif name in sections:
            out += ["", f"== {name}: FAILED: {sections[name].get('error')}"]
    curve = concurrency_curve(data)
    if curve:
        out += ["", "== daphne processes (WEB_CONCURRENCY) vs GraphQL req/s, behind nginx =="]
        out += _rows(
            ["processes", "GraphQL r/s", "p99 ms", "healthz r/s"],
            [
                [str(k), _fmt(v["graphql_rps"]), _fmt(v["graphql_p99_ms"]), _fmt(v["healthz_rps"])]
                for k, v in curve.items()
            ],
        )
    out += ["", "== Targets =="]
    out += _rows(
        ["target", "value", "goal", "met"],
        [[t.name, _fmt(t.value, ".2f"), t.goal, {True: "yes", False: "NO", None: "n/a"}[t.met]] for t in targets(data)],
    )
    return "\n".join(out)


def concurrency_curve(data: dict[str, Any]) -> dict[int, dict[str, float]]:
    """GraphQL req/s by number of daphne processes behind nginx (the default image and settings)."""
    setups = _get(data, REQ) or {}
    curve: dict[int, dict[str, float]] = {}
    for key, e in setups.items():
        s = e["setup"]
        plain = (
            not s["bench_image"]
            and s.get("db_pool", True)
            and not s.get("access_log", False)
            and s.get("loop", "auto") == "auto"
        )
        if e["via_nginx"] and s["server"] == "daphne" and plain:
            curve[e["web_concurrency"]] = {
                "graphql_rps": e["graphql"]["rps"],
                "graphql_p99_ms": e["graphql"]["p99_ms"],
                "healthz_rps": e["healthz"]["rps"],
                "key": key,
            }
    return dict(sorted(curve.items()))


def summary(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "ratios": compute_ratios(data),
        "targets": [{**asdict(t), "met": t.met} for t in targets(data)],
        "daphne_curve": concurrency_curve(data),
    }
