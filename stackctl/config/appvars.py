"""The app's own variables: what an env file sets that no stackctl group owns.

A project's settings may need variables of their own at import (an API token, a feature
flag). They belong in the same env file: stackctl passes each to web as written (redis, nginx
and the prod db never get them), does not warn about it, and treats a name that looks like a
secret (TOKEN, SECRET, PASSWORD, KEY, DSN, ...) or a URL with a password as a secret: never
printed, and in prod passed as a file (/run/secrets/app_NAME) that web's processes read back
into NAME, so that it is in no container's configuration (`docker inspect`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

# Underscore-separated words of a name that make it a secret, and endings that do (APIKEY).
SECRET_WORDS = frozenset(
    {
        "TOKEN",
        "TOKENS",
        "SECRET",
        "SECRETS",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PWD",
        "KEY",
        "KEYS",
        "DSN",
        "CREDENTIAL",
        "CREDENTIALS",
        "CREDS",
        "AUTH",
        "PRIVATE",
        "SALT",
        "SIGNATURE",
        "CERT",
        "COOKIE",
    }
)
SECRET_ENDINGS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD")
# A name compose and a shell pass through the environment, and a file may be named after.
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# stackctl's own namespace (STACKCTL_WEB_IMAGE, ...): never the app's.
RESERVED_PREFIX = "STACKCTL_"


def looks_secret(name: str, value: str = "") -> bool:
    """A name with a secret's word in it, or a URL value that carries a password."""
    words = [w for w in name.upper().split("_") if w]
    if any(w in SECRET_WORDS or w.endswith(SECRET_ENDINGS) for w in words):
        return True
    if "://" in value:
        try:
            return bool(urlsplit(value.strip()).password)
        except ValueError:
            return True
    return False


class AppVariable(BaseModel):
    """One variable of the app's own, passed to web as the env file writes it."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: SecretStr
    secret: bool

    @property
    def file_name(self) -> str:
        """Its file in web's secrets volume (prod)."""
        return f"app_{self.name}"

    @property
    def shown(self) -> str:
        """What output may say of it: NAME='value', or NAME (secret) without the value."""
        return f"{self.name} (secret)" if self.secret else f"{self.name}={self.value.get_secret_value()!r}"


def is_app_variable(name: str) -> bool:
    return bool(PLAIN_NAME.fullmatch(name)) and not name.upper().startswith(RESERVED_PREFIX)


def app_variables(raw: dict[str, str | None], known: set[str]) -> tuple[AppVariable, ...]:
    """Every variable of `raw` with a value whose name is not in `known` (stackctl's)."""
    return tuple(
        AppVariable(name=name, value=SecretStr(value), secret=looks_secret(name, value))
        for name, value in raw.items()
        if value and name.upper() not in known and is_app_variable(name)
    )
