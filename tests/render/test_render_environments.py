"""A named environment's set: prod's files under `.staging.` names, with its own env file,
compose project, nginx config and secrets folder, and a compose file `docker compose config`
accepts. The dev and prod goldens (test_render_golden.py) stay as they are."""

from __future__ import annotations

import re
from pathlib import Path

from stackctl.config import load_config
from stackctl.core.render import render_set
from tests.render.stackfiles import FIXTURES, compose_config, load_fixture, own_files, write_tree


def _staging(folder: Path) -> dict[str, tuple[bytes, int]]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".env.staging").write_text((FIXTURES / "prod.env").read_text(encoding="utf-8"), encoding="utf-8")
    return render_set(load_config(folder / ".env.staging", profile="prod", env_name="staging").config)


NAMES = (
    (".env.prod", ".env.staging"),
    ("docker-compose.prod.yml", "docker-compose.staging.yml"),
    ("Dockerfile.prod", "Dockerfile.staging"),
    ("entrypoint.prod.sh", "entrypoint.staging.sh"),
    ("nginx.prod.conf", "nginx.staging.conf"),
    ("stackctl up --prod", "stackctl up --env staging"),
    ("The prod stack, on its own", "The staging stack, on its own"),
    ("-prod-web", "-staging-web"),
)


DIGEST = re.compile(r'(io\.stackctl\.nginx-conf: )"[0-9a-f]+"')


def _as_staging(text: str) -> str:
    for prod, staging in NAMES:
        text = text.replace(prod, staging)
    return DIGEST.sub(r"\1<digest>", text)


def test_the_staging_set_is_prods_under_its_own_names(tmp_path: Path) -> None:
    prod = render_set(load_fixture("prod.env", "prod", tmp_path / "prod"))
    staging = _staging(tmp_path / "staging")
    assert set(staging) == {path.replace(".prod", ".staging") for path in prod}
    for path, (content, mode) in prod.items():
        other, other_mode = staging[path.replace(".prod", ".staging")]
        assert other_mode == mode, path
        if path.startswith(("backup/", "compose/stackctl/")):  # shared by prod and staging
            assert other == content, path
        else:  # only the names differ
            # nginx.conf's digest differs with its server name
            assert DIGEST.sub(r"\1<digest>", other.decode()) == _as_staging(content.decode()), path


def test_compose_accepts_the_staging_file(tmp_path: Path, docker_compose: list[str]) -> None:
    root = tmp_path / "staging"
    rendered = _staging(root)
    write_tree(root, own_files(rendered))
    write_tree(root, {p: v for p, v in rendered.items() if p.startswith("backup/")})
    config = compose_config(docker_compose, root, ["docker-compose.staging.yml"], ".env.staging")
    services = config["services"]
    assert services["web"]["build"]["dockerfile"].endswith("compose/Dockerfile.staging")
    assert services["web"]["image"].endswith("-staging-web")
    # the config travels in the staging project's own volumes, never a bind mount
    assert {v["type"] for s in services.values() for v in s.get("volumes", [])} == {"volume"}
    assert {v["source"] for v in services["nginx"]["volumes"]} >= {"nginx_config"}
    assert config["volumes"]["web_secrets"]["name"] == f"{config['name']}_web_secrets"
    assert set(config["secrets"]) == {"ca_bundle"}
