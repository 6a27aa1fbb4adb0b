"""A real remote Docker host for the tests: a second dockerd whose filesystem the client cannot
see, reached only through sshd with key auth on a loopback port.

Privileged containers fail on the test hosts, so this is not docker-in-docker. Instead:

- one long-lived `unshare --mount --propagation private` process holds a mount namespace in
  which tmpfs hides /tmp (the client's project folders) and /run (the host engine's socket);
- in it, dockerd runs in its own network namespace too (`unshare --net`, loopback up), with its
  own data root, exec root, pid file and socket, so its bridges and iptables rules never touch
  the host engine's;
- sshd runs in the same mount namespace but the host's network namespace, on 127.0.0.1:<free
  port>, key auth only, with a generated host key and client key.

Unix sockets cross network namespaces, so `docker -H ssh://…` (`docker system dial-stdio` on
the far side) reaches the second dockerd. The client side needs no edit of root's ~/.ssh: one
`Host stackctl-remote-<id>` entry in /etc/ssh/ssh_config.d/ (which Debian's ssh_config
includes) names the port, the key and the known_hosts file; it is removed at teardown.

Containers of the remote engine are reachable only inside its network namespace (`in_netns`).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from tests.e2e.stackenv import free_port

STATE_ROOT = Path("/var/lib/stackctl-remote")  # outside /tmp: sshd must read its keys in the namespace
SSH_CONFIG_DIR = Path("/etc/ssh/ssh_config.d")
# The images a stack needs on the remote engine (the registry-free ones stackctl builds).
STACK_IMAGES = (
    "stackctl/python:3.13-trixie",
    "stackctl/postgres:17-trixie",
    "stackctl/redis:8.0-trixie",
    "stackctl/nginx:1.26-trixie",
)
START_TIMEOUT = 60.0

SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
"""

CLIENT_CONFIG = """\
# written by stackctl's tests (tests/e2e/remotehost.py); removed at teardown
Host {alias}
    HostName 127.0.0.1
    Port {port}
    User root
    IdentityFile {key}
    IdentitiesOnly yes
    UserKnownHostsFile {known_hosts}
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
"""


def _launcher(state: Path, *, engine: bool) -> str:
    """The script run in the new mount namespace: hide /tmp and /run, start dockerd in its own
    network namespace (unless `engine` is off), then become sshd."""
    lines = [
        "set -eu",
        "mount -t tmpfs -o mode=1777 stackctl-remote-tmp /tmp",
        "mount -t tmpfs -o mode=755 stackctl-remote-run /run",
        "mkdir -p /run/sshd",
    ]
    if engine:
        dockerd = shlex.join(
            [
                "dockerd",
                f"--data-root={state}/docker",
                "--exec-root=/run/stackctl-docker",
                f"--pidfile={state}/dockerd.pid",
                "-H",
                "unix:///run/docker.sock",
                "--cgroup-parent=/stackctl-remote",
                "--userland-proxy=false",
            ]
        )
        inner = f"ip link set lo up && exec {dockerd}"
        lines.append(f"unshare --net -- sh -c {shlex.quote(inner)} >{state}/dockerd.log 2>&1 &")
    lines.append(f"exec /usr/sbin/sshd -D -e -f {state}/sshd_config 2>>{state}/sshd.log")
    return "\n".join(lines)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)


@dataclass
class RemoteHost:
    """One remote host: `url` is what `--host`/DOCKER_HOST take."""

    name: str
    state: Path
    port: int
    engine: bool
    docker_cli: bool = True  # False: sshd's sessions find no `docker` on their PATH
    process: subprocess.Popen[bytes] | None = None
    ssh_configs: list[Path] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return f"stackctl-remote-{self.name}"

    @property
    def url(self) -> str:
        return f"ssh://root@{self.alias}"

    @property
    def client_key(self) -> Path:
        return self.state / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.state / "known_hosts"

    def docker(self) -> DockerClient:
        return DockerClient(host=self.url)

    # -- set-up ------------------------------------------------------------------------------
    def start(self) -> None:
        self.state.mkdir(parents=True, mode=0o700)
        _keygen(self.state / "ssh_host_ed25519_key")
        _keygen(self.client_key)
        shutil.copy(self.client_key.with_suffix(".pub"), self.state / "authorized_keys")
        host_pub = (self.state / "ssh_host_ed25519_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        config = SSHD_CONFIG.format(port=self.port, dir=self.state)
        if not self.docker_cli:
            config += "SetEnv PATH=/nonexistent\n"
        (self.state / "sshd_config").write_text(config)
        self.add_alias(self.alias, key=self.client_key, known_hosts=self.known_hosts)
        script = _launcher(self.state, engine=self.engine)
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready()

    def add_alias(self, alias: str, *, key: Path, known_hosts: Path, port: int | None = None) -> str:
        """An ssh client entry for this host (another key, another known_hosts, another port:
        the bad-input tests). Returns the `ssh://` URL that uses it."""
        path = SSH_CONFIG_DIR / f"{alias}.conf"
        path.write_text(CLIENT_CONFIG.format(alias=alias, port=port or self.port, key=key, known_hosts=known_hosts))
        self.ssh_configs.append(path)
        return f"ssh://root@{alias}"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the remote host's sshd exited ({self.process.returncode}):\n{self.logs()}")
            probe = ["docker", "-H", self.url, "info", "--format", "{{.ID}}"] if self.engine else None
            cmd = probe or ["ssh", self.alias, "true"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
            if done.returncode == 0:
                return
            last = done.stderr
            time.sleep(0.5)
        raise RuntimeError(f"the remote host did not answer within {START_TIMEOUT:.0f}s: {last}\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for name in ("sshd.log", "dockerd.log"):
            path = self.state / name
            if path.is_file():
                parts.append(f"--- {name} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(parts)

    def load_images(self, images: Sequence[str] = STACK_IMAGES) -> None:
        """Copy images from the local engine to this one (`docker save | docker -H ssh://… load`)."""
        local = DockerClient()
        missing = [image for image in images if not self.docker().image.exists(image)]
        if missing:
            self.docker().image.load(local.image.save(missing))

    # -- inside the host ---------------------------------------------------------------------
    def dockerd_pid(self) -> int:
        return int((self.state / "dockerd.pid").read_text().strip())

    def in_netns(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run a command in the remote engine's network namespace (where its containers'
        addresses and published ports are)."""
        cmd = ["nsenter", f"--net=/proc/{self.dockerd_pid()}/ns/net", "--", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]

    # -- teardown ----------------------------------------------------------------------------
    def stop(self) -> None:
        for path in self.ssh_configs:
            path.unlink(missing_ok=True)
        if self.engine:
            self._stop_dockerd()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # sshd, the namespace's last process
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # the namespace is gone with its last process, and its mounts with it
        shutil.rmtree(self.state, ignore_errors=True)

    def _stop_dockerd(self) -> None:
        with contextlib.suppress(DockerException, OSError):  # its containers first, then the daemon
            client = self.docker()
            for container in client.container.list(all=True):
                client.container.remove(container, force=True, volumes=True)
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = self.dockerd_pid()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def started_remote_host(
    *, engine: bool = True, docker_cli: bool = True, images: Sequence[str] = ()
) -> Iterator[RemoteHost]:
    """A started remote host (with `images` loaded), stopped and removed afterwards. With
    `engine` off its sshd runs alone; with `docker_cli` off its sessions have no docker."""
    name = uuid.uuid4().hex[:8]
    host = RemoteHost(name, STATE_ROOT / name, free_port(), engine, docker_cli)
    try:
        host.start()
        if images:
            host.load_images(images)
        yield host
    finally:
        host.stop()


_session_host: list[RemoteHost] = []  # one per test session, however many modules import the fixture


@pytest.fixture(scope="session")
def remote_host(request: pytest.FixtureRequest) -> RemoteHost:
    """The remote host with the stack's images, for the test session: import it into a test
    module to use it (`from tests.e2e.remotehost import remote_host`). pytest makes one session
    fixture per module that imports it; they share this one host, stopped at the session's end."""
    if not _session_host:
        started = contextlib.ExitStack()
        _session_host.append(started.enter_context(started_remote_host(images=STACK_IMAGES)))

        def stop() -> None:
            _session_host.clear()
            started.close()

        request.addfinalizer(stop)
    return _session_host[0]
