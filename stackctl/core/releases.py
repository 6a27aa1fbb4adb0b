"""The releases of a stack, recorded on its own engine.

Each release is an image tag, `<project>-web:<id>`, and a record: a small named volume whose
labels hold the release as JSON (`io.stackctl.release`). A volume is created atomically with
its labels and needs no container to write it; both live on the engine's host, so the record
travels with the stack, not with the client that deployed it. The serving release is the one
whose image the running web container was started from.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from stackctl.errors import DockerCommandError, StackctlError, stderr_tail

PROJECT_LABEL = "io.stackctl.project"
RECORD_LABEL = "io.stackctl.release"
KEEP_RELEASES = 5


@dataclass(frozen=True)
class Release:
    id: str
    image: str
    created: str  # ISO 8601, UTC
    ref: str | None = None  # the git commit built, None for the working tree
    config_digest: str = ""
    migrations: list[str] = field(default_factory=list)  # applied by this release's deploy
    unknown_applied: list[str] = field(default_factory=list)  # the database was ahead of it
    backup: str | None = None  # the database backup taken before its migrations
    previous: str | None = None  # the release it replaced

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class UnknownRelease(StackctlError):
    exit_code = 2


def new_release_id(now: datetime | None = None) -> str:
    """Sortable by time, unique: r20261202-004512-3fa9."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"r{stamp}-{secrets.token_hex(2)}"


def image_of(project: str, release_id: str) -> str:
    return f"{project}-web:{release_id}"


def _volume(project: str, release_id: str) -> str:
    return f"{project}-release-{release_id}"


def record(client: DockerClient, project: str, release: Release) -> None:
    labels = {PROJECT_LABEL: project, RECORD_LABEL: json.dumps(release.to_json(), sort_keys=True)}
    try:
        client.volume.create(_volume(project, release.id), labels=labels)
    except DockerException as exc:
        raise DockerCommandError(f"could not record release {release.id}\n{stderr_tail(exc.stderr)}") from None


def parse_record(text: str) -> Release | None:
    try:
        data = json.loads(text)
        known = {k: data[k] for k in Release.__dataclass_fields__ if k in data}
        return Release(**known)
    except (ValueError, TypeError, KeyError):
        return None


def list_releases(client: DockerClient, project: str) -> list[Release]:
    """Every recorded release of `project`, newest first."""
    try:
        volumes = client.volume.list(filters=[("label", f"{PROJECT_LABEL}={project}")])
    except DockerException as exc:
        raise DockerCommandError(f"could not list the releases\n{stderr_tail(exc.stderr)}") from None
    found = [parse_record((v.labels or {}).get(RECORD_LABEL, "")) for v in volumes]
    return sorted((r for r in found if r is not None), key=lambda r: (r.created, r.id), reverse=True)


def find_release(releases: list[Release], wanted: str) -> Release:
    """A release by its id (or a unique prefix of it)."""
    matches = [r for r in releases if r.id == wanted] or [r for r in releases if r.id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(r.id for r in releases[:KEEP_RELEASES]) or "none"
    if not matches:
        raise UnknownRelease(
            f"no release {wanted!r} is recorded", hint=f"known releases: {known} (`stackctl releases`)"
        )
    raise UnknownRelease(f"{wanted!r} names several releases", hint=f"give the whole id; known releases: {known}")


def image_present(client: DockerClient, image: str) -> bool:
    try:
        return bool(client.image.exists(image))
    except DockerException:
        return False


def prune(client: DockerClient, project: str, *, keep: int = KEEP_RELEASES, protect: set[str]) -> list[str]:
    """Remove the images and records of all but the newest `keep` releases (never one in
    `protect`: the serving one, the one just deployed). Returns the ids removed."""
    removed = []
    for release in list_releases(client, project)[keep:]:
        if release.id in protect:
            continue
        try:
            if image_present(client, release.image):
                client.image.remove(release.image)
            client.volume.remove(_volume(project, release.id))
        except DockerException:
            continue  # an image still used by a container: kept until the next prune
        removed.append(release.id)
    return removed


def remove_all(client: DockerClient, project: str) -> None:
    """Every release image and record of `project` (tests, and a stack removed for good)."""
    for release in list_releases(client, project):
        try:
            if image_present(client, release.image):
                client.image.remove(release.image, force=True)
            client.volume.remove(_volume(project, release.id))
        except DockerException:
            pass
