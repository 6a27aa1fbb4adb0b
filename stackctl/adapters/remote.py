"""Docker engines on other hosts (`--host ssh://user@host[:port]`, or DOCKER_HOST): the host
URL checked before use, and what the docker CLI's SSH failures mean, each with its fix.

The docker CLI reaches an `ssh://` host by running `ssh … docker system dial-stdio` there, so
every failure arrives as the stderr of `ssh` or of the remote `docker`: unreachable, an unknown
or changed host key, a refused key, no docker CLI, no engine. Each is matched here and said in
one line with what to do; anything else keeps the tail of the CLI's own message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from stackctl.adapters import host as host_adapter
from stackctl.errors import EngineError, StackctlError, stderr_tail

SCHEMES = ("ssh", "tcp", "unix", "npipe", "fd")


@dataclass(frozen=True)
class HostUrl:
    """A parsed `ssh://user@host:port` (user and port optional)."""

    url: str
    user: str | None
    hostname: str
    port: int | None

    @property
    def where(self) -> str:
        """How to name it in a message: user@host:port."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.hostname}{port}"


def check_host(url: str) -> str:
    """The engine address as given, after checking its shape (before any connection)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise StackctlError(
            f"--host {url!r} is not an engine address",
            hint="use ssh://user@host[:port] (or unix:///path/to/docker.sock, tcp://host:port)",
        )
    if scheme == "ssh":
        parsed = parse_ssh(url)
        if not parsed.hostname:
            raise StackctlError(f"--host {url!r} names no host", hint="use ssh://user@host[:port]")
    return url


def parse_ssh(url: str) -> HostUrl:
    parts = urlsplit(url)
    if parts.password is not None:
        # never repeated: the CLI refuses passwords in the URL, and so do we
        raise StackctlError("--host must not carry a password", hint="use an SSH key (ssh-agent or ~/.ssh/config)")
    try:
        port = parts.port
    except ValueError:
        raise StackctlError(f"--host {url!r} has an invalid port", hint="use ssh://user@host[:port]") from None
    if parts.path not in ("", "/"):
        raise StackctlError(f"--host {url!r} has a path", hint="use ssh://user@host[:port]")
    return HostUrl(url, parts.username, parts.hostname or "", port)


def is_ssh(host: str | None) -> bool:
    return bool(host) and str(host).startswith("ssh://")


# (pattern in ssh's / the remote docker's stderr, message, fix). `{where}`, `{hostname}`,
# `{port_flag}`, `{user}` come from the URL, `{on_port}` from ssh's own message.
_FAILURES: tuple[tuple[str, str, str], ...] = (
    (
        r"Could not resolve hostname|Name or service not known|Temporary failure in name resolution|"
        r"nodename nor servname",
        "cannot reach {where}: the host name {hostname!r} does not resolve",
        "check the host in --host / DOCKER_HOST (or its HostName in ~/.ssh/config)",
    ),
    (
        r"Connection refused",
        "cannot reach {where}: connection refused (nothing listens for SSH{on_port})",
        "check the port in --host / DOCKER_HOST and that sshd runs on the host",
    ),
    (
        r"No route to host|Network is unreachable|Connection timed out|Operation timed out|"
        r"connect to host .* timed out",
        "cannot reach {where}: no route to the host (or it does not answer)",
        "check the address in --host / DOCKER_HOST, the network and the host's firewall",
    ),
    (
        r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed|"
        r"host key .* (?:is not known|has changed)|No .* host key is known",
        "refusing {where}: its SSH host key is not the one known for it (or none is known)",
        "check the host's key fingerprint with its administrator, then record it: "
        "`ssh-keyscan {port_flag}{hostname} >> ~/.ssh/known_hosts` (after `ssh-keygen -R` of a stale entry)",
    ),
    (
        r"Permission denied \(|Too many authentication failures|no mutual signature",
        "{where} refused the SSH key: permission denied",
        "add your public key to ~{user}/.ssh/authorized_keys on the host, or select the key "
        "(IdentityFile in ~/.ssh/config, or ssh-add)",
    ),
    (
        r"docker: (?:command )?not found|command not found|exit status 127",
        "{where} answers SSH but has no docker command",
        "install Docker on the host (https://docs.docker.com/engine/install/), or run `stackctl engine ensure` there",
    ),
    (
        r"permission denied while trying to connect to the Docker daemon",
        "{where}: {user} may not use the Docker engine there",
        "add {user} to the docker group on the host, or connect as a user who may use the engine",
    ),
    (
        r"Cannot connect to the Docker daemon|Is the docker daemon running|docker daemon is not running",
        "{where} answers SSH but no Docker engine runs there",
        "start the engine on the host (`systemctl start docker`, or `stackctl engine ensure` there)",
    ),
)


# The docker CLI writes to the stdin of the ssh it starts. When ssh exits at once (nothing
# listens, a refused key), the CLI may say only that the pipe broke, and ssh's own words are
# lost; ssh is then asked directly, with the same command the CLI runs.
_LOST_PIPE = re.compile(r"broken pipe|unexpected EOF|commandconn.*\bEOF\b", re.IGNORECASE)
SSH_PROBE_TIMEOUT = 30.0


def ssh_probe(parsed: HostUrl) -> str:
    """What `ssh HOST docker info` says on its stderr (empty when it succeeds)."""
    target = f"{parsed.user}@{parsed.hostname}" if parsed.user else parsed.hostname
    port = ["-p", str(parsed.port)] if parsed.port else []
    argv = ["ssh", "-o", "BatchMode=yes", *port, "--", target, "docker", "info", "--format", "ok"]
    try:
        host_adapter.run(argv, timeout=SSH_PROBE_TIMEOUT)
    except host_adapter.HostCommandError as exc:
        return exc.message
    return ""


def ssh_failure(host: str, stderr: str | bytes | None) -> EngineError:
    """What went wrong reaching the engine at an `ssh://` host, and the fix."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
    parsed = parse_ssh(host)
    if _LOST_PIPE.search(text) and not any(re.search(p, text, flags=re.IGNORECASE) for p, _, _ in _FAILURES):
        text = f"{text}\n{ssh_probe(parsed)}"
    fields = {
        "where": parsed.where,
        "hostname": parsed.hostname,
        "port_flag": f"-p {parsed.port} " if parsed.port else "",
        "on_port": f" on port {port[1]}" if (port := re.search(r"connect to host \S+ port (\d+)", text)) else "",
        "user": parsed.user or "the user",
    }
    for pattern, message, hint in _FAILURES:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return EngineError(message.format(**fields), hint=hint.format(**fields))
    detail = stderr_tail(text, lines=5)
    return EngineError(
        f"the Docker engine at {parsed.where} does not answer" + (f":\n{detail}" if detail else ""),
        hint="check that `ssh {where} docker info` works from this machine".format(**fields),
    )
