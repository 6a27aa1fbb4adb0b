"""`--host` against real remote hosts that cannot serve (tests/e2e/remotehost.py): nothing
listening, a host name that does not resolve, a wrong or unknown host key, a refused key, and a
host whose sshd answers but runs no engine or has no docker command. Each is one clear error with its fix, exit 4, and
changes nothing, neither in the project nor on the remote engine."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.remotehost import RemoteHost, _keygen, started_remote_host
from tests.e2e.stackenv import STACKCTL, Proj, free_port, make_project

pytestmark = pytest.mark.engine


@dataclass
class Hosts:
    good: RemoteHost  # sshd and an engine
    bare: RemoteHost  # sshd, no engine
    no_cli: RemoteHost  # sshd, no docker command on its PATH
    proj: Proj


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    proj = make_project(tmp_path_factory.mktemp("remote-errors"))
    with (
        started_remote_host() as good,
        started_remote_host(engine=False) as bare,
        started_remote_host(engine=False, docker_cli=False) as no_cli,
    ):
        yield Hosts(good, bare, no_cli, proj)


def stackctl(proj: Proj, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("STACKCTL_DEBUG", None)
    return subprocess.run(
        [str(STACKCTL), *args], cwd=proj.root, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def snapshot(root: Path) -> dict[str, str]:
    """Every file of the project and its content, but stackctl's cache of validated configs."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".stackctl/cache/")
    }


def remote_state(host: RemoteHost) -> tuple[list[str], list[str], list[str], list[str]]:
    client = host.docker()
    return (
        sorted(c.name for c in client.container.list(all=True)),
        sorted(v.name for v in client.volume.list()),
        sorted(n.name for n in client.network.list()),
        sorted(i.id for i in client.image.list()),
    )


def _url(hosts: Hosts, case: str) -> str:
    good = hosts.good
    if case == "nothing listens":
        return good.add_alias(
            f"{good.alias}-closed", key=good.client_key, known_hosts=good.known_hosts, port=free_port()
        )
    if case == "unresolvable name":
        return "ssh://root@stackctl-no-such-host.invalid"
    if case == "wrong host key":  # known_hosts holds the bare host's key for the good host's port
        bare_key = (hosts.bare.state / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        wrong = good.state / "known_hosts.wrong"
        wrong.write_text(f"[127.0.0.1]:{good.port} {' '.join(bare_key)}\n")
        return good.add_alias(f"{good.alias}-hostkey", key=good.client_key, known_hosts=wrong)
    if case == "unknown host key":
        empty = good.state / "known_hosts.empty"
        empty.write_text("")
        return good.add_alias(f"{good.alias}-nohostkey", key=good.client_key, known_hosts=empty)
    if case == "refused key":
        other = good.state / "other_key"
        if not other.exists():
            _keygen(other)
        return good.add_alias(f"{good.alias}-badkey", key=other, known_hosts=good.known_hosts)
    if case == "no engine":
        return hosts.bare.url
    if case == "no docker command":
        return hosts.no_cli.url
    raise AssertionError(case)


CASES = {
    # case: (what the error says, what the hint says)
    "nothing listens": ("connection refused (nothing listens for SSH on port", "sshd runs on the host"),
    "unresolvable name": ("the host name 'stackctl-no-such-host.invalid' does not resolve", "check the host"),
    "wrong host key": ("its SSH host key is not the one known for it", "ssh-keyscan"),
    "unknown host key": ("its SSH host key is not the one known for it", "known_hosts"),
    "refused key": ("refused the SSH key: permission denied", "authorized_keys"),
    "no engine": ("answers SSH but no Docker engine runs there", "start the engine on the host"),
    "no docker command": ("answers SSH but has no docker command", "install Docker on the host"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_host_that_cannot_serve_is_one_clear_error_and_changes_nothing(hosts: Hosts, case: str) -> None:
    url = _url(hosts, case)
    message, hint = CASES[case]
    files, remote = snapshot(hosts.proj.root), remote_state(hosts.good)
    runs = {
        "engine status": stackctl(hosts.proj, "--host", url, "engine", "status"),
        "status": stackctl(hosts.proj, "--host", url, "status"),
        "up": stackctl(hosts.proj, "--host", url, "up"),
        "DOCKER_HOST up": stackctl(hosts.proj, "up", env={"DOCKER_HOST": url}),
    }
    for what, proc in runs.items():
        assert proc.returncode == 4, (what, proc.stdout, proc.stderr)
        assert message in proc.stderr, (what, proc.stderr)
        assert "hint: " in proc.stderr and hint in proc.stderr, (what, proc.stderr)
        assert "Traceback" not in proc.stderr and "dial-stdio" not in proc.stderr, (what, proc.stderr)
    assert snapshot(hosts.proj.root) == files
    assert remote_state(hosts.good) == remote


def test_the_good_host_answers_through_the_same_commands(hosts: Hosts) -> None:
    """The control: the same project and commands against the working host."""
    proc = stackctl(hosts.proj, "--host", hosts.good.url, "engine", "status")
    assert proc.returncode == 0, proc.stderr
    assert f"engine at {hosts.good.url} answers" in proc.stdout + proc.stderr
    proc = stackctl(hosts.proj, "status", "--json", env={"DOCKER_HOST": hosts.good.url})
    assert proc.returncode == 1, proc.stderr  # it answered: no containers there, so not healthy (exit 1, not 4)
    assert '"services": []' in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("root@example.org", "is not an engine address"),
        ("ssh://", "names no host"),
        ("ssh://root:secret@example.org", "must not carry a password"),
        ("ssh://root@example.org:notaport", "has an invalid port"),
    ],
)
def test_a_malformed_host_is_refused_before_any_connection(hosts: Hosts, url: str, message: str) -> None:
    proc = stackctl(hosts.proj, "--host", url, "status")
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and "hint: use " in proc.stderr
    assert "secret" not in proc.stderr
