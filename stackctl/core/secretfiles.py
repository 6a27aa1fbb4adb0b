"""The prod stack's secrets: their values, which each service reads as a file in /run/secrets.

The secrets never reach a container's environment (`docker inspect` shows every variable to
anyone holding the engine's socket): docker-compose.prod.yml blanks them and passes each as a
file, only to the services that use it, and the services read it through
`VAR_FILE=/run/secrets/<name>` (postgres' entrypoint, stackctl_env.py in web, the backup
scripts' backup_common.sh).

Compose injects secrets of every source but `file:` by copying them into the container,
which it refuses for a read-only root filesystem (compose v2.40: "cannot create secret ...
in read-only service web: `file` is the sole supported option"), and a `file:` secret is a
bind mount of a client path, which an engine on another host cannot see. So each service
gets its secrets in a named volume of its own, filled from these values through the engine's
API (stackctl/core/configvolumes.py); no secret file is written on the client.

DB_APP_PASSWORD and REDIS_PASSWORD default to values derived from POSTGRES_PASSWORD, so that
an env file written before they existed keeps working unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from pydantic import SecretStr

from stackctl.config import StackConfig


@dataclass(frozen=True)
class StackSecret:
    name: str  # the compose secret and the file name
    variable: str  # what the service reads it as, through VAR_FILE


# Every secret of the prod stack. The compose template names the same ones (a unit test
# holds them together); an unset optional one is an empty file, which reads as unset.
SECRETS: tuple[StackSecret, ...] = (
    StackSecret("django_secret_key", "DJANGO_SECRET_KEY"),
    StackSecret("postgres_password", "POSTGRES_PASSWORD"),
    StackSecret("db_app_password", "DB_APP_PASSWORD"),
    StackSecret("redis_password", "REDIS_PASSWORD"),
    StackSecret("database_url", "DATABASE_URL"),
    StackSecret("email_url", "EMAIL_URL"),
    StackSecret("email_pass", "EMAIL_PASS"),
    StackSecret("sentry_dsn", "SENTRY_DSN"),
)


def derived_password(config: StackConfig, purpose: str) -> str:
    """A password for `purpose`, stable for one POSTGRES_PASSWORD (HMAC-SHA256, URL-safe)."""
    key = config.database.postgres_password.get_secret_value().encode()
    digest = hmac.new(key, f"stackctl {purpose}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def app_password(config: StackConfig) -> str:
    own = config.database.db_app_password
    return own.get_secret_value() if own else derived_password(config, "db app role")


def redis_password(config: StackConfig) -> str:
    own = config.cache.redis_password
    return own.get_secret_value() if own else derived_password(config, "redis")


def secret_values(config: StackConfig) -> dict[str, str]:
    """{secret name: value} for every secret in SECRETS ("" when unset)."""
    db, email = config.database, config.email

    def text(value: SecretStr | None) -> str:
        return "" if value is None else value.get_secret_value()

    return {
        "django_secret_key": config.django.django_secret_key.get_secret_value(),
        "postgres_password": db.postgres_password.get_secret_value(),
        "db_app_password": app_password(config),
        "redis_password": redis_password(config),
        "database_url": text(db.database_url),
        "email_url": text(email.email_url),
        "email_pass": text(email.email_pass),
        "sentry_dsn": text(config.django.sentry_dsn),
    }


def pgbackrest_secret_conf(config: StackConfig) -> str:
    """pgBackRest's options that are secrets (PITR_REPO2_*): a config file in db's secrets
    volume (PGBACKREST_CONFIG), read by db's archive-push and the pgbackrest service; every
    other option is a PGBACKREST_* variable of the compose file. `[global]` alone without a
    second repository."""
    bk = config.backups
    lines = ["[global]"]
    if bk.pitr_enabled and bk.repo2:
        if bk.pitr_repo2_cipher_pass is not None:
            lines.append(f"repo2-cipher-pass={bk.pitr_repo2_cipher_pass.get_secret_value()}")
        if bk.pitr_repo2_type == "s3":
            for option, value in (
                ("repo2-s3-key", bk.pitr_repo2_s3_key),
                ("repo2-s3-key-secret", bk.pitr_repo2_s3_key_secret),
            ):
                if value is not None:
                    lines.append(f"{option}={value.get_secret_value()}")
    return "\n".join(lines) + "\n"
