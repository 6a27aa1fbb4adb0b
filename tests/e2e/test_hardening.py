"""Least privilege, networks, redis's password, secrets out of the environment and the app's own
database role, on the real engine (issue #13 parts 1-4). The TLS prod stack is conftest's
`prod` (shared with test_prod_stack.py, whose check --deploy test keeps it clean); the role
migration of a stack from before the role gets a stack of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from tests.e2e.stackenv import Proj, containers, make_project, read_env, remove_built_images

pytestmark = pytest.mark.engine
docker = DockerClient()
SERVICES = ("web", "db", "redis", "nginx", "backup", "pgbackrest")
SECRET_VARIABLES = ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "DB_APP_PASSWORD", "REDIS_PASSWORD")


def _one(proj: Proj, service: str) -> Any:
    found = containers(proj, service)
    assert len(found) == 1, (service, found)
    return found[0]


def _inspect(proj: Proj, service: str) -> dict[str, Any]:
    """The container's whole `docker inspect` document, as the engine gives it (raw JSON:
    python-on-whales' models keep only the fields they know)."""
    raw = run([*docker.client_config.docker_cmd, "container", "inspect", _one(proj, service).id])
    [document] = json.loads(str(raw))
    return document  # type: ignore[no-any-return]


def _exec(proj: Proj, service: str, *command: str, user: str | None = None) -> str:
    return str(docker.container.execute(_one(proj, service).id, list(command), user=user))


def _app_sql(proj: Proj, query: str) -> list[list[Any]]:
    """Rows of QUERY run by the app itself in web (its settings, its role)."""
    code = (
        "import json, django; django.setup(); from django.db import connection\n"
        f"c = connection.cursor(); c.execute({query!r}); print('ROWS', json.dumps(c.fetchall()), flush=True)"
    )
    out = _exec(proj, "web", "python", "-c", code)
    [rows] = [line.removeprefix("ROWS ") for line in out.splitlines() if line.startswith("ROWS ")]
    return json.loads(rows)  # type: ignore[no-any-return]


def _superuser_sql(proj: Proj, query: str) -> str:
    env = read_env(proj.root / ".env.prod")
    user, db = env.get("POSTGRES_USER", "django"), env.get("POSTGRES_DB", "django")
    return _exec(proj, "db", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db, "-c", query).strip()


def test_no_secret_value_in_any_containers_inspect(prod: Proj) -> None:
    env = read_env(prod.root / ".env.prod")
    values = {name: env[name] for name in SECRET_VARIABLES}
    assert all(len(v) >= 16 for v in values.values()), "init generates every one"
    for service in SERVICES:
        document = json.dumps(_inspect(prod, service))
        leaked = [name for name, value in values.items() if value in document]
        assert not leaked, f"{service}'s docker inspect shows {leaked}"
    db_env = [e.split("=", 1)[0] for e in _inspect(prod, "db")["Config"]["Env"]]
    assert "DJANGO_SECRET_KEY" not in db_env  # db never receives the Django key, not even blank


def test_every_container_is_hardened(prod: Proj) -> None:
    for service in SERVICES:
        host = _inspect(prod, service)["HostConfig"]
        assert "no-new-privileges:true" in (host["SecurityOpt"] or []), service
        assert host["CapDrop"] == ["ALL"], service
        assert (host["PidsLimit"] or 0) > 0, service
        assert host["ReadonlyRootfs"] is (service in ("web", "nginx", "redis")), service
        if service in ("nginx", "backup", "pgbackrest"):
            assert host["NanoCpus"] > 0 and host["Memory"] > 0, service
    # writes fail on the read-only roots, and work where the service writes
    for service in ("web", "nginx", "redis"):
        with pytest.raises(DockerException):
            _exec(prod, service, "touch", "/stackctl-write-probe")
        _exec(prod, service, "touch", "/tmp/stackctl-write-probe")


def test_web_code_is_roots_and_not_writable_by_the_app(prod: Proj) -> None:
    assert _exec(prod, "web", "stat", "-c", "%U %u", "/app", "/app/manage.py").split() == ["root", "0"] * 2
    assert _exec(prod, "web", "id", "-u").strip() == "1000"
    code = "import os; print(os.access('/app/manage.py', os.W_OK), os.access('/app', os.W_OK))"
    assert _exec(prod, "web", "python", "-c", code).split() == ["False", "False"]


def test_backup_runs_under_an_init_that_reaps(prod: Proj) -> None:
    assert _inspect(prod, "backup")["HostConfig"]["Init"] is True
    assert _exec(prod, "backup", "cat", "/proc/1/comm").strip() in {"docker-init", "tini"}


def test_redis_refuses_a_client_without_the_password(prod: Proj) -> None:
    without = _exec(prod, "redis", "redis-cli", "ping")
    assert "NOAUTH" in without and "PONG" not in without
    with_it = _exec(prod, "redis", "sh", "-c", 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" redis-cli ping')
    assert with_it.strip() == "PONG"
    # and the app's cache works through it
    code = (
        "import django; django.setup(); from django.core.cache import cache\n"
        "cache.set('stackctl-probe', 'ok', 30); print(cache.get('stackctl-probe'))"
    )
    assert _exec(prod, "web", "python", "-c", code).strip().splitlines()[-1] == "ok"


def test_db_and_redis_are_on_an_internal_network_nginx_cannot_reach(prod: Proj) -> None:
    networks = {n: docker.network.inspect(n) for n in _inspect(prod, "db")["NetworkSettings"]["Networks"]}
    assert len(networks) == 1 and all(net.internal for net in networks.values())
    assert set(_inspect(prod, "redis")["NetworkSettings"]["Networks"]) == set(networks)
    assert not set(_inspect(prod, "nginx")["NetworkSettings"]["Networks"]) & set(networks)
    for host, port in (("db", 5432), ("redis", 6379)):
        with pytest.raises(DockerException):
            _exec(prod, "nginx", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}")


def test_the_app_connects_as_its_own_role_which_is_not_a_superuser(prod: Proj) -> None:
    env = read_env(prod.root / ".env.prod")
    [[user, superuser, owner]] = _app_sql(
        prod,
        "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
        "pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
    )
    assert (user, superuser, owner) == ("django_app", False, "django_app")
    assert user != env.get("POSTGRES_USER", "django")
    [[foreign]] = _app_sql(
        prod, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> current_user"
    )
    assert foreign == 0  # the app's migrations made every table as the app's role
    assert _superuser_sql(prod, "SHOW data_checksums") == "on"  # a new cluster


# -- a stack from before the role moves to it on its next `up --prod` ------------------------------


@pytest.fixture(scope="module")
def old_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proj]:
    proj = make_project(tmp_path_factory.mktemp("roles"), prod=True)
    try:
        proj.stackctl("up", check=True)
        yield proj
    finally:
        proj.stackctl("down", "--volumes", "--yes")
        remove_built_images(proj.name)


def test_an_existing_stack_moves_to_the_app_role_and_says_so(old_stack: Proj) -> None:
    proj = old_stack
    # What a stack of the previous version holds: the superuser owns the database and every
    # table (its app connected as the superuser), no app role; and a committed row.
    docker.container.stop(_one(proj, "web").id)  # no session of the role's is left
    _superuser_sql(
        proj,
        "INSERT INTO notes_note (title, body, created_at) VALUES ('kept', 'across the move', now());"
        "ALTER DATABASE django OWNER TO django; REASSIGN OWNED BY django_app TO django; "
        "DROP OWNED BY django_app; DROP ROLE django_app;",
    )
    assert _superuser_sql(proj, "SELECT count(*) FROM pg_tables WHERE tableowner = 'django'") != "0"
    up = proj.stackctl("up", check=True)
    assert "moved database django from django (a superuser) to its own role django_app" in up.stdout + up.stderr
    [[owner, tables_of_others]] = _app_sql(
        proj,
        "SELECT pg_get_userbyid(datdba), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
        "AND tableowner <> current_user) FROM pg_database WHERE datname = current_database()",
    )
    assert (owner, tables_of_others) == ("django_app", 0)
    assert _app_sql(proj, "SELECT title, body FROM notes_note WHERE title = 'kept'") == [["kept", "across the move"]]
    # the app still writes (a new row gets an id from the moved sequence)
    _app_sql(proj, "INSERT INTO notes_note (title, body, created_at) VALUES ('new', 'after', now()) RETURNING id")
    # and the next up has nothing to move
    again = proj.stackctl("up", "--no-build", check=True)
    assert "moved database" not in again.stdout + again.stderr
