"""The nested layout (STACK_DIR=stack): the stack sits in stack/ of a project that has files
of its own in the way, compose runs in stack/, and the web image is built from the project
root with the stack's own ignore files, whatever the project's .dockerignore says.

Each project here is a small tree under tmp_path: src/ with the code, requirements.txt at
the root (DJANGO_DEPENDENCY_FILE=../requirements.txt), the project's own docker-compose.yml,
Dockerfile and a .dockerignore that knows nothing of stack/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest

from stackctl.config import StackConfig
from stackctl.config.webimage import build_context
from stackctl.core.render import render_set
from stackctl.errors import ConfigError
from tests.render.stackfiles import compose_config, find_tool, load_fixture, run, write_tree

Profile = Literal["dev", "prod"]
NESTED = {"STACK_DIR": "stack", "DJANGO_PROJECT_DIR": "src", "DJANGO_DEPENDENCY_FILE": "../requirements.txt"}
DOCKERFILES: dict[Profile, str] = {"dev": "compose/Dockerfile", "prod": "compose/Dockerfile.prod"}
COMPOSE_FILES: dict[Profile, str] = {"dev": "docker-compose.yml", "prod": "docker-compose.prod.yml"}
ENV_FILES: dict[Profile, str] = {"dev": ".env", "prod": ".env.prod"}
# What the stack keeps in its folder that no image may hold.
STACK_SECRETS_AND_STATE = (
    "stack/.env",
    "stack/.env.prod",
    "stack/.env.example",
    "stack/.stackctl/source",
    "stack/.stackctl/rendered.json",
    "stack/backups/db/latest.dump",
    "stack/certs/privkey.pem",
)


def _project(tmp_path: Path, profile: Profile, **extra: str) -> tuple[Path, StackConfig, dict[str, str]]:
    """A project with its own files, and the stack of PROFILE rendered into its stack/."""
    root = tmp_path / "project"
    (root / "src" / "shop").mkdir(parents=True)
    (root / "src" / "manage.py").write_text("# the project's manage.py\n")
    (root / "src" / "shop" / "settings.py").write_text("# the project's settings\n")
    (root / "requirements.txt").write_text("Django==5.2.19\n")
    (root / "docker-compose.yml").write_text("services: {web: {build: .}}\n")
    (root / "Dockerfile").write_text("FROM python:3.12-slim\n")
    (root / ".dockerignore").write_text(".git\n__pycache__/\n")  # knows nothing of stack/
    env = "prod.env" if profile == "prod" else "dev.env"
    cfg = load_fixture(env, profile, root / "stack", extra={**NESTED, **extra})
    rendered = render_set(cfg)
    write_tree(root / "stack", rendered)
    return root, cfg, {rel: content.decode() for rel, (content, _mode) in rendered.items()}


# -- the web build in compose -----------------------------------------------------------------


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_compose_builds_from_the_project_root_with_the_stacks_dockerfile(
    profile: Profile, docker_compose: list[str], tmp_path: Path
) -> None:
    root, _cfg, _files = _project(tmp_path, profile)
    stack = root / "stack"
    config = compose_config(docker_compose, stack, [COMPOSE_FILES[profile]], ENV_FILES[profile])
    build = config["services"]["web"]["build"]
    assert Path(build["context"]) == root  # the parent of the stack's folder
    assert build["dockerfile"] == f"stack/{DOCKERFILES[profile]}"
    assert (Path(build["context"]) / build["dockerfile"]).is_file()
    # the rest stays relative to the stack's folder
    nginx_conf = [v for v in config["services"]["nginx"]["volumes"] if v["target"] == "/etc/nginx/nginx.conf"]
    if profile == "dev":
        assert [Path(v["source"]) for v in nginx_conf] == [stack / "nginx" / "nginx.conf"]
    else:  # prod's comes in a volume, filled from the config (stackctl/core/configvolumes.py)
        assert nginx_conf == []
    if profile == "prod":
        assert Path(config["services"]["backup"]["build"]["context"]) == stack / "backup"
    # the env file is the stack's (compose inlines it): the fixture's secret key was read
    assert "DJANGO_SECRET_KEY" in config["services"]["web"]["environment"]


def test_the_live_code_hint_points_at_the_project_code(tmp_path: Path) -> None:
    _root, _cfg, files = _project(tmp_path, "dev")
    assert "      # - ../src:/app\n" in files["docker-compose.yml"]


@pytest.mark.parametrize(("stack_dir", "context"), [(".", "."), ("stack", ".."), ("deploy/stack", "../..")])
def test_one_dot_dot_per_folder_of_stack_dir(stack_dir: str, context: str, tmp_path: Path) -> None:
    assert build_context(stack_dir) == context
    cfg = load_fixture("dev.env", "dev", tmp_path, extra={"STACK_DIR": stack_dir})
    compose = render_set(cfg)["docker-compose.yml"][0].decode()
    prefix = "" if stack_dir == "." else f"{stack_dir}/"
    assert f"      context: {context}\n      dockerfile: {prefix}compose/Dockerfile\n" in compose


@pytest.mark.parametrize(
    "value", ["..", "../stack", "stack/../..", "stack/../other", "/srv/stack", "my stack", "st*ck"]
)
def test_stack_dir_outside_the_project_or_not_a_plain_path_is_refused(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_fixture("dev.env", "dev", tmp_path, extra={"STACK_DIR": value})
    assert [p.variable for p in caught.value.problems if p.severity == "error"] == ["STACK_DIR"]


def test_stack_dir_is_normalised(tmp_path: Path) -> None:
    cfg = load_fixture("dev.env", "dev", tmp_path, extra={"STACK_DIR": "./stack/"})
    assert cfg.django.stack_dir == "stack"


# -- the Dockerfiles --------------------------------------------------------------------------


def _copy_sources(dockerfile: str) -> list[str]:
    """The context paths of every COPY that reads the build context (not `--from=`)."""
    sources = []
    for line in dockerfile.splitlines():
        words = line.split()
        if words[:1] != ["COPY"] or any(w.startswith("--from=") for w in words):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        sources += args[:-1]
    return sources


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_dockerfile_copies_the_stacks_files_from_stack_and_the_code_from_the_root(
    profile: Profile, tmp_path: Path
) -> None:
    root, cfg, files = _project(tmp_path, profile)
    dockerfile = files[DOCKERFILES[profile]]
    entrypoint = "entrypoint.prod.sh" if profile == "prod" else "entrypoint.sh"
    lines = dockerfile.splitlines()
    for expected in (
        "COPY stack/compose/stackctl/stackctl_build.py /opt/stackctl-build/",
        "COPY requirements.txt /build/requirements.txt",
        "COPY stack/compose/stackctl/ /opt/stackctl/",
        f"COPY stack/compose/{entrypoint} /usr/local/bin/docker-entrypoint.sh",
        # the code is root's in prod (read-only to the app user), the app user's in dev
        "COPY src/ /app" if profile == "prod" else "COPY --chown=app:app src/ /app",
    ):
        assert expected in lines, expected
    assert cfg.web_image.install.workdir == "src" and "WORKDIR /build/src" in lines
    assert "pip install -r ../requirements.txt \\" in dockerfile
    # every file the build reads is where the Dockerfile says, from the project root
    for source in _copy_sources(dockerfile):
        assert (root / source).exists(), source
    assert "# syntax=" not in dockerfile


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_hadolint_passes_on_the_nested_dockerfile(profile: Profile, tmp_path: Path) -> None:
    hadolint = find_tool("hadolint")
    root, _cfg, _files = _project(tmp_path, profile)
    result = run([hadolint, "--no-color", f"stack/{DOCKERFILES[profile]}"], cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


# -- the ignore files -------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as moby's patternmatcher reads it: `**` any number of folders,
    `*` and `?` within one name, [...] a class; relative to the context root."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def excluded(ignore_file: str, path: str) -> bool:
    """Whether the context path is left out: a pattern matches it or one of its folders."""
    patterns = [
        _pattern(line.strip().rstrip("/").removeprefix("./"))
        for line in ignore_file.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(line.startswith("!") for line in ignore_file.splitlines())  # no exceptions to follow
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(p.match(prefix) for p in patterns for prefix in prefixes)


def test_the_matcher_reads_patterns_as_docker_does() -> None:
    assert excluded("**/.env\n", "stack/.env") and excluded("**/.env\n", ".env")
    assert excluded("stack/.stackctl\n", "stack/.stackctl/source")
    assert not excluded("backups/\n", "stack/backups/db.dump")
    assert excluded("**/*.py[cod]\n", "src/a/b.pyc") and not excluded("**/*.py[cod]\n", "src/a/b.py")


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_the_stacks_ignore_file_keeps_secrets_and_state_out_and_lets_the_build_read_its_files(
    profile: Profile, tmp_path: Path
) -> None:
    root, _cfg, files = _project(tmp_path, profile)
    ignore = files[f"{DOCKERFILES[profile]}.dockerignore"]
    for line in ("stack/.env", "stack/.env.*", "stack/.stackctl", "stack/backups/", "**/*.sqlite3"):
        assert line in ignore.splitlines(), line
    for path in STACK_SECRETS_AND_STATE:
        assert excluded(ignore, path), path
    for path in (".git/config", "src/db.sqlite3", "src/media/upload.png", "src/.venv/bin/python", ".env"):
        assert excluded(ignore, path), path
    for source in _copy_sources(files[DOCKERFILES[profile]]):
        assert not excluded(ignore, source.rstrip("/")), source
    for code in ("src/manage.py", "src/shop/settings.py", "requirements.txt"):
        assert not excluded(ignore, code), code
    # the project's own .dockerignore is not relied on (nor rewritten)
    assert (root / ".dockerignore").read_text() == ".git\n__pycache__/\n"


def test_nested_renders_no_top_level_dockerignore(tmp_path: Path) -> None:
    for profile in ("dev", "prod"):
        _root, _cfg, files = _project(tmp_path / profile, profile)  # type: ignore[arg-type]
        assert ".dockerignore" not in files
        assert not (tmp_path / profile / "project" / "stack" / ".dockerignore").exists()
        assert all(not rel.startswith("../") for rel in files)  # everything stays in the stack's folder


def test_flat_layout_keeps_its_dockerignore_and_the_dockerfile_one_is_the_same(tmp_path: Path) -> None:
    files = render_set(load_fixture("dev.env", "dev", tmp_path))
    assert files[".dockerignore"] == files["compose/Dockerfile.dockerignore"]
    assert "stack/" not in files[".dockerignore"][0].decode()


def test_nested_env_example_names_the_stacks_folder(tmp_path: Path) -> None:
    """A teammate copying stack/.env.example gets a stack that still builds."""
    _root, _cfg, files = _project(tmp_path, "dev")
    assert "\nSTACK_DIR=stack\n" in files[".env.example"]
    assert "\nDJANGO_PROJECT_DIR=src\n" in files[".env.example"]
