"""The prod stack's secrets as files: what each service reads from /run/secrets.

The secrets never reach a container's environment (`docker inspect` shows every variable to
anyone holding the engine's socket): docker-compose.prod.yml blanks them and passes each as a
compose secret, only to the services that use it, and the services read it through
`VAR_FILE=/run/secrets/<name>` (postgres' entrypoint, stackctl_env.py in web, the backup
scripts' backup_common.sh).

Compose injects secrets of every source but `file:` by copying them into the container,
which it refuses for a read-only root filesystem (compose v2.40: "cannot create secret ...
in read-only service web: `file` is the sole supported option"). web, nginx and redis run
read-only, so the stack renders the files, from the validated .env.prod, into
.stackctl/secrets/ in the stack's folder (a named environment's into .stackctl/secrets/NAME/;
mode 0700; gitignored). The files themselves are
0644: the containers' users (uids 999 and 1000) read them through the bind mount, and no one
else on the host gets past the folder.

DB_APP_PASSWORD and REDIS_PASSWORD default to values derived from POSTGRES_PASSWORD, so that
an env file written before they existed keeps working unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from stackctl.adapters.files import read_bytes_or_none, write_atomic
from stackctl.config import StackConfig
from stackctl.config.profile import Environment
from stackctl.core.project import STATE_DIR

SECRETS_DIR = f"{STATE_DIR}/secrets"  # relative to the stack's folder, as compose names it


def secrets_dir(env: Environment) -> str:
    """prod's SECRETS_DIR; a named environment's own folder inside it (.stackctl/secrets/staging:
    a name has no "_", so it never meets a secret's file name)."""
    return f"{SECRETS_DIR}/{env.name}" if env.is_named else SECRETS_DIR


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


def write_secret_files(root: Path, config: StackConfig) -> list[str]:
    """Write the stack's secret files (of config's environment) under `root` (the stack's folder); only those whose
    content changed. Returns their paths relative to `root` (never their content)."""
    where = secrets_dir(config.environment)
    folder = root / where
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    written = []
    for name, value in secret_values(config).items():
        path = folder / name
        data = value.encode()
        if read_bytes_or_none(path) != data or (path.stat().st_mode & 0o777) != 0o644:
            write_atomic(path, data, mode=0o644)
            written.append(f"{where}/{name}")
    return written
