"""Reusable field types and validators for the settings groups."""

from __future__ import annotations

import posixpath
import re
import zoneinfo
from typing import Annotated, Any

from croniter import croniter
from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _cron(value: str) -> str:
    value = " ".join(value.split())
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError("not a valid 5-field cron expression (minute hour day month weekday)")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone (use an IANA name such as UTC or Europe/Paris)") from exc
    return value


_SIZE = re.compile(r"^\d+[kKmMgG]?$")


def _size(value: str) -> str:
    if not _SIZE.match(value):
        raise ValueError("not a size (use a number with an optional k, m or g suffix, e.g. 20m)")
    return value.lower()


_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _module(value: str) -> str:
    if not _MODULE.match(value):
        raise ValueError("not a dotted Python module path (e.g. config.settings)")
    return value


# A system check id: an app label (dotted for an app's own: hc.api), a level letter, a number.
_CHECK_ID = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\.[CEWID][0-9]+$")


def _check_ids(value: list[str]) -> list[str]:
    wrong = [ident for ident in value if not _CHECK_ID.match(ident)]
    if wrong:
        raise ValueError(
            f"not a system check id: {', '.join(wrong)} (use the id `manage.py check --deploy` prints, "
            "e.g. security.W019 or hc.api.W002)"
        )
    return list(dict.fromkeys(value))


def _asgi_app(value: str) -> str:
    module, _, attr = value.partition(":")
    if not _MODULE.match(module) or (attr and not attr.isidentifier()):
        raise ValueError("not an ASGI application path (e.g. config.asgi:application)")
    return value if attr else f"{value}:application"


_IMAGE = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$")


def _image(value: str) -> str:
    if not _IMAGE.match(value):
        raise ValueError("not an image reference (e.g. postgres:15-bookworm)")
    return value


_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _project_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("must be lowercase letters, digits, '-' or '_', starting with a letter or digit")
    return value


_CPUS = re.compile(r"^\d+(\.\d+)?$")


def _cpus(value: str) -> str:
    if not _CPUS.match(value) or float(value) <= 0:
        raise ValueError("not a CPU count (e.g. 1.5)")
    return value


_PATH = re.compile(r"^[A-Za-z0-9_.@+-]+(/[A-Za-z0-9_.@+-]+)*$")


def _relative_path(value: str) -> str:
    """A relative POSIX path the Dockerfile can COPY, normalised ("./src/" -> "src")."""
    normal = posixpath.normpath(value)
    if value.startswith("/") or not _PATH.match(normal):
        raise ValueError("not a relative path (letters, digits and . _ - + @, separated by /; no spaces or globs)")
    return normal


def _dependency_file(value: str) -> str:
    name = value.rstrip("/").rpartition("/")[2]
    if not (name.endswith(".txt") or name in DEPENDENCY_FILE_NAMES):
        raise ValueError(
            "not an installable dependency file: use a requirements file (*.txt), poetry.lock, uv.lock, "
            "Pipfile.lock or pyproject.toml"
        )
    return value


# A Debian package name (Debian Policy 5.6.7: lowercase letters, digits, + - ., two or more
# characters, starting with a letter or digit); the apt command line takes nothing else from it.
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def _split_packages(value: Any) -> Any:
    if isinstance(value, str):
        return [item for item in re.split(r"[\s,]+", value) if item]
    return value


def _debian_packages(value: list[str]) -> list[str]:
    bad = [name for name in value if not _DEBIAN_PACKAGE.match(name)]
    if bad:
        raise ValueError(
            f"not a Debian package name: {', '.join(bad)} (lowercase letters, digits, + - and ., "
            "separated by spaces or commas, e.g. libxml2-dev libxslt1-dev)"
        )
    return list(dict.fromkeys(value))


# The dependency files that are not requirements files (those end with .txt).
DEPENDENCY_FILE_NAMES = ("poetry.lock", "uv.lock", "Pipfile.lock", "pyproject.toml")

CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
DebianPackages = Annotated[list[str], NoDecode, BeforeValidator(_split_packages), AfterValidator(_debian_packages)]
RelativePath = Annotated[str, AfterValidator(_relative_path)]
DependencyFile = Annotated[str, AfterValidator(_relative_path), AfterValidator(_dependency_file)]
CheckIds = Annotated[list[str], NoDecode, BeforeValidator(_split_commas), AfterValidator(_check_ids)]
PathList = Annotated[list[RelativePath], NoDecode, BeforeValidator(_split_commas)]
Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Size = Annotated[str, AfterValidator(_size)]
Module = Annotated[str, AfterValidator(_module)]
AsgiApp = Annotated[str, AfterValidator(_asgi_app)]
Image = Annotated[str, AfterValidator(_image)]
ProjectName = Annotated[str, AfterValidator(_project_name)]
Cpus = Annotated[str, AfterValidator(_cpus)]
