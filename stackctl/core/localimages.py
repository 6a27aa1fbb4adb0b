"""The local images a stack names, found missing on an engine: built there (only what is
missing, with its suite's base when that is missing too), or refused with the exact command,
suite included. Nothing asks a registry for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from stackctl.core.images import (
    DEFAULT_NAMESPACE,
    DEFAULT_SUITE,
    NAMESPACE_VARIABLE,
    SUITES,
    ImageResult,
    Report,
    build_images,
    image_namespace,
    images_for,
)
from stackctl.errors import StackctlError

if TYPE_CHECKING:
    from python_on_whales import DockerClient


def build_command(suite: str) -> str:
    """The command that builds `suite`'s local images, as a user types it."""
    namespace = image_namespace()
    env = f"{NAMESPACE_VARIABLE}={namespace} " if namespace != DEFAULT_NAMESPACE else ""
    return f"{env}stackctl images build" + ("" if suite == DEFAULT_SUITE else f" --suite {suite}")


def local_suites(references: Iterable[str]) -> dict[str, list[str]]:
    """Suite -> which of `references` (image names) are its local service images; other
    references (official images, a registry's) are left out."""
    found: dict[str, list[str]] = {}
    wanted = list(dict.fromkeys(str(reference) for reference in references))
    for suite in SUITES:
        aliases = {spec.alias for spec in images_for(suite).services}
        mine = [reference for reference in wanted if reference in aliases]
        if mine:
            found[suite] = mine
    return found


def build_commands(references: Iterable[str]) -> list[str]:
    """The `stackctl images build` commands that make the local images among `references`."""
    return [build_command(suite) for suite in local_suites(references)]


def ensure_local_images(
    references: Iterable[str], *, client: DockerClient, report: Report, builds: bool = True, engine: str = "this engine"
) -> list[ImageResult]:
    """Build, on `client`'s engine, the local images among `references` that it lacks (with
    their suite's base image when that is missing too), so that nothing asks a registry for
    them. With `builds` False (an engine stackctl does not build on), a missing one is refused
    naming the command that builds it."""
    from python_on_whales.exceptions import DockerException

    results: list[ImageResult] = []
    for suite, wanted in local_suites(references).items():
        try:
            missing = [reference for reference in wanted if not client.image.exists(reference)]
        except DockerException as exc:
            from stackctl.adapters.docker import describe_failure, require_engine

            require_engine(client)  # an engine that does not answer: how to start it (exit 4)
            raise describe_failure(exc, what="looking for the local images") from exc
        if not missing:
            continue
        command = build_command(suite)
        names = ", ".join(missing)
        if not builds:
            raise StackctlError(
                f"{names}: not on {engine}; stackctl's local images are built, never pulled",
                hint=f"run `{command}` on that host",
            )
        report(f"{names}: not on {engine}, building it now (what `{command}` builds)")
        services = tuple(spec.name for spec in images_for(suite).services if spec.alias in missing)
        results += build_images(suite=suite, report=report, client=client, services=services)
    return results
