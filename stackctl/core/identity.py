"""A cache of each environment's StackIdentity, keyed by its env file's digest.

`stackctl status` needs only the compose project name and the URLs, not the whole validated
config; validating it costs more than the docker calls status makes (pydantic-settings and
the config models, bench/README.md). Every full validation writes the identity here; a
status whose env file (and stackctl version) is unchanged reads it back. Any other change
of the file, or a missing or unreadable cache, means a full validation: the cache is never
the only source.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

from stackctl import __version__
from stackctl.adapters.files import write_atomic
from stackctl.config.profile import Environment
from stackctl.core.project import STATE_DIR, Project
from stackctl.core.stack import StackIdentity


def _path(project: Project, env: Environment) -> str:
    return f"{STATE_DIR}/cache/identity-{env.name}.json"


def _digest(project: Project, env: Environment) -> str | None:
    try:
        data = project.env_file(env).read_bytes()
    except OSError:
        return None
    return hashlib.sha256(__version__.encode() + b"\0" + data).hexdigest()


def cached_identity(project: Project, env: Environment) -> StackIdentity | None:
    """The identity remembered for this env file's exact content, or None."""
    digest = _digest(project, env)
    try:
        payload = json.loads((project.root / _path(project, env)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or digest is None or payload.get("digest") != digest:
        return None
    name, urls = payload.get("name"), payload.get("urls")
    if not isinstance(name, str) or not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        return None
    return StackIdentity(name, tuple(urls))


def remember_identity(project: Project, env: Environment, identity: StackIdentity) -> None:
    """Best effort: a project folder that cannot be written to simply has no cache."""
    digest = _digest(project, env)
    if digest is None:
        return
    payload = {"digest": digest, "name": identity.name, "urls": list(identity.urls)}
    with contextlib.suppress(OSError):
        text = json.dumps(payload, indent=2) + "\n"
        write_atomic(project.root / _path(project, env), text.encode(), mode=0o644)
