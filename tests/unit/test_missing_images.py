"""A local image the stack needs and the engine lacks: `up` (and deploy's build) build it
themselves, suite included, or name the exact command; nothing asks a registry. On a stub
engine that records what is looked up and built."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from stackctl.adapters import host
from stackctl.core import images, localimages
from stackctl.core import stack as stack_mod
from stackctl.errors import StackctlError


class StubEngine:
    """The python-on-whales calls build_images and ensure_local_images make, on a dict of tags.
    `pulls` stays empty: no call here could ask a registry."""

    def __init__(self, present: list[str]) -> None:
        self.tags = {tag: tag for tag in present}
        self.client_config = SimpleNamespace(client_call=["docker"], host=None, context=None, config=None)
        self.buildx = SimpleNamespace(version=lambda: "buildx v0.19")
        self.looked_up: list[str] = []
        self.image = SimpleNamespace(
            exists=self.exists, inspect=self.inspect, tag=self.tag, import_=self.import_, pull=self.pull
        )
        self.built: list[str] = []
        self.build_args: list[dict[str, str]] = []
        self.pulls: list[str] = []

    def exists(self, tag: str) -> bool:
        self.looked_up.append(tag)
        return tag in self.tags

    def pull(self, *args: object, **kwargs: object) -> None:
        self.pulls.append(str(args))

    def inspect(self, tag: str) -> SimpleNamespace:
        return SimpleNamespace(
            size=1_000_000, repo_tags=[name for name, of in self.tags.items() if of == self.tags[tag]]
        )

    def tag(self, source: str, tag: str) -> None:
        self.tags[tag] = self.tags[source]

    def import_(self, rootfs: Path, tag: str, changes: list[str]) -> None:
        self.tags[tag] = tag
        self.built.append(tag)

    def run(self, image: str, command: list[str], *, entrypoint: str, remove: bool) -> str:
        specs = [spec for suite in images.SUITES for spec in images.images_for(suite).all]  # this namespace's
        return next(spec.series for spec in specs if spec.alias == image) + ".1\n"

    def legacy_build(self, context: Path, *, tags: list[str], build_args: dict[str, str], **options: object) -> None:
        self.build_args.append(build_args)
        self.tags[tags[0]] = tags[0]
        self.built.append(tags[0])


@pytest.fixture
def use_engine(monkeypatch: pytest.MonkeyPatch) -> Callable[[StubEngine], StubEngine]:
    import python_on_whales

    from stackctl.adapters import docker

    def use(engine: StubEngine) -> StubEngine:
        monkeypatch.setattr(docker, "engine_client", lambda: pytest.fail("the engine given is used"))
        monkeypatch.setattr(docker, "require_engine", lambda client: None)
        monkeypatch.setattr(python_on_whales, "DockerClient", lambda **config: engine)
        monkeypatch.setattr(host, "which", lambda program: Path(f"/usr/bin/{program}"))
        monkeypatch.setattr(host, "run", lambda argv, timeout: subprocess.CompletedProcess(argv, 0))
        return engine

    return use


def heroku_env() -> dict[str, str]:
    """What init writes for heroku_pins: trixie's servers, bookworm's Python 3.11."""
    return {**images.local_image_env("trixie"), "PYTHON_IMAGE": images.images_for("bookworm").python.alias}


def test_the_build_commands_name_the_suite() -> None:
    assert localimages.build_commands(heroku_env().values()) == [
        "stackctl images build",
        "stackctl images build --suite bookworm",
    ]
    assert localimages.build_commands(images.official_image_env("bookworm").values()) == []


def test_a_missing_bookworm_python_is_built_by_its_suite(use_engine: Callable[[StubEngine], StubEngine]) -> None:
    trixie = [spec.alias for spec in images.images_for("trixie").all]
    engine = use_engine(StubEngine(trixie))
    lines: list[str] = []
    results = localimages.ensure_local_images(heroku_env().values(), client=engine, report=lines.append)  # type: ignore[arg-type]
    bookworm = images.images_for("bookworm")
    assert lines[0] == (
        "stackctl/python:3.11-bookworm: not on this engine, building it now "
        "(what `stackctl images build --suite bookworm` builds)"
    )
    # the suite's base, then only the image missing: bookworm's servers are not needed
    assert engine.built == [bookworm.base.alias, bookworm.python.alias]
    assert [(r.name, r.status) for r in results] == [("debian", "built"), ("python", "built")]
    assert engine.build_args == [{"SUITE": "bookworm", "NAMESPACE": "stackctl"}]
    assert any(line.startswith("images ready: 2 built, 0 skipped") for line in lines)
    assert engine.pulls == []
    # every image is there now: nothing more is built, only looked up
    engine.built.clear()
    assert localimages.ensure_local_images(heroku_env().values(), client=engine, report=lines.append) == []  # type: ignore[arg-type]
    assert engine.built == []


def test_an_engine_stackctl_does_not_build_on_gets_the_exact_command(
    use_engine: Callable[[StubEngine], StubEngine],
) -> None:
    engine = use_engine(StubEngine([spec.alias for spec in images.images_for("trixie").all]))
    with pytest.raises(StackctlError) as caught:
        localimages.ensure_local_images(
            heroku_env().values(),
            client=engine,  # type: ignore[arg-type]
            report=lambda line: None,
            builds=False,
            engine="the engine at ssh://deploy@server",
        )
    assert caught.value.message.startswith("stackctl/python:3.11-bookworm: not on the engine at ssh://deploy@server")
    assert caught.value.hint == "run `stackctl images build --suite bookworm` on that host"
    assert engine.built == []


def test_official_images_are_never_looked_up(use_engine: Callable[[StubEngine], StubEngine]) -> None:
    engine = use_engine(StubEngine([]))
    assert localimages.ensure_local_images(images.official_image_env().values(), client=engine, report=print) == []  # type: ignore[arg-type]
    assert engine.looked_up == [] and engine.built == []


def test_a_namespace_keeps_a_second_set_apart(
    use_engine: Callable[[StubEngine], StubEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(images.NAMESPACE_VARIABLE, "stackctl-test/e2e1")
    trixie = images.images_for("trixie")
    assert trixie.base.alias == "stackctl-test/e2e1/debian:trixie"
    assert images.local_image_env()["PYTHON_IMAGE"] == "stackctl-test/e2e1/python:3.13-trixie"
    assert localimages.build_command("bookworm") == (
        "STACKCTL_IMAGE_NAMESPACE=stackctl-test/e2e1 stackctl images build --suite bookworm"
    )
    # the usual names are not this namespace's: they are left alone
    monkeypatch.delenv(images.NAMESPACE_VARIABLE)
    usual = list(images.local_image_env().values())
    monkeypatch.setenv(images.NAMESPACE_VARIABLE, "stackctl-test/e2e1")
    assert localimages.local_suites(usual) == {}
    engine = use_engine(StubEngine([]))
    localimages.ensure_local_images(images.local_image_env().values(), client=engine, report=lambda line: None)  # type: ignore[arg-type]
    assert engine.built[0] == "stackctl-test/e2e1/debian:trixie" and len(engine.built) == 5
    assert {args["NAMESPACE"] for args in engine.build_args} == {"stackctl-test/e2e1"}


@pytest.mark.parametrize("namespace", ["Stackctl", "a//b", "-x", "a b"])
def test_an_invalid_namespace_is_refused(monkeypatch: pytest.MonkeyPatch, namespace: str) -> None:
    monkeypatch.setenv(images.NAMESPACE_VARIABLE, namespace)
    with pytest.raises(StackctlError, match="STACKCTL_IMAGE_NAMESPACE"):
        images.images_for()


def stub_stack(engine: StubEngine, *, remote: bool = False, builds_here: StubEngine | None = None) -> SimpleNamespace:
    env = heroku_env()
    config = SimpleNamespace(
        images=SimpleNamespace(
            python_image=env["PYTHON_IMAGE"],
            postgres_image=env["POSTGRES_IMAGE"],
            redis_image=env["REDIS_IMAGE"],
            nginx_image=env["NGINX_IMAGE"],
        )
    )
    return SimpleNamespace(
        config=config, client=engine, builds_here=builds_here, host="ssh://deploy@server" if remote else None
    )


def test_up_builds_before_compose_builds(
    use_engine: Callable[[StubEngine], StubEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stack.build (what `up` runs) ensures the images first: compose never meets a missing one."""
    engine = use_engine(StubEngine([spec.alias for spec in images.images_for("trixie").all]))
    monkeypatch.setattr(stack_mod, "is_remote", lambda client: False)
    stack = stub_stack(engine)
    order: list[str] = []

    def compose_build(stream_logs: bool) -> list[tuple[str, bytes]]:
        missing = [a for a in heroku_env().values() if a not in engine.tags]
        order.append(f"compose build (missing: {missing})")
        return []

    stack.ensure_local_images = lambda report: stack_mod.Stack.ensure_local_images(stack, report)  # type: ignore[arg-type]
    stack.build_client = lambda: SimpleNamespace(compose=SimpleNamespace(build=compose_build), client_config=None)
    monkeypatch.setattr(stack_mod, "log_streamed", lambda *args: None)
    lines: list[str] = []
    stack_mod.Stack.build(stack, lines.append)  # type: ignore[arg-type]
    assert order == ["compose build (missing: [])"]
    assert lines[0].startswith("stackctl/python:3.11-bookworm: not on this engine, building it now")


def test_a_remote_engine_that_builds_itself_is_told_the_command(
    use_engine: Callable[[StubEngine], StubEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = use_engine(StubEngine([]))
    monkeypatch.setattr(stack_mod, "is_remote", lambda client: True)
    with pytest.raises(StackctlError) as caught:
        stack_mod.Stack.ensure_local_images(stub_stack(engine, remote=True), lambda line: None)  # type: ignore[arg-type]
    assert "not on the engine at ssh://deploy@server" in caught.value.message
    assert caught.value.hint == "run `stackctl images build` on that host"
    assert engine.built == []


def test_images_built_here_for_a_remote_engine_are_built_on_this_host(
    use_engine: Callable[[StubEngine], StubEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    here = use_engine(StubEngine([spec.alias for spec in images.images_for("trixie").all]))
    remote = StubEngine([])
    monkeypatch.setattr(stack_mod, "is_remote", lambda client: True)
    stack_mod.Stack.ensure_local_images(stub_stack(remote, remote=True, builds_here=here), lambda line: None)  # type: ignore[arg-type]
    assert images.images_for("bookworm").python.alias in here.built
    assert remote.looked_up == [] and remote.built == []  # `ship` sends them with the rest
