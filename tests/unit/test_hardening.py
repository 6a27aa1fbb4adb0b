"""Least privilege, networks, secrets and the app's database role, as rendered (issue #13 parts
1-4). The real engine's side is tests/e2e/test_hardening.py."""

from __future__ import annotations

import importlib.util
import io
import shutil
import stat
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stackctl.config import StackConfig
from stackctl.config.model import is_sensitive, variable_names
from stackctl.core import dbroles
from stackctl.core.configvolumes import SECRETS_TARGET, archive, config_volumes
from stackctl.core.render import render_set
from stackctl.core.secretfiles import SECRETS, derived_password, secret_values
from stackctl.errors import ConfigError, DockerCommandError, StackctlError
from tests.render.stackfiles import compose_config, load_fixture, missing, write_tree

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("web", "db", "redis", "nginx", "backup", "pgbackrest")
# Each capability added back, with the service that proves it needs it (see the template's comments).
ADDED_BACK = {"nginx": {"CHOWN", "SETUID", "SETGID"}, "backup": {"CHOWN", "DAC_OVERRIDE", "FOWNER"}}
SENSITIVE = sorted(name for name in variable_names() if is_sensitive(name))
UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _bytes(size: str) -> int:
    return int(size[:-1]) * UNITS[size[-1]] if size[-1] in UNITS else int(size)


def _compose(cfg: StackConfig, folder: Path) -> dict[str, Any]:
    """docker-compose.prod.yml as compose reads it (`docker compose config`: env_file merged)."""
    docker = shutil.which("docker")
    if docker is None:
        missing("the docker CLI")
    assert docker is not None
    write_tree(folder, render_set(cfg))
    return compose_config([docker, "compose"], folder, ["docker-compose.prod.yml"], ".env.prod")


# Every secret the env file can hold, set (fake values), so that each must be kept out.
ALL_SECRETS = {
    "DB_APP_PASSWORD": "test-only-app-password-0123",
    "REDIS_PASSWORD": "test-only-redis-password-0123",
    "EMAIL_PASS": "test-only-smtp-password",
    "SENTRY_DSN": "https://test-only-key@sentry.example.com/1",
}


@pytest.fixture(params=["prod.env", "tls.env", "all-secrets"])
def cfg(request: pytest.FixtureRequest, tmp_path: Path) -> StackConfig:
    if request.param == "all-secrets":
        return load_fixture("prod.env", "prod", tmp_path, extra=ALL_SECRETS)
    return load_fixture(str(request.param), "prod", tmp_path)


@pytest.fixture
def compose(cfg: StackConfig, tmp_path: Path) -> dict[str, Any]:
    return _compose(cfg, tmp_path)


def test_every_prod_service_drops_every_capability_and_cannot_gain_privileges(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == set(SERVICES)
    for name, service in services.items():
        assert service.get("security_opt") == ["no-new-privileges:true"], name
        assert service["cap_drop"] == ["ALL"], name
        assert set(service.get("cap_add", [])) == ADDED_BACK.get(name, set()), name
        assert service["deploy"]["resources"]["limits"]["pids"] > 0, name


def test_read_only_roots_and_their_tmpfs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("web", "nginx", "redis"):
        assert services[name]["read_only"] is True, name
        assert any(t.startswith("/tmp:") for t in services[name]["tmpfs"]), name
    # db and backup keep writable roots (the reasons are in the template)
    assert "read_only" not in services["db"] and "read_only" not in services["backup"]


def test_db_and_redis_run_as_their_data_owner_and_backup_under_an_init(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["db"]["user"] == "999:999" and services["redis"]["user"] == "999:999"
    assert services["backup"]["init"] is True


def test_nginx_and_backup_have_cpu_and_memory_limits(cfg: StackConfig, compose: dict[str, Any]) -> None:
    res = cfg.resources
    for name, cpus, memory in (
        ("nginx", res.nginx_cpu_limit, res.nginx_memory_limit),
        ("backup", res.backup_cpu_limit, res.backup_memory_limit),
    ):
        limits = compose["services"][name]["deploy"]["resources"]["limits"]
        assert (float(limits["cpus"]), int(limits["memory"])) == (float(cpus), _bytes(memory)), name


def test_db_and_redis_are_on_an_internal_network_nginx_is_not_on(compose: dict[str, Any]) -> None:
    services, networks = compose["services"], compose["networks"]
    assert networks["backend"]["internal"] is True and not networks["default"].get("internal")
    assert set(services["db"]["networks"]) == {"backend"} and set(services["redis"]["networks"]) == {"backend"}
    assert set(services["nginx"]["networks"]) == {"default"}
    assert set(services["web"]["networks"]) == {"default", "backend"}
    assert set(services["backup"]["networks"]) == {"default", "backend"}


def test_no_service_gets_a_secret_in_its_environment(cfg: StackConfig, compose: dict[str, Any]) -> None:
    values = {v for v in secret_values(cfg).values() if v}
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        assert not values & {str(v) for v in environment.values()}, name
        assert not any(value in str(service) for value in values), name
        if "env_file" in service:  # what .env.prod holds is blanked over it
            assert {k: environment.get(k) or "" for k in SENSITIVE} == dict.fromkeys(SENSITIVE, ""), name
    db = compose["services"]["db"]
    assert "env_file" not in db and "DJANGO_SECRET_KEY" not in db["environment"]


def test_each_secret_goes_only_to_the_services_that_read_it(
    cfg: StackConfig, compose: dict[str, Any], tmp_path: Path
) -> None:
    services = compose["services"]
    # each service mounts its own secrets volume, read-only, at /run/secrets; nginx none
    mounts = {
        name: [v for v in service.get("volumes", []) if v["target"] == SECRETS_TARGET]
        for name, service in services.items()
    }
    assert {name: [(v["source"], v["read_only"]) for v in found] for name, found in mounts.items()} == {
        "web": [("web_secrets", True)],
        "db": [("db_secrets", True)],
        "redis": [("redis_secrets", True)],
        "nginx": [],
        "backup": [("backup_secrets", True)],
        # pgBackRest's secret options (PITR_REPO2_*) are db's too: archive-push reads them
        "pgbackrest": [("db_secrets", True)],
    }
    # what each volume holds: only what its service reads
    held = {v.service: {f.name for f in v.files} for v in config_volumes(cfg, tmp_path) if v.target == SECRETS_TARGET}
    assert held == {
        "web": {"django_secret_key", "db_app_password", "redis_password"}
        | {"database_url", "email_url", "email_pass", "sentry_dsn"},
        "db": {"postgres_password", "db_app_password", "pgbackrest.conf"},
        "redis": {"redis_password"},
        "backup": {"postgres_password"},
    }
    assert set().union(*held.values()) - {"pgbackrest.conf"} == {s.name for s in SECRETS}  # every secret is used
    assert set(compose["secrets"]) == {"ca_bundle"}  # none is a file on the client
    # each read through VAR_FILE
    web = services["web"]["environment"]
    assert web["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_app_password"
    assert web["DJANGO_SECRET_KEY_FILE"] == "/run/secrets/django_secret_key"
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert services["backup"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"


def test_web_connects_as_the_app_role_and_db_makes_the_superuser_with_checksums(
    cfg: StackConfig, compose: dict[str, Any]
) -> None:
    services = compose["services"]
    assert services["web"]["environment"]["POSTGRES_USER"] == cfg.database.db_app_user
    assert services["db"]["environment"]["POSTGRES_USER"] == cfg.database.postgres_user
    assert services["backup"]["environment"]["POSTGRES_USER"] == cfg.database.postgres_user
    assert services["db"]["environment"]["POSTGRES_INITDB_ARGS"] == "--data-checksums"


def test_redis_requires_the_password_without_showing_it(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "requirepass" in command and "/run/secrets/redis_password" in command
    assert "cat /run/secrets/redis_password" in redis["healthcheck"]["test"][1]


def test_the_prod_image_gives_the_code_to_root(tmp_path: Path) -> None:
    prod = render_set(load_fixture("prod.env", "prod", tmp_path / "p"))["compose/Dockerfile.prod"][0].decode()
    dev = render_set(load_fixture("dev.env", "dev", tmp_path / "d"))["compose/Dockerfile"][0].decode()
    assert "COPY example/ /app" in prod.splitlines() and "chown app:app /app" not in prod
    assert "COPY --chown=app:app example/ /app" in dev.splitlines()


def test_dev_is_unchanged_by_the_prod_hardening(tmp_path: Path) -> None:
    text = render_set(load_fixture("dev.env", "dev", tmp_path))["docker-compose.yml"][0].decode()
    assert "networks:" not in text and "cap_drop" not in text and "/run/secrets/" not in text
    assert 'POSTGRES_USER: "django"' in text


# -- the config volumes ------------------------------------------------------------------------------


def test_the_config_archive_gives_each_file_to_its_service_only(cfg: StackConfig, tmp_path: Path) -> None:
    volumes = config_volumes(cfg, tmp_path)
    with tarfile.open(fileobj=io.BytesIO(archive(volumes))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        content = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert {n for n, m in members.items() if m.isdir()} == {v.name for v in volumes}
    for volume in volumes:
        folder = members[volume.name]
        assert (folder.uid, folder.gid) == (0, volume.gid)
    web = members["web_secrets/django_secret_key"]
    assert (web.uid, web.gid, web.mode) == (0, 1000, 0o440)  # root's, readable by web's group only
    assert stat.S_IMODE(members["web_secrets"].mode) == 0o750
    assert (members["db_secrets/postgres_password"].gid, members["redis_secrets/redis_password"].gid) == (999, 999)
    assert content["web_secrets/django_secret_key"] == cfg.django.django_secret_key.get_secret_value().encode()
    assert content["nginx_config/nginx.conf"] == render_set(cfg)["nginx/nginx.prod.conf"][0]
    certs = {name for name in members if name.startswith("nginx_certs/")}
    assert certs == ({"nginx_certs/fullchain.pem", "nginx_certs/privkey.pem"} if cfg.nginx.use_tls else set())


def test_the_tls_files_travel_with_the_key_root_only(tmp_path: Path) -> None:
    cfg = load_fixture("tls.env", "prod", tmp_path)
    (tmp_path / "certs" / "fullchain.pem").write_text("CERT")
    (tmp_path / "certs" / "privkey.pem").write_text("KEY")
    certs = next(v for v in config_volumes(cfg, tmp_path) if v.name == "nginx_certs")
    assert certs.target == "/etc/nginx/certs" and certs.service == "nginx"
    assert {(f.name, f.content, f.mode) for f in certs.files} == {
        ("fullchain.pem", b"CERT", 0o444),
        ("privkey.pem", b"KEY", 0o400),
    }
    (tmp_path / "certs" / "fullchain.pem").unlink()  # gone since the env file was checked
    with pytest.raises(ConfigError) as missing_cert:
        config_volumes(cfg, tmp_path)
    assert "TLS_CERT_PATH" in missing_cert.value.problems[0].render()


def test_derived_passwords_are_stable_distinct_and_follow_the_env_file(tmp_path: Path) -> None:
    cfg = load_fixture("prod.env", "prod", tmp_path / "a")
    values = secret_values(cfg)
    assert values["db_app_password"] == derived_password(cfg, "db app role")
    assert values["redis_password"] == derived_password(cfg, "redis")
    assert len({values["db_app_password"], values["redis_password"], values["postgres_password"]}) == 3
    again = secret_values(load_fixture("prod.env", "prod", tmp_path / "b"))
    assert again["db_app_password"] == values["db_app_password"]
    own = load_fixture(
        "prod.env", "prod", tmp_path / "c", extra={"DB_APP_PASSWORD": "a" * 20, "REDIS_PASSWORD": "b-c_d" * 4}
    )
    assert (secret_values(own)["db_app_password"], secret_values(own)["redis_password"]) == ("a" * 20, "b-c_d" * 4)


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"REDIS_PASSWORD": "has space in it, sixteen+"}, "REDIS_PASSWORD"),
        ({"DB_APP_PASSWORD": "short"}, "DB_APP_PASSWORD"),
        ({"DB_APP_USER": "app"}, "DB_APP_USER"),  # the fixture's superuser
        ({"DB_APP_USER": "Robert'); DROP"}, "DB_APP_USER"),
    ],
)
def test_bad_role_settings_are_refused_by_name(extra: dict[str, str], variable: str, tmp_path: Path) -> None:
    with pytest.raises(StackctlError) as caught:
        load_fixture("prod.env", "prod", tmp_path, extra=extra)
    text = str(caught.value) + str(getattr(caught.value, "problems", ""))
    assert variable in text
    assert "has space in it" not in text and "short" not in text.replace("shorter", "")


# -- inside web: stackctl_env reads the files ------------------------------------------------------


def _stackctl_env() -> ModuleType:
    path = REPO / "templates" / "compose" / "stackctl" / "stackctl_env.py"
    spec = importlib.util.spec_from_file_location("stackctl_env_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    import os

    saved = dict(os.environ)
    try:
        spec.loader.exec_module(module)  # runs deliver(os.environ) on the test's environment
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


def test_web_reads_each_secret_from_its_file(tmp_path: Path) -> None:
    env_module = _stackctl_env()
    (tmp_path / "key").write_text("k" * 60)
    (tmp_path / "pw").write_text("app-pass")
    (tmp_path / "redis").write_text("r3dis")
    (tmp_path / "empty").write_text("")
    environ = {
        "DJANGO_SECRET_KEY": "",
        "DJANGO_SECRET_KEY_FILE": str(tmp_path / "key"),
        "POSTGRES_PASSWORD_FILE": str(tmp_path / "pw"),
        "POSTGRES_USER": "django_app",
        "REDIS_PASSWORD_FILE": str(tmp_path / "redis"),
        "REDIS_URL": "redis://redis:6379/0",
        "EMAIL_PASS": "",
        "EMAIL_PASS_FILE": str(tmp_path / "empty"),
    }
    env_module.deliver(environ)
    assert environ["DJANGO_SECRET_KEY"] == "k" * 60 and environ["POSTGRES_PASSWORD"] == "app-pass"
    assert environ["REDIS_URL"] == "redis://:r3dis@redis:6379/0"
    assert "EMAIL_PASS" not in environ  # an empty file is unset, as an empty variable is
    # no name the env file did not set: the overlay builds the database URL itself
    assert not {"SECRET_KEY", "DATABASE_URL", "DEBUG", "ALLOWED_HOSTS"} & set(environ)
    assert env_module.database_url(environ) == "postgres://django_app:app-pass@db:5432/django"


def test_web_reads_the_apps_own_secrets_from_their_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_module = _stackctl_env()
    monkeypatch.setattr(env_module, "SECRETS_DIR", str(tmp_path))
    (tmp_path / "app_SOME_TOKEN").write_text("t0ken\n")
    (tmp_path / "app_API_KEY").write_text("")
    environ = {"STACKCTL_APP_SECRETS": "SOME_TOKEN,API_KEY", "SOME_TOKEN": "", "API_KEY": ""}
    env_module.deliver(environ)
    assert environ["SOME_TOKEN"] == "t0ken" and "API_KEY" not in environ
    assert set(environ) == {"STACKCTL_APP_SECRETS", "SOME_TOKEN"}


def test_redis_password_goes_only_into_the_bundled_redis_url() -> None:
    with_password = _stackctl_env().redis_url_with_password
    assert with_password("redis://cache.example.com:6379/0", "pw") == "redis://cache.example.com:6379/0"
    assert with_password("redis://:own@redis:6379/0", "pw") == "redis://:own@redis:6379/0"
    assert with_password("rediss://redis:6380/2", "p/w") == "rediss://:p%2Fw@redis:6380/2"


# -- the app's role ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "tables", "created", "moved"),
    [
        ("stackctl-role owner=django had_role=f", "12", True, "django"),  # a stack from before the role
        ("stackctl-role owner=django had_role=f", "0", True, None),  # a new cluster: nothing to move
        ("stackctl-role owner=django_app had_role=t", "0", False, None),  # already moved
    ],
)
def test_role_marker_says_what_changed(line: str, tables: str, created: bool, moved: str | None) -> None:
    output = f"noise\n{line}\nstackctl-tables superuser_owned={tables}\n"
    role = dbroles.parse_marker(output, role="django_app", database="django")
    assert (role.created, role.moved_from) == (created, moved)
    text = role.describe()
    if moved:
        assert text is not None and "moved database django from django" in text and "django_app" in text
    elif created:
        assert text is not None and text.startswith("created the app's database role django_app")
    else:
        assert text is None


def test_role_script_without_its_marker_is_an_error() -> None:
    with pytest.raises(DockerCommandError):
        dbroles.parse_marker("", role="a", database="b")


def test_role_script_keeps_the_password_out_of_argv() -> None:
    assert "`cat /run/secrets/db_app_password`" in dbroles.SCRIPT
    assert "PASSWORD %L" in dbroles.SCRIPT


def test_init_keeps_the_secret_files_out_of_git() -> None:
    from stackctl.core.init import GITIGNORE_LINES

    assert ".stackctl/secrets/" in GITIGNORE_LINES
