"""The prod stack on a real engine: deploy checks, no exposed db/redis, non-root, no secrets in
image layers, self-healing after kill -9 with committed rows intact, and one daphne process
killed while the others serve."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import threading
import time

import pytest
from python_on_whales import Container, DockerClient

from tests.e2e.stackenv import Proj, containers, http

pytestmark = pytest.mark.engine
docker = DockerClient()


def test_check_deploy_reports_no_issues(prod: Proj) -> None:
    proc = prod.stackctl("manage", "check", "--deploy", "--fail-level", "WARNING")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout + proc.stderr


def test_https_serves_graphql_and_http_redirects(prod: Proj) -> None:
    data = prod.gql("{ ping }", base=prod.base_tls)
    assert data == {"ping": "pong"}
    plain = http(f"{prod.base}/graphql")
    assert plain.status == 301 and plain.headers["location"].startswith("https://")
    tls = http(f"{prod.base_tls}/healthz")
    assert "max-age=31536000" in tls.headers.get("strict-transport-security", "")


def test_hashed_static_files_are_cached_for_a_year(prod: Proj) -> None:
    import re

    login = http(f"{prod.base_tls}/admin/login/")
    css = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.body)
    assert css, "prod (DEBUG off) serves manifest-hashed static names"
    resp = http(f"{prod.base_tls}{css.group(1).decode()}", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200 and resp.headers.get("content-encoding") == "gzip"
    assert "max-age=31536000" in resp.headers["cache-control"] and "immutable" in resp.headers["cache-control"]


def test_daphne_writes_no_access_log_and_runs_on_uvloop(prod: Proj) -> None:
    # daphne logs every request to stdout at verbosity 1 unless given a file; in prod nginx
    # already logs them, and the line per request cost the log driver (dockerd) ~10 % of a core.
    marker = f"/healthz?access-log-probe={os.getpid()}"
    for _ in range(3):
        assert http(f"{prod.base_tls}{marker}").status == 200
    web = containers(prod, "web")[0]
    logs = docker.container.logs(web)
    assert "access-log-probe" not in logs, logs[-2000:]
    # the example installs uvloop, so every daphne process runs its event loop on it
    probe = (
        "import os\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    if int(pid) == os.getpid(): continue\n"
        "    try: cmd, maps = open(f'/proc/{pid}/cmdline', 'rb').read(), open(f'/proc/{pid}/maps').read()\n"
        "    except OSError: continue\n"
        "    if b'daphne.cli' in cmd: print('uvloop' if '/uvloop/' in maps else 'asyncio')\n"
    )
    loops = web.execute(["python", "-c", probe])
    assert loops.split() and set(loops.split()) == {"uvloop"}, loops


def test_db_and_redis_publish_no_host_port(prod: Proj) -> None:
    status = json.loads(prod.stackctl("status", "--json", check=True).stdout)
    ports = {s["service"]: s["ports"] for s in status["services"]}
    assert ports["db"] == [] and ports["redis"] == []
    assert ports["nginx"], "nginx publishes the stack's ports"
    assert {s["service"] for s in status["services"]} >= {"web", "db", "redis", "nginx", "backup"}


def test_web_runs_as_non_root_with_debug_off(prod: Proj) -> None:
    web = containers(prod, "web")[0]
    assert web.execute(["id", "-u"]).strip() != "0"
    debug = web.execute(
        ["python", "-c", "import django,os; django.setup(); from django.conf import settings; print(settings.DEBUG)"]
    )
    assert debug.strip() == "False"
    missing = http(f"{prod.base_tls}/no-such-page-{os.getpid()}")
    assert missing.status == 404 and b"Traceback" not in missing.body and b"DEBUG = True" not in missing.body


def test_no_secret_in_image_history_or_layers(prod: Proj) -> None:
    secrets = [prod.env["DJANGO_SECRET_KEY"].encode(), prod.env["POSTGRES_PASSWORD"].encode()]
    web = containers(prod, "web")[0]
    image = docker.image.inspect(web.image)
    for secret in secrets:
        assert secret.decode() not in json.dumps(image.config.env or [])
    # every layer of the saved image, byte for byte, and its config blob (which holds the history)
    raw = b"".join(docker.image.save(image.id))
    with tarfile.open(fileobj=io.BytesIO(raw)) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            blob = outer.extractfile(member).read()  # type: ignore[union-attr]
            for secret in secrets:
                assert secret not in blob, f"a secret is inside {member.name}"


def _kill9(container: Container) -> None:
    os.kill(container.state.pid, signal.SIGKILL)


@pytest.mark.parametrize("service", ["web", "db", "redis"])
def test_kill_9_heals_and_keeps_committed_rows(prod: Proj, service: str) -> None:
    title = f"committed before killing {service}"
    prod.gql('mutation($t: String!) { createNote(title: $t, body: "x") { id } }', {"t": title}, base=prod.base_tls)
    _kill9(containers(prod, service)[0])
    assert prod.wait_healthy(60), prod.stackctl("status").stdout + prod.stackctl("logs", service, "--tail", "30").stdout
    ready = http(f"{prod.base_tls}/readyz")
    assert ready.status == 200, ready.body
    titles = [n["title"] for n in prod.gql("{ notes { title } }", base=prod.base_tls)["notes"]]
    assert title in titles


# every daphne process of web (the LAUNCH code names daphne.cli): "PID PORT" lines
_DAPHNE_PIDS = (
    "import os\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try: cmd = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
    "    except OSError: continue\n"
    "    if b'--port' in cmd and any(b'daphne.cli' in part for part in cmd):\n"
    "        print(pid, cmd[cmd.index(b'--port') + 1].decode())\n"
)


def _daphnes(web: Container) -> dict[str, str]:
    """{port: pid} of the daphne processes in web."""
    lines = web.execute(["python", "-c", _DAPHNE_PIDS]).splitlines()
    return {port: pid for pid, port in (line.split() for line in lines)}


def _healthy(web: Container) -> bool:
    """web's own healthcheck passes: every daphne port answers, nginx's sockets are served."""
    check = "docker-entrypoint.sh healthcheck >/dev/null 2>&1 && echo ok || echo failing"
    return web.execute(["sh", "-c", check]).strip().endswith("ok")


def test_kill_9_of_one_daphne_process_restarts_it_alone(prod: Proj) -> None:
    web = containers(prod, "web")[0]
    before = _daphnes(web)
    assert len(before) == 2, before  # WEB_CONCURRENCY=2
    restarts, started = web.restart_count, web.state.started_at
    results: list[bool] = []
    stop = threading.Event()

    def probe() -> None:  # a request every 20 ms through nginx, bounded in count and time
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline and len(results) < 1000:
            try:
                results.append(http(f"{prod.base_tls}/healthz", timeout=5).status == 200)
            except OSError:
                results.append(False)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(1)
        port, pid = sorted(before.items())[0]
        web.execute(["sh", "-c", f"kill -9 {pid}"])
        # the process is back: a new pid on the same port, listening again
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _daphnes(web)
            if now.get(port) not in (None, pid) and _healthy(web):
                break
            time.sleep(0.5)
        # and serves a while longer under the probe: at least 2 s, and until the probe has made
        # 150 requests in all (a loaded host answers slower), within its own 20 s bound
        time.sleep(2)
        while len(results) < 150 and prober.is_alive():
            time.sleep(0.2)
    finally:
        stop.set()
        prober.join(30)
    failed = results.count(False)
    print(f"kill -9 of daphne on port {port}: {failed} of {len(results)} probe requests failed")
    assert len(results) > 100 and failed <= 5, f"{failed} of {len(results)} requests failed"
    after = _daphnes(web)
    assert after[port] != pid and set(after) == set(before), (before, after)
    other = next(p for p in before if p != port)
    assert after[other] == before[other]  # the other process was never touched
    web.reload()
    assert (web.restart_count, web.state.started_at) == (restarts, started)  # the container carried on
    # every port answers again (the healthcheck asks each) and nginx serves through both sockets
    assert _healthy(web)
    logs = docker.container.logs(web)
    assert f"daphne process {pid} (port {port}) died (exit 137); restarting it alone" in logs, logs[-2000:]


def test_code_only_redeploy_recreates_web_alone_and_nginx_keeps_serving(prod: Proj) -> None:
    before = {s: (c.id, c.state.started_at) for s in ("web", "nginx", "db", "redis") for c in containers(prod, s)}
    views = prod.root / "example" / "notes" / "views.py"
    views.write_text(views.read_text() + "# a code-only change\n")
    up = prod.stackctl("up")
    assert up.returncode == 0, up.stdout + up.stderr
    after = {s: (c.id, c.state.started_at) for s in ("web", "nginx", "db", "redis") for c in containers(prod, s)}
    assert after["web"][0] != before["web"][0]  # the new image runs
    # nginx reaches daphne on the sockets volume: same container, never restarted
    assert {s: after[s] for s in ("nginx", "db", "redis")} == {s: before[s] for s in ("nginx", "db", "redis")}
    # as soon as `up` returns, nginx serves the new web (no stale upstream, no 502)
    assert prod.gql("{ ping }", base=prod.base_tls) == {"ping": "pong"}


def test_manage_shows_the_commands_stdout_stderr_and_exit_code(prod: Proj) -> None:
    code = "import sys; print('to-stdout'); print('to-stderr', file=sys.stderr); sys.exit(3)"
    proc = prod.stackctl("manage", "shell", "-v", "0", "-c", code)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "to-stdout"
    assert proc.stderr.strip() == "to-stderr"  # the command's own words, nothing of ours


def test_manage_check_deploy_warnings_are_shown(prod: Proj) -> None:
    """Django's system check writes its warnings to stderr: they must reach the user."""
    proc = prod.stackctl("manage", "check", "--deploy", "--tag", "security", "--fail-level", "CRITICAL")
    assert proc.returncode == 0, proc.stderr
    assert "System check identified" in proc.stdout + proc.stderr
    bad = prod.stackctl("manage", "migrate", "no_such_app")
    assert bad.returncode != 0
    assert "No installed app with label 'no_such_app'" in bad.stderr
    assert "is the stack up" not in bad.stderr


def test_verbose_shows_each_docker_call(prod: Proj) -> None:
    proc = prod.stackctl("-v", "status", "--prod")
    assert proc.returncode == 0, proc.stderr
    calls = [line for line in proc.stderr.splitlines() if line.startswith("Running command: ")]
    assert any(" container list " in c for c in calls), proc.stderr
    assert any(" container inspect " in c for c in calls), proc.stderr
    quiet = prod.stackctl("status")
    assert "Running command" not in quiet.stderr


def test_status_json_is_typed(prod: Proj) -> None:
    payload = json.loads(prod.stackctl("status", "--json").stdout)
    assert payload["healthy"] is True
    db = payload["backups"]["db"]
    assert db["next_run"].endswith("Z") or "+" in db["next_run"]
    assert db["last_success_age_seconds"] is None or isinstance(db["last_success_age_seconds"], int)
    assert "ago" not in json.dumps(payload["backups"])
    # the routes the example really has, found in web by `up`'s verification
    root = payload["urls"][0]
    assert root.startswith("https://") and payload["urls"] == [root, root + "graphql", root + "admin/"], payload


def test_backup_names_complete_for_restore_db(prod: Proj) -> None:
    made = prod.stackctl("backup", "now", "db", "--json")
    assert made.returncode == 0, made.stderr
    name = json.loads(made.stdout)[0]["file"].rsplit("/", 1)[-1]
    env = {
        **os.environ,
        "_STACKCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "stackctl restore db ",
        "COMP_CWORD": "3",
    }
    import subprocess

    from tests.e2e.stackenv import STACKCTL

    done = subprocess.run([str(STACKCTL)], cwd=prod.root, env=env, capture_output=True, text=True, timeout=60)
    assert name in done.stdout.split(), (name, done.stdout, done.stderr)
    listed = prod.stackctl("backup", "list")
    assert name in listed.stdout.split()  # whole names, piped
