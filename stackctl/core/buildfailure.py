"""What a failed web image build says about a requirement that compiles.

`docker compose build` prints pip's, uv's or Poetry's output through BuildKit. When a
requirement without a wheel for the image's Python fails to build from source, that output
names the requirement ("Failed to build psycopg2", uv's "Failed to build `psycopg2==2.9.10`",
Poetry's "one of the following issues with psycopg2 (2.9.10)") and, often, what the compiler
missed ("pg_config executable not found", "fatal error: libxml/xmlversion.h: No such file or
directory"). `compile_failure` reads both; `compile_failure_error` turns them into the error
that names the requirement, the Debian package and the env file to add it to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stackctl.errors import DockerCommandError

# BuildKit's plain progress prefixes each line of a step's output with "#12 3.456 ".
_BUILDKIT_PREFIX = re.compile(r"^#\d+ \d+(?:\.\d+)? ?")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# The failing requirement, most specific first: each pattern's group 1 holds one name or several.
_REQUIREMENT_PATTERNS = (
    re.compile(r"Failed to build installable wheels for some pyproject\.toml based projects \(([^)]+)\)"),
    re.compile(r"Failed to build '([^']+)' when"),  # pip 25.2+
    re.compile(r"Failed building wheel for (\S+)"),
    re.compile(r"Building wheel for (\S+) \(.*\) did not run successfully"),
    re.compile(r"Running setup\.py install for (\S+) did not run successfully"),
    re.compile(r"Failed to (?:download and )?build:? `([^`]+)`"),  # uv
    re.compile(r"issues with (\S+ \([^)]+\))"),  # poetry: "one of the following issues with psycopg2 (2.9.10)"
    re.compile(r"^\s*Failed to build ([A-Za-z0-9][A-Za-z0-9._\- ]*)$"),  # pip < 24: "Failed to build psycopg2 uwsgi"
)
# pip fails in metadata or build-requirement steps before any "Building wheel": the last
# requirement it collected is the one whose subprocess failed.
_COLLECTING = re.compile(r"^\s*Collecting (\S+)")
_SUBPROCESS_FAILED = re.compile(
    r"subprocess-exited-with-error|did not run successfully|Failed to build|ChefBuildError|"
    r"build backend returned an error|PEP517 build of a dependency failed"
)

# Headers (fatal error: X: No such file or directory) and the Debian packages that ship them.
_HEADERS: dict[str, str] = {
    "Python.h": "python3-dev",
    "libpq-fe.h": "libpq-dev",
    "pg_config.h": "libpq-dev",
    "ffi.h": "libffi-dev",
    "openssl/": "libssl-dev",
    "mysql.h": "default-libmysqlclient-dev",
    "mysql/": "default-libmysqlclient-dev",
    "libxml/": "libxml2-dev",
    "libxslt/": "libxslt1-dev",
    "libexslt/": "libxslt1-dev",
    "lber.h": "libldap-dev",
    "ldap.h": "libldap-dev",
    "sasl/": "libsasl2-dev",
    "jpeglib.h": "libjpeg-dev",
    "png.h": "libpng-dev",
    "tiffio.h": "libtiff-dev",
    "webp/": "libwebp-dev",
    "ft2build.h": "libfreetype-dev",
    "zlib.h": "zlib1g-dev",
    "bzlib.h": "libbz2-dev",
    "lzma.h": "liblzma-dev",
    "krb5.h": "libkrb5-dev",
    "gssapi/": "libkrb5-dev",
    "sqlite3.h": "libsqlite3-dev",
    "yaml.h": "libyaml-dev",
    "libmemcached/": "libmemcached-dev",
    "xmlsec/": "libxmlsec1-dev",
    "geos_c.h": "libgeos-dev",
    "gdal.h": "libgdal-dev",
    "sql.h": "unixodbc-dev",
    "sqlext.h": "unixodbc-dev",
    "cairo.h": "libcairo2-dev",
    "magic.h": "libmagic-dev",
    "curl/": "libcurl4-openssl-dev",
    "uuid/uuid.h": "uuid-dev",
    "systemd/": "libsystemd-dev",
    "librdkafka/": "librdkafka-dev",
    "pcre.h": "libpcre2-dev",
    "event.h": "libevent-dev",
    "gmp.h": "libgmp-dev",
    "mpfr.h": "libmpfr-dev",
}
# pkg-config modules (Package 'X' was not found, or a -lX the linker cannot find).
_MODULES: dict[str, str] = {
    "libpq": "libpq-dev",
    "pq": "libpq-dev",
    "libffi": "libffi-dev",
    "ffi": "libffi-dev",
    "openssl": "libssl-dev",
    "libssl": "libssl-dev",
    "ssl": "libssl-dev",
    "libcrypto": "libssl-dev",
    "crypto": "libssl-dev",
    "mysqlclient": "default-libmysqlclient-dev",
    "mariadb": "default-libmysqlclient-dev",
    "libmariadb": "default-libmysqlclient-dev",
    "libxml-2.0": "libxml2-dev",
    "xml2": "libxml2-dev",
    "libxslt": "libxslt1-dev",
    "xslt": "libxslt1-dev",
    "xmlsec1": "libxmlsec1-dev",
    "cairo": "libcairo2-dev",
    "libsystemd": "libsystemd-dev",
    "dbus-1": "libdbus-1-dev",
    "glib-2.0": "libglib2.0-dev",
    "ldap": "libldap-dev",
    "lber": "libldap-dev",
    "sasl2": "libsasl2-dev",
    "libsasl2": "libsasl2-dev",
    "jpeg": "libjpeg-dev",
    "libjpeg": "libjpeg-dev",
    "z": "zlib1g-dev",
    "zlib": "zlib1g-dev",
    "yaml": "libyaml-dev",
    "yaml-0.1": "libyaml-dev",
    "krb5": "libkrb5-dev",
    "krb5-gssapi": "libkrb5-dev",
    "odbc": "unixodbc-dev",
    "magic": "libmagic-dev",
    "libcurl": "libcurl4-openssl-dev",
    "curl": "libcurl4-openssl-dev",
    "uuid": "uuid-dev",
    "pcre": "libpcre2-dev",
    "libpcre2-8": "libpcre2-dev",
}
_COMPILER = "a C compiler"

# What the output says is missing: (pattern, what, package); a None package is looked up from group 1.
_MISSING: tuple[tuple[re.Pattern[str], str | None, str | None], ...] = (
    (re.compile(r"pg_config executable not found|pg_config: (?:command )?not found"), "pg_config", "libpq-dev"),
    (
        re.compile(r"mysql_config:? (?:command )?not found|Can not find valid pkg-config name"),
        "mysql_config",
        "default-libmysqlclient-dev",
    ),
    (re.compile(r"fatal error: ([^\s:]+): No such file or directory"), None, None),
    (re.compile(r"Package '?([^'\s,]+)'?(?:,? required by '[^']*',)? (?:was )?not found"), None, None),
    (re.compile(r"cannot find -l([A-Za-z0-9_+.-]+)"), None, None),
    (
        re.compile(r"pkg-config: (?:command )?not found|pkg-config is required|could not find pkg-config", re.I),
        "pkg-config",
        "pkg-config",
    ),
    (
        re.compile(r"can't find Rust compiler|cargo: (?:command )?not found|rustc: (?:command )?not found", re.I),
        "Rust (cargo, rustc)",
        "cargo",
    ),
    (
        re.compile(
            r"command '[^']*(?:gcc|cc|clang)' failed|unable to execute '[^']*(?:gcc|cc)'|(?:gcc|cc|c\+\+|g\+\+): "
            r"(?:command )?not found|C compiler cannot create executables|You need a C compiler|"
            r"Unknown compiler\(s\)|error: command '[^']*' failed: No such file or directory"
        ),
        _COMPILER,
        "build-essential",
    ),
)


@dataclass(frozen=True)
class CompileFailure:
    """A requirement that failed to build from source, and what its build missed when it says."""

    requirement: str  # as the tool named it: "psycopg2", "psycopg2==2.9.10", "psycopg2 (2.9.10)"
    missing: str | None = None  # "pg_config", "Python.h", "libxml/xmlversion.h", "a C compiler"
    package: str | None = None  # the Debian package that provides it, when known

    @property
    def name(self) -> str:
        """The distribution's name alone: "psycopg2"."""
        return re.split(r"[\s=<>!~;@\[(]", self.requirement.strip(), maxsplit=1)[0]


def output_lines(output: str) -> list[str]:
    """The build's lines without BuildKit's step prefixes and terminal colours."""
    return [_BUILDKIT_PREFIX.sub("", _ANSI.sub("", line)).rstrip() for line in output.splitlines()]


def _requirement(lines: list[str]) -> str | None:
    for pattern in _REQUIREMENT_PATTERNS:
        for line in lines:
            found = pattern.search(line)
            if found:
                names = found.group(1).strip()
                return names if " (" in names else ", ".join(n for n in re.split(r"[,\s]+", names) if n)
    failed_at = next((i for i, line in enumerate(lines) if _SUBPROCESS_FAILED.search(line)), None)
    if failed_at is None:
        return None
    collected = [m.group(1) for m in (_COLLECTING.match(line) for line in lines[:failed_at]) if m]
    return collected[-1] if collected else None


def _package_of(name: str) -> str | None:
    for key, package in _HEADERS.items():
        if name == key or (key.endswith("/") and name.startswith(key)) or name.endswith("/" + key):
            return package
    base = name.removesuffix(".pc")
    return _MODULES.get(base) or _MODULES.get(base.removeprefix("lib"))


def _missing(lines: list[str]) -> tuple[str | None, str | None]:
    for pattern, what, package in _MISSING:
        for line in lines:
            found = pattern.search(line)
            if not found:
                continue
            if what is not None:
                return what, package
            name = found.group(1)
            if pattern.pattern.startswith("cannot find -l"):
                return f"lib{name} (-l{name})", _package_of(name)
            return name, _package_of(name)
    return None, None


def compile_failure(output: str) -> CompileFailure | None:
    """The requirement whose build from source failed in this build output, or None when the
    output shows no such failure (a lock out of date, a network error, a Dockerfile step)."""
    lines = output_lines(output)
    requirement = _requirement(lines)
    if requirement is None:
        return None
    missing, package = _missing(lines)
    return CompileFailure(requirement, missing, package)


def compile_failure_error(
    failure: CompileFailure, *, env_file: Path, build_packages: tuple[str, ...] = (), python: str = ""
) -> DockerCommandError:
    """The error for a requirement that did not compile: which one, what it missed, and the fix
    (BUILD_PACKAGES in the env file, by path)."""
    said = f" ({failure.missing} not found)" if failure.missing else ""
    message = f"docker compose build failed: the requirement {failure.requirement} did not build from source{said}"
    no_wheel = f"{failure.name} has no wheel for the image's Python{' ' + python if python else ''}, so pip compiles it"
    if failure.package and failure.package in build_packages:
        hint = (
            f"{no_wheel}; BUILD_PACKAGES in {env_file} already installs {failure.package}: read the compiler's "
            f"output above, or pin a version of {failure.name} that publishes a wheel"
        )
    elif failure.package:
        value = " ".join([*build_packages, failure.package])
        hint = (
            f'{no_wheel}, and its build needs {failure.missing} ({failure.package}): set BUILD_PACKAGES="{value}" '
            f"in {env_file}, then build again (the builder stage only; a library it links to reaches the final "
            "image by itself, a program it runs needs RUNTIME_PACKAGES)"
        )
    elif failure.missing:
        hint = (
            f"{no_wheel}, and its build needs {failure.missing}: add the Debian package that ships it "
            f"(packages.debian.org, 'search the contents of packages') to BUILD_PACKAGES in {env_file}, then "
            f"build again; or pin a version of {failure.name} that publishes a wheel"
        )
    else:
        hint = (
            f"{no_wheel}: the compiler's output above says what it missed; add the Debian package that provides "
            f"it to BUILD_PACKAGES in {env_file} (space-separated), then build again; or pin a version of "
            f"{failure.name} that publishes a wheel"
        )
    return DockerCommandError(message, hint=hint)
