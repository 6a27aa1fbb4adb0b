"""The one object that writes to the terminal. Status goes to stderr, data to stdout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console as RichConsole
from rich.markup import escape


class Console:
    """Wraps rich. Levels: error, warning, info, success, debug. `-q` hides info, `-v` shows debug."""

    def __init__(self, *, verbosity: int = 0, json_mode: bool = False) -> None:
        no_color = bool(os.environ.get("NO_COLOR"))
        self.verbosity = verbosity
        self.json_mode = json_mode
        self._err = RichConsole(stderr=True, no_color=no_color, highlight=False, soft_wrap=True)
        self._out = RichConsole(no_color=no_color, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stderr.isatty()

    def error(self, text: str) -> None:
        self._err.print(f"[bold red]error:[/] {escape(text)}")

    def warning(self, text: str) -> None:
        self._err.print(f"[yellow]warning:[/] {escape(text)}")

    def info(self, text: str) -> None:
        if self.verbosity >= 0:
            self._err.print(escape(text))

    def success(self, text: str) -> None:
        if self.verbosity >= 0:
            self._err.print(f"[green]✓[/] {escape(text)}")

    def debug(self, text: str) -> None:
        if self.verbosity > 0:
            self._err.print(f"[dim]{escape(text)}[/]")

    def data(self, text: str) -> None:
        """Plain data for stdout (tables, paths): what scripts read."""
        self._out.print(text, markup=False, highlight=False)

    def table(self, table: Any) -> None:
        self._out.print(table)

    def json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
        sys.stdout.flush()

    @contextmanager
    def status(self, text: str) -> Iterator[None]:
        """A spinner when interactive; one plain line otherwise."""
        if self._err.is_terminal and self.verbosity >= 0:
            with self._err.status(escape(text)):
                yield
        else:
            self.info(f"… {text}")
            yield

    def progress_line(self, text: str) -> None:
        """One line of a long job's progress (build steps, backup steps)."""
        if self.verbosity >= 0:
            self._err.print(f"  [dim]{escape(text)}[/]")

    def confirm(self, question: str) -> bool:
        self._err.print(f"{escape(question)} [y/N] ", end="")
        answer = sys.stdin.readline().strip().lower()
        return answer in {"y", "yes"}
