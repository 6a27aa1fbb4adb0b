"""The web image per profile: stackctl's modules copied verbatim, the settings overlay and the
ASGI fallback wired through the Dockerfile and compose, the dependency install per kind (and
hadolint on each), prod built entirely from .env.prod, and the stdlib helpers' logic."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stackctl.config.webimage import (
    BUILD_TOOLS,
    FALLBACK_ASGI_APPLICATION,
    OVERLAY_MODULE,
    OVERLAY_SETTINGS,
    STACK_PACKAGES,
    dependency_install,
)
from stackctl.core.render import render_set, templates_dir
from stackctl.errors import ConfigError
from tests.render.stackfiles import (
    PROD_FILES,
    compose_config,
    find_tool,
    load_fixture,
    own_files,
    run,
    write_tree,
)

MODULES = templates_dir() / "compose" / "stackctl"
MODULE_NAMES = sorted(p.name for p in MODULES.glob("*.py"))


def _files(tmp_path: Path, profile: str = "dev", env: str = "dev.env", **extra: str) -> dict[str, str]:
    cfg = load_fixture(env, profile, tmp_path, extra=extra)  # type: ignore[arg-type]
    return {rel: content.decode() for rel, (content, _mode) in render_set(cfg).items()}


def _stage(dockerfile: str, which: int) -> str:
    """0: the builder stage, 1: the final stage."""
    _header, builder, final = dockerfile.split("\nFROM ${PYTHON_IMAGE}")
    assert builder.startswith(" AS builder\n") and final.startswith("\n")
    return (builder, final)[which]


# -- stackctl's modules -------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_every_module_is_copied_verbatim_in_each_profile(profile: str, tmp_path: Path) -> None:
    env = "prod.env" if profile == "prod" else "dev.env"
    rendered = render_set(load_fixture(env, profile, tmp_path))  # type: ignore[arg-type]
    assert MODULE_NAMES == [
        "stackctl_asgi.py",
        "stackctl_build.py",
        "stackctl_env.py",
        "stackctl_health.py",
        "stackctl_manage.py",
        "stackctl_migrations.py",
        "stackctl_packages.py",
        "stackctl_settings.py",
        "stackctl_static.py",
        "stackctl_verify.py",
    ]
    for name in MODULE_NAMES:
        assert rendered[f"compose/stackctl/{name}"] == ((MODULES / name).read_bytes(), 0o644), name


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_modules_compile_under_the_oldest_python_the_images_have(name: str) -> None:
    compile((MODULES / name).read_text(), name, "exec", flags=0, dont_inherit=True)


def test_the_overlay_sets_what_the_list_says() -> None:
    """OVERLAY_SETTINGS (what `init` prints) names only settings the overlay really assigns."""
    text = (MODULES / "stackctl_settings.py").read_text()
    for entry in OVERLAY_SETTINGS:
        for setting in entry.setting.replace("*", "").split(", "):
            name = setting.split("[")[0].strip()
            if name.startswith("("):
                continue
            assert f"\n{name}" in text or f"    {name}" in text, name
    assert "import environ" in text  # django-environ reads the environment


# -- the settings module, the overlay switch and the ASGI fallback ----------------------------------


def test_overlay_on_runs_stackctl_settings_over_the_projects_module(tmp_path: Path) -> None:
    files = _files(tmp_path)
    final = _stage(files["compose/Dockerfile"], 1)
    assert f"DJANGO_SETTINGS_MODULE={OVERLAY_MODULE} \\" in final
    assert "STACKCTL_BASE_SETTINGS=config.settings \\" in final
    assert "PYTHONPATH=/opt/stackctl \\" in final and "COPY compose/stackctl/ /opt/stackctl/" in final
    assert "stackctl.pth" in final and "import stackctl_env" in final
    compose = files["docker-compose.yml"]
    assert f'DJANGO_SETTINGS_MODULE: "{OVERLAY_MODULE}"' in compose
    assert 'STACKCTL_BASE_SETTINGS: "config.settings"' in compose


def test_overlay_off_runs_the_projects_settings_unmodified(tmp_path: Path) -> None:
    files = _files(tmp_path, DJANGO_SETTINGS_OVERLAY="false", DJANGO_SETTINGS_MODULE="mysite.settings.prod")
    final = _stage(files["compose/Dockerfile"], 1)
    assert "DJANGO_SETTINGS_MODULE=mysite.settings.prod \\" in final
    assert "STACKCTL_BASE_SETTINGS" not in files["compose/Dockerfile"] + files["docker-compose.yml"]
    assert 'DJANGO_SETTINGS_MODULE: "mysite.settings.prod"' in files["docker-compose.yml"]


def test_asgi_fallback_is_the_images_own_module(tmp_path: Path) -> None:
    files = _files(tmp_path, DJANGO_ASGI_APPLICATION=FALLBACK_ASGI_APPLICATION)
    assert f"DJANGO_ASGI_APPLICATION={FALLBACK_ASGI_APPLICATION} \\" in files["compose/Dockerfile"]
    assert f'DJANGO_ASGI_APPLICATION: "{FALLBACK_ASGI_APPLICATION}"' in files["docker-compose.yml"]
    assert "get_asgi_application()" in (MODULES / "stackctl_asgi.py").read_text()


def test_env_example_documents_the_new_variables(tmp_path: Path) -> None:
    text = _files(tmp_path)[".env.example"]
    for line in (
        "DJANGO_SETTINGS_OVERLAY=true",
        "DJANGO_DEPENDENCY_INCLUDES=",
        "SENTRY_DSN=",
        "SENTRY_ENVIRONMENT=",
        "SENTRY_RELEASE=",
    ):
        assert f"\n{line}\n" in text, line
    assert "false runs the project's own settings module unmodified" in text


# -- the dependency install, per kind ------------------------------------------------------------

# (DJANGO_PROJECT_DIR, DJANGO_DEPENDENCY_FILE, DJANGO_DEPENDENCY_INCLUDES, COPY lines, WORKDIR, install)
VARIANTS = [
    pytest.param(
        "example",
        "requirements/production.txt",
        "requirements/base.txt,../constraints.txt",
        [
            "COPY example/requirements/base.txt /build/example/requirements/base.txt",
            "COPY constraints.txt /build/constraints.txt",
            "COPY example/requirements/production.txt /build/example/requirements/production.txt",
        ],
        "/build/example",
        "pip install -r requirements/production.txt",
        id="requirements-with-includes",
    ),
    pytest.param(
        "src",
        "../requirements.txt",
        "",
        ["COPY requirements.txt /build/requirements.txt"],
        "/build/src",
        "pip install -r ../requirements.txt",
        id="requirements-above-the-project",
    ),
    pytest.param(
        ".",
        "poetry.lock",
        "README.md",
        [
            "COPY README.md /build/README.md",
            "COPY pyproject.toml /build/pyproject.toml",
            "COPY poetry.lock /build/poetry.lock",
        ],
        "/build",
        "/opt/tools/bin/poetry sync --only main --no-root --no-interaction --no-ansi",
        id="poetry",
    ),
    pytest.param(
        "example",
        "uv.lock",
        "",
        ["COPY example/pyproject.toml /build/example/pyproject.toml", "COPY example/uv.lock /build/example/uv.lock"],
        "/build/example",
        "/opt/tools/bin/uv sync --locked --no-dev --no-install-project --inexact",
        id="uv",
    ),
    pytest.param(
        "example",
        "Pipfile.lock",
        "",
        ["COPY example/Pipfile /build/example/Pipfile", "COPY example/Pipfile.lock /build/example/Pipfile.lock"],
        "/build/example",
        "/opt/tools/bin/pipenv verify",
        id="pipenv",
    ),
    pytest.param(
        "example",
        "pyproject.toml",
        "",
        ["COPY example/pyproject.toml /build/example/pyproject.toml"],
        "/build/example",
        "python /opt/stackctl-build/stackctl_build.py pep621 pyproject.toml > /tmp/requirements.txt",
        id="pyproject",
    ),
]


def _dockerfile(tmp_path: Path, project_dir: str, dep: str, includes: str) -> str:
    extra = {"DJANGO_PROJECT_DIR": project_dir, "DJANGO_DEPENDENCY_FILE": dep, "DJANGO_DEPENDENCY_INCLUDES": includes}
    return _files(tmp_path, **extra)["compose/Dockerfile"]


@pytest.mark.parametrize(("project_dir", "dep", "includes", "copies", "workdir", "install"), VARIANTS)
def test_dependency_layer_comes_first_with_the_tools_own_locked_install(
    project_dir: str, dep: str, includes: str, copies: list[str], workdir: str, install: str, tmp_path: Path
) -> None:
    dockerfile = _dockerfile(tmp_path, project_dir, dep, includes)
    builder, final = _stage(dockerfile, 0), _stage(dockerfile, 1)
    lines = builder.splitlines()
    assert [line for line in lines if line.startswith("COPY ") and "stackctl_build.py" not in line] == copies
    assert f"WORKDIR {workdir}" in lines
    assert install in builder
    kind = dependency_install(project_dir, dep, [i for i in includes.split(",") if i]).kind
    tool = BUILD_TOOLS.get(kind)
    assert (f"/opt/tools/bin/pip install {tool}" in builder) if tool else ("/opt/tools" not in builder)
    # then the stack's packages, each only when missing, from stackctl's pins
    assert builder.index(install) < builder.index("stackctl_build.py add-missing")
    for package in STACK_PACKAGES:
        assert f"'{package.build_argument}'" in builder
    assert "--mount=type=secret,id=ca_bundle" in builder and "ca_bundle" not in final
    assert "# syntax=" not in dockerfile
    code = "." if project_dir == "." else f"{project_dir}/"
    assert final.splitlines().index(f"COPY --chown=app:app {code} /app") > 0


@pytest.mark.parametrize(("project_dir", "dep", "includes", "copies", "workdir", "install"), VARIANTS)
def test_hadolint_passes_every_variant(
    project_dir: str, dep: str, includes: str, copies: list[str], workdir: str, install: str, tmp_path: Path
) -> None:
    hadolint = find_tool("hadolint")
    (tmp_path / "Dockerfile").write_text(_dockerfile(tmp_path / "cfg", project_dir, dep, includes))
    result = run([hadolint, "--no-color", "Dockerfile"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("extra", "variable", "message"),
    [
        ({"DJANGO_DEPENDENCY_FILE": "Pipfile"}, "DJANGO_DEPENDENCY_FILE", "not an installable dependency file"),
        ({"DJANGO_DEPENDENCY_FILE": "/srv/requirements.txt"}, "DJANGO_DEPENDENCY_FILE", "not a relative path"),
        ({"DJANGO_DEPENDENCY_INCLUDES": "req/*.txt"}, "DJANGO_DEPENDENCY_INCLUDES", "not a relative path"),
        (
            {"DJANGO_DEPENDENCY_INCLUDES": "../../constraints.txt"},
            "DJANGO_DEPENDENCY_INCLUDES",
            "points outside the project folder",
        ),
        ({"DJANGO_DEPENDENCY_FILE": "../requirements.txt"}, "DJANGO_DEPENDENCY_FILE", "points outside"),
        ({"SENTRY_DSN": "sentry.example.com"}, "SENTRY_DSN", "not a Sentry DSN"),
    ],
)
def test_bad_dependency_paths_are_config_errors(
    extra: dict[str, str], variable: str, message: str, tmp_path: Path
) -> None:
    project = {"DJANGO_PROJECT_DIR": "example"} if "INCLUDES" in variable else {"DJANGO_PROJECT_DIR": "."}
    with pytest.raises(ConfigError) as info:
        load_fixture("dev.env", "dev", tmp_path, extra={**project, **extra})
    found = [p for p in info.value.problems if p.variable == variable]
    assert found and message in found[0].message, [p.render() for p in info.value.problems]
    assert "sentry.example.com" not in "".join(p.render() for p in found)  # SENTRY_DSN is a secret


# -- prod comes entirely from .env.prod ---------------------------------------------------------

PROD_ONLY = {
    "DJANGO_PROJECT_DIR": "backend",
    "DJANGO_DEPENDENCY_FILE": "uv.lock",
    "DJANGO_SETTINGS_MODULE": "shop.settings.production",
    "DJANGO_ASGI_APPLICATION": "shop.asgi:application",
    "MEDIA_ROOT": "/var/www/media",
}


def _prod_and_dev(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    dev = _files(tmp_path, "dev", "dev.env")
    prod = _files(tmp_path, "prod", "prod.env", **PROD_ONLY)
    return dev, prod


def test_prod_has_its_own_dockerfile_entrypoint_and_ignore_file(tmp_path: Path) -> None:
    dev, prod = _prod_and_dev(tmp_path)
    assert {"compose/Dockerfile.prod", "compose/entrypoint.prod.sh", "compose/Dockerfile.prod.dockerignore"} <= set(
        prod
    )
    assert "compose/Dockerfile" not in prod and "docker-compose.yml" not in prod
    dockerfile = prod["compose/Dockerfile.prod"]
    assert "from .env.prod" in dockerfile.splitlines()[0]
    for fragment in (
        "COPY backend/uv.lock /build/backend/uv.lock",
        "uv sync --locked",
        "STACKCTL_BASE_SETTINGS=shop.settings.production \\",
        "DJANGO_ASGI_APPLICATION=shop.asgi:application \\",
        "ARG MEDIA_ROOT=/var/www/media",
        "COPY compose/entrypoint.prod.sh /usr/local/bin/docker-entrypoint.sh",
        "COPY backend/ /app",  # root's: the app user reads the code and cannot change it
    ):
        assert fragment in dockerfile, fragment
    for fragment in ("example/", "config.settings", "config.asgi", "compose/entrypoint.sh"):
        assert fragment not in dockerfile, fragment
    assert "COPY compose/entrypoint.sh /usr/local/bin/docker-entrypoint.sh" in dev["compose/Dockerfile"]
    assert 'APP="${DJANGO_ASGI_APPLICATION:-shop.asgi:application}"' in prod["compose/entrypoint.prod.sh"]
    assert "backend/media/" in prod["compose/Dockerfile.prod.dockerignore"]
    assert "**/.env.*" in prod["compose/Dockerfile.prod.dockerignore"]


def _prod_tree(tmp_path: Path, *, with_dev: bool) -> Path:
    root = tmp_path / ("merged" if with_dev else "alone") / "stack"  # one project name for both
    if with_dev:
        write_tree(root, own_files(render_set(load_fixture("dev.env", "dev", root))))
        (root / ".env").unlink()
    write_tree(root, own_files(render_set(load_fixture("prod.env", "prod", root, extra=PROD_ONLY))))
    (root / "backup").mkdir()
    (root / "backup" / "Dockerfile").write_text("FROM scratch\n")
    return root


def test_prod_compose_file_stands_alone_and_ignores_a_dev_file_merged_under_it(
    docker_compose: list[str], tmp_path: Path
) -> None:
    alone = compose_config(
        docker_compose, _prod_tree(tmp_path, with_dev=False), ["docker-compose.prod.yml"], ".env.prod"
    )
    merged = compose_config(docker_compose, _prod_tree(tmp_path, with_dev=True), PROD_FILES, ".env.prod")

    def comparable(config: dict[str, Any]) -> dict[str, Any]:
        text = repr({k: v for k, v in config.items() if k != "name"})
        return {"text": text.replace(str(tmp_path / "merged"), "ROOT").replace(str(tmp_path / "alone"), "ROOT")}

    assert comparable(alone) == comparable(merged)
    web = alone["services"]["web"]
    assert web["build"]["dockerfile"] == "compose/Dockerfile.prod"
    env = web["environment"]
    assert env["STACKCTL_BASE_SETTINGS"] == "shop.settings.production"
    assert env["MEDIA_ROOT"] == "/var/www/media" and env["DJANGO_DEBUG"] == "false"
    assert env["DJANGO_ALLOWED_HOSTS"] == "example.com,www.example.com"
    assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_web_environment_states_every_non_secret_value_the_overlay_reads(tmp_path: Path) -> None:
    text = (MODULES / "stackctl_settings.py").read_text() + (MODULES / "stackctl_env.py").read_text()
    compose = _files(tmp_path)["docker-compose.yml"]
    web = compose[compose.index("\n  web:\n") : compose.index("\n  db:\n")]
    # read from the env file only: secrets, and values that apply only when set there
    from_env_file = {
        "DJANGO_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "DATABASE_URL",
        "EMAIL_URL",
        "EMAIL_PASS",
        "SENTRY_DSN",
        "DJANGO_TIME_ZONE",
        "DJANGO_LANGUAGE_CODE",
        "STACKCTL_BASE_SETTINGS",
    }
    read = set(re.findall(r'_env\.\w+\("([A-Z_]+)"', text)) | set(re.findall(r'"([A-Z_]+)" in _env', text))
    assert {"DJANGO_DEBUG", "STATIC_ROOT", "SECURE_PROXY_SSL_HEADER", "LOG_LEVEL"} <= read  # the scan works
    for name in sorted(read - from_env_file):
        assert f"\n      {name}: " in web, name


# -- the stdlib helpers ------------------------------------------------------------------------


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_test_{name}", MODULES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_env_injects_nothing_and_builds_the_database_url_for_the_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.environ", {}, raising=False)
    stackctl_env = _module("stackctl_env")
    environ = {
        "DJANGO_SECRET_KEY": "k" * 60,
        "DJANGO_DEBUG": "false",
        "DEBUG": "True",  # the project's own line in the env file: kept as written
        "DJANGO_ALLOWED_HOSTS": "a.example,b.example",
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": "p@ss/w:rd",
        "POSTGRES_HOST": "db",
        "POSTGRES_PORT": "5432",
        "POSTGRES_DB": "shop",
    }
    before = dict(environ)
    stackctl_env.deliver(environ)
    assert environ == before
    assert stackctl_env.database_url(environ) == "postgres://app:p%40ss%2Fw%3Ard@db:5432/shop"
    own = {"DATABASE_URL": "postgres://u:p@elsewhere:5432/x", "POSTGRES_PASSWORD": "x"}
    assert stackctl_env.database_url(own) == "postgres://u:p@elsewhere:5432/x"


def test_pep621_prints_the_dependencies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build = _module("stackctl_build")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["django>=5.2,<6", "redis"]\n')
    assert build.main(["pep621", str(tmp_path / "pyproject.toml")]) == 0
    assert capsys.readouterr().out.splitlines() == ["django>=5.2,<6", "redis"]
    (tmp_path / "pyproject.toml").write_text('[tool.poetry]\nname = "x"\n')
    assert build.main(["pep621", str(tmp_path / "pyproject.toml")]) == 1
    assert "poetry.lock" in capsys.readouterr().err


def test_add_missing_installs_nothing_the_interpreter_already_has(capsys: pytest.CaptureFixture[str]) -> None:
    build = _module("stackctl_build")
    assert build.add_missing(["pydantic,pydantic-core=pydantic==0.0.1", "jinja2=Jinja2==0.0.1"]) == 0
    err = capsys.readouterr().err
    assert "the project installs pydantic; not adding pydantic==0.0.1" in err and "adding " not in err.replace(
        "not adding", ""
    )
    assert sys.version_info >= (3, 11)
