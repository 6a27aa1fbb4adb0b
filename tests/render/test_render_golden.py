"""The rendered stack files, byte for byte against golden files, plus the properties that
must hold for any config: no secret in any file, machine-specific values left to compose,
the Dockerfile's dependency step per dependency file, and a .env.example that loads.

Regenerate the golden files after an intended change: STACKCTL_UPDATE_GOLDEN=1 pytest tests/render
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from stackctl.config import load_config
from stackctl.config.model import is_sensitive
from stackctl.core.render import render_set
from tests.render.stackfiles import CASES, FIXTURE_SECRETS, GOLDEN, Case, load_fixture, own_files, render_case

UPDATE = os.environ.get("STACKCTL_UPDATE_GOLDEN") == "1"


def _golden_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rendered_files_match_golden(case: Case, tmp_path: Path) -> None:
    rendered = own_files(render_case(case, tmp_path))
    folder = GOLDEN / case.name
    if UPDATE:
        for stale in _golden_files(folder) - set(rendered) if folder.exists() else set():
            (folder / stale).unlink()
        for rel, (content, _mode) in rendered.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(content)
    assert _golden_files(folder) == set(rendered), "run with STACKCTL_UPDATE_GOLDEN=1 to regenerate"
    for rel, (content, _mode) in rendered.items():
        expected = (folder / rel).read_bytes()
        assert content.decode() == expected.decode(), f"{rel} differs from golden/{case.name}/{rel}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_secret_is_rendered(case: Case, tmp_path: Path) -> None:
    for rel, (content, _mode) in render_case(case, tmp_path).items():
        for secret in FIXTURE_SECRETS:
            assert secret.encode() not in content, f"a secret is in {rel}"


def test_entrypoint_is_executable_and_the_rest_is_not(tmp_path: Path) -> None:
    modes = {rel: mode for rel, (_c, mode) in own_files(render_case(CASES[0], tmp_path)).items()}
    assert modes.pop("compose/entrypoint.sh") == 0o755
    assert set(modes.values()) == {0o644}


MACHINE_VALUES = {
    "PYTHON_IMAGE": "stackctl/python:3.11-bookworm",
    "POSTGRES_IMAGE": "stackctl/postgres:15-bookworm",
    "REDIS_IMAGE": "stackctl/redis:7.0-bookworm",
    "NGINX_IMAGE": "stackctl/nginx:1.22-bookworm",
    "NGINX_BIND_ADDRESS": "192.0.2.10",
    "HTTP_PORT": "18080",
    "BUILD_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_machine_specific_values_do_not_change_the_files(case: Case, tmp_path: Path) -> None:
    """Images, bind address, HTTP port and CA bundle stay ${VARIABLES}: same files either way."""
    plain = render_case(case, tmp_path / "plain")
    cfg = load_fixture(case.env, case.profile, tmp_path / "machine", extra=MACHINE_VALUES)
    assert own_files(render_set(cfg)).keys() == own_files(plain).keys()
    for rel, (content, _mode) in own_files(render_set(cfg)).items():
        assert content == plain[rel][0], f"{rel} depends on a machine-specific value"


def test_compose_files_read_machine_values_from_the_env_file(tmp_path: Path) -> None:
    dev = render_case(CASES[0], tmp_path)["docker-compose.yml"][0].decode()
    for name in ("PYTHON_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE", "NGINX_IMAGE", "NGINX_BIND_ADDRESS", "HTTP_PORT"):
        assert "${" + name + ":-" in dev
    assert "${BUILD_CA_BUNDLE:-/dev/null}" in dev
    tls = render_case(CASES[2], tmp_path / "tls")["docker-compose.yml"][0].decode()
    assert "${HTTPS_PORT:-8443}:443" in tls


@pytest.mark.parametrize("concurrency", [1, 4])
def test_nginx_upstream_and_entrypoint_agree_on_ports(concurrency: int, tmp_path: Path) -> None:
    cfg = load_fixture("dev.env", "dev", tmp_path, extra={"WEB_CONCURRENCY": str(concurrency)})
    files = {rel: content.decode() for rel, (content, _mode) in render_set(cfg).items()}
    upstream = re.findall(
        r"server unix:/run/stackctl/current/daphne-(\d+)\.sock max_fails=0;", files["nginx/nginx.conf"]
    )
    assert [int(p) for p in upstream] == cfg.web_ports == [8000 + i for i in range(concurrency)]
    assert f'WORKERS="${{WEB_CONCURRENCY:-{concurrency}}}"' in files["compose/entrypoint.sh"]
    assert f'WEB_CONCURRENCY: "{concurrency}"' in files["docker-compose.yml"]
    assert 'APP="${DJANGO_ASGI_APPLICATION:-config.asgi:application}"' in files["compose/entrypoint.sh"]
    assert 'DJANGO_ASGI_APPLICATION: "config.asgi:application"' in files["docker-compose.yml"]


DEPENDENCY_STEPS = [
    # (DJANGO_PROJECT_DIR, DJANGO_DEPENDENCY_FILE, COPY line, install fragment); more in test_render_overlay.py
    (".", "requirements.txt", "COPY requirements.txt /build/requirements.txt", "pip install -r requirements.txt"),
    ("example", "requirements.txt", "COPY example/requirements.txt /build/example/requirements.txt", "pip install -r"),
    ("./src/", "deps.txt", "COPY src/deps.txt /build/src/deps.txt", "pip install -r deps.txt"),
    (
        "example",
        "requirements/production.txt",
        "COPY example/requirements/production.txt /build/example/requirements/production.txt",
        "pip install -r requirements/production.txt",
    ),
    ("example", "pyproject.toml", "COPY example/pyproject.toml /build/example/pyproject.toml", "pep621 pyproject.toml"),
    (".", "uv.lock", "COPY uv.lock /build/uv.lock", "uv sync --locked --no-dev --no-install-project"),
    ("example", "poetry.lock", "COPY example/poetry.lock /build/example/poetry.lock", "poetry sync --only main"),
    ("example", "Pipfile.lock", "COPY example/Pipfile /build/example/Pipfile", "pipenv requirements --hash"),
]


@pytest.mark.parametrize(("project_dir", "dep_file", "copy", "install"), DEPENDENCY_STEPS)
def test_dockerfile_installs_dependencies_before_copying_code(
    project_dir: str, dep_file: str, copy: str, install: str, tmp_path: Path
) -> None:
    extra = {"DJANGO_PROJECT_DIR": project_dir, "DJANGO_DEPENDENCY_FILE": dep_file}
    cfg = load_fixture("dev.env", "dev", tmp_path, extra=extra)
    dockerfile = render_set(cfg)["compose/Dockerfile"][0].decode()
    builder, final = dockerfile.split("\nFROM ${PYTHON_IMAGE}\n")
    assert copy in builder.splitlines()
    assert install in builder
    assert "--mount=type=secret,id=ca_bundle" in builder and "ca_bundle" not in final
    code_dir = project_dir.strip("/").removeprefix("./") or "."
    assert f"COPY --chown=app:app {code_dir}{'/' if code_dir != '.' else ''} /app" in final
    assert "# syntax=" not in dockerfile


def test_env_example_documents_every_variable_with_safe_values(tmp_path: Path) -> None:
    text = render_case(CASES[0], tmp_path)[".env.example"][0].decode()
    lines = text.splitlines()
    assignments = [i for i, line in enumerate(lines) if re.match(r"^[A-Z0-9_]+=", line)]
    names = [lines[i].split("=", 1)[0] for i in assignments]
    assert len(names) == len(set(names))
    for i in assignments:
        name = lines[i].split("=", 1)[0]
        assert lines[i - 1].startswith("# "), f"{name} has no description"
        marked = lines[i - 1] == "# SENSITIVE: generate a random value; never commit it."
        assert marked == is_sensitive(name), name
    # The examples are valid settings: the file loads as a dev config as it is.
    example = tmp_path / "example" / ".env"
    example.parent.mkdir()
    example.write_text(text)
    assert load_config(example, profile="dev").config.profile == "dev"
