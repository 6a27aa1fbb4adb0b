"""Named environments on a real engine: `init --env staging` beside prod, both stacks up at once
on one host, each on its own ports with its own containers, volumes and data; staging's
backups, restores and deploys touch staging only."""

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
    return {v.name for v in docker.volume.list(filters=[("label", f"com.docker.compose.project={project}")])}


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

        # backups and restores of staging are staging's: its row comes back, prod is untouched
        taken = json.loads(staging.stackctl("backup", "now", "db", "--env", "staging", "--json", check=True).stdout)
        name = taken[0]["file"].rsplit("/", 1)[-1]
        listed = json.dumps(
            json.loads(staging.stackctl("backup", "list", "--env", "staging", "--json", check=True).stdout)
        )
        assert name in listed
        assert name not in json.dumps(json.loads(prod.stackctl("backup", "list", "--json", check=True).stdout))
        staging.gql(CREATE, {"t": "after-the-backup"})
        staging.stackctl("restore", "db", name, "--env", "staging", "--yes", check=True)
        assert [n["title"] for n in staging.gql(TITLES)["notes"]] == ["only-in-staging"]
        assert [n["title"] for n in prod.gql(TITLES)["notes"]] == ["only-in-prod"]

        # a deploy to staging switches staging's web and records the release there only
        prod_web = {c["container"] for c in prod_status["services"] if c["service"] == "web"}
        deployed = json.loads(staging.stackctl("deploy", "--env", "staging", "--json", check=True).stdout)
        staging_releases = json.loads(staging.stackctl("releases", "--env", "staging", "--json", check=True).stdout)
        assert staging_releases["serving"] == deployed["release"]["id"]
        assert deployed["release"]["image"].startswith(f"{staging.name}-web:")
        prod_releases = json.loads(prod.stackctl("releases", "--prod", "--json", check=True).stdout)
        assert prod_releases["serving"] != deployed["release"]["id"]
        assert staging.gql("{ ping }") == {"ping": "pong"} and prod.gql("{ ping }") == {"ping": "pong"}
        now = json.loads(prod.stackctl("status", "--json", check=True).stdout)
        assert {c["container"] for c in now["services"] if c["service"] == "web"} == prod_web
    finally:
        for proj, flag in ((staging, ["--env", "staging"]), (prod, [])):
            proj.stackctl("down", *flag, "--volumes", "--yes")
            remove_built_images(proj.name)
    assert not _volumes(prod.name) and not _volumes(staging.name)
