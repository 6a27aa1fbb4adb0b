"""The rendered files pass the real tools: hadolint, shellcheck, `docker compose config` (dev
alone, and prod merged on top without a .env) and `nginx -t` in the nginx image. The
entrypoint's process supervision runs for real under the host's /bin/sh with stand-ins for
python and daphne."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from stackctl.core.render import render_set
from tests.render.stackfiles import (
    CASES,
    PROD_FILES,
    Case,
    compose_config,
    find_tool,
    load_fixture,
    own_files,
    render_case,
    run,
    write_tree,
)

DEV, PROD, TLS_DEV, TLS_PROD, ACME_PROD = CASES


def _render_variant(tmp_path: Path, **extra: str) -> Path:
    cfg = load_fixture("dev.env", "dev", tmp_path, extra=extra)
    write_tree(tmp_path, own_files(render_set(cfg)))
    return tmp_path


# -- hadolint and shellcheck ------------------------------------------------------------------


@pytest.mark.parametrize(
    "dependency_file", ["requirements.txt", "requirements/production.txt", "pyproject.toml", "Pipfile.lock"]
)
def test_hadolint_passes(dependency_file: str, tmp_path: Path) -> None:
    hadolint = find_tool("hadolint")
    root = _render_variant(tmp_path, DJANGO_DEPENDENCY_FILE=dependency_file)
    result = run([hadolint, "--no-color", "compose/Dockerfile"], cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("concurrency", ["1", "3"])
def test_shellcheck_passes(concurrency: str, tmp_path: Path) -> None:
    shellcheck = find_tool("shellcheck")
    root = _render_variant(tmp_path, WEB_CONCURRENCY=concurrency)
    result = run([shellcheck, "--shell=sh", "--severity=style", "compose/entrypoint.sh"], cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the entrypoint's supervision, with stand-ins ---------------------------------------------

# The entrypoint runs everything through python: PREPARE (`python -c CODE`, no --port) and
# each daphne launcher (`python -c LAUNCH --bind ... --port N ...`). The stand-in prepares in
# PREPARE_SECONDS, or fails when PREPARE_FAILS is set; as a launcher it loads, waits for the
# READY file, then serves until TERM; the port named by EXIT_PORT exits with EXIT_STATUS (3:
# the app cannot load) after a moment: every time, or only the first time when EXIT_ONCE names
# a folder for its marker.
FAKE_PYTHON = """#!/bin/sh
case " $* " in
    *" --port "*) ;;
    *)
        sleep "${PREPARE_SECONDS:-0}"
        if [ -n "${PREPARE_FAILS:-}" ]; then echo "prepare failed" >&2; exit 4; fi
        echo "prepared" >&2
        exit 0
        ;;
esac
port=""
while [ $# -gt 0 ]; do [ "$1" = --port ] && port=$2; shift; done
trap 'echo "stopped $port" >&2; exit 0' TERM
echo "loaded $port" >&2
while [ ! -e "$STACKCTL_READY_FILE" ]; do sleep 0.05; done
echo "serving $port" >&2
if [ "$port" = "${EXIT_PORT:-}" ] && ! [ -e "${EXIT_ONCE:-/nonexistent}/$port" ]; then
    sleep 1
    [ -n "${EXIT_ONCE:-}" ] && touch "$EXIT_ONCE/$port"
    exit "${EXIT_STATUS:-3}"
fi
while :; do sleep 0.1; done
"""


def _start_entrypoint(tmp_path: Path, workers: int, exit_port: str = "", **env_vars: str) -> subprocess.Popen[str]:
    root = _render_variant(tmp_path / "stack", WEB_CONCURRENCY=str(workers))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "EXIT_PORT": exit_port, **env_vars}
    env.pop("WEB_CONCURRENCY", None)
    return subprocess.Popen(
        ["/bin/sh", str(root / "compose/entrypoint.sh")], env=env, stderr=subprocess.PIPE, text=True
    )


def _wait_until_serving(proc: subprocess.Popen[str], workers: int) -> list[str]:
    """Every stand-in serves, and with several the supervisor has said so (its trap is set)."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        serving = sum(line.startswith("serving") for line in seen)
        announced = any(line.startswith("entrypoint: daphne runs") for line in seen)
        if serving == workers and announced:
            break
        seen.append(proc.stderr.readline().strip())
    return seen


def test_entrypoint_exits_non_zero_when_one_daphne_cannot_load_the_app(tmp_path: Path) -> None:
    proc = _start_entrypoint(tmp_path, workers=3, exit_port="8001")
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "(port 8001) could not load the app (exit 3); stopping the others" in err
    assert {"stopped 8000", "stopped 8002"} <= set(err.splitlines())
    assert err.count("serving 8001") == 1  # not restarted


def test_entrypoint_restarts_a_dead_daphne_alone(tmp_path: Path) -> None:
    marker = tmp_path / "exited"
    marker.mkdir()
    proc = _start_entrypoint(tmp_path, workers=3, exit_port="8001", EXIT_STATUS="137", EXIT_ONCE=str(marker))
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and seen.count("serving 8001") < 2:
            seen.append(proc.stderr.readline().strip())
        assert proc.poll() is None, seen  # the container carries on
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    lines = [*seen, *err.splitlines()]
    assert lines.count("serving 8001") == 2, lines
    assert any("(port 8001) died (exit 137); restarting it alone in 0s" in line for line in lines), lines
    # the others were never stopped before the SIGTERM, nor started twice
    assert lines.count("serving 8000") == lines.count("serving 8002") == 1, lines
    assert {"stopped 8000", "stopped 8001", "stopped 8002"} <= set(err.splitlines())
    assert proc.returncode == 143


def test_entrypoint_stops_when_a_daphne_keeps_dying(tmp_path: Path) -> None:
    # each death within a minute of the start: restarted after 0, 1, 2, 4, 8 s, then the end
    proc = _start_entrypoint(tmp_path, workers=2, exit_port="8000", EXIT_STATUS="1")
    start = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert err.count("serving 8000") == 6, err
    assert "restarting it alone in 8s" in err and "restarting it alone in 16s" not in err
    assert "died 6 times, each within a minute of its start; stopping the others" in err
    assert "stopped 8001" in err.splitlines()
    assert time.monotonic() - start >= 15  # the back-off: 1 + 2 + 4 + 8 s


@pytest.mark.parametrize("workers", [1, 3])
def test_entrypoint_passes_sigterm_to_every_daphne(workers: int, tmp_path: Path) -> None:
    proc = _start_entrypoint(tmp_path, workers=workers)
    try:
        seen = _wait_until_serving(proc, workers)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    stopped = {line for line in [*seen, *err.splitlines()] if line.startswith("stopped")}
    assert stopped == {f"stopped {8000 + i}" for i in range(workers)}
    assert proc.returncode == 143


def test_entrypoint_loads_daphne_during_prepare_and_serves_only_after_it(tmp_path: Path) -> None:
    proc = _start_entrypoint(tmp_path, workers=2, PREPARE_SECONDS="1")
    try:
        seen = _wait_until_serving(proc, 2)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
    prepared = seen.index("prepared")
    assert all(seen.index(f"loaded {port}") < prepared for port in (8000, 8001)), seen  # loaded meanwhile
    assert all(seen.index(f"serving {port}") > prepared for port in (8000, 8001)), seen  # listening after


def test_entrypoint_stops_the_loaded_daphnes_when_prepare_fails(tmp_path: Path) -> None:
    proc = _start_entrypoint(tmp_path, workers=2, PREPARE_SECONDS="0.5", PREPARE_FAILS="1")
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 4, err
    lines = err.splitlines()
    assert "entrypoint: preparing the container failed (exit 4); stopping" in lines
    assert {"stopped 8000", "stopped 8001"} <= set(lines) and not any(line.startswith("serving") for line in lines)


def test_entrypoint_runs_any_other_command(tmp_path: Path) -> None:
    root = _render_variant(tmp_path)
    result = run(["/bin/sh", str(root / "compose/entrypoint.sh"), "echo", "hello"])
    assert (result.returncode, result.stdout) == (0, "hello\n")


# -- docker compose config --------------------------------------------------------------------


def _prod_tree(tmp_path: Path, case: Case, base: Case) -> Path:
    """The base file rendered from the dev settings, the prod files from the prod settings, a
    placeholder backup/Dockerfile, and no .env at all."""
    write_tree(tmp_path, own_files(render_case(base, tmp_path)))
    (tmp_path / ".env").unlink()
    write_tree(tmp_path, own_files(render_case(case, tmp_path)))
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def test_compose_config_dev(docker_compose: list[str], tmp_path: Path) -> None:
    write_tree(tmp_path, own_files(render_case(DEV, tmp_path)))
    config = compose_config(docker_compose, tmp_path, ["docker-compose.yml"], ".env")
    services = config["services"]
    assert set(services) == {"web", "db", "redis", "nginx"}
    for name, service in services.items():
        check = service["healthcheck"]
        assert {"test", "interval", "timeout", "retries", "start_period"} <= set(check), name
    # Started, not healthy: compose polls a service_healthy dependency every 500 ms, which
    # held every redeploy up; the entrypoint waits for the database and `stackctl up` for health.
    assert {d: v["condition"] for d, v in services["web"]["depends_on"].items()} == {
        "db": "service_started",
        "redis": "service_started",
    }
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_started"
    # nginx reaches daphne on sockets in a shared in-memory volume, so web's recreation needs
    # no nginx restart; nginx may only read it.
    assert not services["nginx"]["depends_on"]["web"].get("restart", False)
    sockets = {name: [v for v in services[name]["volumes"] if v["source"] == "sockets"] for name in ("web", "nginx")}
    assert [(v["target"], v.get("read_only", False)) for v in sockets["web"]] == [("/run/stackctl", False)]
    assert [(v["target"], v.get("read_only", False)) for v in sockets["nginx"]] == [("/run/stackctl", True)]
    assert config["volumes"]["sockets"]["driver_opts"]["type"] == "tmpfs"
    assert services["web"]["build"]["args"]["PYTHON_IMAGE"] == "python:3.13-slim-trixie"
    assert services["web"]["build"]["secrets"][0]["source"] == "ca_bundle"
    assert config["secrets"]["ca_bundle"]["file"] == "/dev/null"
    assert services["db"]["environment"]["POSTGRES_USER"] == "django"
    assert "ports" not in services["db"] and "ports" not in services["redis"]
    assert [(p["host_ip"], p["published"], p["target"]) for p in services["nginx"]["ports"]] == [
        ("127.0.0.1", "8080", 80)
    ]
    # `backups` is declared here for prod's backup service; compose lists only used volumes.
    assert set(config["volumes"]) == {"postgres_data", "media", "static", "sockets"}
    assert "\n  backups:\n" in (tmp_path / "docker-compose.yml").read_text()


@pytest.mark.parametrize(("case", "base"), [(PROD, DEV), (TLS_PROD, TLS_DEV)], ids=["plain", "tls"])
def test_compose_config_prod_merge_needs_no_dot_env(
    case: Case, base: Case, docker_compose: list[str], tmp_path: Path
) -> None:
    root = _prod_tree(tmp_path, case, base)
    cfg = load_fixture(case.env, "prod", tmp_path)
    config = compose_config(docker_compose, root, PROD_FILES, ".env.prod")
    services = config["services"]
    assert set(services) == {"web", "db", "redis", "nginx", "backup", "pgbackrest"}
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["logging"]["driver"] == "json-file", name
        assert set(service["logging"]["options"]) == {"max-size", "max-file"}, name
    for name in ("web", "backup"):
        # .env.prod was read (the dev fixture sets no ALLOWED_HOSTS); db reads none of it.
        assert services[name]["environment"]["DJANGO_ALLOWED_HOSTS"] == ",".join(cfg.django.django_allowed_hosts)
    assert "ports" not in services["db"] and "ports" not in services["redis"]
    web = services["web"]
    assert web["environment"]["WEB_CONCURRENCY"] == str(cfg.resources.web_concurrency)
    assert web["environment"]["DJANGO_ASGI_APPLICATION"] == cfg.django.django_asgi_application
    # built from compose/Dockerfile.prod, rendered from .env.prod (no dev build argument survives)
    assert web["build"]["dockerfile"] == "compose/Dockerfile.prod" and set(web["build"]["args"]) == {"PYTHON_IMAGE"}
    assert web["environment"]["STATIC_ROOT"] == cfg.storage.static_root
    mounts = {v["target"]: v for v in web["volumes"]}
    assert set(mounts) == {cfg.storage.static_root, cfg.storage.media_root, "/run/stackctl", "/run/secrets"}
    # the config travels in named volumes (stackctl/core/configvolumes.py): no bind mount at all
    assert {v["type"] for s in services.values() for v in s.get("volumes", [])} == {"volume"}
    assert mounts["/run/secrets"]["source"] == "web_secrets" and mounts["/run/secrets"]["read_only"]
    assert web["deploy"]["resources"]["limits"]["cpus"] == float(cfg.resources.web_cpu_limit)
    assert services["db"]["environment"]["POSTGRES_USER"] == cfg.database.postgres_user
    nginx = services["nginx"]
    assert {"source": "sockets", "target": "/run/stackctl", "read_only": True} in [
        {k: v[k] for k in ("source", "target", "read_only") if k in v} for v in nginx["volumes"]
    ]
    conf = {v["target"]: v["source"] for v in nginx["volumes"]}
    assert conf["/etc/nginx/stackctl"] == "nginx_config"
    assert nginx["command"] == ["nginx", "-c", "/etc/nginx/stackctl/nginx.conf", "-g", "daemon off;"]
    assert re.fullmatch(r"[0-9a-f]{16}", nginx["labels"]["io.stackctl.nginx-conf"])
    published = sorted(p["target"] for p in nginx["ports"])
    assert published == ([80, 443] if cfg.nginx.use_tls else [80])
    assert conf.get("/etc/nginx/certs") == ("nginx_certs" if cfg.nginx.use_tls else None)
    backup = services["backup"]
    assert backup["build"]["args"]["POSTGRES_IMAGE"] == "postgres:17-trixie"
    assert backup["depends_on"]["db"]["condition"] == "service_healthy"
    assert backup["healthcheck"]["test"] == ["CMD", "backup_healthcheck.sh"]
    assert backup["stop_grace_period"] == "1m0s"
    assert {v["target"] for v in backup["volumes"]} == {"/backups", cfg.storage.media_root, "/run/secrets"}
    assert set(config["secrets"]) == {"ca_bundle"}  # no secret is a file of the client's


def test_compose_config_acme(docker_compose: list[str], tmp_path: Path) -> None:
    """TLS_CERT_SOURCE=acme: the backup service keeps the certificates nginx reads, and nginx
    answers its public names on the stack's network (an ACME server there validates through them)."""
    root = _prod_tree(tmp_path, ACME_PROD, TLS_DEV)
    cfg = load_fixture(ACME_PROD.env, "prod", tmp_path)
    services = compose_config(docker_compose, root, PROD_FILES, ".env.prod")["services"]
    nginx, backup = services["nginx"], services["backup"]
    mounts = {v["target"]: (v["source"], v.get("read_only", False)) for v in nginx["volumes"]}
    assert mounts["/etc/nginx/certs"] == ("nginx_certs", True)
    assert mounts["/var/www/acme"] == ("acme_webroot", True)
    assert nginx["networks"]["default"]["aliases"] == cfg.nginx.server_names == ["example.com", "www.example.com"]
    backup_mounts = {v["target"]: (v["source"], v.get("read_only", False)) for v in backup["volumes"]}
    assert backup_mounts["/nginx-certs"] == ("nginx_certs", False)
    assert backup_mounts["/acme"] == ("acme", False) and backup_mounts["/acme-webroot"] == ("acme_webroot", False)
    assert backup["group_add"] == ["101"]
    env = backup["environment"]
    assert env["ACME_DOMAINS"] == "example.com www.example.com"
    assert env["ACME_DIRECTORY_URL"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert (env["ACME_RENEW_CRON"], env["ACME_RENEW_DAYS"]) == ("17 4,16 * * *", "30")
    conf = (root / "nginx" / "nginx.prod.conf").read_text()
    assert "ssl_certificate /etc/nginx/certs/$stackctl_certificate/fullchain.pem;" in conf
    assert "\nuser nginx;" in conf


# -- nginx -t in the nginx image --------------------------------------------------------------

NGINX_IMAGES = ("stackctl/nginx:1.22-bookworm", "nginx:1.22")


@pytest.fixture(scope="module")
def nginx_image() -> str:
    """An nginx image that is already here; never pulled."""
    from python_on_whales import DockerClient

    from tests.render.stackfiles import missing

    docker = DockerClient()
    for image in NGINX_IMAGES:
        if docker.image.exists(image):
            return image
    missing(f"an nginx image ({' or '.join(NGINX_IMAGES)}; `stackctl images build` makes the first)")
    raise AssertionError("unreachable")


@pytest.mark.engine
@pytest.mark.parametrize("case", [DEV, PROD, TLS_PROD, ACME_PROD], ids=lambda c: c.name)
def test_nginx_accepts_the_config(case: Case, nginx_image: str, test_certs: Path, tmp_path: Path) -> None:
    from python_on_whales import DockerClient

    rendered = own_files(render_case(case, tmp_path))
    name = "nginx/nginx.prod.conf" if case.profile == "prod" else "nginx/nginx.conf"
    conf = tmp_path / "nginx.conf"
    conf.write_bytes(rendered[name][0])
    output = DockerClient().run(
        nginx_image,
        ["sh", "-c", "nginx -t 2>&1"],
        remove=True,
        pull="never",
        add_hosts=[("web", "127.0.0.1")],
        volumes=[(conf, "/etc/nginx/nginx.conf", "ro"), (test_certs, "/etc/nginx/certs", "ro")],
    )
    assert isinstance(output, str)
    assert "test is successful" in output
    assert "[warn]" not in output and "[emerg]" not in output
