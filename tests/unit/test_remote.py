"""stackctl.adapters.remote: engine addresses, and the docker CLI's SSH failures said with their
fix. The stderr texts are the docker CLI's (28.2) and OpenSSH's (9.2) own, as recorded against
the remote test host (tests/e2e/test_remote_errors.py runs them for real)."""

from __future__ import annotations

import pytest

from stackctl.adapters.remote import check_host, parse_ssh, ssh_failure
from stackctl.errors import StackctlError

PREFIX = (
    'error during connect: Get "http://docker.example.com/v1.50/info": command [ssh -o ConnectTimeout=30 -T '
    "-l root -p 2222 -- 10.0.0.5 docker system dial-stdio] has exited with exit status {code}, make sure the URL "
    "is valid, and Docker 18.09 or later is installed on the remote host: stderr="
)
URL = "ssh://root@10.0.0.5:2222"


@pytest.mark.parametrize(
    ("code", "stderr", "message", "hint"),
    [
        (
            255,
            "ssh: connect to host 10.0.0.5 port 2222: Connection refused\r\n",
            "cannot reach root@10.0.0.5:2222: connection refused (nothing listens for SSH on port 2222)",
            "sshd runs on the host",
        ),
        (
            255,
            "ssh: Could not resolve hostname nohost.invalid: Name or service not known\r\n",
            "does not resolve",
            "check the host",
        ),
        (255, "ssh: connect to host 10.0.0.5 port 2222: No route to host\r\n", "no route to the host", "firewall"),
        (
            255,
            "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nHost key verification failed.\r\n",
            "its SSH host key is not the one known for it",
            "ssh-keyscan -p 2222 10.0.0.5",
        ),
        (
            255,
            "No ED25519 host key is known for [10.0.0.5]:2222 and you have requested strict checking.\r\n"
            "Host key verification failed.\r\n",
            "its SSH host key is not the one known for it",
            "known_hosts",
        ),
        (255, "root@10.0.0.5: Permission denied (publickey).\r\n", "refused the SSH key", "authorized_keys"),
        (127, "bash: line 1: docker: command not found\r\n", "has no docker command", "install Docker"),
    ],
)
def test_each_ssh_failure_is_named_with_its_fix(code: int, stderr: str, message: str, hint: str) -> None:
    error = ssh_failure(URL, PREFIX.format(code=code) + stderr)
    assert error.exit_code == 4
    assert message in error.message
    assert error.hint and hint in error.hint
    assert "dial-stdio" not in error.message


def test_no_engine_behind_sshd() -> None:
    error = ssh_failure(
        URL, "Cannot connect to the Docker daemon at http://docker.example.com. Is the docker daemon running?\n"
    )
    assert error.message == "root@10.0.0.5:2222 answers SSH but no Docker engine runs there"


def test_an_unknown_failure_keeps_the_tail_of_the_message() -> None:
    error = ssh_failure("ssh://deploy@example.org", "something else went wrong\n")
    assert error.message == "the Docker engine at deploy@example.org does not answer:\nsomething else went wrong"
    assert error.hint == "check that `ssh deploy@example.org docker info` works from this machine"


@pytest.mark.parametrize(
    "url", ["ssh://root@example.org", "ssh://example.org:2222", "unix:///run/docker.sock", "tcp://127.0.0.1:2375"]
)
def test_engine_addresses_accepted(url: str) -> None:
    assert check_host(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("example.org", "is not an engine address"),
        ("http://example.org", "is not an engine address"),
        ("ssh://", "names no host"),
        ("ssh://root:hunter2@example.org", "must not carry a password"),
        ("ssh://root@example.org:99999", "has an invalid port"),
        ("ssh://root@example.org/path", "has a path"),
    ],
)
def test_engine_addresses_refused(url: str, message: str) -> None:
    with pytest.raises(StackctlError, match=message) as info:
        check_host(url)
    assert "hunter2" not in info.value.message


def test_parse_ssh() -> None:
    parsed = parse_ssh("ssh://deploy@Example.org:2222")
    assert (parsed.user, parsed.hostname, parsed.port, parsed.where) == (
        "deploy",
        "example.org",
        2222,
        "deploy@example.org:2222",
    )
