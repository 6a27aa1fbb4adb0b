"""Named environments: names, their files, --prod/--env resolution, and `init --env NAME`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer

from stackctl.cli.common import Application
from stackctl.config.profile import DEV, PROD, Environment
from stackctl.console import Console
from stackctl.core.envinit import env_host, free_ports, host_values, run_init_env
from stackctl.core.project import Project
from stackctl.core.render import artifacts_for
from stackctl.errors import ConflictError, StackctlError

REPO = Path(__file__).resolve().parents[2]
SECRETS = ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "DB_APP_PASSWORD", "REDIS_PASSWORD")


@pytest.mark.parametrize("name", ["staging", "demo-2", "a", "q" + "x" * 30])
def test_a_good_name_is_a_prod_kind_environment(name: str) -> None:
    env = Environment.named(name)
    assert env == Environment(name, "prod") and env.is_named


@pytest.mark.parametrize("name", ["Staging", "2nd", "-x", "a_b", "a.b", "", "q" + "x" * 31, "example"])
def test_a_bad_name_is_an_error_that_names_the_fix(name: str) -> None:
    with pytest.raises(StackctlError) as raised:
        Environment.named(name)
    assert "not an environment name" in raised.value.message and "e.g. staging" in (raised.value.hint or "")


def test_dev_and_prod_are_the_built_ins() -> None:
    assert Environment.named("dev") == DEV == Environment("dev", "dev") and not DEV.is_named
    assert Environment.named("prod") == PROD == Environment("prod", "prod") and not PROD.is_named
    assert (DEV.command("up"), PROD.command("up")) == ("stackctl up", "stackctl up --prod")
    assert Environment.named("staging").command("logs web") == "stackctl logs web --env staging"


def test_file_names_per_environment(tmp_path: Path) -> None:
    project = Project(tmp_path, tmp_path)
    staging = Environment.named("staging")
    assert [project.env_file(e).name for e in (DEV, PROD, staging)] == [".env", ".env.prod", ".env.staging"]
    assert [project.compose_files(e)[0].name for e in (DEV, PROD, staging)] == [
        "docker-compose.yml",
        "docker-compose.prod.yml",
        "docker-compose.staging.yml",
    ]
    prod_paths = {a.path for a in artifacts_for(PROD)}
    staging_paths = {a.path for a in artifacts_for(staging)}
    # staging's set is prod's, with `.staging.` where prod's names say `.prod.`
    assert staging_paths == {p.replace(".prod", ".staging") for p in prod_paths}
    assert {"nginx/nginx.staging.conf", "compose/entrypoint.staging.sh", "compose/Dockerfile.staging"} <= staging_paths


def test_named_environments_are_found_by_their_env_files(tmp_path: Path) -> None:
    for name in (".env", ".env.prod", ".env.example", ".env.staging", ".env.demo", ".env.x.local"):
        (tmp_path / name).write_text("")
    assert Project(tmp_path, tmp_path).named_environments() == ["demo", "staging"]


def test_prod_and_env_resolve_to_one_environment() -> None:
    app = Application(Console())
    assert app.environment(False, None) == DEV
    assert app.environment(True, None) == PROD
    assert app.environment(False, "prod") == PROD == app.environment(True, "prod")
    assert app.environment(False, "dev") == DEV
    assert app.environment(False, "staging") == Environment("staging", "prod")
    assert app.environment(False, None, default="prod") == PROD
    with pytest.raises(typer.BadParameter, match="not both"):
        app.environment(True, "staging")


def test_prod_with_another_env_is_a_usage_error(cli, tmp_path: Path) -> None:
    result = cli("render", "--prod", "--env", "staging", "-C", str(tmp_path))
    assert result.code == 2 and "not both" in result.output


def test_a_bad_env_name_on_the_command_line(cli, tmp_path: Path) -> None:
    result = cli("status", "--env", "Staging", "-C", str(tmp_path))
    assert result.code == 1 and "not an environment name" in result.output


def test_host_names_move_under_the_environment() -> None:
    assert env_host("staging", "example.com") == "staging.example.com"
    assert [env_host("staging", h) for h in ("localhost", "127.0.0.1", "::1", ".example.com")] == [
        "localhost",
        "127.0.0.1",
        "::1",
        ".example.com",
    ]
    prod = {
        "SERVER_NAME": "example.com www.example.com",
        "DJANGO_ALLOWED_HOSTS": "example.com,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": "https://example.com,https://127.0.0.1:8443",
    }
    assert host_values("staging", prod, {8443: 8444}) == {
        "SERVER_NAME": "staging.example.com staging.www.example.com",
        "DJANGO_ALLOWED_HOSTS": "staging.example.com,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": "https://staging.example.com,https://127.0.0.1:8444",
    }


def test_free_ports_skip_those_of_other_env_files_and_bound_ones() -> None:
    assert free_ports({8080, 8443}, lambda port: port == 8081) == {"HTTP_PORT": 8082, "HTTPS_PORT": 8444}


@pytest.fixture
def initialised(cli, tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(REPO / "example", root / "example", ignore=shutil.ignore_patterns("__pycache__"))
    result = cli("init", "--local-images", cwd=root)
    assert result.code == 0, result.output
    return root


def _env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return dict(pairs)


def test_init_env_writes_its_own_project_ports_and_secrets(cli, initialised: Path) -> None:
    result = cli("init", "--env", "staging", "--json", cwd=initialised)
    assert result.code == 0, result.output
    report = json.loads(result.out)
    prod, staging = _env(initialised / ".env.prod"), _env(initialised / ".env.staging")
    assert (initialised / ".env.staging").stat().st_mode & 0o777 == 0o600
    assert report["compose_project"] == "shop-staging" and staging["STACK_NAME"] == prod["STACK_NAME"] == "shop"
    for secret in SECRETS:
        assert staging[secret] and staging[secret] != prod[secret], secret
        assert staging[secret] not in result.output
    dev_ports = {8080, 8443}  # .env leaves them at their defaults
    ports = {int(staging["HTTP_PORT"]), int(staging["HTTPS_PORT"])}
    assert report["ports"] == {"HTTP_PORT": int(staging["HTTP_PORT"]), "HTTPS_PORT": int(staging["HTTPS_PORT"])}
    assert not ports & (dev_ports | {int(prod["HTTP_PORT"]), int(prod["HTTPS_PORT"])})
    for path in ("docker-compose.staging.yml", "nginx/nginx.staging.conf", "compose/entrypoint.staging.sh"):
        assert (initialised / path).is_file(), path
    compose = (initialised / "docker-compose.staging.yml").read_text()
    assert "- .env.staging" in compose and '"web_secrets:/run/secrets:ro"' in compose
    assert ".env.prod" not in compose and "shop-staging-web" in compose
    assert ".env.staging" in (initialised / ".gitignore").read_text().splitlines()
    # a second environment takes other ports again
    other = run_init_env(initialised, "demo", port_taken=lambda _address, _port: False)
    assert not set(other.ports.values()) & (ports | dev_ports)


def test_init_env_refuses_an_existing_file_and_dry_run_writes_nothing(cli, initialised: Path) -> None:
    before = sorted(p.name for p in initialised.iterdir())
    dry = cli("init", "--env", "staging", "--dry-run", cwd=initialised)
    assert dry.code == 0 and "create  .env.staging" in dry.out and "nothing was written" in dry.err
    assert sorted(p.name for p in initialised.iterdir()) == before
    assert cli("init", "--env", "staging", cwd=initialised).code == 0
    first = (initialised / ".env.staging").read_text()
    with pytest.raises(ConflictError, match="exists already"):
        run_init_env(initialised, "staging")
    assert cli("init", "--env", "staging", "--force", cwd=initialised).code == 0
    assert (initialised / ".env.staging").read_text() != first  # fresh secrets


def test_init_env_needs_prod_and_a_named_environment(tmp_path: Path, initialised: Path) -> None:
    with pytest.raises(StackctlError, match="built-in"):
        run_init_env(initialised, "prod")
    with pytest.raises(StackctlError, match=r"\.env\.prod is missing"):
        run_init_env(tmp_path / "empty", "staging")


def test_staging_renders_with_check_and_status_of_its_own(cli, initialised: Path) -> None:
    assert cli("init", "--env", "staging", cwd=initialised).code == 0
    check = cli("check", "--env", "staging", cwd=initialised)
    assert check.code == 0 and ".env.staging is valid (staging)" in check.output
    render = cli("render", "--env", "staging", "--check", cwd=initialised)
    assert render.code == 0, render.output


def test_a_missing_named_env_file_says_how_to_create_it(tmp_path: Path) -> None:
    from stackctl.config import load_config
    from stackctl.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / ".env.qa", profile="prod", env_name="qa")
    assert "stackctl init --env qa" in str(err.value.problems[0].hint)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / ".env.prod", profile="prod", env_name="prod")
    assert "`stackctl init`" in str(err.value.problems[0].hint)
