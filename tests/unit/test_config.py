"""The config layer: every problem reported at once, with file, variable, group and hint."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackctl.config import load_config
from stackctl.errors import ConfigError

SECRET = "s3cr3t-Value-That-Must-Never-Show-Up-0123456789-abcdefghij"
GOOD = f"""
DJANGO_SECRET_KEY={SECRET}
POSTGRES_PASSWORD=pw-{SECRET}
"""


def write(tmp_path: Path, text: str, name: str = ".env") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, profile: str = "dev") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), profile=profile)  # type: ignore[arg-type]
    return [p.render() for p in info.value.problems if p.severity == "error"]


def test_minimal_env_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD)).config
    assert cfg.database.postgres_host == "db"
    assert cfg.django.django_allowed_hosts == ["localhost", "127.0.0.1"]
    assert cfg.project_name == "django-dev"
    assert cfg.web_ports == [8000, 8001]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "DB_BACKUP_CRON=61 * * * *\nREDIS_URL=http://cache\nHTTP_PORT=eighty\n")
    assert len(found) == 3
    text = "\n".join(found)
    assert ".env: DB_BACKUP_CRON [Database]: not a valid 5-field cron" in text
    assert "REDIS_URL [Cache]: not a redis URL" in text and "'http://cache'" in text
    assert "HTTP_PORT [Nginx]" in text and "fix: set HTTP_PORT to a whole number" in text


def test_missing_required_names_the_variable_and_fix(tmp_path: Path) -> None:
    found = problems(tmp_path, "POSTGRES_PASSWORD=x\n")
    assert found == [
        f"{tmp_path / '.env'}: DJANGO_SECRET_KEY [Django]: is required but not set; "
        "fix: add DJANGO_SECRET_KEY=... (see .env.example)"
    ]


def test_bad_database_url_never_echoes_the_secret(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + f"DATABASE_URL=mysql://u:{SECRET}@db/x\n")
    assert any("DATABASE_URL [Database]: not a postgres URL" in f for f in found)
    assert SECRET not in "\n".join(found)


def test_database_url_must_agree_with_parts(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "DATABASE_URL=postgres://other:pw@db:5432/django\n")
    assert any("disagrees with POSTGRES_USER, POSTGRES_PASSWORD" in f for f in found)


def test_misspelled_variable_is_a_warning_with_suggestion(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, GOOD + "DJANGO_DEBGU=true\n"))
    assert [w.render() for w in loaded.warnings] == [
        f"{tmp_path / '.env'}: DJANGO_DEBGU: unknown variable; fix: did you mean DJANGO_DEBUG?"
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("DJANGO_DEBUG=true\n", "DJANGO_DEBUG [Django]: DEBUG must be off in prod"),
        ("DJANGO_ALLOWED_HOSTS=*\n", "DJANGO_ALLOWED_HOSTS [Django]: ALLOWED_HOSTS must not be * in prod"),
        ("USE_TLS=true\n", "TLS_CERT_PATH [Nginx]: file not found while USE_TLS is on"),
        ("USE_TLS=true\n", "SECURE_HSTS_SECONDS [Security]: HSTS must be on when TLS is on"),
        ("DB_BACKUP_RETENTION_DAYS=2\n", "DB_BACKUP_RETENTION_DAYS [Database]: keeps less than a week"),
    ],
)
def test_prod_policy(tmp_path: Path, extra: str, expected: str) -> None:
    assert any(expected in f for f in problems(tmp_path, GOOD + extra, profile="prod"))


def test_prod_policy_rejects_short_and_insecure_keys(tmp_path: Path) -> None:
    short = problems(tmp_path, "DJANGO_SECRET_KEY=short\nPOSTGRES_PASSWORD=x\n", profile="prod")
    assert any("secret key is too short" in f for f in short)
    insecure = "DJANGO_SECRET_KEY=django-insecure-" + "a1b2c3d4e5" * 6 + "\nPOSTGRES_PASSWORD=x\n"
    assert any("insecure development key" in f for f in problems(tmp_path, insecure, profile="prod"))


def test_dev_accepts_what_prod_refuses(tmp_path: Path) -> None:
    load_config(write(tmp_path, GOOD + "DJANGO_DEBUG=true\nDJANGO_ALLOWED_HOSTS=*\n"), profile="dev")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / ".env")
    assert (
        info.value.problems[0]
        .render()
        .endswith(".env: file not found; fix: run `stackctl init` or create it from .env.example")
    )


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    with pytest.raises(ConfigError, match="error"):
        load_config(tmp_path / ".env")
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError) as info:
        load_config(binary)
    assert "not UTF-8" in info.value.problems[0].message


def test_process_environment_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_DEBUG", "not-a-bool")
    monkeypatch.setenv("LOG_LEVEL", "nonsense")
    assert load_config(write(tmp_path, GOOD)).config.django.log_level == "INFO"


names = st.sampled_from(
    [
        "DJANGO_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "DATABASE_URL",
        "DB_BACKUP_CRON",
        "HTTP_PORT",
        "REDIS_URL",
        "DJANGO_DEBUG",
        "CSRF_TRUSTED_ORIGINS",
        "EMAIL_URL",
        "WEB_CONCURRENCY",
        "DJANGO_TIME_ZONE",
        "UNKNOWN_X",
    ]
)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(names, values), max_size=12), st.sampled_from(["dev", "prod"]))
def test_fuzzed_env_never_tracebacks_or_leaks(tmp_path: Path, pairs: list[tuple[str, str]], profile: str) -> None:
    marker = "Zq9-SECRET-MARKER"
    lines = [f"{k}={v}" for k, v in pairs] + [f"DJANGO_SECRET_KEY={marker}" + "x" * 50, f"POSTGRES_PASSWORD={marker}"]
    path = write(tmp_path, "\n".join(lines) + "\n", name="fuzz.env")
    try:
        loaded = load_config(path, profile=profile)  # type: ignore[arg-type]
        shown = [p.render() for p in loaded.warnings]
    except ConfigError as exc:
        shown = [p.render() for p in exc.problems]
    assert marker not in "\n".join(shown)
