"""`deploy --ref GIT_REF`: build the web image from a clean export of one commit.

`git archive` of the commit (the project's folder of it, when the project sits inside a
larger repository) is unpacked into a temporary folder; compose then builds the web image
from that folder's own stack files, with the live env file. Nothing of the working tree
(uncommitted changes, ignored files) reaches the image.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from stackctl.core.progress import Report
from stackctl.errors import StackctlError

if TYPE_CHECKING:
    from stackctl.core.stack import Stack


def _git(root: Path, *args: str) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise StackctlError("--ref needs git, which is not installed") from None
    if proc.returncode != 0:
        raise StackctlError(
            f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}",
            hint="--ref takes a commit, branch or tag of the project's repository",
        )
    return proc.stdout


def export(root: Path, ref: str, into: Path) -> str:
    """Unpack the project's folder at `ref` into `into`; returns the full commit id."""
    commit = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    prefix = _git(root, "rev-parse", "--show-prefix").decode().strip()
    tree = f"{commit}:{prefix}" if prefix else commit
    archive = _git(root, "archive", "--format=tar", tree)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def build_ref(stack: Stack, ref: str, image: str, report: Report) -> str:
    """Build `image` from `ref`; returns the commit id."""
    with tempfile.TemporaryDirectory(prefix="stackctl-ref-") as tmp:
        root = Path(tmp)
        commit = export(stack.project.root, ref, root)
        report(f"exported {ref} ({commit[:12]}) with git archive")
        files = [root / f.relative_to(stack.project.root) for f in stack.project.compose_files(stack.env)]
        missing = [str(f.relative_to(root)) for f in files if not f.exists()]
        if missing:
            raise StackctlError(
                f"{ref} does not contain the stack files {', '.join(missing)}",
                hint="commit the files stackctl rendered (they hold no secret), then deploy that commit",
            )
        from stackctl.core.deploy import build

        build(stack, image, report, builder=stack.build_client(root, files), what=f" from {ref}")
    return commit
