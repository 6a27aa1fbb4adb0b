"""Stack operations on a real engine: up, down, status, logs, manage. Returns typed results."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from python_on_whales import DockerClient
from python_on_whales.client_config import ClientNotFoundError
from python_on_whales.exceptions import DockerException

from stackctl.adapters.docker import (
    LOCAL_ENGINE,
    architecture,
    compose_client,
    compose_images,
    describe_failure,
    image_ids,
    is_remote,
    local_engine,
    log_streamed,
    project_containers,
    require_engine,
    send_images,
)
from stackctl.adapters.remote import is_ssh
from stackctl.config.profile import Environment, Profile
from stackctl.core.buildfailure import compile_failure, compile_failure_error
from stackctl.core.diagnose import describe_state, failure_hint, killed_message, last_traceback
from stackctl.core.progress import Report, quiet
from stackctl.core.project import Project
from stackctl.core.routes import known_routes, remember_routes, route_urls
from stackctl.errors import (
    CertificateError,
    CommandExited,
    DockerCommandError,
    ServiceNotRunning,
    StackctlError,
    StackUnhealthy,
)

if TYPE_CHECKING:
    from stackctl.config import StackConfig
    from stackctl.core.certs import RenewResult
    from stackctl.core.switch import WebContainer
    from stackctl.core.verify import SettingsReport

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    container: str
    state: str
    health: str | None
    ports: list[str]
    health_output: str | None = None  # what the last healthcheck probe printed
    restarts: int = 0  # how often the engine restarted the container (restart policy)
    exit_code: int | None = None  # the last exit of its process (0 while it never exited)
    oom_killed: bool = False  # the kernel killed it for memory (its limit)


@dataclass
class StackStatus:
    project: str
    profile: Profile
    services: list[ServiceStatus]
    urls: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    env: str = ""  # the environment's name (dev, prod, staging)

    @property
    def healthy(self) -> bool:
        return bool(self.services) and not self.unhealthy_services()

    def unhealthy_services(self) -> list[str]:
        return [s.service for s in self.services if s.state != "running" or s.health not in (None, "healthy")]

    def running(self, service: str) -> ServiceStatus | None:
        """The running container of `service`, if there is one."""
        return next((s for s in self.services if s.service == service and s.state == "running"), None)

    def only(self, services: list[str]) -> StackStatus:
        kept = [s for s in self.services if s.service in services]
        return StackStatus(self.project, self.profile, kept, self.urls, env=self.env)


@dataclass(frozen=True)
class UpResult:
    project: str
    rendered: list[str]
    seconds: float
    status: StackStatus
    settings: SettingsReport | None = None  # prod: the settings in effect, verified in web
    certificate: RenewResult | None = None  # TLS_CERT_SOURCE=acme: what `up` asked of the CA


def _failure(service: ServiceStatus, restarts_at_start: int) -> str | None:
    """Why a service will not become healthy by waiting longer, or None."""
    if service.health == "unhealthy":
        return "is unhealthy (its healthcheck failed)"
    if service.state in ("exited", "dead"):
        return f"has {service.state}"
    if service.restarts > restarts_at_start:
        return "was restarted by its restart policy (it exited while starting)"
    return None


@dataclass(frozen=True)
class StackIdentity:
    """What a running stack is known by: its compose project name and where it answers.
    Derived from the validated config, and cached by its env file's digest (core/identity.py)
    so that `stackctl status` need not validate the config again."""

    name: str
    urls: tuple[str, ...]

    @classmethod
    def of(cls, config: StackConfig) -> StackIdentity:
        """Where the stack answers. Ports come from the same env file compose interpolates."""
        ngx = config.nginx
        host = "127.0.0.1" if ngx.nginx_bind_address in ("0.0.0.0", "") else ngx.nginx_bind_address
        scheme, port = ("https", ngx.https_port) if ngx.use_tls else ("http", ngx.http_port)
        return cls(config.project_name, (f"{scheme}://{host}:{port}/",))  # the routes: core/routes.py


SHOWN_LOG_LINES = 40  # of each failed service, under an error
HINT_LOG_LINES = 2000  # searched for a failure stackctl knows by name, and for the last traceback


# pitrctl.py's line when a repository holds another cluster's backups (a new host, say)
OTHER_CLUSTER = re.compile(r"pitrctl: (another cluster's backups are in repo(\d+) \([^)]*\))")


def _unhealthy_hint(logs: dict[str, str], env: Environment) -> str:
    """What to do: the known failures by name, else read the logs."""
    from stackctl.core.images import postgres_data_mismatch_hint

    up_command = env.command("up")
    for line in reversed(logs.get("web", "").splitlines()):  # the entrypoint names a settings failure
        if "entrypoint: the settings module" in line:
            return line.split("entrypoint: ", 1)[1] + f"; fix it, then run `{up_command}` again"
    for line in reversed(logs.get("pgbackrest", "").splitlines()):  # pitrctl.py: a new host's restore
        if found := OTHER_CLUSTER.search(line):
            restore = env.command(f"restore db --to latest --repo {found.group(2)}")
            return (
                f"{found.group(1)}. On a new host (an empty data volume), "
                f"bring the data back with `{restore}`; otherwise give repo{found.group(2)} a path of its own "
                f"(PITR_REPO2_PATH for repo2) and run `{up_command}` again"
            )
    if mismatch := postgres_data_mismatch_hint(logs.get("db", "")):
        return mismatch
    for service, text in logs.items():  # a Python service's last exception: the variable or the line to fix
        if exception := last_traceback(text):
            logs_command = env.command(f"logs {service}")
            return failure_hint(exception, env_file=env.env_file, logs_command=logs_command, up_command=up_command)
    whole = env.command(f"logs {next(iter(logs), 'SERVICE')}")
    return f"read the logs above (the whole log: `{whole}`); fix the service, then run `{up_command}` again"


def quoted_tracebacks(logs: dict[str, str]) -> str:
    """Each failed service's last Python traceback (its last frames and its exception), for the
    error message: the lines the log tail no longer shows."""
    found = {name: exception for name, text in logs.items() if (exception := last_traceback(text))}
    return "".join(f"\n{name}'s last exception:\n{exception.excerpt()}" for name, exception in found.items())


class StackView:
    """A compose project as it runs: its containers, health and logs. Needs only the
    project's folder, the environment and the stack's identity, not its validated config."""

    def __init__(self, project: Project, env: Environment, identity: StackIdentity, *, host: str | None = None) -> None:
        self.project = project
        self.host = host  # another engine (`ssh://user@host[:port]`); None: DOCKER_HOST or the local one
        self.env = env
        self.profile: Profile = env.profile  # the kind: what policy, template and hardening it has
        self.env_file = project.env_file(env)
        self.identity = identity
        self.name = identity.name
        self._client: DockerClient | None = None

    @property
    def up_command(self) -> str:
        return self.env.command("up")

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            client = compose_client(
                project_dir=self.project.root,
                compose_files=self.project.compose_files(self.env),
                env_file=self.env_file,
                project_name=self.name,
                host=self.host,
            )
            if is_ssh(self.host):  # before any compose call: say what is wrong with the host, if anything
                require_engine(client)
            self._client = client
        return self._client

    # How often wait_healthy asks (a `docker ps` and one `docker inspect`, 0.06-0.09 s together).
    POLL_SECONDS = 0.1

    def wait_healthy(self, *, timeout: float, services: list[str] | None = None) -> StackStatus:
        """Wait until every container (of `services`, default all) runs and passes its
        healthcheck (one without a healthcheck: runs). Fails at once when one turns unhealthy,
        exits, or is restarted by its restart policy while we wait; otherwise after `timeout`
        seconds.

        `docker compose up --wait` does the same, but checks only every 500 ms (bench/ has the
        figures); this is the one health wait of stackctl.
        """
        deadline = time.monotonic() + timeout
        first: dict[str, int] = {}
        while True:
            status = self.status()
            if services is not None:
                status = status.only(services)
            if status.healthy:
                return status
            for s in status.services:
                first.setdefault(s.container, s.restarts)
            failed = {s.service: why for s in status.services if (why := _failure(s, first[s.container]))}
            if failed or time.monotonic() >= deadline:
                bad = list(failed) or status.unhealthy_services()
                if failed:
                    reasons = "; ".join(f"{name} {why}" for name, why in failed.items())
                    message = f"the stack did not become healthy: {reasons}"
                else:
                    message = (
                        f"the stack did not become healthy within {timeout:.0f}s: {', '.join(bad) or 'no containers'}"
                    )
                raise self._unhealthy(message, bad)
            time.sleep(self.POLL_SECONDS)

    def service_names(self) -> list[str]:
        try:
            return list(self.client.compose.config().services or {})
        except DockerException as exc:
            raise describe_failure(exc, what="docker compose config") from None

    def status(self) -> StackStatus:
        # No `docker info` up front (it costs as much as the ps itself): only a failure asks
        # whether the engine is there, to say so rather than relay compose's message.
        # `docker ps` on compose's project label, not `docker compose ps`: the same containers
        # without loading the compose files, 0.01-0.02 s instead of 0.13 s here.
        try:
            containers = project_containers(self.client, self.name)
        except (DockerException, ClientNotFoundError) as exc:
            require_engine(self.client)
            if isinstance(exc, ClientNotFoundError):
                raise
            raise describe_failure(exc, what="docker ps") from None
        services = []
        for c in containers:
            state = c.state
            check = state.health if state else None
            health = check.status if check else None
            probes = (check.log or []) if check else []
            last_output = probes[-1].output if probes else None
            ports = []
            for inner, bindings in ((c.network_settings.ports if c.network_settings else None) or {}).items():
                for b in bindings or []:
                    ports.append(f"{b.get('HostIp')}:{b.get('HostPort')}->{inner}")
            name = (c.name or "?").lstrip("/")
            service = ((c.config.labels if c.config else None) or {}).get("com.docker.compose.service", name)
            services.append(
                ServiceStatus(
                    service,
                    name,
                    (state.status if state else None) or "?",
                    health,
                    sorted(ports),
                    last_output,
                    c.restart_count or 0,
                    state.exit_code if state else None,
                    bool(state.oom_killed) if state else False,
                )
            )
        services.sort(key=lambda s: s.service)
        return StackStatus(self.name, self.profile, services, self.urls(), env=self.env.name)

    def urls(self) -> list[str]:
        """The root URL, then the routes `up` found in web (GraphQL's, the admin's)."""
        base = self.identity.urls[0] if self.identity.urls else ""
        return route_urls(base, known_routes(self.project, self.env))

    def _unhealthy(self, message: str, bad: list[str]) -> StackUnhealthy:
        """The failure with the last lines of each bad service's log (every service's when
        none is named). The hint is looked for further back than the lines shown: with
        several daphne processes, their tracebacks can follow the entrypoint's own message."""
        logs = {name: self.tail_logs(name, lines=HINT_LOG_LINES) for name in (bad or self.service_names())}
        shown = {name: "\n".join(text.splitlines()[-SHOWN_LOG_LINES:]) for name, text in logs.items()}
        return StackUnhealthy(message + quoted_tracebacks(logs), logs=shown, hint=_unhealthy_hint(logs, self.env))

    def tail_logs(self, service: str, lines: int = SHOWN_LOG_LINES) -> str:
        try:
            return str(self.client.compose.logs(services=[service], tail=str(lines), timestamps=False))
        except DockerException:
            return "(no logs available)"

    def logs(self, service: str | None, *, follow: bool, tail: int | None) -> Any:
        require_engine(self.client)
        log_streamed(self.client, "logs", *(["--follow"] if follow else []), *([service] if service else []))
        try:
            return self.client.compose.logs(
                services=[service] if service else [],
                follow=follow,
                stream=True,
                tail=str(tail) if tail else None,
            )
        except DockerException as exc:
            raise describe_failure(exc, what="docker compose logs") from None


class Stack(StackView):
    """One compose project with its validated config: render, build, up, down, manage."""

    def __init__(self, project: Project, env: Environment, *, config: StackConfig, host: str | None = None) -> None:
        super().__init__(project, env, StackIdentity.of(config), host=host)
        self.config = config
        self._local: DockerClient | None = None
        self._local_asked = False

    # -- where images are built ------------------------------------------------------------
    @property
    def builds_here(self) -> DockerClient | None:
        """This host's engine when the stack's engine is another host's and this one can build
        for it (same architecture): images are then built here and sent (`ship`), so that the
        remote host needs neither the source nor the package indexes. None: the stack's own
        engine builds."""
        if not self._local_asked:
            local = local_engine() if is_remote(self.client) else None
            if local is not None and architecture(local) != architecture(self.client):
                local = None  # an amd64 laptop builds no arm64 server's images
            self._local, self._local_asked = local, True
        return self._local

    def build_client(self, project_dir: Path | None = None, compose_files: list[Path] | None = None) -> DockerClient:
        """The compose client that builds the stack's images (of the files in `project_dir`,
        default the stack's folder): on this host's engine or the stack's, as `builds_here` says."""
        if self.builds_here is None and project_dir is None:
            return self.client
        return compose_client(
            project_dir=project_dir or self.project.root,
            compose_files=compose_files or self.project.compose_files(self.env),
            env_file=self.env_file,
            project_name=self.name,
            host=LOCAL_ENGINE if self.builds_here is not None else self.host,
        )

    def ship(self, images: list[str] | None = None, report: Report = quiet) -> list[str]:
        """Send the images (default: every image the stack runs) that this host built or has
        and the stack's engine lacks, or has older, to it (`docker save | docker load`,
        streamed). Nothing when the stack's engine builds itself. Returns the names sent."""
        local = self.builds_here
        if local is None:
            return []
        try:
            names = images if images is not None else compose_images(self.build_client())
            here, there = image_ids(local, names), image_ids(self.client, names)
            send = [name for name in names if name in here and there.get(name) != here[name]]
            if send:
                report(f"sending {', '.join(send)} to {self.host or 'DOCKER_HOST'}")
                send_images(local, self.client, send)
        except DockerException as exc:
            raise describe_failure(exc, what="sending the images to the stack's engine") from None
        return send

    # -- rendering -------------------------------------------------------------------------
    def ensure_rendered(self, *, force: bool = False) -> list[str]:
        """Re-render this environment's files when they are stale. Returns the paths written."""
        from stackctl.core.plan import apply_plan, plan_files
        from stackctl.core.render import render_set

        plan = plan_files(self.project.root, render_set(self.config))
        written = [f.path for f in apply_plan(plan, force=force)]
        return written

    def ensure_local_images(self, report: Report = quiet) -> None:
        """Build the local images (`stackctl images build`) this stack runs or builds FROM and
        the engine that needs them lacks, so that no build or start asks a registry for them.
        On an engine stackctl does not build on, a missing one is refused with the command."""
        from stackctl.core.localimages import ensure_local_images

        images = self.config.images
        references = [
            str(i) for i in (images.python_image, images.postgres_image, images.redis_image, images.nginx_image)
        ]
        here = self.builds_here
        if here is not None:  # built here, then shipped with the rest
            ensure_local_images(references, client=here, report=report)
            return
        remote = is_remote(self.client)
        engine = f"the engine at {self.host or 'DOCKER_HOST'}" if remote else "this engine"
        ensure_local_images(references, client=self.client, report=report, builds=not remote, engine=engine)

    # -- lifecycle -------------------------------------------------------------------------
    def build(self, report: Report = quiet) -> None:
        self.ensure_local_images(report)
        builder = self.build_client()
        log_streamed(builder, "build")
        output: list[str] = []
        try:
            for _source, line in builder.compose.build(stream_logs=True):
                text = line.decode(errors="replace").rstrip()
                if text:
                    output.append(text)
                    report(text)
        except DockerException as exc:
            require_engine(builder)  # a missing engine is said as such, not as a build failure
            from stackctl.adapters.host import registry_failure_hint

            hint = registry_failure_hint(exc.stderr or "")
            if hint:  # not BuildKit's raw "no such host": what to do instead
                raise DockerCommandError(f"docker compose build failed: {hint.split(':')[0]}", hint=hint) from None
            failure = compile_failure("\n".join(output) or exc.stderr or "")
            if failure is not None:  # a requirement that compiles: which one, and the package it needs
                raise compile_failure_error(
                    failure, env_file=self.env_file, build_packages=tuple(self.config.images.build_packages)
                ) from None
            raise describe_failure(exc, what="docker compose build") from None

    def up(self, *, report: Report = quiet, timeout: int = 180, build: bool = True) -> UpResult:
        # No `docker info` up front: only a failure asks whether the engine is there.
        started = time.monotonic()
        _ = self.client  # a remote engine is checked here, before anything is rendered or changed
        rendered = self.ensure_rendered()
        for path in rendered:
            report(f"rendered {path}")
        if self.profile == "dev" and is_remote(self.client):
            raise StackctlError(
                "the dev stack bind-mounts this folder's files (nginx.conf), which an engine on another host "
                "cannot see",
                hint="run a prod-kind environment there: --prod or --env NAME with --host",
            )
        if build:
            self.build(report)
        else:
            self.ensure_local_images(report)
        waiting = time.monotonic()  # --timeout is the wait for health: a long build (a compile) spends none of it
        if self.profile == "prod":  # the images and the config the engine cannot read from here
            from stackctl.core.configvolumes import sync

            self.ship(report=report)
            sync(self, report)
            if self.config.nginx.acme:  # before nginx starts: a certificate for it to serve
                from stackctl.core import certs

                certs.bootstrap(self, report)
        # prod, serving: a web compose would recreate is replaced by deploy's switch instead of
        # compose's stop-then-start (which left nginx without web for seconds)
        stale = self._stale_web()
        services = self._services_but("web") if stale else None
        log_streamed(self.client, "up", "-d", "--remove-orphans", *(["--no-deps", *services] if services else []))
        try:
            for _source, line in self.client.compose.up(
                services, detach=True, stream_logs=True, remove_orphans=True, dependencies=not stale
            ):
                text = line.decode(errors="replace").rstrip()
                if text:
                    report(text)
        except DockerException as exc:
            require_engine(self.client)
            from stackctl.adapters.host import registry_failure_hint

            pull_hint = registry_failure_hint(exc.stderr or "")
            if pull_hint:
                raise DockerCommandError("docker compose up could not get an image", hint=pull_hint) from None
            failure = describe_failure(exc, what="docker compose up")
            bad = self.status().unhealthy_services()
            raise self._unhealthy(f"{failure.message}\nnot healthy: {', '.join(bad) or 'see logs'}", bad) from None
        if self.profile == "prod":  # web waits for the database (DB_WAIT_TIMEOUT) meanwhile
            from stackctl.core.dbroles import ensure_app_role

            try:
                change = ensure_app_role(self).describe()
            except DockerCommandError:
                # a db that does not start: say why, with its logs, as for any service
                self.wait_healthy(timeout=max(timeout - (time.monotonic() - waiting), 10), services=["db"])
                raise
            if change:
                report(change)
        if stale:
            from stackctl.core import switch

            switch.replace_serving(
                self,
                self.default_web_image,
                stale,
                timeout=max(timeout - (time.monotonic() - waiting), 30),
                drain_seconds=30,
                report=report,
            )
        status = self.wait_healthy(timeout=max(timeout - (time.monotonic() - waiting), 10))
        self._answers(report)
        settings = None
        if self.profile == "prod":  # healthy is not enough: the settings really in effect
            from stackctl.core.verify import verify_settings

            report("verifying the settings in effect in web")
            settings = verify_settings(self)
        from stackctl.core.verify import probe_routes

        remember_routes(self.project, self.env, settings.seen.routes if settings else probe_routes(self))
        status.urls = self.urls()
        certificate = None
        if self.profile == "prod" and self.config.nginx.acme:
            from stackctl.core import certs

            certificate = certs.renew(self, check=False, report=report)
            if certificate.error and certificate.status.temporary:  # nothing nginx serves is trusted
                raise CertificateError(f"the stack is up, but {certificate.error}", hint=certificate.hint)
        return UpResult(self.name, rendered, time.monotonic() - started, status, settings, certificate)

    def _answers(self, report: Report) -> None:
        """Healthy is the stack's own answer: the app itself must answer GET / below 500."""
        from stackctl.core.answer import app_status

        code, why = app_status(self)
        if code is None:
            raise self._unhealthy(f"web is healthy but its app did not answer GET /: {why}", ["web"])
        if code >= 500:
            raise self._unhealthy(f"web is healthy but its app answers GET / with HTTP {code}", ["web"])
        report(f"web's app answers GET / with HTTP {code}")

    @property
    def default_web_image(self) -> str:
        """The image `compose build` tags and `compose up` runs for web (a deploy runs its
        release's tag instead)."""
        return f"{self.name}-web"

    def _stale_web(self) -> list[WebContainer]:
        if self.profile != "prod":
            return []
        from stackctl.core.switch import stale_serving

        return stale_serving(self)

    def _services_but(self, left_out: str) -> list[str]:
        try:
            names = list(self.client.compose.config().services or {})
        except DockerException as exc:
            raise describe_failure(exc, what="docker compose config") from None
        return [name for name in names if name != left_out]

    def down(self, *, volumes: bool = False) -> None:
        require_engine(self.client)
        try:
            self.client.compose.down(volumes=volumes, remove_orphans=True, quiet=True)
        except DockerException as exc:
            raise describe_failure(exc, what="docker compose down") from None

    def manage(self, args: list[str], *, tty: bool) -> Iterator[tuple[Stream, bytes]]:
        """Run manage.py in the web container. With a terminal it is interactive and talks to
        the terminal itself (nothing is yielded); without one, its stdout and stderr lines are
        yielded as they come. Either way, a non-zero exit raises CommandExited with its code.
        A web that is not running (exited, restarting, killed for memory) raises
        ServiceNotRunning saying so, before or after docker's own 126/137."""
        web = self.running_service("web")
        command = ["python", "-m", "stackctl_manage", *args]  # manage.py under the stack's settings
        try:
            if tty:
                self.client.container.execute(web.container, command, tty=True, interactive=True)
                return
            streamed = self.client.container.execute(web.container, command, stream=True)
            lines = cast("Iterable[tuple[str, bytes]]", streamed)
            for source, line in lines:
                yield ("stderr" if source == "stderr" else "stdout"), line
        except DockerException as exc:
            code = exc.return_code
            after = next((s for s in self.status().services if s.container == web.container), None)
            if after is None or after.state != "running" or after.restarts > web.restarts:
                raise self._not_running("web", after, during="manage.py") from None
            raise CommandExited(code, message=killed_message(code, "manage.py")) from None

    def running_service(self, service: str) -> ServiceStatus:
        """The running container of `service`, or ServiceNotRunning saying what it is doing instead."""
        found = [s for s in self.status().services if s.service == service]
        # running between two restarts of a crash loop: restarted, and its healthcheck starting again
        running = next((s for s in found if s.state == "running" and not (s.restarts and s.health == "starting")), None)
        if running is None:
            raise self._not_running(service, found[0] if found else None)
        return running

    def _not_running(self, service: str, seen: ServiceStatus | None, *, during: str = "") -> ServiceNotRunning:
        where = f" (while {during} ran)" if during and seen is not None else ""
        if seen is None:
            message = f"{service} of {self.name} is not running{where}: it has no container"
            return ServiceNotRunning(message, hint=f"start the stack: `{self.up_command}`")
        logs = self.tail_logs(service, lines=HINT_LOG_LINES)
        state = describe_state(seen.state, restarts=seen.restarts, exit_code=seen.exit_code, oom_killed=seen.oom_killed)
        message = f"{service} of {self.name} {state}{where}: run `{self.env.command(f'logs {service}')}`"
        hint = (
            _unhealthy_hint({service: logs}, self.env)
            if last_traceback(logs)
            else f"read `{self.env.command(f'logs {service}')}`; fix the cause, then run `{self.up_command}` again"
        )
        return ServiceNotRunning(message + quoted_tracebacks({service: logs}), hint=hint)
