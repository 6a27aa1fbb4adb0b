"""The one object that writes to the terminal. Status goes to stderr, data to stdout.

rich styles the lines on a terminal; it is imported on the first styled line only, so that a
command that prints nothing styled (`--version`, `--json`, piped output) does not pay for it.
Tables are plain aligned text on stdout and never cut a cell: the names they show (backups,
containers) are what the next command needs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

STYLES = {"error": "bold red", "warning": "yellow", "success": "green", "debug": "dim", "progress": "dim"}
PREFIXES = {"error": "error: ", "warning": "warning: ", "success": "✓ ", "debug": "", "progress": "  "}


class Console:
    """Levels: error, warning, info, success, debug. `-q` hides info, `-v` shows debug."""

    def __init__(self, *, verbosity: int = 0) -> None:
        self.verbosity = verbosity
        self._rich: Any = None

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stderr.isatty()

    def _styled(self, level: str, text: str) -> None:
        stream: IO[str] = sys.stderr
        if os.environ.get("NO_COLOR") or not stream.isatty():
            stream.write(f"{PREFIXES[level]}{text}\n")
            stream.flush()
            return
        if self._rich is None:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(stderr=True, highlight=False, soft_wrap=True)
        from rich.markup import escape

        prefix, style = PREFIXES[level], STYLES[level]
        if level == "progress":
            self._rich.print(f"{prefix}[{style}]{escape(text)}[/]")
        else:
            self._rich.print(f"[{style}]{escape(prefix)}[/]{escape(text)}" if prefix else f"[{style}]{escape(text)}[/]")

    def error(self, text: str) -> None:
        self._styled("error", text)

    def warning(self, text: str) -> None:
        self._styled("warning", text)

    def info(self, text: str) -> None:
        if self.verbosity >= 0:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def success(self, text: str) -> None:
        if self.verbosity >= 0:
            self._styled("success", text)

    def debug(self, text: str) -> None:
        if self.verbosity > 0:
            self._styled("debug", text)

    def progress_line(self, text: str) -> None:
        """One line of a long job's progress (build steps, backup steps)."""
        if self.verbosity >= 0:
            self._styled("progress", text)

    def data(self, text: str) -> None:
        """Plain data for stdout (paths, URLs): what scripts read."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> None:
        """Aligned columns on stdout, whatever the terminal's width: no cell is ever cut."""
        widths = [max([len(c), *(len(str(r[i])) for r in rows)]) for i, c in enumerate(columns)]
        lines = [title] if title else []
        for cells in (columns, *rows):
            lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())
        self.data("\n".join(lines))

    def json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
        sys.stdout.flush()

    def confirm(self, question: str) -> bool:
        sys.stderr.write(f"{question} [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        return answer in {"y", "yes"}
