"""Image tags name true versions: parsing Debian package versions, recognising version tags."""

from __future__ import annotations

from importlib import resources

import pytest

from stackctl.core import images
from stackctl.errors import StackctlError


@pytest.mark.parametrize(
    ("raw", "series", "version"),
    [
        ("15.20-0+deb12u1", "15", "15.20"),
        ("5:7.0.15-1~deb12u10\n", "7.0", "7.0.15"),
        ("1.22.1-9+deb12u11", "1.22", "1.22.1"),
        ("3.11.2\n", "3.11", "3.11.2"),
        ("12.12\n", "12", "12.12"),
    ],
)
def test_upstream_version(raw: str, series: str, version: str) -> None:
    assert images.upstream_version(raw, series=series) == version


@pytest.mark.parametrize(("raw", "series"), [("16.1-1", "15"), ("7.2.4", "7.0"), ("", "15"), ("bookworm/sid", "12")])
def test_version_outside_the_series_is_refused(raw: str, series: str) -> None:
    with pytest.raises(StackctlError, match="unexpected version"):
        images.upstream_version(raw, series=series)


def test_version_tags_are_told_apart_from_aliases() -> None:
    assert images.POSTGRES.tag_for("15.20") == "stackctl/postgres:15.20-bookworm"
    assert images.POSTGRES.is_version_tag("stackctl/postgres:15.20-bookworm")
    assert not images.POSTGRES.is_version_tag("stackctl/postgres:15-bookworm")
    assert not images.POSTGRES.is_version_tag("stackctl/redis:15.20-bookworm")
    assert images.BASE.is_version_tag("stackctl/debian:12.12")
    assert not images.BASE.is_version_tag("stackctl/debian:bookworm")


def test_the_stack_selects_the_series_tags() -> None:
    assert images.LOCAL_IMAGE_ENV == {
        "PYTHON_IMAGE": "stackctl/python:3.11-bookworm",
        "POSTGRES_IMAGE": "stackctl/postgres:15-bookworm",
        "REDIS_IMAGE": "stackctl/redis:7.0-bookworm",
        "NGINX_IMAGE": "stackctl/nginx:1.22-bookworm",
    }


def test_every_image_has_its_build_files() -> None:
    root = resources.files("stackctl") / "images"
    for spec in images.SERVICES:
        dockerfile = (root / spec.name / "Dockerfile").read_text()
        assert dockerfile.startswith("#") and "# syntax=" not in dockerfile
        assert f"FROM {images.BASE.alias}" in dockerfile
        assert "--no-install-recommends" in dockerfile and "rm -rf /var/lib/apt/lists/*" in dockerfile
    assert (root / "postgres" / "docker-entrypoint.sh").is_file()
    assert (root / "debian" / "docker-clean").is_file()
