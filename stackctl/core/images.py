"""Registry-free images: a Debian base from mmdebstrap, then the stack's servers from Debian packages.

Each image gets a series tag (`stackctl/postgres:15-bookworm`), which the stack selects through
LOCAL_IMAGE_ENV, and a tag naming the true version read inside the built image
(`stackctl/postgres:15.14-bookworm`). Nothing is pulled from any registry.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from stackctl.adapters import host
from stackctl.adapters.docker import describe_failure, engine_client, require_engine
from stackctl.errors import StackctlError

Report = Callable[[str], None]

SUITE = "bookworm"
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


def _dpkg_version(package: str) -> tuple[str, ...]:
    return ("dpkg-query", "--show", "--showformat=${Version}", package)


@dataclass(frozen=True)
class ImageSpec:
    """One image: its tags, the version series it must belong to, and how to read its version."""

    name: str
    alias: str  # the series tag the stack uses, e.g. stackctl/postgres:15-bookworm
    version_tag: str  # with {version}, e.g. stackctl/postgres:{version}-bookworm
    series: str  # the true version must start with "<series>."
    version_argv: tuple[str, ...]

    def tag_for(self, version: str) -> str:
        return self.version_tag.format(version=version)

    def is_version_tag(self, tag: str) -> bool:
        prefix, _, suffix = self.version_tag.partition("{version}")
        middle = tag[len(prefix) : len(tag) - len(suffix)] if tag.endswith(suffix) else ""
        return tag.startswith(prefix) and _in_series(middle, self.series)


@dataclass(frozen=True)
class ImageResult:
    name: str
    tags: list[str]
    status: Literal["built", "skipped"]
    seconds: float
    size_bytes: int


def _service(name: str, series: str, version_argv: tuple[str, ...]) -> ImageSpec:
    return ImageSpec(
        name, f"stackctl/{name}:{series}-{SUITE}", f"stackctl/{name}:{{version}}-{SUITE}", series, version_argv
    )


BASE = ImageSpec(
    "debian", f"stackctl/debian:{SUITE}", "stackctl/debian:{version}", "12", ("cat", "/etc/debian_version")
)
PYTHON = _service("python", "3.11", ("python3", "-c", "import platform; print(platform.python_version())"))
POSTGRES = _service("postgres", "15", _dpkg_version("postgresql-15"))
REDIS = _service("redis", "7.0", _dpkg_version("redis-server"))
NGINX = _service("nginx", "1.22", _dpkg_version("nginx"))
SERVICES = (PYTHON, POSTGRES, REDIS, NGINX)
IMAGES = (BASE, *SERVICES)

# The stack's image variables pointing at these images. Without them the stack uses the official ones.
LOCAL_IMAGE_ENV: dict[str, str] = {
    "PYTHON_IMAGE": PYTHON.alias,
    "POSTGRES_IMAGE": POSTGRES.alias,
    "REDIS_IMAGE": REDIS.alias,
    "NGINX_IMAGE": NGINX.alias,
}


def _in_series(version: str, series: str) -> bool:
    return bool(re.fullmatch(r"\d+(?:\.\d+)+", version)) and version.startswith(f"{series}.")


def upstream_version(raw: str, *, series: str) -> str:
    """'5:7.0.15-1~deb12u10' -> '7.0.15'; refuse a version outside the expected series."""
    match = UPSTREAM_VERSION.match(raw.strip())
    version = match.group("version") if match else ""
    if not _in_series(version, series):
        raise StackctlError(f"unexpected version {raw.strip()!r}: expected {series}.x")
    return version


def build_images(*, rebuild: bool = False, report: Report) -> list[ImageResult]:
    """Build the base image, then the python, postgres, redis and nginx images FROM it.

    An image whose series tag exists is skipped unless `rebuild` (which also bypasses the cache).
    """
    client = engine_client()
    require_engine(client)
    builder = _builder_client(client, report)
    started = time.monotonic()
    results = [_ensure_image(spec, client, builder, rebuild=rebuild, report=report) for spec in IMAGES]
    built = sum(result.status == "built" for result in results)
    report(f"images ready: {built} built, {len(results) - built} skipped, {time.monotonic() - started:.1f} s in all")
    return results


def _ensure_image(
    spec: ImageSpec, client: DockerClient, builder: DockerClient, *, rebuild: bool, report: Report
) -> ImageResult:
    started = time.monotonic()
    try:
        exists = client.image.exists(spec.alias)
        if exists and not rebuild:
            tags = _version_tags(spec, client, report)
            status: Literal["built", "skipped"] = "skipped"
        else:
            report(f"{spec.alias}: building")
            if spec is BASE:
                _build_base(client, report)
            else:
                context = resources.files("stackctl") / "images" / spec.name
                with resources.as_file(context) as context_path:
                    builder.legacy_build(context_path, tags=[spec.alias], cache=not rebuild, pull=False)
            tags = _version_tags(spec, client, report)
            status = "built"
        size = client.image.inspect(spec.alias).size or 0
    except DockerException as exc:
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


def _build_base(client: DockerClient, report: Report) -> None:
    """mmdebstrap a minimal Debian into a tar file, then `docker import` it under the base tag."""
    mmdebstrap = _mmdebstrap(report)
    apt_clean = resources.files("stackctl") / "images" / "debian" / "docker-clean"
    with tempfile.TemporaryDirectory(prefix="stackctl-base-") as tmp, resources.as_file(apt_clean) as apt_clean_path:
        rootfs = Path(tmp) / "rootfs.tar"
        report(f"{BASE.alias}: mmdebstrap {SUITE} (minbase)")
        argv = [
            str(mmdebstrap),
            *MMDEBSTRAP_OPTIONS,
            f"--customize-hook=upload {apt_clean_path} /etc/apt/apt.conf.d/docker-clean",
            # apt-get clean, which mmdebstrap runs last, no longer knows these caches by name.
            '--customize-hook=rm -f "$1"/var/cache/apt/*.bin',
            SUITE,
            str(rootfs),
        ]
        host.run(argv, timeout=MMDEBSTRAP_TIMEOUT)
        client.image.import_(rootfs, BASE.alias, changes=['CMD ["bash"]'])


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
    return DockerClient(client_config=dataclasses.replace(config, client_call=call, _client_call_with_path=None))


def _buildkit_available(client: DockerClient) -> bool:
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
