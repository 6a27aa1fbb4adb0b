"""ASGI_SERVER: the config field, and what it changes in the rendered files (the Dockerfile's
added packages and the entrypoint's launcher), and what it leaves alone (nginx's upstream,
compose, and every byte of the daphne default, which the golden files hold)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackctl.config.webimage import GRANIAN, STACK_PACKAGES
from stackctl.core.render import render_set
from stackctl.errors import ConfigError
from tests.render.stackfiles import find_tool, load_fixture, own_files, run, write_tree


def _files(tmp_path: Path, profile: str = "prod", **extra: str) -> dict[str, str]:
    env = "prod.env" if profile == "prod" else "dev.env"
    cfg = load_fixture(env, profile, tmp_path, extra=extra)  # type: ignore[arg-type]
    rendered = own_files(render_set(cfg))
    write_tree(tmp_path, rendered)
    return {path: content.decode() for path, (content, _mode) in rendered.items()}


def _entrypoint(files: dict[str, str]) -> str:
    return next(text for path, text in files.items() if re.fullmatch(r"compose/entrypoint(\.prod)?\.sh", path))


def _dockerfile(files: dict[str, str]) -> str:
    return next(text for path, text in files.items() if re.fullmatch(r"compose/Dockerfile(\.prod)?", path))


def test_daphne_is_the_default_and_granian_is_opt_in(tmp_path: Path) -> None:
    default = load_fixture("prod.env", "prod", tmp_path / "a")
    assert default.django.asgi_server == "daphne"
    assert default.web_image.packages == STACK_PACKAGES
    chosen = load_fixture("prod.env", "prod", tmp_path / "b", extra={"ASGI_SERVER": " Granian "})
    assert chosen.django.asgi_server == "granian"
    assert chosen.web_image.packages == (*STACK_PACKAGES, GRANIAN)
    assert GRANIAN.requirement == "granian==2.8.9"


@pytest.mark.parametrize("value", ["uvicorn", "gunicorn", "daphne,granian"])
def test_an_unknown_server_names_the_variable_and_the_fix(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_fixture("prod.env", "prod", tmp_path, extra={"ASGI_SERVER": value})
    text = str(raised.value) + " ".join(str(p) for p in getattr(raised.value, "problems", []))
    assert "ASGI_SERVER" in text
    assert "set ASGI_SERVER=daphne or ASGI_SERVER=granian" in text


def test_granian_is_installed_only_when_chosen(tmp_path: Path) -> None:
    daphne = _dockerfile(_files(tmp_path / "a"))
    granian = _dockerfile(_files(tmp_path / "b", ASGI_SERVER="granian"))
    assert "granian" not in daphne
    # added by the build helper unless the project lists granian itself (its pin wins)
    assert "'granian=granian==2.8.9'" in granian
    assert "'daphne=daphne==4.2.3'" in granian
    assert granian.replace(" \\\n        'granian=granian==2.8.9'", "") == daphne


def test_the_default_entrypoint_knows_nothing_of_granian(tmp_path: Path) -> None:
    text = _entrypoint(_files(tmp_path))
    assert "granian" not in text.lower()
    assert 'daphne_on "$port" &' in text


def test_the_granian_entrypoint_keeps_the_contract(tmp_path: Path) -> None:
    text = _entrypoint(_files(tmp_path, ASGI_SERVER="granian"))
    assert 'granian_on "$port" &' in text and "daphne_on" not in text
    assert "from daphne" not in text
    launch = text.split("\nLAUNCH='", 1)[1].split("\n'\n", 1)[0]
    compile(launch, "LAUNCH", "exec")  # the launcher is valid Python
    # granian imported first; the app set up and loaded only once PREPARE's READY file exists (the
    # static files and offline compression are complete), then served behind the health answer
    ready = launch.index("STACKCTL_READY_FILE")
    assert launch.index("from granian.server import Server") < ready
    assert ready < launch.index("django.setup(") < launch.index("get_resolver().url_patterns") < launch.index(".serve(")
    assert "stackctl_health.answering(" in launch
    assert "Interfaces.ASGINL" in launch and "workers=1" in launch
    assert 'uds_permissions": 0o666' in launch  # nginx (another user) connects
    assert 'os.environ.get("DAPHNE_ACCESS_LOG", "1") == "1"' in launch
    assert 'os.environ.get("DAPHNE_LOOP", "auto") == "asyncio"' in launch
    assert 'echo "$SOCKET_DIR/daphne-$1.sock"' in text  # the socket names nginx's upstream lists
    assert 'exec python -I -S -c "$HEALTHCHECK" $TARGETS' in text  # probes the sockets granian listens on
    assert "DEBUG | debug) GRANIAN_LEVEL=debug" in text


def test_nginx_and_compose_do_not_depend_on_the_server(tmp_path: Path) -> None:
    daphne = _files(tmp_path / "a")
    granian = _files(tmp_path / "b", ASGI_SERVER="granian")
    for path in daphne:
        if path.startswith("nginx/") or path.startswith("docker-compose"):
            assert granian[path] == daphne[path], path
    nginx = next(text for path, text in granian.items() if path.startswith("nginx/nginx"))
    assert "server unix:/run/stackctl/current/daphne-8000.sock" in nginx


@pytest.mark.parametrize("concurrency", ["1", "3"])
def test_shellcheck_passes_with_granian(concurrency: str, tmp_path: Path) -> None:
    shellcheck = find_tool("shellcheck")
    files = _files(tmp_path, "dev", ASGI_SERVER="granian", WEB_CONCURRENCY=concurrency)
    assert "granian_on" in files["compose/entrypoint.sh"]
    result = run([shellcheck, "--shell=sh", "--severity=style", "compose/entrypoint.sh"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
