"""A web image build that fails on a requirement that compiles: the requirement, what its
build missed and the fix, read from real captured outputs of pip, uv and a compose build
(tests/unit/build_outputs/, each captured from a real failing install), plus BUILD_PACKAGES
and RUNTIME_PACKAGES as the config reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.config import load_config
from stackctl.core.buildfailure import CompileFailure, compile_failure, compile_failure_error
from stackctl.errors import ConfigError

OUTPUTS = Path(__file__).parent / "build_outputs"
GOOD = "DJANGO_SECRET_KEY=s3cr3t-Value-That-Must-Never-Show-Up-0123456789-abcdefghij\nPOSTGRES_PASSWORD=pw\n"


def _output(name: str) -> str:
    return (OUTPUTS / name).read_text()


@pytest.mark.parametrize(
    ("name", "requirement", "missing", "package"),
    [
        # pip (25.1): pg_config missing while getting build requirements; the name is only in "Collecting"
        ("pip-pg_config-missing.txt", "psycopg2==2.9.10", "pg_config", "libpq-dev"),
        # pip: gcc and libpq-dev present, the Python headers not
        ("pip-python-h-missing.txt", "psycopg2", "Python.h", "python3-dev"),
        # uv 0.13.9: "Failed to build `psycopg2==2.9.10`"
        ("uv-pg_config-missing.txt", "psycopg2==2.9.10", "pg_config", "libpq-dev"),
        # `stackctl up --prod`'s own build output (compose, BuildKit's "#12 3.4" prefixes):
        # python-ldap against the default toolchain, which lacks OpenLDAP's headers
        ("compose-python-ldap-lber-missing.txt", "python-ldap", "lber.h", "libldap-dev"),
    ],
)
def test_the_failing_requirement_and_what_it_missed(name: str, requirement: str, missing: str, package: str) -> None:
    failure = compile_failure(_output(name))
    assert failure == CompileFailure(requirement, missing, package)
    assert failure.name == requirement.partition("==")[0]


def test_buildkit_prefixes_are_read_through() -> None:
    prefixed = "\n".join(
        f"#14 {12.5 + i / 10:.3f} {line}" for i, line in enumerate(_output("pip-python-h-missing.txt").splitlines())
    )
    assert compile_failure(prefixed) == CompileFailure("psycopg2", "Python.h", "python3-dev")


@pytest.mark.parametrize(
    ("line", "missing", "package"),
    [
        ("      src/constants.h:7:10: fatal error: lber.h: No such file or directory", "lber.h", "libldap-dev"),
        (
            "  src/lxml/includes/etree_defs.h:14:10: fatal error: libxml/xmlversion.h: No such file or directory",
            "libxml/xmlversion.h",
            "libxml2-dev",
        ),
        ("      /bin/sh: 1: mysql_config: not found", "mysql_config", "default-libmysqlclient-dev"),
        ("  Package 'libxml-2.0', required by 'virtual:world', not found", "libxml-2.0", "libxml2-dev"),
        ("      /usr/bin/ld: cannot find -lpq: No such file or directory", "libpq (-lpq)", "libpq-dev"),
        (
            "      error: command 'x86_64-linux-gnu-gcc' failed: No such file or directory",
            "a C compiler",
            "build-essential",
        ),
        ("      fatal error: some/unknown.h: No such file or directory", "some/unknown.h", None),
    ],
)
def test_what_the_build_missed(line: str, missing: str, package: str | None) -> None:
    output = "\n".join(
        [
            "Collecting weird==1.0",
            "  error: subprocess-exited-with-error",
            line,
            "ERROR: Failed building wheel for weird",
        ]
    )
    assert compile_failure(output) == CompileFailure("weird", missing, package)


@pytest.mark.parametrize(
    ("line", "requirement"),
    [
        (
            "ERROR: Failed to build installable wheels for some pyproject.toml based projects (uwsgi, python-ldap)",
            "uwsgi, python-ldap",
        ),
        ("ERROR: Failed to build 'psycopg2' when getting requirements to build wheel", "psycopg2"),
        ("Failed to build uWSGI", "uWSGI"),
        ("  \N{MULTIPLICATION SIGN} Failed to download and build `uwsgi==2.0.31`", "uwsgi==2.0.31"),
        (
            "Note: This error originates from the build backend, and is likely not a problem with poetry but one of "
            "the following issues with python-ldap (3.4.8)",
            "python-ldap (3.4.8)",
        ),
    ],
)
def test_each_tool_names_the_requirement(line: str, requirement: str) -> None:
    failure = compile_failure(line)
    assert failure is not None and failure.requirement == requirement


@pytest.mark.parametrize(
    "output",
    [
        "error: The lockfile at `uv.lock` needs to be updated, but `--locked` was provided.",
        "pyproject.toml changed significantly since poetry.lock was last generated. "
        "Run `poetry lock` to fix the lock file.",
        "ERROR: Could not find a version that satisfies the requirement djangoo==9.9",
        'failed to solve: process "/bin/sh -c python3 -m venv /opt/venv" did not complete successfully: exit code: 1',
    ],
)
def test_other_build_failures_are_not_blamed_on_a_requirement(output: str) -> None:
    assert compile_failure(output) is None


def test_the_error_names_the_requirement_the_package_and_the_env_file() -> None:
    env_file = Path("/srv/site/.env.prod")
    failure = compile_failure(_output("pip-pg_config-missing.txt"))
    assert failure is not None
    error = compile_failure_error(failure, env_file=env_file, build_packages=("libxml2-dev",))
    assert "the requirement psycopg2==2.9.10 did not build from source (pg_config not found)" in error.message
    assert error.hint is not None
    assert 'BUILD_PACKAGES="libxml2-dev libpq-dev" in /srv/site/.env.prod' in error.hint
    already = compile_failure_error(failure, env_file=env_file, build_packages=("libpq-dev",))
    assert already.hint is not None and "already installs libpq-dev" in already.hint
    unknown = compile_failure_error(CompileFailure("weird", "some/unknown.h"), env_file=env_file)
    assert unknown.hint is not None
    assert "needs some/unknown.h" in unknown.hint and "BUILD_PACKAGES in /srv/site/.env.prod" in unknown.hint


def test_build_and_runtime_packages_are_read_space_or_comma_separated(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(GOOD + "BUILD_PACKAGES=libxml2-dev, libxslt1-dev  libldap-dev\nRUNTIME_PACKAGES=gettext,libxml2\n")
    cfg = load_config(env).config
    assert cfg.images.build_packages == ["libxml2-dev", "libxslt1-dev", "libldap-dev"]
    assert cfg.images.runtime_packages == ["gettext", "libxml2"]
    assert cfg.web_image.build_packages == ("libxml2-dev", "libxslt1-dev", "libldap-dev")
    assert cfg.web_image.runtime_packages == ("gettext", "libxml2")
    env.write_text(GOOD)
    assert load_config(env).config.web_image.build_packages == ()


@pytest.mark.parametrize("value", ["libpq-dev;rm -rf /", "LibPQ-dev", "$(id)", "a", "-dev", "libfoo=1.0"])
def test_a_bad_package_name_names_the_variable(tmp_path: Path, value: str) -> None:
    env = tmp_path / ".env"
    env.write_text(GOOD + f"BUILD_PACKAGES=libxml2-dev {value}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(env)
    text = "\n".join(p.render() for p in raised.value.problems)
    assert "BUILD_PACKAGES [Images]: not a Debian package name" in text, text
