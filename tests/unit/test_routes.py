"""The URLs `up` and `status` list: the root, then only the routes web really has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from stackctl.config.profile import DEV, PROD
from stackctl.config.webimage import VERIFY_MODULE
from stackctl.core.project import Project
from stackctl.core.routes import known_routes, remember_routes, route_urls
from stackctl.core.stack import ServiceStatus, StackIdentity, StackView
from stackctl.core.verify import SettingsSeen, probe_routes
from stackctl.errors import ServiceNotRunning

BASE = "http://127.0.0.1:8123/"


def test_an_app_without_graphql_gets_its_root_and_its_admin() -> None:
    assert route_urls(BASE, {"admin": "/admin/"}) == [BASE, "http://127.0.0.1:8123/admin/"]
    assert route_urls(BASE, {}) == [BASE]
    assert route_urls("", {"admin": "/admin/"}) == []


def test_graphql_comes_first_and_an_admin_mounted_elsewhere_is_listed_where_it_is() -> None:
    urls = route_urls(BASE, {"admin": "/backoffice/", "graphql": "/graphql/"})
    assert urls == [BASE, "http://127.0.0.1:8123/graphql/", "http://127.0.0.1:8123/backoffice/"]


def test_the_routes_up_found_are_what_status_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project.at(tmp_path)
    view = StackView(project, DEV, StackIdentity("shop-dev", (BASE,)))
    monkeypatch.setattr("stackctl.core.stack.project_containers", lambda client, name: [])
    view._client = object()  # type: ignore[assignment]
    assert view.status().urls == [BASE]  # never brought up: no /graphql guessed
    remember_routes(project, DEV, {"graphql": "/graphql", "admin": "/admin/", "other": "/x"})
    assert known_routes(project, DEV) == {"graphql": "/graphql", "admin": "/admin/"}
    assert view.status().urls == [BASE, BASE + "graphql", BASE + "admin/"]
    assert known_routes(project, PROD) == {}  # per environment


def test_an_identity_cached_by_an_older_stackctl_lists_no_graphql(tmp_path: Path) -> None:
    view = StackView(Project.at(tmp_path), DEV, StackIdentity("shop-dev", (BASE, BASE + "graphql")))
    assert view.urls() == [BASE]


def test_unreadable_or_foreign_route_files_are_no_routes(tmp_path: Path) -> None:
    project = Project.at(tmp_path)
    path = tmp_path / ".stackctl" / "cache" / "routes-dev.json"
    path.parent.mkdir(parents=True)
    for text in ("{not json", "[1]", json.dumps({"graphql": "http://elsewhere/graphql", "admin": 3})):
        path.write_text(text)
        assert known_routes(project, DEV) == {}


class Containers:
    def __init__(self, output: str = "", error: DockerException | None = None) -> None:
        self.output, self.error, self.calls = output, error, []  # type: ignore[var-annotated]

    def execute(self, container: str, command: list[str], **_: Any) -> str:
        self.calls.append((container, command))
        if self.error:
            raise self.error
        return self.output


class RoutesStack:
    def __init__(self, containers: Containers, running: bool = True) -> None:
        self.client = type("Client", (), {"container": containers})()
        self.running = running

    def running_service(self, service: str) -> ServiceStatus:
        if not self.running:
            raise ServiceNotRunning("web of shop is restarting")
        return ServiceStatus(service, "shop-dev-web-2", "running", "healthy", [])


def test_probe_routes_runs_the_module_in_web_and_reads_its_last_line() -> None:
    containers = Containers('some log line\n{"admin": "/admin/"}\n')
    assert probe_routes(RoutesStack(containers)) == {"admin": "/admin/"}  # type: ignore[arg-type]
    assert containers.calls == [("shop-dev-web-2", ["python", "-m", VERIFY_MODULE, "routes"])]


@pytest.mark.parametrize(
    "stack",
    [
        RoutesStack(Containers(error=DockerException(["docker", "exec"], 1, b"", b"ImportError"))),
        RoutesStack(Containers("not json")),
        RoutesStack(Containers(""), running=False),
    ],
)
def test_a_failing_routes_probe_lists_no_route_and_does_not_fail_up(stack: RoutesStack) -> None:
    assert probe_routes(stack) == {}  # type: ignore[arg-type]


def test_the_prod_settings_report_carries_the_routes_and_older_images_none() -> None:
    seen = {
        "settings_module": "stackctl_settings",
        "overlay": True,
        "debug": False,
        "database": {"vendor": "postgresql", "engine": "x", "host": "db", "name": "app"},
        "static_root": "/srv/static",
        "media_root": "/srv/media",
        "secret_key_insecure": False,
        "checks": [],
    }
    assert SettingsSeen.model_validate(seen).routes == {}
    assert SettingsSeen.model_validate({**seen, "routes": {"admin": "/admin/"}}).routes == {"admin": "/admin/"}


def test_status_and_its_json_list_the_same_urls(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "k8Jd0-Qa_zP3xR7vN2mL5tY9wB4cF6hG1jK0sD8eU3iO7pA2qZ5xC9vB1nM4lT6r"
    (tmp_path / ".env").write_text(f"STACK_NAME=shop\nDJANGO_SECRET_KEY={key}\nPOSTGRES_PASSWORD=pw\nHTTP_PORT=8123\n")
    monkeypatch.setattr("stackctl.core.stack.project_containers", lambda client, name: [])
    monkeypatch.setattr("stackctl.core.stack.compose_client", lambda **_: object())
    remember_routes(Project.at(tmp_path), DEV, {"admin": "/admin/"})
    text = cli("status", cwd=tmp_path)
    payload = json.loads(cli("status", "--json", cwd=tmp_path).out)
    assert payload["urls"] == [BASE, BASE + "admin/"]
    assert [line for line in text.out.splitlines() if line.startswith("http")] == payload["urls"]
    assert "graphql" not in text.out + json.dumps(payload)
