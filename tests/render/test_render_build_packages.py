"""Requirements that compile: the web Dockerfile's builder stage installs the toolchain and
BUILD_PACKAGES, the final stage only the libraries the builder found plus RUNTIME_PACKAGES
(the golden files hold the default; this module the variables' effect), and hadolint
accepts both."""

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


def _installs(stage: str) -> list[list[str]]:
    """The package names of each apt-get install of a stage, in order (up to `$(`, `&&` or `;`)."""
    blocks = stage.split("apt-get install -y --no-install-recommends")[1:]
    return [re.split(r"\$\(|&&|;|\"|\|\|", block, maxsplit=1)[0].replace("\\", " ").split() for block in blocks]


def test_the_builder_has_the_toolchain_and_the_final_stage_none(tmp_path: Path) -> None:
    builder, final = _dockerfile(tmp_path)
    assert _installs(builder) == [list(BUILD_TOOLCHAIN)]  # one layer, the same for every project
    assert "python%d.%d-dev" in builder  # Debian's python3 lacks its headers; the official images do not
    assert (
        f"runtime-libraries /opt/venv /opt/stackctl-build/base-packages \\\n    > {RUNTIME_LIBRARIES_FILE}" in builder
    )
    assert f"COPY --from=builder {RUNTIME_LIBRARIES_FILE} {RUNTIME_LIBRARIES_FILE}" in final
    # the builder's package lists, mounted: the versions compiled against, and no lists in a layer
    assert "--mount=type=bind,from=builder,source=/var/lib/apt/lists,target=/var/lib/apt/lists,rw" in final
    assert "rm -rf /var/lib/apt/lists" not in builder  # kept for the final stage
    assert "set -- $(cat /opt/stackctl-build/runtime-packages); \\\n" in final
    for tool in ("build-essential", "gcc", "-dev"):
        assert tool not in final.split("ENV PYTHONDONTWRITEBYTECODE")[0], tool
    # the toolchain layer comes before anything of the project, so that it stays cached
    assert builder.index("build-essential") < builder.index("COPY ")


def test_build_and_runtime_packages_reach_their_own_stage(tmp_path: Path) -> None:
    builder, final = _dockerfile(
        tmp_path, BUILD_PACKAGES="libldap-dev libsasl2-dev", RUNTIME_PACKAGES="gettext,libmagic1"
    )
    # from the toolchain layer's lists, or after one `apt-get update` when the mirror moved on
    assert _installs(builder) == [
        list(BUILD_TOOLCHAIN),
        ["libldap-dev", "libsasl2-dev"],
        ["libldap-dev", "libsasl2-dev"],
    ]
    assert "BUILD_PACKAGES from .env.prod" in builder
    assert "set -- $(cat /opt/stackctl-build/runtime-packages) gettext libmagic1; \\\n" in final
    assert "libldap-dev" not in final and "gettext" not in builder
    done = run([find_tool("hadolint"), "--no-color", "compose/Dockerfile.prod"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
