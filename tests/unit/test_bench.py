"""The benchmark report: ratios and targets recomputed from canned numbers (no engine, no timing)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.report import compute_ratios, concurrency_curve, ratio, render_table, summary, targets


def _point(rps: float) -> dict[str, Any]:
    return {"rps": rps, "p50_ms": 10.0, "p99_ms": 50.0, "errors": {"connect": 0, "read": 0, "status": 0}}


def _setup(conc: int, healthz: float, graphql: float, *, server: str = "daphne", nginx: bool = True) -> dict[str, Any]:
    return {
        "label": "x",
        "web_concurrency": conc,
        "via_nginx": nginx,
        "setup": {"server": server, "bench_image": False, "db_pool": True, "access_log": False},
        "healthz": _point(healthz),
        "graphql": _point(graphql),
    }


def canned() -> dict[str, Any]:
    return {
        "host": {"nproc": 2, "memory_bytes": 2**34},
        "sections": {
            "requests": {
                "load_settings": {"threads": 2, "connections": 32, "seconds": 8, "warmup_seconds": 2},
                "setups": {
                    "a_stackctl_default": _setup(2, 300.0, 120.0),
                    "b_daphne_1_seed_nginx": _setup(1, 150.0, 50.0),
                    "daphne_3_nginx": _setup(3, 310.0, 118.0),
                    "c_gunicorn_uvicorn_nginx": _setup(2, 450.0, 100.0, server="gunicorn"),
                    "option_granian_nginx": _setup(2, 600.0, 130.0, server="granian"),
                },
                "e_nginx_alone": {"nginx_health": _point(15000.0)},
            },
            "static": {
                "path": "/static/admin/css/base.0123456789ab.css",
                "points": {
                    "nginx_identity": {**_point(6000.0), "response": {"body_bytes": "100"}},
                    "whitenoise_identity": {**_point(600.0), "response": {"body_bytes": "100"}},
                },
            },
            "build": {
                "stackctl": {"code_change_redeploy_seconds": 10.0, "image_bytes": 300e6},
                "naive": {"code_change_redeploy_seconds": 50.0, "image_bytes": 400e6},
            },
            "backup": {
                "cookiecutter": {"restore_seconds": 30.0},
                "stackctl": {
                    "restore_cli_seconds": 90.0,
                    "restore_script_wall_seconds": 25.0,
                    "pg_restore_j2_seconds": 15.0,
                },
            },
            "cli": {"stackctl_status": {"median": 0.3}, "compose_ps": {"median": 0.2}},
        },
    }


def test_ratio_divides_dotted_paths_and_refuses_missing_or_zero() -> None:
    data = {"a": {"x": 3.0, "zero": 0}, "b": {"y": 2.0}}
    assert ratio(data, "a.x", "b.y") == 1.5
    assert ratio(data, "a.x", "a.zero") is None
    assert ratio(data, "a.x", "b.missing") is None


def test_ratios_are_recomputed_from_the_json() -> None:
    r = {name: item["value"] for name, item in compute_ratios(canned()).items()}
    assert r["graphql_rps_a_over_b"] == 2.4
    assert r["graphql_rps_a_over_c"] == 1.2
    assert r["graphql_rps_option_over_c"] == 1.3
    assert r["healthz_rps_option_over_c"] == 1.333
    assert r["graphql_rps_option_over_a"] == 1.083
    assert r["static_rps_nginx_over_whitenoise"] == 10.0
    assert r["redeploy_stackctl_over_naive"] == 0.2
    assert r["restore_speedup_pg_restore_j2"] == 2.0
    assert r["restore_speedup_cli"] == 0.333
    assert r["status_over_compose_ps"] == 1.5
    assert r["graphql_rps_a_over_a_no_pool"] is None  # not measured: no ratio, no crash


def test_targets_are_judged_in_the_right_direction() -> None:
    met = {t.source: t.met for t in targets(canned())}
    assert met["graphql_rps_a_over_c"] is True
    assert met["graphql_rps_option_over_c"] is True  # 1.3 >= 1.2
    assert met["graphql_rps_a_over_b"] is True
    assert met["static_rps_nginx_over_whitenoise"] is True
    assert met["redeploy_stackctl_over_naive"] is True  # 0.2 <= 0.25
    assert met["restore_speedup_cli"] is False  # 0.33 < 1.5
    assert met["restore_speedup_pg_restore_j2"] is True
    assert met["status_over_compose_ps"] is True  # 1.5 <= 1.5


def test_missing_sections_give_no_verdict() -> None:
    data = canned()
    del data["sections"]["backup"]
    met = {t.source: t.met for t in targets(data)}
    assert met["restore_speedup_cli"] is None


def test_the_option_target_needs_1_2_not_1_0() -> None:
    data = canned()
    data["sections"]["requests"]["setups"]["option_granian_nginx"]["graphql"]["rps"] = 115.0  # 1.15 x (c)
    met = {t.source: t.met for t in targets(data)}
    assert met["graphql_rps_option_over_c"] is False
    assert met["graphql_rps_a_over_c"] is True


def test_curve_and_table() -> None:
    data = canned()
    curve = concurrency_curve(data)
    assert list(curve) == [1, 2, 3]  # neither gunicorn nor granian is on the daphne curve
    assert curve[2]["key"] == "a_stackctl_default"
    assert curve[2]["graphql_rps"] == 120.0
    data["sections"]["requests"]["setups"]["option_granian_nginx"]["graphql"]["web_cpu_ms_per_request"] = 4.25
    data.update(summary(data))
    table = render_table({**data, "sections": {"requests": data["sections"]["requests"]}})
    assert "a_stackctl_default" in table and "== Targets ==" in table
    assert "web CPU ms/req" in table and "4.25" in table
    assert "ASGI_SERVER=granian / (c)" in table


def test_setups_names_only_known_web_set_ups(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.run import _args

    assert _args(["--setups", "a_stackctl_default,granian_4_nginx"]).setups == "a_stackctl_default,granian_4_nginx"
    with pytest.raises(SystemExit) as exc:
        _args(["--setups", "a_stackctl_default,daphne_9_nginx"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown set-up(s): daphne_9_nginx" in err
    assert "c_gunicorn_uvicorn_2x_nginx" in err  # the known keys are listed


def test_upstream_keepalive_what_if_edits_only_the_upstream_and_the_connection_map() -> None:
    from bench.host import REPO, BenchError
    from bench.lab import upstream_keepalive

    conf = (REPO / "nginx" / "nginx.prod.conf").read_text()
    changed = upstream_keepalive(conf)
    block = changed[changed.index("    upstream web {") :]
    block = block[: block.index("}")]
    assert "daphne-8000.sock" in block and "keepalive 32;" in block and "keepalive_time 2s;" in block
    assert '""      close;' not in changed and '""      "";' in changed
    assert len(changed.splitlines()) == len(conf.splitlines()) + 2
    with pytest.raises(BenchError):
        upstream_keepalive(conf.replace("upstream web {", "upstream app {"))
