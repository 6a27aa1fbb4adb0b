"""The registry-free images without an engine: suites, tags naming true versions, the image
variables, the choice of a Python image, the hints for an old data directory or no registry, and
the build's order and concurrency on a stubbed engine."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
from python_on_whales.exceptions import DockerException

from stackctl.adapters import host
from stackctl.core import images
from stackctl.errors import DockerCommandError, StackctlError
from tests.render.stackfiles import find_tool

IMAGES_DIR = resources.files("stackctl") / "images"


# -- versions and tags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "series", "version"),
    [
        ("15.20-0+deb12u1", "15", "15.20"),
        ("5:7.0.15-1~deb12u10\n", "7.0", "7.0.15"),
        ("1.22.1-9+deb12u11", "1.22", "1.22.1"),
        ("3.11.2\n", "3.11", "3.11.2"),
        ("12.12\n", "12", "12.12"),
        ("17.12-1.pgdg13+1", "17", "17.12"),
        ("5:8.0.2-3", "8.0", "8.0.2"),
        ("1.26.3-3+deb13u1", "1.26", "1.26.3"),
        ("13.8\n", "13", "13.8"),
    ],
)
def test_upstream_version(raw: str, series: str, version: str) -> None:
    assert images.upstream_version(raw, series=series) == version


@pytest.mark.parametrize(
    ("raw", "series"), [("16.1-1", "15"), ("7.2.4", "7.0"), ("", "15"), ("bookworm/sid", "12"), ("trixie/sid", "13")]
)
def test_version_outside_the_series_is_refused(raw: str, series: str) -> None:
    with pytest.raises(StackctlError, match="unexpected version"):
        images.upstream_version(raw, series=series)


def test_trixie_is_the_default_and_names_its_versions_in_the_tags() -> None:
    trixie = images.images_for()
    assert [spec.alias for spec in trixie.all] == [
        "stackctl/debian:trixie",
        "stackctl/python:3.13-trixie",
        "stackctl/postgres:17-trixie",
        "stackctl/redis:8.0-trixie",
        "stackctl/nginx:1.26-trixie",
    ]
    assert trixie.postgres.tag_for("17.12") == "stackctl/postgres:17.12-trixie"
    assert trixie.postgres.version_argv[-1] == "postgresql-17"
    assert dict(trixie.postgres.build_args) == {"PG_MAJOR": "17"}
    assert {spec.suite for spec in trixie.all} == {"trixie"}


def test_bookworm_keeps_its_tags_exactly() -> None:
    bookworm = images.images_for("bookworm")
    assert [spec.alias for spec in bookworm.all] == [
        "stackctl/debian:bookworm",
        "stackctl/python:3.11-bookworm",
        "stackctl/postgres:15-bookworm",
        "stackctl/redis:7.0-bookworm",
        "stackctl/nginx:1.22-bookworm",
    ]
    assert bookworm.postgres.version_argv[-1] == "postgresql-15"
    assert bookworm.base.tag_for("12.15") == "stackctl/debian:12.15"


def test_version_tags_are_told_apart_from_aliases_and_other_suites() -> None:
    trixie, bookworm = images.images_for("trixie"), images.images_for("bookworm")
    assert bookworm.postgres.is_version_tag("stackctl/postgres:15.20-bookworm")
    assert not bookworm.postgres.is_version_tag("stackctl/postgres:15-bookworm")
    assert not bookworm.postgres.is_version_tag("stackctl/redis:15.20-bookworm")
    assert not bookworm.postgres.is_version_tag("stackctl/postgres:17.12-trixie")
    assert trixie.postgres.is_version_tag("stackctl/postgres:17.12-trixie")
    assert not trixie.postgres.is_version_tag("stackctl/postgres:15.20-trixie")
    assert trixie.base.is_version_tag("stackctl/debian:13.8")
    assert not trixie.base.is_version_tag("stackctl/debian:12.15")
    assert bookworm.base.is_version_tag("stackctl/debian:12.15")
    assert not bookworm.base.is_version_tag("stackctl/debian:bookworm")


def test_an_unknown_suite_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(StackctlError) as caught:
        images.images_for("sid")
    assert "sid" in caught.value.message and caught.value.hint and "trixie or bookworm" in caught.value.hint
    with pytest.raises(StackctlError):
        images.local_image_env("bullseye")


# -- the stack's image variables --------------------------------------------------------------


@pytest.mark.parametrize("suite", sorted(images.SUITES))
def test_local_image_env_selects_the_series_tags_the_build_makes(suite: str) -> None:
    env = images.local_image_env(suite)
    built = images.images_for(suite)
    assert tuple(env) == images.IMAGE_VARIABLES
    assert list(env.values()) == [spec.alias for spec in built.services]
    for variable, tag in env.items():
        spec = next(spec for spec in built.services if spec.alias == tag)
        assert variable == f"{spec.name.upper()}_IMAGE"
        assert tag.endswith(f"-{suite}") and not spec.is_version_tag(tag)


def test_the_deprecated_constant_is_the_default_suite() -> None:
    assert images.local_image_env() == images.local_image_env("trixie")


@pytest.mark.parametrize("suite", sorted(images.SUITES))
def test_official_image_env_names_official_images_of_the_suite(suite: str) -> None:
    env = images.official_image_env(suite)
    assert tuple(env) == images.IMAGE_VARIABLES
    assert all(not tag.startswith("stackctl/") and ":" in tag for tag in env.values())
    release = images.SUITES[suite]
    assert env["PYTHON_IMAGE"] == f"python:{release.python_series}-slim-{suite}"
    assert env["POSTGRES_IMAGE"].startswith(f"postgres:{release.postgres}")


def test_trixie_official_images_are_the_config_defaults() -> None:
    from stackctl.config.model import ImagesGroup

    defaults = {name.upper(): field.default for name, field in ImagesGroup.model_fields.items()}
    assert {key: defaults[key] for key in images.IMAGE_VARIABLES} == images.official_image_env("trixie")


# -- an old data directory ------------------------------------------------------------------

OFFICIAL_LOGS = (
    "PostgreSQL Database directory appears to contain a database; Skipping initialization\n"
    "2026-12-01 10:00:00.000 UTC [1] FATAL:  database files are incompatible with server\n"
    "2026-12-01 10:00:00.000 UTC [1] DETAIL:  The data directory was initialized by PostgreSQL version 15, "
    "which is not compatible with this version 17.7 (Debian 17.7-3.pgdg13+1).\n"
)


def test_the_official_images_refusal_gets_the_upgrade_path() -> None:
    hint = images.postgres_data_mismatch_hint(OFFICIAL_LOGS)
    assert hint is not None
    assert "PostgreSQL 15 files" in hint and "PostgreSQL 17" in hint
    assert "`stackctl backup now db`" in hint and "`stackctl restore db`" in hint and "pg_upgrade" in hint


def test_stackctls_entrypoint_refusal_reads_the_same() -> None:
    """The entrypoint prints the two phrases postgres prints, so one recogniser serves both images."""
    script = (IMAGES_DIR / "postgres" / "docker-entrypoint.sh").read_text()
    assert "database files are incompatible with server" in script
    rendered = re.search(r"The data directory was initialized by .*", script)
    assert rendered
    logs = rendered.group(0).replace("$found", "15").replace("$server", "17")
    hint = images.postgres_data_mismatch_hint("Error: database files are incompatible with server.\n" + logs)
    assert hint and "PostgreSQL 15 files and the server is PostgreSQL 17" in hint


def test_other_db_logs_get_no_hint() -> None:
    assert images.postgres_data_mismatch_hint("database system is ready to accept connections") is None
    assert images.postgres_data_mismatch_hint("") is None


# -- no registry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stderr",
    [
        'Error response from daemon: Get "https://registry-1.docker.io/v2/": dial tcp: lookup '
        "registry-1.docker.io on 10.0.0.2:53: no such host",
        "failed to solve: python:3.13-slim-trixie: failed to resolve source metadata for "
        "docker.io/library/python:3.13-slim-trixie",
        'Get "https://registry-1.docker.io/v2/": net/http: TLS handshake timeout',
        "dial tcp 3.94.224.37:443: i/o timeout",
        "dial tcp 54.1.2.3:443: connect: connection refused",
        "Error response from daemon: pull access denied for postgres, repository does not exist",
    ],
)
def test_registry_failures_get_the_local_images_fix(stderr: str) -> None:
    assert host.registry_failure_hint(f"db Pulling\n{stderr}\n") == host.REGISTRY_FIX
    assert "`stackctl images build`" in host.REGISTRY_FIX and "`stackctl init --local-images`" in host.REGISTRY_FIX


@pytest.mark.parametrize(
    ("stderr", "build"),
    [
        (
            "Error response from daemon: pull access denied for stackctl/python, repository does not exist "
            "or may require 'docker login'",
            "`stackctl images build`",
        ),
        (
            "failed to solve: stackctl/postgres:15-bookworm: failed to resolve source metadata for "
            "docker.io/stackctl/postgres:15-bookworm: pull access denied",
            "`stackctl images build --suite bookworm`",
        ),
    ],
)
def test_a_missing_local_image_gets_the_build_fix(stderr: str, build: str) -> None:
    hint = host.registry_failure_hint(stderr)
    assert hint and "stackctl/" in hint and hint.endswith(build)


@pytest.mark.parametrize(
    "stderr",
    [
        "",
        "Container stack-db-1  Healthy",
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
        "dial unix /var/run/docker.sock: connect: connection refused",
        "psql: error: connection to server at 127.0.0.1, port 5432 failed: Connection refused",
        "dial tcp [::1]:8000: connect: connection refused",
    ],
)
def test_other_failures_get_no_registry_hint(stderr: str) -> None:
    assert host.registry_failure_hint(stderr) is None


def test_registry_answers_is_only_a_name_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[tuple[object, ...]] = []

    def getaddrinfo(*args: object, **kwargs: object) -> list[object]:
        looked_up.append(args)
        return [("family", "type", "proto", "", ("192.0.2.1", 443))]

    def no_connection(*args: object, **kwargs: object) -> None:
        raise AssertionError("registry_answers must not open a connection")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", no_connection)
    monkeypatch.setattr(socket.socket, "connect", no_connection)
    assert host.registry_answers("registry.example")
    assert looked_up == [("registry.example", 443)]


def test_registry_answers_false_when_the_name_fails_or_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fails)
    assert not host.registry_answers()

    release = threading.Event()

    def hangs(*args: object, **kwargs: object) -> list[object]:
        release.wait(5)
        return [("family", "type", "proto", "", ("192.0.2.1", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", hangs)
    assert not host.registry_answers(timeout=0.05)
    release.set()


# -- build files ---------------------------------------------------------------------------------


def test_every_image_has_its_build_files() -> None:
    for spec in images.images_for().services:
        dockerfile = (IMAGES_DIR / spec.name / "Dockerfile").read_text()
        assert dockerfile.startswith("#") and "# syntax=" not in dockerfile
        assert "ARG SUITE=trixie\nARG NAMESPACE=stackctl\nFROM ${NAMESPACE}/debian:${SUITE}\n" in dockerfile
        assert "--no-install-recommends" in dockerfile and "rm -rf /var/lib/apt/lists/*" in dockerfile
        for arg, _ in spec.build_args:
            assert f"ARG {arg}=" in dockerfile
    assert (IMAGES_DIR / "postgres" / "docker-entrypoint.sh").is_file()
    assert (IMAGES_DIR / "debian" / "docker-clean").is_file()


def test_dockerfiles_pass_hadolint() -> None:
    with resources.as_file(IMAGES_DIR) as root:
        dockerfiles = sorted(str(path) for path in root.glob("*/Dockerfile"))
        done = subprocess.run([find_tool("hadolint"), "--no-color", *dockerfiles], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_entrypoints_pass_shellcheck() -> None:
    with resources.as_file(IMAGES_DIR) as root:
        scripts = sorted(str(path) for path in root.glob("*/docker-entrypoint.sh"))
        done = subprocess.run([find_tool("shellcheck"), "--severity=style", *scripts], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- building, on a stubbed engine -------------------------------------------------------------

TRIXIE = images.images_for("trixie")
SERVICE_ALIASES = [spec.alias for spec in TRIXIE.services]
PROGRESS_LINE = re.compile(
    r"builder: .*|images ready: \d built, \d skipped, \d+\.\d s in all"
    r"|stackctl/\S+: (building|mmdebstrap .*|tagged \S+|(built|present, skipped) in \d+\.\d s, \d+ MB \(.*\))"
)


class FakeEngine:
    """The python-on-whales calls build_images makes, on a dict of tags; `build` stands in for
    `docker build` (legacy_build) and gets the image's series tag."""

    def __init__(self, build: Callable[[str], None] = lambda alias: None, present: bool = False) -> None:
        self.build = build
        self.tags = {spec.alias: spec.alias for spec in TRIXIE.all} if present else {}
        self.client_config = SimpleNamespace(client_call=["docker"], host=None, context=None, config=None)
        self.buildx = SimpleNamespace(version=lambda: "buildx v0.19")
        self.image = SimpleNamespace(
            exists=self.tags.__contains__, inspect=self.inspect, tag=self.tag, import_=self.import_
        )
        self.built: list[str] = []
        self.caches: list[bool] = []

    def inspect(self, tag: str) -> SimpleNamespace:
        image = self.tags[tag]
        return SimpleNamespace(size=50_000_000, repo_tags=[name for name, of in self.tags.items() if of == image])

    def tag(self, source: str, tag: str) -> None:
        self.tags[tag] = self.tags[source]

    def import_(self, rootfs: Path, tag: str, changes: list[str]) -> None:
        self.tags[tag] = tag
        self.built.append(tag)

    def run(self, image: str, command: list[str], *, entrypoint: str, remove: bool) -> str:
        series = next(spec.series for spec in TRIXIE.all if spec.alias == image)
        return f"{series}.1\n"

    def legacy_build(self, context: Path, *, tags: list[str], cache: bool, **options: object) -> None:
        self.caches.append(cache)
        self.build(tags[0])
        self.tags[tags[0]] = tags[0]
        self.built.append(tags[0])


def failure(alias: str) -> DockerException:
    return DockerException(["docker", "build", alias], 1, stderr=f"{alias}: E: Unable to locate package\n".encode())


@pytest.fixture
def use_engine(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeEngine], FakeEngine]:
    """Make build_images talk to a FakeEngine (the builder client too), with mmdebstrap a no-op."""
    import python_on_whales

    from stackctl.adapters import docker

    def use(engine: FakeEngine) -> FakeEngine:
        monkeypatch.setattr(docker, "engine_client", lambda: engine)
        monkeypatch.setattr(docker, "require_engine", lambda client: None)
        monkeypatch.setattr(python_on_whales, "DockerClient", lambda **config: engine)
        monkeypatch.setattr(host, "which", lambda program: Path(f"/usr/bin/{program}"))
        monkeypatch.setattr(host, "run", lambda argv, timeout: subprocess.CompletedProcess(argv, 0))
        return engine

    return use


def serial_report(lines: list[str]) -> Callable[[str], None]:
    """A report that fails when two threads call it at once."""
    busy = threading.Lock()

    def report(line: str) -> None:
        assert busy.acquire(blocking=False), f"report called while another line was being written: {line}"
        time.sleep(0.01)
        lines.append(line)
        busy.release()

    return report


def test_the_service_images_build_at_the_same_time(use_engine: Callable[[FakeEngine], FakeEngine]) -> None:
    together = threading.Barrier(len(TRIXIE.services), timeout=5)  # broken unless all four wait at once

    def build(alias: str) -> None:
        together.wait()

    engine = use_engine(FakeEngine(build))
    lines: list[str] = []
    results = images.build_images(report=serial_report(lines))
    assert engine.built[0] == TRIXIE.base.alias and sorted(engine.built[1:]) == sorted(SERVICE_ALIASES)
    assert [result.status for result in results] == ["built"] * 5
    assert all(PROGRESS_LINE.fullmatch(line) for line in lines), lines
    for spec in TRIXIE.all:
        assert f"{spec.alias}: building" in lines
        assert any(
            line.startswith(f"{spec.alias}: built in ") and spec.tag_for(f"{spec.series}.1") in line for line in lines
        )
    assert lines[-1].startswith("images ready: 5 built, 0 skipped, ")


def test_results_keep_the_build_order_whatever_order_the_builds_finish_in(
    use_engine: Callable[[FakeEngine], FakeEngine],
) -> None:
    """nginx finishes first, then redis, postgres, python: each waits for the one after it."""
    finished = {alias: threading.Event() for alias in SERVICE_ALIASES}

    def build(alias: str) -> None:
        after = SERVICE_ALIASES[SERVICE_ALIASES.index(alias) + 1 :]
        assert not after or finished[after[0]].wait(10), f"{alias} waited in vain for {after[0]}"
        finished[alias].set()

    engine = use_engine(FakeEngine(build))
    results = images.build_images(report=lambda line: None)
    assert engine.built == [TRIXIE.base.alias, *reversed(SERVICE_ALIASES)]
    assert [result.name for result in results] == ["debian", "python", "postgres", "redis", "nginx"]
    assert [result.tags[0] for result in results] == [spec.alias for spec in TRIXIE.all]


def test_a_failed_service_build_is_raised_once_the_others_have_finished(
    use_engine: Callable[[FakeEngine], FakeEngine],
) -> None:
    """python and nginx are still building when postgres and redis fail: they finish first."""
    postgres, redis = TRIXIE.postgres.alias, TRIXIE.redis.alias
    failed = threading.Event()

    def build(alias: str) -> None:
        if alias in (postgres, redis):
            failed.set()
            raise failure(alias)
        assert failed.wait(5), "no build failed"

    engine = use_engine(FakeEngine(build))
    lines: list[str] = []
    with pytest.raises(DockerCommandError) as caught:
        images.build_images(report=serial_report(lines))
    assert caught.value.message.startswith(f"building {postgres} failed (exit 1)\n")
    assert "Unable to locate package" in caught.value.message
    assert engine.built[0] == TRIXIE.base.alias and set(engine.built[1:]) == {TRIXIE.python.alias, TRIXIE.nginx.alias}
    assert any(line.startswith(f"{TRIXIE.python.alias}: built in ") for line in lines)
    assert any(line.startswith(f"{TRIXIE.nginx.alias}: built in ") for line in lines)
    assert not any(line.startswith("images ready") for line in lines)


def test_no_service_build_starts_when_the_base_fails(
    use_engine: Callable[[FakeEngine], FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = use_engine(FakeEngine(lambda alias: pytest.fail(f"{alias} was built")))

    def import_fails(rootfs: Path, tag: str, changes: list[str]) -> None:
        raise failure(tag)

    monkeypatch.setattr(engine.image, "import_", import_fails)
    lines: list[str] = []
    with pytest.raises(DockerCommandError, match=rf"^building {re.escape(TRIXIE.base.alias)} failed \(exit 1\)"):
        images.build_images(report=lines.append)
    assert engine.built == [] and not any(alias in line for alias in SERVICE_ALIASES for line in lines)


def test_present_images_are_skipped_unless_rebuilt(use_engine: Callable[[FakeEngine], FakeEngine]) -> None:
    engine = use_engine(FakeEngine(present=True))
    lines: list[str] = []
    results = images.build_images(report=lines.append)
    assert engine.built == [] and [result.status for result in results] == ["skipped"] * 5
    assert all(f"{spec.alias}: present, skipped in " in "\n".join(lines) for spec in TRIXIE.all)
    assert lines[-1].startswith("images ready: 0 built, 5 skipped, ")
    results = images.build_images(rebuild=True, report=lines.append)
    assert [result.status for result in results] == ["built"] * 5 and engine.caches == [False] * 4
    assert [result.tags[1:] for result in results] == [[spec.tag_for(f"{spec.series}.1")] for spec in TRIXIE.all]
