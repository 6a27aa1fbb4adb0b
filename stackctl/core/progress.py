"""How the core reports progress on long work: a callable taking one line of text.

The CLI passes its console's progress printer; the Python API passes nothing (silence).
"""

from collections.abc import Callable

Report = Callable[[str], None]


def quiet(_: str) -> None:
    """The default Report: say nothing."""
    return None
