"""`python -m stackctl_manage ARGS...`: the project's manage.py under the stack's settings
(stackctl, verbatim).

stackctl runs every management command this way (`stackctl manage`, the entrypoint's
`manage`, a deploy's migrations). The project's own manage.py runs as `python manage.py`
would run it (its sys.path changes, its dotenv loading, its checks), with one difference: an
assignment `os.environ["DJANGO_SETTINGS_MODULE"] = "..."` in it no longer replaces the
settings module the stack chose (stackctl's overlay, or with the overlay off the module init
chose for this profile), so a command never runs under another settings module, such as a
development one on SQLite, than the servers. `setdefault` already left it alone.
"""

from __future__ import annotations

import os
import runpy
import sys

SETTINGS = "DJANGO_SETTINGS_MODULE"


def keep_settings_module() -> None:
    """Make assignments to DJANGO_SETTINGS_MODULE keep the value the stack set."""
    chosen = os.environ.get(SETTINGS)
    if not chosen:
        return
    environ_class = type(os.environ)
    assign = environ_class.__setitem__

    def setitem(self: os._Environ[str], key: str, value: str) -> None:
        if self is os.environ and key == SETTINGS and value != chosen:
            return  # the project's manage.py names its own module: the stack's stays
        assign(self, key, value)

    environ_class.__setitem__ = setitem  # type: ignore[method-assign]


def main() -> None:
    keep_settings_module()
    sys.argv[0] = os.path.abspath("manage.py")
    sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as `python manage.py` has it
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
