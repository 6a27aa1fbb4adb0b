"""stackctl.core.verify: the settings in effect (what stackctl_verify prints) against the config.

The exec in the web container is stubbed: each test hands verify_settings the JSON line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from stackctl.config import StackConfig, load_config
from stackctl.config.webimage import OVERLAY_MODULE, VERIFY_MODULE
from stackctl.core.stack import ServiceStatus, StackStatus
from stackctl.core.verify import FATAL_CHECKS, TLS_CHECKS, compare, parse_probe, run_probe, verify_settings
from stackctl.errors import ConfigError, SettingsNotVerified, StackctlError

KEY = "k9-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN"
PROD = f"""
DJANGO_SECRET_KEY={KEY}
POSTGRES_PASSWORD=pw-not-a-secret
DJANGO_ALLOWED_HOSTS=example.com
POSTGRES_DB=shop
STATIC_ROOT=/var/www/static
"""


def config(tmp_path: Path, extra: str = "", profile: str = "prod") -> StackConfig:
    path = tmp_path / (".env.prod" if profile == "prod" else ".env")
    path.write_text(PROD + extra)
    (tmp_path / "certs").mkdir(exist_ok=True)
    for name in ("fullchain.pem", "privkey.pem"):
        (tmp_path / "certs" / name).write_text("placeholder\n")
    return load_config(path, profile=profile).config  # type: ignore[arg-type]


TLS = """
USE_TLS=true
SESSION_COOKIE_SECURE=true
CSRF_COOKIE_SECURE=true
SECURE_HSTS_SECONDS=31536000
"""


def check(ident: str, msg: str = "a message", hint: str = "") -> dict[str, str]:
    return {"id": ident, "level": "WARNING", "msg": msg, "hint": hint}


def seen(**changes: Any) -> dict[str, Any]:
    """What the probe prints for a stack whose settings match PROD, over plain HTTP."""
    base: dict[str, Any] = {
        "settings_module": OVERLAY_MODULE,
        "overlay": True,
        "debug": False,
        "database": {"vendor": "postgresql", "engine": "django.db.backends.postgresql", "host": "db", "name": "shop"},
        "static_root": "/var/www/static",
        "media_root": "/srv/media",
        "secret_key_insecure": False,
        "checks": [check("security.W004"), check("security.W008"), check("security.W012"), check("security.W016")],
        "sentry": "off",
    }
    base.update(changes)
    return base


@dataclass
class FakeContainers:
    output: str = ""
    error: DockerException | None = None
    calls: list[tuple[str, list[str], bool]] = field(default_factory=list)

    def execute(self, container: str, command: list[str], *, tty: bool) -> str:
        self.calls.append((container, command, tty))
        if self.error is not None:
            raise self.error
        return self.output


@dataclass
class FakeClient:
    container: FakeContainers


class FakeStack:
    """What verify uses of a Stack: its config, env file, up command and compose client."""

    def __init__(self, cfg: StackConfig, output: str = "", error: DockerException | None = None) -> None:
        self.config = cfg
        self.profile = cfg.profile
        self.env_file = Path(".env.prod" if cfg.profile == "prod" else ".env")
        self.up_command = "stackctl up --prod" if cfg.profile == "prod" else "stackctl up"
        self.name = "example-prod"
        self.client = FakeClient(FakeContainers(output, error))
        # after a deploy the serving container is not web-1
        self.web = ServiceStatus("web", "example-prod-web-3", "running", "healthy", [], None, 0)

    def status(self) -> StackStatus:
        return StackStatus(self.name, self.profile, [self.web], [])

    def running_service(self, service: str) -> ServiceStatus:
        assert service == "web"
        return self.web


def verify(cfg: StackConfig, printed: dict[str, Any]) -> Any:
    line = "a log line on stdout that is not JSON\n" + json.dumps(printed) + "\n"
    return verify_settings(FakeStack(cfg), probe=lambda _stack: line)  # type: ignore[arg-type]


def test_matching_settings_pass_and_tls_warnings_are_listed_as_allowed(tmp_path: Path) -> None:
    report = verify(config(tmp_path), seen())
    assert report.ok and report.failures == ()
    assert [f.setting for f in report.allowed] == ["security.W004", "security.W008", "security.W012", "security.W016"]
    assert all(f.expected == "allowed while USE_TLS=false" for f in report.allowed)
    assert report.allowed[0].fix == "with TLS on, set SECURE_HSTS_SECONDS"


def test_the_hardcoded_project_without_overlay_fails_naming_each_setting_and_fix(tmp_path: Path) -> None:
    cfg = config(tmp_path, "DJANGO_SETTINGS_OVERLAY=false\nDJANGO_SETTINGS_MODULE=journal.settings\n")
    printed = seen(
        settings_module="journal.settings",
        debug=True,
        database={"vendor": "sqlite", "engine": "django.db.backends.sqlite3", "host": "", "name": "/app/db.sqlite3"},
        static_root="/app/staticfiles",
        secret_key_insecure=True,
        checks=[check("security.W009"), check("security.W018"), check("security.W004")],
    )
    with pytest.raises(SettingsNotVerified) as info:
        verify(cfg, printed)
    error = info.value
    assert error.exit_code == 6 and isinstance(error, StackctlError)
    assert [f.setting for f in error.findings] == ["DEBUG", "DATABASES['default']", "STATIC_ROOT", "SECRET_KEY"]
    by_setting = {f.setting: f for f in error.findings}
    assert by_setting["DATABASES['default']"].found == "sqlite at (no host), database /app/db.sqlite3"
    assert by_setting["DATABASES['default']"].expected == "postgresql at db, database shop"
    assert by_setting["STATIC_ROOT"].expected == "/var/www/static (the static volume nginx serves)"
    for finding in error.findings:
        assert "DJANGO_SETTINGS_OVERLAY=true" in finding.fix and "journal.settings" in finding.fix
    assert "secrets.token_urlsafe(50)" in by_setting["SECRET_KEY"].fix
    # Django's own W009/W018 say what SECRET_KEY and DEBUG already say; W004 is allowed (no TLS)
    assert "security.W009" not in error.message and "security.W018" not in error.message
    assert error.message.startswith("the settings in effect in web (journal.settings) do not match .env.prod:\n")
    assert "  DEBUG: True (expected False); fix: read DEBUG (DJANGO_DEBUG) from the environment" in error.message
    assert error.hint == "fix them, then run `stackctl up --prod` again"
    assert KEY not in error.message


def test_with_tls_on_no_deployment_warning_is_allowed(tmp_path: Path) -> None:
    cfg = config(tmp_path, TLS)
    with pytest.raises(SettingsNotVerified) as info:
        verify(cfg, seen(checks=[check("security.W008"), check("security.W021")]))
    findings = {f.setting: f for f in info.value.findings}
    assert set(findings) == {"security.W008", "security.W021"}
    assert findings["security.W008"].fix == "set SECURE_SSL_REDIRECT in the env file"
    assert verify(cfg, seen(checks=[])).allowed == ()


def test_an_apps_own_warning_is_reported_not_fatal_and_an_error_fails(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    own = check("hc.api.W002", "Bad SITE_ROOT", "Set it.")
    printed = seen(checks=[check("security.W004"), own, check("mail.W001")])
    report = verify(cfg, printed)
    assert report.ok and [f.setting for f in report.allowed] == ["security.W004"]
    assert [(f.setting, f.found, f.fix) for f in report.warnings] == [
        ("hc.api.W002", "WARNING: Bad SITE_ROOT", "Set it."),
        ("mail.W001", "WARNING: a message", "see `manage.py check --deploy`"),
    ]
    error = {"id": "hc.api.E001", "level": "ERROR", "msg": "No SITE_ROOT", "hint": "Set it."}
    with pytest.raises(SettingsNotVerified) as info:
        verify(cfg, seen(checks=[check("models.W042"), error]))
    (finding,) = info.value.findings
    assert (finding.setting, finding.found, finding.fix) == ("hc.api.E001", "ERROR: No SITE_ROOT", "Set it.")


@pytest.mark.parametrize("ident", ["security.W002", "security.W006", "security.W019", "security.W022"])
def test_headers_a_project_sets_otherwise_on_purpose_are_warnings(tmp_path: Path, ident: str) -> None:
    report = verify(config(tmp_path, TLS), seen(checks=[check(ident, "X_FRAME_OPTIONS is not DENY")]))
    assert report.ok and [f.setting for f in report.warnings] == [ident]
    assert report.warnings[0].expected == "a warning, not fatal"


@pytest.mark.parametrize(
    "ident",
    ["security.W001", "security.W003", "security.W013", "security.W018", "security.W020", "security.W025"],
)
def test_the_checks_guarding_stackctls_promises_stay_fatal(tmp_path: Path, ident: str) -> None:
    with pytest.raises(SettingsNotVerified) as info:
        verify(config(tmp_path), seen(checks=[check(ident)]))
    (finding,) = info.value.findings
    assert finding.setting == ident and finding.fix.startswith(FATAL_CHECKS[ident])
    assert finding.fix.endswith("add the id to DJANGO_SILENCED_CHECKS in the env file")


def test_fatal_checks_hold_the_tls_ones_and_the_promises_and_no_header_choice() -> None:
    assert set(TLS_CHECKS) <= set(FATAL_CHECKS)
    assert {"security.W009", "security.W018", "security.W020"} <= set(FATAL_CHECKS)
    assert not {"security.W002", "security.W006", "security.W019", "security.W022"} & set(FATAL_CHECKS)


def test_djangos_silenced_checks_accepts_a_fatal_id_and_says_so(tmp_path: Path) -> None:
    cfg = config(tmp_path, TLS + "DJANGO_SILENCED_CHECKS=security.W008, hc.api.W002\n")
    assert cfg.security.django_silenced_checks == ["security.W008", "hc.api.W002"]
    # the overlay silenced them (Django marks them); the project's own silenced W022 stays unlisted
    printed = seen(
        checks=[
            {**check("security.W008", "SSL redirect off"), "silenced": True},
            {**check("hc.api.W002"), "silenced": True},
            {**check("security.W022"), "silenced": True},
        ]
    )
    report = verify(cfg, printed)
    assert report.ok and report.warnings == () and report.allowed == ()
    assert [(f.setting, f.found, f.expected) for f in report.silenced] == [
        ("security.W008", "WARNING: SSL redirect off", "silenced by DJANGO_SILENCED_CHECKS"),
        ("hc.api.W002", "WARNING: a message", "silenced by DJANGO_SILENCED_CHECKS"),
    ]
    # without the overlay Django does not know the list; verify still honours it
    bare = seen(checks=[check("security.W008"), check("hc.api.W002")])
    assert [f.setting for f in verify(cfg, bare).silenced] == ["security.W008", "hc.api.W002"]
    with pytest.raises(SettingsNotVerified):
        verify(config(tmp_path, TLS), bare)


@pytest.mark.parametrize("value", ["W019", "security.w019", "security.W019;x", "security", "hc.api.X002"])
def test_djangos_silenced_checks_takes_only_check_ids(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, f"DJANGO_SILENCED_CHECKS=security.W006,{value}\n")
    (problem,) = info.value.problems
    assert problem.variable.upper() == "DJANGO_SILENCED_CHECKS"
    assert f"not a system check id: {value} (" in problem.message and "security.W006" not in problem.message


def test_tls_checks_are_djangos_https_only_ones() -> None:
    assert {"security.W004", "security.W008", "security.W012", "security.W016"} <= set(TLS_CHECKS)
    assert not {"security.W009", "security.W018", "security.W020"} & set(TLS_CHECKS)


def test_a_settings_module_that_bypasses_the_overlay_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsNotVerified) as info:
        verify(config(tmp_path), seen(settings_module="config.settings", overlay=False))
    (finding,) = info.value.findings
    assert finding.setting == "DJANGO_SETTINGS_MODULE" and finding.expected == OVERLAY_MODULE
    assert "os.environ.setdefault" in finding.fix and "config.asgi" in finding.fix


def test_database_url_names_the_expected_host(tmp_path: Path) -> None:
    cfg = config(tmp_path, "DATABASE_URL=postgres://app:secret@pg.internal:5432/orders\n")
    printed = seen(database={"vendor": "postgresql", "engine": "x", "host": "pg.internal", "name": "orders"})
    assert verify(cfg, printed).ok
    with pytest.raises(SettingsNotVerified) as info:
        verify(cfg, seen())
    assert info.value.findings[0].expected == "postgresql at pg.internal, database orders"


def test_dev_compares_debug_with_the_config_and_skips_the_deployment_rules(tmp_path: Path) -> None:
    cfg = config(tmp_path, "DJANGO_DEBUG=true\n", profile="dev")
    report = verify(cfg, seen(debug=True, secret_key_insecure=True, checks=[check("security.W018")]))
    assert report.ok and report.allowed == ()
    with pytest.raises(SettingsNotVerified):
        verify(cfg, seen(debug=False))


def test_sentry_without_sentry_sdk_is_a_note(tmp_path: Path) -> None:
    cfg = config(tmp_path, "SENTRY_DSN=https://public@o0.ingest.example.com/1\n")
    report = verify(cfg, seen(sentry="missing"))
    assert report.ok and report.notes == (
        "SENTRY_DSN is set but the project does not install sentry-sdk: errors are not reported",
    )
    assert verify(cfg, seen(sentry="on")).notes == ()


def test_compare_is_pure(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    report = compare(cfg, parse_probe(json.dumps(seen(static_root="/var/www/static/"))))
    assert report.ok and report.seen.static_root == "/var/www/static/"


@pytest.mark.parametrize("output", ["", "not json\n", json.dumps({"debug": False}) + "\n"])
def test_no_report_is_an_error(output: str) -> None:
    with pytest.raises(StackctlError) as info:
        parse_probe(output)
    assert f"{VERIFY_MODULE} printed no settings report" in info.value.message


def test_run_probe_runs_the_module_in_web_without_a_tty(tmp_path: Path) -> None:
    stack = FakeStack(config(tmp_path), output=json.dumps(seen()))
    assert run_probe(stack) == json.dumps(seen())  # type: ignore[arg-type]
    assert stack.client.container.calls == [("example-prod-web-3", ["python", "-m", VERIFY_MODULE], False)]
    assert verify_settings(stack).ok  # type: ignore[arg-type]


def test_a_failing_probe_says_so_with_the_end_of_its_stderr(tmp_path: Path) -> None:
    error = DockerException(["docker", "compose", "exec"], 1, b"", b"Traceback ...\nImproperlyConfigured: bad\n")
    stack = FakeStack(config(tmp_path), error=error)
    with pytest.raises(StackctlError) as info:
        run_probe(stack)  # type: ignore[arg-type]
    assert not isinstance(info.value, SettingsNotVerified)
    assert "could not read the settings in effect in web (exit 1)" in info.value.message
    assert "ImproperlyConfigured: bad" in info.value.message
    assert "stackctl up --prod" in (info.value.hint or "")


def test_up_shows_warnings_and_silenced_checks_and_lists_them_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stackctl.cli.stack import settings_json, show_settings
    from stackctl.console import Console

    cfg = config(tmp_path, "DJANGO_SILENCED_CHECKS=hc.api.W002\n")
    printed = seen(
        checks=[check("security.W004"), check("security.W019", "X_FRAME_OPTIONS is not DENY"), check("hc.api.W002")]
    )
    report = verify(cfg, printed)
    capsys.readouterr()
    show_settings(Console(), report)
    err = capsys.readouterr().err
    assert "warning: allowed while TLS is off: security.W004" in err
    assert "warning: check --deploy warning (not fatal): security.W019: WARNING: X_FRAME_OPTIONS is not DENY" in err
    assert "silenced by DJANGO_SILENCED_CHECKS: hc.api.W002: WARNING: a message" in err
    payload = json.loads(json.dumps(settings_json(report)))
    assert [f["setting"] for f in payload["warnings"]] == ["security.W019"]
    assert [(f["setting"], f["expected"]) for f in payload["silenced"]] == [
        ("hc.api.W002", "silenced by DJANGO_SILENCED_CHECKS")
    ]
    assert payload["ok"] is True and payload["failures"] == []
