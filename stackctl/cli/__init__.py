"""The CLI layer: parse arguments, call the core, display the result. Nothing else.

`main` is the console script. `stackctl --version` and `stackctl --help` are answered here,
before typer and the command modules are imported: typer costs about 0.1 s to import and
builds the whole command tree for any call, against a start-up budget of 0.15 s. The root
help is typer's own, kept in help.txt (click wraps help at 80 columns at most, so one text
serves every terminal that wide); tests/unit/test_cli.py fails when it differs from what
typer prints. Everything else goes to stackctl.cli.app.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HELP_FILE = Path(__file__).with_name("help.txt")
HELP_WIDTH = 80


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from stackctl import __version__

        sys.stdout.write(f"stackctl {__version__}\n")
        return
    if args == ["--help"] and shutil.get_terminal_size().columns >= HELP_WIDTH and HELP_FILE.is_file():
        sys.stdout.write(HELP_FILE.read_text(encoding="utf-8"))
        return
    from stackctl.cli.app import main as run

    run(args)
