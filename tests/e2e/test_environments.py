"""Named environments on a real engine: `init --env staging` beside prod, both stacks up at once
on one host, each on its own ports with its own containers, volumes and data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from tests.e2e.stackenv import Proj, make_project, read_env, remove_built_images

pytestmark = pytest.mark.engine
docker = DockerClient()

CREATE = 'mutation($t: String!) { createNote(title: $t, body: "env") { id } }'
TITLES = "{ notes { title } }"


def _volumes(project: str) -> set[str]:
    return {v.name for v in docker.volume.list(filters={"label": f"com.docker.compose.project={project}"})}


def test_staging_and_prod_of_one_project_run_side_by_side(tmp_path: Path) -> None:
    prod = make_project(tmp_path, prod=True)
    made = prod.stackctl("init", "--env", "staging", "--json", check=True)
    info = json.loads(made.stdout)
    stack_name = prod.name.removesuffix("-prod")
    assert info["compose_project"] == f"{stack_name}-staging"
    staging_env = read_env(prod.root / ".env.staging")
    assert staging_env["HTTP_PORT"] == str(info["ports"]["HTTP_PORT"]) != prod.env["HTTP_PORT"]
    for secret in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "DB_APP_PASSWORD", "REDIS_PASSWORD"):
        assert staging_env[secret] != prod.env[secret], secret
    staging = Proj(
        prod.root, info["compose_project"], info["ports"]["HTTP_PORT"], info["ports"]["HTTPS_PORT"], env=staging_env
    )
    try:
        prod.stackctl("up", check=True)  # Proj adds --prod
        staging.stackctl("up", "--env", "staging", check=True)

        # both answer over their own nginx, at once
        assert prod.gql("{ ping }") == {"ping": "pong"}
        assert staging.gql("{ ping }") == {"ping": "pong"}

        # their own data: a note written in prod is absent from staging
        prod.gql(CREATE, {"t": "only-in-prod"})
        staging.gql(CREATE, {"t": "only-in-staging"})
        assert [n["title"] for n in prod.gql(TITLES)["notes"]] == ["only-in-prod"]
        assert [n["title"] for n in staging.gql(TITLES)["notes"]] == ["only-in-staging"]

        # their own volumes and containers, by compose project label
        prod_volumes, staging_volumes = _volumes(prod.name), _volumes(staging.name)
        assert prod_volumes and staging_volumes and not prod_volumes & staging_volumes

        status = json.loads(staging.stackctl("status", "--env", "staging", "--json", check=True).stdout)
        assert status["project"] == staging.name and status["env"] == "staging" and status["healthy"]
        nginx = next(s for s in status["services"] if s["service"] == "nginx")
        assert any(p.startswith(f"127.0.0.1:{staging.http_port}->") for p in nginx["ports"]), nginx
        prod_status = json.loads(prod.stackctl("status", "--json", check=True).stdout)
        assert prod_status["project"] == prod.name and prod_status["healthy"]
        assert {c["container"] for c in status["services"]}.isdisjoint(c["container"] for c in prod_status["services"])
    finally:
        for proj, flag in ((staging, ["--env", "staging"]), (prod, [])):
            proj.stackctl("down", *flag, "--volumes", "--yes")
            remove_built_images(proj.name)
    assert not _volumes(prod.name) and not _volumes(staging.name)
