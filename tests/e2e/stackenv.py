"""Helpers for real-engine tests: a throwaway copy of the example project on free loopback ports."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STACKCTL = REPO / ".venv" / "bin" / "stackctl"


# Tests run in parallel (pytest-xdist): each worker takes host ports from a range of its own, so two
# workers can never be handed the same port between a check and the container's bind. The ranges
# lie below the kernel's ephemeral ports (32768-60999) and away from the 8080/8443 where
# `stackctl init --env` starts its own search.
PORTS_PER_WORKER = 500
FIRST_WORKER_PORT = 20000


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw3"; a run without xdist is worker 0
    return int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0


_next_ports = itertools.count(FIRST_WORKER_PORT + _worker_index() * PORTS_PER_WORKER)


def free_port() -> int:
    """A loopback port nothing listens on, never handed out twice in a run (see PORTS_PER_WORKER)."""
    for port in _next_ports:
        if port >= FIRST_WORKER_PORT + (_worker_index() + 1) * PORTS_PER_WORKER:
            break
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (a stack of an earlier run?): take the next one
            return port
    raise RuntimeError(f"this test worker used up its {PORTS_PER_WORKER} ports")


def set_env(path: Path, **values: str) -> None:
    """Set variables in an env file, replacing existing lines, appending new ones."""
    text = path.read_text()
    for key, value in values.items():
        line = f"{key}={value}"
        if re.search(rf"^{key}=", text, flags=re.M):
            text = re.sub(rf"^{key}=.*$", lambda _m, line=line: line, text, flags=re.M)
        else:
            text += f"{line}\n"
    path.write_text(text)


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k: v for k, v in pairs}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Tests look at redirects themselves."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 15
) -> Response:
    assert url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")), url  # loopback only
    import ssl

    ctx = ssl._create_unverified_context()  # the test certificate is self-signed
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def multipart(field_name: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Proj:
    """A copy of the example project, initialised by `stackctl init`, on its own ports."""

    root: Path
    name: str
    http_port: int
    https_port: int
    prod: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def stackctl(
        self, *args: str, timeout: float = 900, stdin: str = "", check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        full = (
            [*args, "--prod"]
            if self.prod and args and args[0] in {"up", "down", "status", "logs", "render", "check"}
            else list(args)
        )
        if self.prod and args and args[0] == "manage":
            full = ["manage", "--prod", *args[1:]]
        proc = subprocess.run(
            [str(STACKCTL), *full],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"stackctl {' '.join(full)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def base_tls(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def gql(self, query: str, variables: dict[str, Any] | None = None, *, base: str | None = None) -> Any:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        resp = http(f"{base or self.base}/graphql", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 200, (resp.status, resp.body[:500])
        payload = resp.json()
        assert "errors" not in payload, payload
        return payload["data"]

    def wait_healthy(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            proc = self.stackctl("status", "--json")
            if proc.returncode == 0 and json.loads(proc.stdout).get("healthy"):
                return True
            time.sleep(2)
        return False


def make_project(tmp: Path, *, prod: bool = False, tls: bool = False, extra: dict[str, str] | None = None) -> Proj:
    """Copy example/ into tmp, `stackctl init --local-images`, and point it at free loopback ports."""
    root = tmp / "proj"
    shutil.copytree(REPO / "example", root / "example", ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    name = f"e2e{uuid.uuid4().hex[:8]}"
    proc = subprocess.run([str(STACKCTL), "init", "--local-images"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    http_port, https_port = free_port(), free_port()
    common = {
        "STACK_NAME": name,
        "NGINX_BIND_ADDRESS": "127.0.0.1",
        "HTTP_PORT": str(http_port),
        "HTTPS_PORT": str(https_port),
        "WEB_CONCURRENCY": "2",
    }
    env_file = root / (".env.prod" if prod else ".env")
    values = {**common, **(extra or {})}
    if tls:
        certs = root / "certs"
        certs.mkdir()
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(certs / "privkey.pem"),
                "-out",
                str(certs / "fullchain.pem"),
            ],
            check=True,
            capture_output=True,
        )
        values.update(
            {
                "USE_TLS": "true",
                "SESSION_COOKIE_SECURE": "true",
                "CSRF_COOKIE_SECURE": "true",
                "SECURE_SSL_REDIRECT": "true",
                "SECURE_HSTS_SECONDS": "31536000",
                "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
                "SECURE_HSTS_PRELOAD": "true",
                "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
                "CSRF_TRUSTED_ORIGINS": f"https://127.0.0.1:{https_port}",
            }
        )
    values.update(extra or {})  # the caller's values win over the TLS defaults
    set_env(env_file, **values)
    return Proj(root, f"{name}-{'prod' if prod else 'dev'}", http_port, https_port, prod, read_env(env_file))


def containers(proj: Proj, service: str) -> list[Any]:
    """The running containers of one service of a project (python-on-whales objects)."""
    from python_on_whales import DockerClient

    found = DockerClient().container.list(filters=[("label", f"com.docker.compose.project={proj.name}")])
    return [c for c in found if c.config.labels.get("com.docker.compose.service") == service]


def project_image_tags(project: str, client: Any = None) -> list[str]:
    """The tags of the images named after a project (`<project>-<service>:<tag>`), e.g. the web
    and backup images compose built for it. Only those images are listed and inspected: in a
    parallel run another test may remove its own images meanwhile."""
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import NoSuchImage

    docker = client or DockerClient()
    tags: list[str] = []
    for image in docker.image.list(filters=[("reference", f"{project}-*")]):
        try:
            tags += [tag for tag in image.repo_tags if tag.split(":", 1)[0].startswith(f"{project}-")]
        except NoSuchImage:
            continue
    return tags


def all_image_tags(client: Any = None) -> list[str]:
    """Every tag on the engine; an image removed by another test while listing is left out."""
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import NoSuchImage

    tags: list[str] = []
    for image in (client or DockerClient()).image.list():
        try:
            tags += image.repo_tags
        except NoSuchImage:
            continue
    return tags


def remove_built_images(project: str) -> list[str]:
    """Remove the images compose built for a project (`<project>-<service>`, e.g. the web
    and backup images); returns their names. Images the project only uses are kept."""
    from python_on_whales import DockerClient

    built = project_image_tags(project)
    if built:
        DockerClient().image.remove(built, force=True)
    return built


def stack_logs(project: str, *, tail: int = 60) -> str:
    """The state and last log lines of every container of a compose project (for a failed test's report)."""
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

    docker = DockerClient()
    try:
        found = docker.container.list(all=True, filters=[("label", f"com.docker.compose.project={project}")])
    except DockerException as exc:
        return f"(no container list: {exc})"
    parts = []
    for container in found:
        try:
            state = container.state
            header = f"--- {container.name}: {state.status}, exit {state.exit_code}, restarts {container.restart_count}"
            parts.append(f"{header}\n{docker.container.logs(container, tail=tail)}")
        except DockerException as exc:
            parts.append(f"--- {container.name}: (no logs: {exc})")
    return "\n".join(parts) or "(no container left)"
