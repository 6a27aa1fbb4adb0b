"""A real SSH/SFTP server for tests: Debian's openssh-server in a container on a given Docker
network (built from the local Debian base, never a registry image), with one user that logs in
with a key made here, and an ed25519 host key whose known_hosts line is given to the client.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

IMAGE = "stackctl-test/sshd:trixie"
USER = "pgbackrest"
DOCKERFILE = f"""\
FROM stackctl/debian:trixie
RUN apt-get update && apt-get install -y --no-install-recommends openssh-server openssh-sftp-server \\
    && rm -rf /var/lib/apt/lists/* \\
    && useradd --create-home --shell /bin/bash {USER} && usermod -p '*' {USER} \\
    && install -d -o {USER} -g {USER} -m 0700 /home/{USER}/.ssh /home/{USER}/repo \\
    && install -d -m 0755 /run/sshd \\
    && rm -f /etc/ssh/ssh_host_*
RUN printf '%s\\n' 'HostKey /etc/ssh/ssh_host_ed25519_key' 'PasswordAuthentication no' \\
    'KbdInteractiveAuthentication no' 'UsePAM no' > /etc/ssh/sshd_config.d/test.conf
CMD ["sh", "-c", "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && exec /usr/sbin/sshd -D -e"]
"""


def build_image(workdir: Path) -> str:
    docker = DockerClient()
    if not docker.image.exists(IMAGE):
        context = workdir / "sshd-image"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text(DOCKERFILE)
        docker.legacy_build(context, tags=[IMAGE], pull=False)
    return IMAGE


@dataclass
class SftpServer:
    container: str
    alias: str
    private_key: Path  # the client's key (PEM, no passphrase)
    known_hosts: Path  # `alias ssh-ed25519 ...`
    user: str = USER
    path: str = f"/home/{USER}/repo"

    def files(self) -> list[str]:
        """Every file under the repository's path, as the server sees it."""
        out = DockerClient().execute(self.container, ["find", self.path, "-type", "f"])
        return [line for line in str(out).splitlines() if line]

    def read(self, path: str) -> bytes:
        done = subprocess.run(["docker", "exec", self.container, "cat", path], capture_output=True, check=True)
        return done.stdout

    def remove(self) -> None:
        with contextlib.suppress(DockerException):
            DockerClient().container.remove(self.container, force=True)


@contextlib.contextmanager
def sftp_on(network: str, *, workdir: Path, alias: str = "sftp") -> Iterator[SftpServer]:
    """sshd running on `network` as `alias`, removed at exit."""
    docker = DockerClient()
    image = build_image(workdir)
    key = workdir / "sftp_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-m", "PEM", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    name = f"sshd-{uuid.uuid4().hex[:8]}"
    docker.container.run(
        image,
        name=name,
        detach=True,
        labels={"io.stackctl.test": "sshd"},
        networks=[network],
        network_aliases=[alias],
    )
    server = SftpServer(name, alias, key, workdir / "sftp_known_hosts")
    try:
        pub = key.with_suffix(".pub").read_text()
        docker.execute(
            name,
            ["sh", "-c", f"printf '%s\\n' '{pub.strip()}' > /home/{USER}/.ssh/authorized_keys && "
             f"chown {USER}:{USER} /home/{USER}/.ssh/authorized_keys && chmod 600 /home/{USER}/.ssh/authorized_keys"],
        )  # fmt: skip
        host_key = ""
        for _ in range(50):
            with contextlib.suppress(DockerException):
                host_key = str(docker.execute(name, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])).strip()
            if host_key:
                break
            import time

            time.sleep(0.2)
        kind, blob = host_key.split()[:2]
        server.known_hosts.write_text(f"{alias} {kind} {blob}\n")
        yield server
    finally:
        server.remove()
