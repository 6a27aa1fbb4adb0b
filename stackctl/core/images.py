"""Registry-free images: a Debian base from mmdebstrap, then the stack's servers from Debian packages.

Debian 13 (trixie) is the default suite: Python 3.13, PostgreSQL 17, Redis 8.0, nginx 1.26.
Debian 12 (bookworm) stays selectable: Python 3.11, PostgreSQL 15, Redis 7.0, nginx 1.22.
Each image gets a series tag (`stackctl/postgres:17-trixie`), which the stack selects through
local_image_env(), and a tag naming the true version read inside the built image
(`stackctl/postgres:17.12-trixie`). Nothing is pulled from any registry.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from stackctl.adapters import host

if TYPE_CHECKING:  # python-on-whales loads only when images are built: init needs none of it
    from python_on_whales import DockerClient
from stackctl.errors import StackctlError

Report = Callable[[str], None]

MMDEBSTRAP_TIMEOUT = 900.0
# Like Debian's own container images: no manuals, translations or docs (copyright stays),
# no translated package lists. The options stay in the image for every later apt-get.
MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    '--aptopt=Acquire::Languages "none"',
)
UPSTREAM_VERSION = re.compile(r"^(?:\d+:)?(?P<version>\d+(?:\.\d+)+)")
IMAGE_VARIABLES = ("PYTHON_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE", "NGINX_IMAGE")
# The local images are named <namespace>/<name>:<series>-<suite>. Another namespace keeps a
# second set beside the usual one on the same engine (a test builds its own without touching
# the images other stacks run); init, up and `images build` all follow it.
NAMESPACE_VARIABLE = "STACKCTL_IMAGE_NAMESPACE"
DEFAULT_NAMESPACE = "stackctl"
_NAMESPACE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")


@dataclass(frozen=True)
class Suite:
    """A Debian release and the version series of the servers its packages give."""

    name: str
    debian: str  # /etc/debian_version is "<debian>.<point release>"
    python: str  # the python3 the suite ships, e.g. 3.13.5 (what core/python_choice.py compares)
    postgres: str  # the major version: package postgresql-<postgres>
    redis: str
    nginx: str

    @property
    def python_series(self) -> str:
        return ".".join(self.python.split(".")[:2])


TRIXIE = Suite("trixie", debian="13", python="3.13.5", postgres="17", redis="8.0", nginx="1.26")
BOOKWORM = Suite("bookworm", debian="12", python="3.11.2", postgres="15", redis="7.0", nginx="1.22")
# Preferred first: core/python_choice.py offers the suites in this order.
SUITES = {release.name: release for release in (TRIXIE, BOOKWORM)}
DEFAULT_SUITE = "trixie"

# The official images for each suite, used when a registry answers. Bookworm's are the config
# model's defaults. The official nginx and redis images moved to trixie after the series Debian
# ships (1.26, 8.0), so trixie's follow their current series (nginx stable, Redis 8).
OFFICIAL_IMAGES = {
    "trixie": {
        "PYTHON_IMAGE": "python:3.13-slim-trixie",
        "POSTGRES_IMAGE": "postgres:17-trixie",
        "REDIS_IMAGE": "redis:8-trixie",
        "NGINX_IMAGE": "nginx:stable-trixie",
    },
    "bookworm": {
        "PYTHON_IMAGE": "python:3.11-slim-bookworm",
        "POSTGRES_IMAGE": "postgres:15-bookworm",
        "REDIS_IMAGE": "redis:7.0-bookworm",
        "NGINX_IMAGE": "nginx:1.22",
    },
}
# Official python images exist for each of these on both suites; newest first.
OFFICIAL_PYTHON_MINORS = ("3.14", "3.13", "3.12", "3.11", "3.10")


def debian_suite(name: str) -> Suite:
    """The suite called `name`; refuse one stackctl does not build."""
    try:
        return SUITES[name]
    except KeyError:
        raise StackctlError(
            f"unknown Debian suite {name!r}", hint=f"stackctl builds its images from {' or '.join(SUITES)}"
        ) from None


@dataclass(frozen=True)
class ImageSpec:
    """One image: its tags, the version series it must belong to, and how to build it and read its version."""

    name: str
    suite: str
    alias: str  # the series tag the stack uses, e.g. stackctl/postgres:17-trixie
    version_tag: str  # with {version}, e.g. stackctl/postgres:{version}-trixie
    series: str  # the true version must start with "<series>."
    version_argv: tuple[str, ...]
    build_args: tuple[tuple[str, str], ...] = ()  # besides SUITE, which every build gets

    def tag_for(self, version: str) -> str:
        return self.version_tag.format(version=version)

    def is_version_tag(self, tag: str) -> bool:
        prefix, _, suffix = self.version_tag.partition("{version}")
        middle = tag[len(prefix) : len(tag) - len(suffix)] if tag.endswith(suffix) else ""
        return tag.startswith(prefix) and _in_series(middle, self.series)


@dataclass(frozen=True)
class SuiteImages:
    """The base image and the four service images of one suite, in build order."""

    base: ImageSpec
    python: ImageSpec
    postgres: ImageSpec
    redis: ImageSpec
    nginx: ImageSpec

    @property
    def services(self) -> tuple[ImageSpec, ...]:
        return (self.python, self.postgres, self.redis, self.nginx)

    @property
    def all(self) -> tuple[ImageSpec, ...]:
        return (self.base, *self.services)


@dataclass(frozen=True)
class ImageResult:
    name: str
    tags: list[str]
    status: Literal["built", "skipped"]
    seconds: float
    size_bytes: int


def _dpkg_version(package: str) -> tuple[str, ...]:
    return ("dpkg-query", "--show", "--showformat=${Version}", package)


_DEBIAN_VERSION = ("cat", "/etc/debian_version")
_PYTHON_VERSION = ("python3", "-c", "import platform; print(platform.python_version())")


def image_namespace() -> str:
    """The namespace of the local images: STACKCTL_IMAGE_NAMESPACE, default "stackctl"."""
    namespace = os.environ.get(NAMESPACE_VARIABLE, "").strip() or DEFAULT_NAMESPACE
    if not _NAMESPACE.fullmatch(namespace):
        raise StackctlError(
            f"{NAMESPACE_VARIABLE}={namespace!r} is not an image namespace",
            hint="use lower-case letters, digits and . _ - (e.g. stackctl-test), or unset it",
        )
    return namespace


def images_for(suite: str = DEFAULT_SUITE) -> SuiteImages:
    """The images `build_images(suite=suite)` makes."""
    release = debian_suite(suite)
    namespace = image_namespace()

    def service(name: str, series: str, version_argv: tuple[str, ...], **build_args: str) -> ImageSpec:
        tag = f"{namespace}/{name}:{{}}-{release.name}"
        alias, version_tag = tag.format(series), tag.format("{version}")
        return ImageSpec(name, release.name, alias, version_tag, series, version_argv, tuple(build_args.items()))

    return SuiteImages(
        base=ImageSpec(
            name="debian",
            suite=release.name,
            alias=f"{namespace}/debian:{release.name}",
            version_tag=f"{namespace}/debian:{{version}}",
            series=release.debian,
            version_argv=_DEBIAN_VERSION,
        ),
        python=service("python", release.python_series, _PYTHON_VERSION),
        postgres=service(
            "postgres", release.postgres, _dpkg_version(f"postgresql-{release.postgres}"), PG_MAJOR=release.postgres
        ),
        redis=service("redis", release.redis, _dpkg_version("redis-server")),
        nginx=service("nginx", release.nginx, _dpkg_version("nginx")),
    )


def local_image_env(suite: str = DEFAULT_SUITE) -> dict[str, str]:
    """The stack's image variables pointing at the images `build_images(suite=suite)` makes."""
    return dict(zip(IMAGE_VARIABLES, (spec.alias for spec in images_for(suite).services), strict=True))


def official_image_env(suite: str = DEFAULT_SUITE) -> dict[str, str]:
    """The stack's image variables pointing at the official images of one suite."""
    return dict(OFFICIAL_IMAGES[debian_suite(suite).name])


# The official image's postgres says "FATAL: database files are incompatible with server" and
# "DETAIL: The data directory was initialized by PostgreSQL version 15, which is not compatible
# with this version 17.2 ..."; stackctl's entrypoint prints the same two phrases before starting.
_PG_INCOMPATIBLE = "database files are incompatible with server"
_PG_VERSIONS = re.compile(r"initialized by PostgreSQL version (\d+), which is not compatible with this version (\d+)")


def postgres_data_mismatch_hint(logs: str) -> str | None:
    """The way out when `logs` (a db container's) show a data directory of another major version."""
    if _PG_INCOMPATIBLE not in logs:
        return None
    found = _PG_VERSIONS.search(logs)
    if found:
        held = f"PostgreSQL {found[1]} files and the server is PostgreSQL {found[2]}, which cannot read them"
        old, new = f"a PostgreSQL {found[1]} image", f"the PostgreSQL {found[2]} one"
    else:
        held = "files of another PostgreSQL major version than the server's"
        old, new = "an image of the files' major version", "the new one"
    return (
        f"the database volume holds {held}; the data was not upgraded. To move it: set POSTGRES_IMAGE back to "
        f"{old}, `stackctl backup now db`, then set POSTGRES_IMAGE to {new}, start it on an empty database "
        f"volume and `stackctl restore db` that backup (or run pg_upgrade on a copy of the volume)"
    )


def _in_series(version: str, series: str) -> bool:
    return bool(re.fullmatch(r"\d+(?:\.\d+)+", version)) and version.startswith(f"{series}.")


def upstream_version(raw: str, *, series: str) -> str:
    """'5:7.0.15-1~deb12u10' -> '7.0.15'; refuse a version outside the expected series."""
    match = UPSTREAM_VERSION.match(raw.strip())
    version = match.group("version") if match else ""
    if not _in_series(version, series):
        raise StackctlError(f"unexpected version {raw.strip()!r}: expected {series}.x")
    return version


def build_images(
    *,
    rebuild: bool = False,
    report: Report,
    suite: str = DEFAULT_SUITE,
    client: DockerClient | None = None,
    services: tuple[str, ...] | None = None,
) -> list[ImageResult]:
    """Build the suite's base image, then the python, postgres, redis and nginx images FROM it, all four at once,
    on `client`'s engine (default this host's); `services` ("python", ...) limits the four.

    An image whose series tag exists is skipped unless `rebuild` (which also bypasses the cache).
    The results come in the order of `images_for(suite).all`, whatever order the builds finish in.
    """
    from stackctl.adapters.docker import engine_client, require_engine

    images = images_for(suite)
    client = client or engine_client()
    require_engine(client)
    builder = _builder_client(client, report)
    started = time.monotonic()
    base = _ensure_image(images.base, images, client, builder, rebuild=rebuild, report=report)
    chosen = [spec for spec in images.services if services is None or spec.name in services]
    results = [base, *_ensure_services(images, chosen, client, builder, rebuild=rebuild, report=report)]
    built = sum(result.status == "built" for result in results)
    report(f"images ready: {built} built, {len(results) - built} skipped, {time.monotonic() - started:.1f} s in all")
    return results


def _ensure_services(
    images: SuiteImages,
    services: list[ImageSpec],
    client: DockerClient,
    builder: DockerClient,
    *,
    rebuild: bool,
    report: Report,
) -> list[ImageResult]:
    """Ensure the service images in a thread each (they need only the base), reporting one whole line at a
    time. Every build runs to its end; then the first failure in the order of `services` is raised."""
    lock = threading.Lock()

    def report_line(line: str) -> None:
        with lock:
            report(line)

    with ThreadPoolExecutor(max_workers=max(len(services), 1), thread_name_prefix="stackctl-build") as pool:
        futures = [
            pool.submit(_ensure_image, spec, images, client, builder, rebuild=rebuild, report=report_line)
            for spec in services
        ]
    return [future.result() for future in futures]  # the pool has waited for every build


def _ensure_image(
    spec: ImageSpec, images: SuiteImages, client: DockerClient, builder: DockerClient, *, rebuild: bool, report: Report
) -> ImageResult:
    started = time.monotonic()
    from python_on_whales.exceptions import DockerException

    try:
        status: Literal["built", "skipped"] = "skipped" if client.image.exists(spec.alias) and not rebuild else "built"
        if status == "built":
            report(f"{spec.alias}: building")
            if spec is images.base:
                _build_base(spec, client, report)
            else:
                _build_service(spec, builder, rebuild=rebuild)
        tags = _version_tags(spec, client, report)
        size = client.image.inspect(spec.alias).size or 0
    except DockerException as exc:
        from stackctl.adapters.docker import describe_failure

        raise describe_failure(exc, what=f"building {spec.alias}") from exc
    seconds = time.monotonic() - started
    verb = "built" if status == "built" else "present, skipped"
    report(f"{spec.alias}: {verb} in {seconds:.1f} s, {size / 1e6:.0f} MB ({', '.join(tags)})")
    return ImageResult(name=spec.name, tags=tags, status=status, seconds=seconds, size_bytes=size)


def _version_tags(spec: ImageSpec, client: DockerClient, report: Report) -> list[str]:
    """The image's tags; the true-version tag is read inside the image and added when missing."""
    current = client.image.inspect(spec.alias).repo_tags or []
    if not any(spec.is_version_tag(tag) for tag in current):
        argv = spec.version_argv
        raw = client.run(spec.alias, list(argv[1:]), entrypoint=argv[0], remove=True)
        version_tag = spec.tag_for(upstream_version(str(raw), series=spec.series))
        client.image.tag(spec.alias, version_tag)
        report(f"{spec.alias}: tagged {version_tag}")
        current = [*current, version_tag]
    return [spec.alias, *sorted(tag for tag in current if spec.is_version_tag(tag))]


def _build_service(spec: ImageSpec, builder: DockerClient, *, rebuild: bool) -> None:
    """`docker build` the image's folder FROM the suite's base image, never pulling."""
    build_args = {"SUITE": spec.suite, "NAMESPACE": image_namespace(), **dict(spec.build_args)}
    context = resources.files("stackctl") / "images" / spec.name
    with resources.as_file(context) as context_path:
        builder.legacy_build(context_path, tags=[spec.alias], build_args=build_args, cache=not rebuild, pull=False)


def _build_base(base: ImageSpec, client: DockerClient, report: Report) -> None:
    """mmdebstrap a minimal Debian into a tar file, then `docker import` it under the base tag."""
    mmdebstrap = _mmdebstrap(report)
    apt_clean = resources.files("stackctl") / "images" / "debian" / "docker-clean"
    with tempfile.TemporaryDirectory(prefix="stackctl-base-") as tmp, resources.as_file(apt_clean) as apt_clean_path:
        rootfs = Path(tmp) / "rootfs.tar"
        report(f"{base.alias}: mmdebstrap {base.suite} (minbase)")
        argv = [
            str(mmdebstrap),
            *MMDEBSTRAP_OPTIONS,
            f"--customize-hook=upload {apt_clean_path} /etc/apt/apt.conf.d/docker-clean",
            # apt-get clean, which mmdebstrap runs last, no longer knows these caches by name.
            '--customize-hook=rm -f "$1"/var/cache/apt/*.bin',
            base.suite,
            str(rootfs),
        ]
        host.run(argv, timeout=MMDEBSTRAP_TIMEOUT)
        client.image.import_(rootfs, base.alias, changes=['CMD ["bash"]'])


def _mmdebstrap(report: Report) -> Path:
    found = host.which("mmdebstrap")
    if found is not None:
        return found
    if not (host.is_root() and host.is_apt_family(host.os_release())):
        raise StackctlError(
            "mmdebstrap is needed to build the base image and is not installed",
            hint="install it (Debian/Ubuntu: apt-get install mmdebstrap), then rerun",
        )
    report("installing mmdebstrap: apt-get install mmdebstrap")
    host.apt_install(["mmdebstrap"])
    found = host.which("mmdebstrap")
    if found is None:
        raise StackctlError("mmdebstrap is installed but not on PATH")
    return found


def _builder_client(client: DockerClient, report: Report) -> DockerClient:
    """The client for `docker build`, with DOCKER_BUILDKIT set for its calls only.

    python-on-whales passes no environment to `legacy_build`, so the variable goes into the
    client's call (`env DOCKER_BUILDKIT=... docker ...`). A docker CLI of 23 or later can use
    BuildKit only through the buildx plugin; without it, `DOCKER_BUILDKIT=1` makes every build
    fail, so the classic builder is used (these Dockerfiles need no BuildKit feature).
    """
    buildkit = _buildkit_available(client)
    report(f"builder: {'BuildKit' if buildkit else 'classic builder (this docker CLI has no buildx for BuildKit)'}")
    config = client.client_config
    call = ["env", f"DOCKER_BUILDKIT={int(buildkit)}", *config.client_call]
    from python_on_whales import DockerClient

    return DockerClient(client_call=call, host=config.host, context=config.context, config=config.config)


def _buildkit_available(client: DockerClient) -> bool:
    from python_on_whales.exceptions import DockerException

    try:
        client.buildx.version()
        return True
    except DockerException:
        pass
    try:
        cli_version = client.version().client
    except DockerException:
        return False
    major = (cli_version.version or "0").split(".")[0] if cli_version else "0"
    return major.isdigit() and int(major) < 23
