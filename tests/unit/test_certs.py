"""ACME certificates: the policy for TLS_CERT_SOURCE=acme, and certctl.py's decisions (when to
ask the CA, how a failure is explained, when the backup service is unhealthy) on real PEM
files made with openssl. certbot itself runs only in the real-engine test against pebble."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stackctl.config import load_config
from stackctl.config.policy import acme_problem
from stackctl.errors import ConfigError
from tests.render.stackfiles import backup_module, load_fixture

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("localhost", "localhost"),
        ("app.localhost", "localhost"),
        ("127.0.0.1", "IP address"),
        ("[::1]", "IP address"),
        ("*.example.com", "wildcard"),
        ("_", "nginx pattern"),
        ("intranet", "no dot"),
        ("bad_name.example.com", "not a valid domain"),
    ],
)
def test_names_no_ca_can_validate_are_refused(name: str, why: str) -> None:
    assert why in (acme_problem(name) or "")


@pytest.mark.parametrize("name", ["example.com", "www.example.co.uk", "shop.test", "xn--bcher-kva.example"])
def test_domain_names_pass(name: str) -> None:
    assert acme_problem(name) is None


def _acme(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"TLS_CERT_SOURCE": "acme", **extra}


def test_prod_policy_refuses_localhost_for_acme(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_fixture("tls.env", "prod", tmp_path, extra=_acme(tmp_path, SERVER_NAME="localhost"))
    problem = next(p for p in caught.value.problems if p.variable == "SERVER_NAME")
    assert "localhost" in problem.message and "TLS_CERT_SOURCE=files" in (problem.hint or "")


def test_reserved_names_are_refused_only_for_a_public_ca(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_fixture("tls.env", "prod", tmp_path / "le", extra=_acme(tmp_path, SERVER_NAME="shop.test"))
    assert any("reserved" in p.message for p in caught.value.problems)
    cfg = load_fixture(
        "tls.env",
        "prod",
        tmp_path / "private",
        extra=_acme(tmp_path, SERVER_NAME="shop.test", ACME_DIRECTORY_URL="https://ca.internal.example/dir"),
    )
    assert cfg.nginx.acme and cfg.nginx.server_names == ["shop.test"]


def test_acme_needs_no_certificate_files(tmp_path: Path) -> None:
    cfg = load_fixture("tls.env", "prod", tmp_path, extra=_acme(tmp_path), certs=False)
    assert cfg.nginx.acme


def test_acme_settings_are_validated(tmp_path: Path) -> None:
    for variable, value, words in (
        ("ACME_DIRECTORY_URL", "http://ca.example/dir", "https URL"),
        ("ACME_EMAIL", "not-an-address", "email address"),
        ("ACME_RENEW_DAYS", "90", "between 1 and 60"),
        ("ACME_RENEW_CRON", "every day", "cron"),
        ("TLS_CERT_SOURCE", "vault", "files"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_fixture("tls.env", "prod", tmp_path / variable, extra=_acme(tmp_path, **{variable: value}))
        problem = next(p for p in caught.value.problems if p.variable == variable)
        assert words in problem.message, (variable, problem.message)
        assert value not in problem.message or variable != "ACME_EMAIL"


def test_missing_ca_bundle_and_dev_profile_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_fixture("tls.env", "prod", tmp_path / "p", extra=_acme(tmp_path, ACME_CA_BUNDLE="./nope.pem"))
    assert any(p.variable == "ACME_CA_BUNDLE" and "not found" in p.message for p in caught.value.problems)
    env = tmp_path / "d" / ".env"
    env.parent.mkdir()
    env.write_text(
        "DJANGO_SECRET_KEY=test-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz\n"
        "POSTGRES_PASSWORD=test-only-password\nUSE_TLS=true\nTLS_CERT_SOURCE=acme\nSERVER_NAME=example.com\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(env, profile="dev")
    assert any(p.variable == "TLS_CERT_SOURCE" and "prod" in p.message for p in caught.value.problems)


# -- certctl.py ---------------------------------------------------------------------------------
@pytest.fixture
def certctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = backup_module("certctl")
    for attr, sub in (("ACME", "acme"), ("WEBROOT", "webroot"), ("CERTS", "certs")):
        (tmp_path / sub).mkdir()
        monkeypatch.setattr(module, attr, tmp_path / sub)
    return module


def _settings(module: ModuleType, **env: str) -> Any:
    base = {"ACME_DOMAINS": "example.com www.example.com", "ACME_DIRECTORY_URL": "https://ca.example/dir"}
    return module.Settings({**base, **env})


def _pem(folder: Path, names: list[str], days: int) -> tuple[bytes, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    san = ",".join(f"DNS:{n}" for n in names)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", str(days), "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}",
         "-keyout", str(folder / "privkey.pem"), "-out", str(folder / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return (folder / "fullchain.pem").read_bytes(), (folder / "privkey.pem").read_bytes()


def _lineage(module: ModuleType, names: list[str], days: int, server: str = "https://ca.example/dir") -> None:
    _pem(module.lineage_dir(), names, days)
    renewal = module.ACME / "certbot" / "renewal"
    renewal.mkdir(parents=True)
    (renewal / "stackctl.conf").write_text(f"version = 2.1.0\nserver = {server}\n")


def test_bootstrap_serves_a_temporary_certificate_then_the_ca_one(certctl: ModuleType) -> None:
    settings = _settings(certctl)
    assert certctl.bootstrap(settings) == "temporary"
    first = certctl.serving()
    assert first["temporary"] and sorted(first["domains"]) == ["example.com", "www.example.com"]
    assert certctl.bootstrap(settings) == "serving"  # a re-run changes nothing
    _lineage(certctl, ["example.com", "www.example.com"], 90)
    assert certctl.install_lineage() is True
    served = certctl.serving()
    assert not served["temporary"] and served["serial"] != first["serial"]
    assert certctl.install_lineage() is False  # already served
    key = certctl.CERTS / "current" / "privkey.pem"
    assert key.stat().st_mode & 0o777 == 0o640 and (certctl.CERTS / "current").is_symlink()
    assert len(list(certctl.CERTS.glob("gen-*"))) == 2  # this one and the one before


def test_the_ca_is_asked_only_when_needed(certctl: ModuleType) -> None:
    settings = _settings(certctl)
    assert certctl.why_renew(settings, NOW, force=False) == "no certificate from the CA yet"
    _lineage(certctl, ["example.com", "www.example.com"], 90)
    now = dt.datetime.now(dt.UTC)
    assert certctl.why_renew(settings, now, force=False) is None
    assert certctl.why_renew(settings, now, force=True) == "forced (--force)"
    assert "expires in" in certctl.why_renew(settings, now + dt.timedelta(days=61), force=False)
    assert "domains changed" in certctl.why_renew(_settings(certctl, ACME_DOMAINS="example.com"), now, force=False)
    other = _settings(certctl, ACME_DIRECTORY_URL="https://other.example/dir")
    assert certctl.why_renew(other, now, force=False) == "ACME_DIRECTORY_URL changed"


def test_certbot_is_told_the_directory_domains_and_account(certctl: ModuleType) -> None:
    command = certctl.certbot_command(_settings(certctl, ACME_EMAIL="ops@example.com"), renewing=True)
    assert command[:2] == ["certbot", "certonly"] and "--non-interactive" in command
    assert command[command.index("--server") + 1] == "https://ca.example/dir"
    assert command[command.index("--webroot-path") + 1] == str(certctl.WEBROOT)
    assert command[-4:] == ["-d", "example.com", "-d", "www.example.com"]
    assert "--force-renewal" in command and command[command.index("--email") + 1] == "ops@example.com"
    assert "--register-unsafely-without-email" in certctl.certbot_command(_settings(certctl), renewing=False)


@pytest.mark.parametrize(
    ("output", "reason", "hint_words"),
    [
        (
            "Certbot failed to authenticate some domains (authenticator: webroot).\n  Domain: example.com\n"
            "  Type:   connection\n  Detail: 10.0.0.1: Fetching http://example.com/.well-known/acme-challenge/x: "
            "Connection refused\n",
            "challenge-failed",
            "port 80",
        ),
        (
            "An unexpected error occurred:\nrequests.exceptions.ConnectionError: HTTPSConnectionPool(host='ca', "
            "port=14000): Max retries exceeded with url: /dir (Caused by NewConnectionError('Failed to establish a "
            "new connection: [Errno 111] Connection refused'))",
            "ca-unreachable",
            "ACME_DIRECTORY_URL",
        ),
        ("requests.exceptions.SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "ca-untrusted",
         "ACME_CA_BUNDLE"),
        ("Error creating new order :: too many certificates already issued (rateLimited)", "rate-limited", "wait"),
        ("something else entirely", "failed", "letsencrypt.log"),
    ],
)  # fmt: skip
def test_failures_are_explained(certctl: ModuleType, output: str, reason: str, hint_words: str) -> None:
    explained = certctl.classify(output, _settings(certctl))
    assert explained["reason"] == reason and hint_words in explained["hint"]
    assert explained["message"]


def _state(module: ModuleType, **values: Any) -> None:
    module.write_state(values)


def test_health_follows_expiry_and_failures(certctl: ModuleType) -> None:
    settings = _settings(certctl)
    status = certctl.status(settings, NOW)
    assert not status["ok"] and not status["healthy"] and "no certificate" in status["problem"]
    certctl.bootstrap(settings)
    assert certctl.status(settings, NOW)["healthy"]
    error = {"reason": "ca-unreachable", "message": "refused", "hint": "check", "at": "2026-12-02T12:00:00Z"}
    _state(certctl, last_error=error)
    status = certctl.status(settings)
    # a temporary certificate after a failure: a problem, not (yet) an unhealthy service
    assert not status["ok"] and status["healthy"] and "temporary" in status["problem"]
    _lineage(certctl, ["example.com", "www.example.com"], 20)
    certctl.install_lineage()
    status = certctl.status(settings)
    assert not status["healthy"] and "expires in" in status["problem"]  # near expiry, not renewing
    _state(certctl)  # the failure is gone
    assert certctl.status(settings)["healthy"]
    assert not certctl.status(settings, dt.datetime.now(dt.UTC) + dt.timedelta(days=15))["healthy"]  # 5 days left


def test_a_dry_run_says_whether_the_ca_would_be_asked_and_changes_nothing(certctl: ModuleType) -> None:
    settings = _settings(certctl)
    code, report = certctl.renew(settings, force=False, scheduled=False, dry_run=True)
    assert code == 0 and report["action"] == "would-ask-the-ca" and report["reason"] == "no certificate from the CA yet"
    assert not (certctl.CERTS / "current").exists() and not certctl.state_path().exists()
    _lineage(certctl, ["example.com", "www.example.com"], 90)
    code, report = certctl.renew(settings, force=False, scheduled=False, dry_run=True)
    assert (code, report["action"], report["reason"]) == (0, "none", None)
