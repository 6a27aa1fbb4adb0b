"""The prod policy's backup rules (issue 13, parts 6 and 7): every backup must be kept a
while, and a stack whose backups never leave the box, or sit there readable, is warned."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.config import load_config
from stackctl.errors import ConfigError

SECRET = "s3cr3t-Value-That-Must-Never-Show-Up-0123456789-abcdefghij"
PROD = f"DJANGO_SECRET_KEY={SECRET}\nPOSTGRES_PASSWORD=pw-{SECRET}\nDJANGO_ALLOWED_HOSTS=example.org\n"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def rendered(tmp_path: Path, text: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the prod policy, rendered as `stackctl check` prints them."""
    env = tmp_path / ".env.prod"
    env.write_text(text)
    try:
        loaded = load_config(env, profile="prod")
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = loaded.warnings
    errors = [p.render() for p in problems if p.severity == "error"]
    return errors, [p.render() for p in problems if p.severity != "error"]


@pytest.mark.parametrize("days", ["0", "3"])
def test_prod_refuses_too_short_a_retention(tmp_path: Path, days: str) -> None:
    errors, _ = rendered(tmp_path, PROD + f"DB_BACKUP_RETENTION_DAYS={days}\n")
    assert any(e.startswith(f"{tmp_path / '.env.prod'}: DB_BACKUP_RETENTION_DAYS [Database]:") for e in errors), errors
    assert any("use 7 or more" in e for e in errors)


def test_prod_warns_without_an_off_site_target_or_an_age_recipient(tmp_path: Path) -> None:
    errors, warnings = rendered(tmp_path, PROD)
    assert not any("DB_BACKUP_TARGET" in e or "BACKUP_AGE_RECIPIENTS" in e for e in errors)
    assert any("DB_BACKUP_TARGET [Database]: no off-site target" in w for w in warnings), warnings
    assert any("BACKUP_AGE_RECIPIENTS [Backups]: backups are not encrypted" in w for w in warnings), warnings
    assert all(SECRET not in w for w in warnings)


@pytest.mark.parametrize("target", ["DB_BACKUP_TARGET=/mnt/offsite", "MEDIA_BACKUP_TARGET=rsync://host/module/path"])
def test_either_target_and_a_recipient_silence_the_warnings(tmp_path: Path, target: str) -> None:
    errors, warnings = rendered(tmp_path, PROD + f"{target}\nBACKUP_AGE_RECIPIENTS={RECIPIENT}\n")
    assert not any("DB_BACKUP_TARGET" in w or "BACKUP_AGE_RECIPIENTS" in w for w in errors + warnings)


@pytest.mark.parametrize(
    ("extra", "target"),
    [
        ("", '""'),
        ("MEDIA_BACKUP_TARGET=/mnt/offsite\n", '""'),  # backup_db.sh then copies to MEDIA_BACKUP_TARGET
        ("MEDIA_BACKUP_TARGET=/mnt/media\nDB_BACKUP_TARGET=rclone:remote:db\n", '"rclone:remote:db"'),
    ],
)
def test_the_backup_service_states_the_new_settings(tmp_path: Path, extra: str, target: str) -> None:
    from stackctl.core.render import render_set

    env = tmp_path / ".env.prod"
    env.write_text(PROD + "DB_BACKUP_RETENTION_DAYS=30\n" + extra)
    cfg = load_config(env, profile="prod").config
    compose = next(content for path, (content, _mode) in render_set(cfg).items() if path.endswith("prod.yml"))
    lines = compose.decode().splitlines()
    assert f"      DB_BACKUP_TARGET: {target}" in lines
    assert '      DB_BACKUP_KEEP_MONTHLY: "6"' in lines and '      BACKUP_JOB_TIMEOUT_SECONDS: "21600"' in lines
