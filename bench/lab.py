"""The bench project: a throwaway copy of example/, initialised by stackctl, on free loopback ports.

One prod stack is brought up once and switched between web set-ups (daphne with N processes,
gunicorn + uvicorn workers, with or without nginx in front) through its env file and the
override files in bench/compose/. Everything it starts carries its own compose project name,
and `close()` removes the containers, volumes, images and files it made.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from python_on_whales import DockerClient

from bench.host import REPO, STACKCTL, BenchError, Ran, ca_bundle, log, run
from stackctl.adapters.docker import fill_volumes
from stackctl.core.configvolumes import archive, nginx_config_volume
from tests.e2e.stackenv import free_port, read_env, set_env

COMPOSE_DIR = Path(__file__).resolve().parent / "compose"
NAIVE_DOCKERFILE = Path(__file__).resolve().parent / "naive.Dockerfile"


@dataclass(frozen=True)
class WebSetup:
    """How web runs. The default instance is exactly what `stackctl init` + `stackctl up --prod` make."""

    label: str = "stackctl default"
    server: str = "daphne"  # "granian" (ASGI_SERVER=granian), or "gunicorn" (cookiecutter-django's uvicorn worker)
    concurrency: int | None = None  # WEB_CONCURRENCY; None keeps stackctl's default
    workers: int = 0  # gunicorn workers
    worker_class: str = "uvicorn_worker.UvicornWorker"
    bench_image: bool = False  # built from requirements-bench.txt
    direct: bool = False  # web:8000 published on 127.0.0.1
    whitenoise: bool = False
    db_pool: bool = True  # the example's default (DB_POOL); False sets DB_POOL=false
    access_log: bool = False  # daphne's access log (prod's default: off, nginx logs requests)
    loop: str = "auto"  # DAPHNE_LOOP: "auto" (uvloop, installed by the example) or "asyncio"
    upstream_keepalive: bool = False  # what-if: nginx keeps connections to web open (upstream_keepalive())

    @property
    def is_stackctl_default(self) -> bool:
        return self == WebSetup(label=self.label, concurrency=self.concurrency)

    def overrides(self) -> list[str]:
        files = []
        if (
            self.bench_image
            or self.server == "gunicorn"
            or self.whitenoise
            or not self.db_pool
            or self.access_log
            or self.loop != "auto"
        ):
            files.append("bench-image.yml")
        if self.server == "gunicorn":
            files.append("gunicorn.yml")
        if self.direct:
            files.append("direct.yml")
        return files


@dataclass
class Lab:
    root: Path
    name: str
    http_port: int
    web_port: int
    current: WebSetup | None = None
    images: set[str] = field(default_factory=set)
    defaults: dict[str, str] = field(default_factory=dict)
    nginx_conf: str | None = None  # what the stack's nginx_config volume holds

    # -- set-up and tear-down ------------------------------------------------------------------
    @classmethod
    def create(cls) -> Lab:
        tmp = Path(tempfile.mkdtemp(prefix="stackctl-bench-"))
        root = tmp / "proj"
        shutil.copytree(REPO / "example", root / "example", ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
        run([str(STACKCTL), "init", "--local-images"], cwd=root, timeout=120)
        lab = cls(root, f"bench{uuid.uuid4().hex[:8]}", free_port(), free_port())
        values = {
            "STACK_NAME": lab.name,
            "NGINX_BIND_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(lab.http_port),
            "HTTPS_PORT": str(free_port()),
        }
        bundle = ca_bundle()
        if bundle:
            values["BUILD_CA_BUNDLE"] = bundle
        for env_file in (".env", ".env.prod"):
            set_env(root / env_file, **values)
        lab.defaults = read_env(root / ".env.prod")
        lab.render()
        log(f"project {lab.project} in {root} (nginx on 127.0.0.1:{lab.http_port})")
        return lab

    def close(self) -> None:
        log(f"removing {self.project}: containers, volumes, images, files")
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False, timeout=300)
        found = run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], check=False).stdout.split()
        mine = {tag for tag in found if tag.startswith((f"{self.project}-", f"{self.name}-"))} | self.images
        for tag in sorted(mine):
            run(["docker", "image", "rm", "--force", tag], check=False)
        shutil.rmtree(self.root.parent, ignore_errors=True)

    # -- commands --------------------------------------------------------------------------------
    @property
    def project(self) -> str:
        return f"{self.name}-prod"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def direct_base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def web_image(self) -> str:
        return f"{self.project}-web"

    @property
    def bench_image(self) -> str:
        return f"{self.name}-web-benchreqs:latest"

    def stackctl(self, *args: str, timeout: float = 900, check: bool = True) -> Ran:
        return run([str(STACKCTL), *args], cwd=self.root, timeout=timeout, check=check)

    def compose_argv(self, overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
        argv = ["docker", "compose", "-p", self.project, "--project-directory", str(self.root)]
        argv += ["-f", str(self.root / "docker-compose.prod.yml")]  # the prod stack stands alone
        for name in overrides:
            argv += ["-f", str(COMPOSE_DIR / name)]
        return [*argv, "--env-file", str(self.root / ".env.prod")]

    def bench_env(self, setup: WebSetup | None = None) -> dict[str, str]:
        setup = setup or WebSetup()
        return {
            "BENCH_WEB_IMAGE": self.bench_image,
            "BENCH_WEB_PORT": str(self.web_port),
            "BENCH_WORKERS": str(setup.workers or 1),
            "BENCH_WORKER_CLASS": setup.worker_class,
            "BENCH_USE_WHITENOISE": "true" if setup.whitenoise else "",
            "BENCH_DB_POOL": "true" if setup.db_pool else "false",
            "BENCH_ACCESS_LOG": "1" if setup.access_log else "0",
            "BENCH_DAPHNE_LOOP": setup.loop,
        }

    def compose(
        self,
        *args: str,
        overrides: list[str] | tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        timeout: float = 600,
        check: bool = True,
        stdin: str | None = None,
    ) -> Ran:
        return run(
            [*self.compose_argv(overrides), *args],
            cwd=self.root,
            env={**self.bench_env(self.current), **(env or {})},
            timeout=timeout,
            check=check,
            stdin=stdin,
        )

    def render(self) -> None:
        self.stackctl("render", timeout=120)  # the Dockerfile and entrypoint come from .env
        self.stackctl("render", "--prod", timeout=120)

    def set_env(self, values: dict[str, str | None], *, files: tuple[str, ...] = (".env", ".env.prod")) -> None:
        """Set variables (None restores the value `stackctl init` wrote, or removes the line)."""
        for name in files:
            path = self.root / name
            for key, value in values.items():
                if value is not None:
                    set_env(path, **{key: value})
                    continue
                original = self.defaults.get(key)
                if original is not None:
                    set_env(path, **{key: original})
                else:
                    lines = [ln for ln in path.read_text().splitlines(keepends=True) if not ln.startswith(f"{key}=")]
                    path.write_text("".join(lines))

    # -- web set-ups -------------------------------------------------------------------------------
    def apply(self, setup: WebSetup) -> float:
        """Bring the stack to `setup`; returns the seconds it took (0 when already there)."""
        if self.current == setup:
            return 0.0
        if self.current is None and not setup.is_stackctl_default:
            self.apply(WebSetup())  # the whole stack first, as `stackctl up --prod` makes it
        log(f"web set-up: {setup.label}")
        concurrency = 1 if setup.server == "gunicorn" else setup.concurrency
        self.set_env({"WEB_CONCURRENCY": str(concurrency) if concurrency else None}, files=(".env.prod",))
        self.set_env({"ASGI_SERVER": "granian" if setup.server == "granian" else None}, files=(".env.prod",))
        bench_reqs = bool(setup.overrides())  # requirements-bench.txt reads requirements.txt (-r)
        self.set_env(
            {
                "DJANGO_DEPENDENCY_FILE": "requirements-bench.txt" if bench_reqs else None,
                "DJANGO_DEPENDENCY_INCLUDES": "requirements.txt" if bench_reqs else None,
            }
        )
        previous, self.current = self.current, setup
        try:
            self.render()
            if previous is None and setup.is_stackctl_default:
                # The whole stack, exactly as `stackctl up --prod` makes it.
                took = self.stackctl("up", "--prod", timeout=900).seconds
                self.nginx_conf = (self.root / "nginx" / "nginx.prod.conf").read_text()  # what up wrote
                return took
            # Switching web only: every service reads .env.prod, so a plain `up` would also
            # recreate db and backup (whose healthcheck takes 60 s) for a web-only change.
            overrides = setup.overrides()
            built = self.compose("build", "web", overrides=overrides, timeout=900)
            if overrides:
                self.images.add(self.bench_image)
            up = self.compose(
                "up",
                "-d",
                "--wait",
                "--wait-timeout",
                "180",
                "--no-deps",
                "web",
                "nginx",
                overrides=overrides,
                timeout=300,
            )
            return built.seconds + up.seconds + self.sync_nginx_conf(setup)
        except BenchError:
            self.current = previous
            log(self.compose("ps", "-a", check=False).stdout)
            log(self.compose("logs", "--tail", "30", "web", "nginx", check=False).stdout[-4000:])
            raise

    # -- nginx.conf -------------------------------------------------------------------------------------
    def sync_nginx_conf(self, setup: WebSetup) -> float:
        """Put the rendered nginx.prod.conf (its upstream lists one socket per WEB_CONCURRENCY
        process), or its keep-alive what-if, into the stack's nginx_config volume, as `stackctl up`
        does, and have nginx reload it (SIGHUP): a web-only `compose up` leaves the volume as it
        was. Written through stackctl's own adapter. Returns the seconds taken (0 when the volume
        already holds it)."""
        conf = (self.root / "nginx" / "nginx.prod.conf").read_text()
        if setup.upstream_keepalive:
            conf = upstream_keepalive(conf)
        if conf == self.nginx_conf:
            return 0.0
        started = time.monotonic()
        image = self.compose("ps", "--format", "{{.Image}}", "nginx").stdout.strip()
        volume = nginx_config_volume(conf.encode())
        bundle = archive([volume])
        fill_volumes(DockerClient(), project=self.project, image=image, archive=bundle, volumes=[volume.name])
        took = time.monotonic() - started
        took += self.compose("kill", "-s", "HUP", "nginx").seconds
        self.nginx_conf = conf
        log(
            f"nginx.conf in the volume: {len(self.web_sockets())} web socket(s), upstream keep-alive "
            f"{'on' if setup.upstream_keepalive else 'off'}"
        )
        return took

    def web_sockets(self) -> list[str]:
        return re.findall(r"server (unix:\S+\.sock)", self.nginx_conf or "")

    def web_cpu_seconds(self) -> float | None:
        """CPU seconds the web container has used (its cgroup, v1 or v2); None when unreadable."""
        cid = self.compose("ps", "-q", "web", check=False).stdout.strip()
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")
        try:
            if v1.exists():
                return int(v1.read_text()) / 1e9
            if v2.exists():
                usage = dict(line.split() for line in v2.read_text().splitlines())
                return int(usage["usage_usec"]) / 1e6
        except (OSError, ValueError, KeyError):
            return None
        return None

    def seed_notes(self, count: int = 50) -> None:
        code = (
            "from notes.models import Note; Note.objects.all().delete(); "
            f"Note.objects.bulk_create([Note(title=f'note {{i}}', body='x' * 200) for i in range({count})]); "
            "print(Note.objects.count())"
        )
        out = self.compose("exec", "-T", "web", "python", "manage.py", "shell", "-c", code, timeout=120)
        # the count is a line of its own; Django's logging (stdout, LOG_LEVEL) may add others after it
        if str(count) not in out.stdout.strip().splitlines():
            raise BenchError(f"seeding {count} notes printed {out.stdout!r}")


def upstream_keepalive(conf: str) -> str:
    """stackctl's nginx.conf with keep-alive to the `web` upstream: up to 32 idle connections per
    worker, each reused for at most 2 s, and no `Connection: close` on plain requests."""
    upstream = re.compile(r"(    upstream web \{\n(?:        server [^\n]*\n)+)")
    if len(upstream.findall(conf)) != 1 or conf.count('        ""      close;\n') != 1:
        raise BenchError("nginx.conf has no single `upstream web` block and `Connection: close` map line")
    conf = upstream.sub(lambda m: m.group(1) + "        keepalive 32;\n        keepalive_time 2s;\n", conf)
    return conf.replace('        ""      close;\n', '        ""      "";\n')
