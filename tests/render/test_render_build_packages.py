"""Requirements that compile: the web Dockerfile's builder stage installs the toolchain when
the install fails without it (first, with BUILD_PACKAGES), the final stage only the libraries
the builder found plus RUNTIME_PACKAGES (the golden files hold the default; this module the
variables' effect), and hadolint accepts both."""

from __future__ import annotations

import re
from pathlib import Path

from stackctl.config.webimage import BUILD_TOOLCHAIN, RUNTIME_LIBRARIES_FILE
from stackctl.core.render import render_set
from tests.render.stackfiles import find_tool, load_fixture, own_files, run, write_tree


def _dockerfile(tmp_path: Path, **extra: str) -> tuple[str, str]:
    """The builder stage and the final stage of the prod Dockerfile."""
    cfg = load_fixture("prod.env", "prod", tmp_path, extra=extra)
    rendered = own_files(render_set(cfg))
    write_tree(tmp_path, rendered)
    text = rendered["compose/Dockerfile.prod"][0].decode()
    builder, final = text.split("\nFROM ${PYTHON_IMAGE}\n")
    return builder, final


def _toolchains(stage: str) -> list[list[str]]:
    """The packages of each `stackctl_build.py toolchain` call of a stage, in order."""
    blocks = stage.split("stackctl_build.py toolchain")[1:]
    return [re.split(r"&&|;|\n", block, maxsplit=1)[0].replace("\\", " ").split() for block in blocks]


def test_the_builder_installs_the_toolchain_only_when_the_install_fails_and_the_final_stage_none(
    tmp_path: Path,
) -> None:
    builder, final = _dockerfile(tmp_path)
    assert "apt-get" not in builder  # a project whose requirements all have wheels downloads no compiler
    install = builder.split("WORKDIR ")[1]
    first, retry = install.split("|| {", 1)
    assert "pip install -r requirements.txt" in first and "add-missing" in first
    assert "installing a C toolchain and trying again" in retry
    assert _toolchains(builder) == [list(BUILD_TOOLCHAIN)]  # only in the retry
    assert retry.index("toolchain") < retry.index("pip install -r requirements.txt") < retry.index("add-missing")
    # a library a cached wheel links to and this builder lacks: the toolchain, then a second look
    scan = f"runtime-libraries /opt/venv /opt/stackctl-build/base-packages \\\n    {' '.join(BUILD_TOOLCHAIN)} \\\n"
    assert scan + f"    > {RUNTIME_LIBRARIES_FILE}" in builder
    assert f"COPY --from=builder {RUNTIME_LIBRARIES_FILE} {RUNTIME_LIBRARIES_FILE}" in final
    # the builder's package lists, mounted: the versions compiled against, and no lists in a layer
    assert "--mount=type=bind,from=builder,source=/var/lib/apt/lists,target=/var/lib/apt/lists,rw" in final
    assert "rm -rf /var/lib/apt/lists" not in builder  # kept for the final stage
    assert "set -- $(cat /opt/stackctl-build/runtime-packages); \\\n" in final
    for tool in ("build-essential", "gcc", "-dev", "toolchain"):
        assert tool not in final.split("ENV PYTHONDONTWRITEBYTECODE")[0], tool
    # the base image's packages are listed before anything is installed
    assert builder.index("base-packages") < builder.index("python3 -m venv")


def test_build_and_runtime_packages_reach_their_own_stage(tmp_path: Path) -> None:
    builder, final = _dockerfile(
        tmp_path, BUILD_PACKAGES="libldap-dev libsasl2-dev", RUNTIME_PACKAGES="gettext,libmagic1"
    )
    # BUILD_PACKAGES: the toolchain with them, first (the project compiles); the retry stays
    assert _toolchains(builder) == [[*BUILD_TOOLCHAIN, "libldap-dev", "libsasl2-dev"], list(BUILD_TOOLCHAIN)]
    assert builder.index("libldap-dev") < builder.index("WORKDIR ")
    assert "BUILD_PACKAGES from .env.prod" in builder
    assert "set -- $(cat /opt/stackctl-build/runtime-packages) gettext libmagic1; \\\n" in final
    assert "libldap-dev" not in final and "gettext" not in builder
    done = run([find_tool("hadolint"), "--no-color", "compose/Dockerfile.prod"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
