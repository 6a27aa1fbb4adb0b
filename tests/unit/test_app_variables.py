"""The project's own variables and settings under the stack: what the env file sets that no
stackctl group owns is the app's (passed to web, never warned about, secret-looking ones kept
out of output and, in prod, out of the container's configuration); init writes the names a
project's settings require that the stack used to add itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stackctl.config import StackConfig, load_config
from stackctl.config.appvars import looks_secret
from stackctl.config.loader import parse_env
from stackctl.core.configvolumes import config_volumes
from stackctl.core.detect_env import RequiredRead, required_reads, settings_files
from stackctl.core.init import run_init
from stackctl.core.render import render_set
from stackctl.errors import ConfigError
from tests.render.stackfiles import compose_config, load_fixture, missing, write_tree

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "projects"
TOKEN = "app-token-value-7c1e9d"
OWN = {"SOME_TOKEN": TOKEN, "FEATURE_FLAG": "on", "DEBUG": "True", "CACHE_URL": "redis://:pw-in-url-42@cache:6379/1"}


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("SOME_TOKEN", "x", True),
        ("STRIPE_API_KEY", "x", True),
        ("AWS_SECRET_ACCESS_KEY", "x", True),
        ("SMTP_PASSWORD", "x", True),
        ("GITHUB_APIKEY", "x", True),
        ("SENTRY_DSN_BACKEND", "x", True),
        ("CACHE_URL", "redis://:pw@cache:6379/1", True),
        ("CACHE_URL", "redis://cache:6379/1", False),
        ("FEATURE_FLAG", "on", False),
        ("DEBUG", "True", False),
        ("KEYBOARD_LAYOUT", "fr", False),
    ],
)
def test_secret_looking_names_and_urls(name: str, value: str, secret: bool) -> None:
    assert looks_secret(name, value) is secret


def test_the_apps_own_variables_are_kept_without_a_warning(tmp_path: Path) -> None:
    cfg = load_fixture("dev.env", "dev", tmp_path, extra={**OWN, "DJANGO_DEBGU": "true"})
    loaded = load_config(tmp_path / ".env", profile="dev")
    assert [w.variable for w in loaded.warnings] == ["DJANGO_DEBGU"]  # a misspelling of stackctl's still warns
    own = {v.name: (v.value.get_secret_value(), v.secret) for v in cfg.app_variables}
    assert own["SOME_TOKEN"] == (TOKEN, True) and own["FEATURE_FLAG"] == ("on", False)
    assert own["DEBUG"] == ("True", False) and own["CACHE_URL"][1] is True
    assert TOKEN not in repr(cfg) and TOKEN not in cfg.model_dump_json()


def test_check_lists_the_apps_variables_and_masks_the_secret_ones(cli, tmp_path: Path) -> None:
    load_fixture("dev.env", "dev", tmp_path, extra=OWN)
    result = cli("check", cwd=tmp_path)
    assert result.code == 0, result.output
    assert "passed to the app: " in result.err and "SOME_TOKEN (secret)" in result.err
    assert "FEATURE_FLAG='on'" in result.err and "unknown variable" not in result.output
    assert TOKEN not in result.output and "pw-in-url-42" not in result.output
    result = cli("check", "--json", cwd=tmp_path)
    payload = json.loads(result.out)
    assert {"name": "SOME_TOKEN", "secret": True, "value": None} in payload["app_variables"]
    assert {"name": "FEATURE_FLAG", "secret": False, "value": "on"} in payload["app_variables"]
    assert TOKEN not in result.output


def _environments(cfg: StackConfig, folder: Path, compose_file: str, env_file: str) -> dict[str, dict[str, str]]:
    """Each service's environment as compose reads it (`docker compose config`: env_file merged)."""
    docker = shutil.which("docker")
    if docker is None:
        missing("the docker CLI")
    assert docker is not None
    write_tree(folder, render_set(cfg))
    services = compose_config([docker, "compose"], folder, [compose_file], env_file)["services"]
    return {name: service.get("environment") or {} for name, service in services.items()}


def test_prod_passes_the_apps_secrets_to_web_as_files(tmp_path: Path) -> None:
    cfg = load_fixture("prod.env", "prod", tmp_path, extra={**OWN, "RCLONE_CONFIG_OFF_PASS": "rclone-pass-1"})
    files = render_set(cfg)
    assert not any(TOKEN.encode() in content for content, _mode in files.values())
    env = _environments(cfg, tmp_path, "docker-compose.prod.yml", ".env.prod")
    web = env["web"]
    # blanked over env_file, read back from /run/secrets/app_NAME by stackctl_env
    assert web["SOME_TOKEN"] == "" and web["CACHE_URL"] == ""
    assert set(web["STACKCTL_APP_SECRETS"].split(",")) == {"SOME_TOKEN", "CACHE_URL", "RCLONE_CONFIG_OFF_PASS"}
    # the project's own names reach web as the env file writes them
    assert web["DEBUG"] == "True" and web["FEATURE_FLAG"] == "on"
    backup = env["backup"]
    assert backup["SOME_TOKEN"] == "" and backup["RCLONE_CONFIG_OFF_PASS"] == "rclone-pass-1"  # the backup's own
    for service in ("db", "redis", "nginx"):
        assert not set(OWN) & set(env.get(service, {})), service
    assert TOKEN not in json.dumps(env) and "pw-in-url-42" not in json.dumps(env)
    volumes = {v.service: v for v in config_volumes(cfg, tmp_path) if v.name.endswith("_secrets")}
    web_files = {f.name: f.content for f in volumes["web"].files}
    assert web_files["app_SOME_TOKEN"] == TOKEN.encode() and web_files["app_CACHE_URL"] == OWN["CACHE_URL"].encode()
    assert all(not f.name.startswith("app_") for s in ("db", "redis", "backup") for f in volumes[s].files)


def test_without_app_secrets_nothing_is_added(tmp_path: Path) -> None:
    cfg = load_fixture("prod.env", "prod", tmp_path, extra={"FEATURE_FLAG": "on"})
    web = _environments(cfg, tmp_path, "docker-compose.prod.yml", ".env.prod")["web"]
    assert "STACKCTL_APP_SECRETS" not in web and web["FEATURE_FLAG"] == "on"
    assert not {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL"} & set(web)
    dev = load_fixture("dev.env", "dev", tmp_path / "dev", extra=OWN)
    web = _environments(dev, tmp_path / "dev", "docker-compose.yml", ".env")["web"]
    assert "STACKCTL_APP_SECRETS" not in web and web["SOME_TOKEN"] == TOKEN and web["DEBUG"] == "True"


def test_prod_database_url_may_name_the_apps_role(tmp_path: Path) -> None:
    base = {"DB_APP_PASSWORD": "app-role-password-0123456789"}
    url = "postgres://django_app:app-role-password-0123456789@db:5432/app"
    cfg = load_fixture("prod.env", "prod", tmp_path, extra={**base, "DATABASE_URL": url})
    assert cfg.database.database_url is not None
    with pytest.raises(ConfigError) as caught:
        load_fixture("prod.env", "prod", tmp_path / "bad", extra={**base, "DATABASE_URL": url.replace("0123", "x")})
    assert "disagrees with DB_APP_PASSWORD" in str(caught.value.problems)


# -- init: the names a project's settings require ----------------------------------------------------


def _settings(tmp_path: Path, source: str) -> dict[str, RequiredRead]:
    (tmp_path / "site").mkdir(exist_ok=True)
    (tmp_path / "site" / "settings.py").write_text(source)
    return required_reads(settings_files(tmp_path, "site.settings"))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('import os\nDEBUG = int(os.environ["DEBUG"])\n', {"DEBUG": True}),
        ('import os\nSECRET_KEY = os.environ["SECRET_KEY"]\n', {"SECRET_KEY": False}),
        ('import environ\nenv = environ.Env()\nDATABASES = {"default": env.db()}\n', {"DATABASE_URL": False}),
        ('from decouple import config\nALLOWED_HOSTS = config("ALLOWED_HOSTS", cast=str)\n', {"ALLOWED_HOSTS": False}),
        ('import os\nDEBUG = os.environ.get("DEBUG", "0") == "1"\n', {}),
        ('import os\nSECRET_KEY = os.getenv("SECRET_KEY")\n', {}),
        ('import environ\nenv = environ.Env()\nDEBUG = env.bool("DEBUG", default=False)\n', {}),
        ('import environ\nenv = environ.Env()\nDEBUG = env.bool("DEBUG", False)\n', {}),
        ('import os\nos.environ["DEBUG"] = "1"\n', {}),
        ('import os\nTOKEN = os.environ["SOME_TOKEN"]\n', {}),
    ],
)
def test_required_reads(tmp_path: Path, source: str, expected: dict[str, bool]) -> None:
    assert {name: read.as_int for name, read in _settings(tmp_path, source).items()} == expected


def _init(tmp_path: Path, fixture: str) -> tuple[dict[str, str], dict[str, str]]:
    root = tmp_path / fixture
    shutil.copytree(CORPUS / fixture, root, ignore=shutil.ignore_patterns("__pycache__", "stackctl-test.env"))
    stack = root / run_init(root, images="local").stack_dir
    dev, prod = (parse_env((stack / name).read_text()) for name in (".env", ".env.prod"))
    return {k: v or "" for k, v in dev.items()}, {k: v or "" for k, v in prod.items()}


def test_init_writes_database_url_for_settings_that_require_it(tmp_path: Path) -> None:
    _dev, prod = _init(tmp_path, "split_settings")  # production.py: env.db("DATABASE_URL")
    assert prod["DATABASE_URL"] == f"postgres://django_app:{prod['DB_APP_PASSWORD']}@db:5432/django"
    assert not {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"} & set(prod)  # read with defaults, or not at all


@pytest.mark.parametrize("fixture", ["startproject52", "sqlite_dburl", "src_layout_docker", "strict_settings"])
def test_init_writes_no_former_alias_a_project_does_not_require(tmp_path: Path, fixture: str) -> None:
    dev, prod = _init(tmp_path, fixture)
    for env in (dev, prod):
        assert not {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL"} & set(env), env.keys()


def test_init_warns_when_a_kept_env_file_lacks_a_required_name(tmp_path: Path) -> None:
    root = tmp_path / "split_settings"
    shutil.copytree(CORPUS / "split_settings", root, ignore=shutil.ignore_patterns("__pycache__"))
    run_init(root, images="local")
    prod = root / ".env.prod"
    prod.write_text("".join(line for line in prod.read_text().splitlines(True) if not line.startswith("DATABASE_URL=")))
    warnings = run_init(root, images="local", force=True).warnings
    assert [(w.file, w.variable) for w in warnings if w.variable == "DATABASE_URL"] == [(".env.prod", "DATABASE_URL")]
    assert "DATABASE_URL=" not in prod.read_text()  # a kept env file is never rewritten


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_with_the_overlay_off_web_gets_no_name_of_stackctls_for_the_settings(tmp_path: Path, profile: str) -> None:
    extra = {"DJANGO_SETTINGS_OVERLAY": "false", "DEBUG": "True"}
    cfg = load_fixture(f"{profile}.env", profile, tmp_path, extra=extra)  # type: ignore[arg-type]
    compose_file, env_file = (
        ("docker-compose.yml", ".env") if profile == "dev" else ("docker-compose.prod.yml", ".env.prod")
    )
    web = _environments(cfg, tmp_path, compose_file, env_file)["web"]
    assert web["DJANGO_SETTINGS_MODULE"] == cfg.django.django_settings_module and "STACKCTL_BASE_SETTINGS" not in web
    assert not {"SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"} & set(web) and web["DEBUG"] == "True"
