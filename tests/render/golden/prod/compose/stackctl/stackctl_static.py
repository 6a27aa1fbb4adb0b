"""The static files of the web container's start: collectstatic, then offline compression (stackctl, verbatim).

The entrypoint's PREPARE calls `prepare_static()` after the migrations, before any server
process imports the app: a module that reads `staticfiles_storage.url(...)` or compressor's
offline manifest at import then finds them complete, for this release.

- Settings without STATIC_ROOT still get their files collected, into the static volume nginx
  serves (STACKCTL_STATIC_ROOT, set by the image), with a warning.
- django-compressor: when the settings in effect have COMPRESS_ENABLED and COMPRESS_OFFLINE
  (compressor's own defaults included: COMPRESS_ENABLED is `not DEBUG`), `compress` runs after
  collectstatic, into COMPRESS_ROOT (STATIC_ROOT unless the project says otherwise).
- Static files finders that write into their own package while collectstatic lists them (theme
  and CSS packages compile or generate files there): the code is read-only at run time (the
  root filesystem in prod; the venv is root's in every profile). When collectstatic fails on
  such a write, the package that holds the path (its top-level folder, in the venv or in /app)
  is copied to a temporary folder, and collectstatic runs again in a fresh process that imports
  that copy first; repeated for each such package. The copies go once the files are collected:
  the generated files live on in the static volume, and the code the server runs is untouched.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile

# a write the code's folder refuses: read-only filesystem, or a folder the app user does not own
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
MAX_COPIES = 5
EXIT_READ_ONLY = 75  # the child's status for "a finder wrote into a read-only package"; its path on stdout's last line

# The child process: the writable copies first on sys.path, then the same steps.
CHILD = """
import sys
sys.path[:0] = sys.argv[2:]
import django
django.setup()
import stackctl_static
sys.exit(stackctl_static.child_collect())
"""


def log(message: str) -> None:
    print(f"entrypoint: {message}", file=sys.stderr, flush=True)


def ensure_static_root() -> None:
    from django.conf import settings

    if not getattr(settings, "STATIC_ROOT", None):
        settings.STATIC_ROOT = os.environ["STACKCTL_STATIC_ROOT"]
        log(
            f"settings.STATIC_ROOT is not set; collecting into {settings.STATIC_ROOT}, "
            "the volume nginx serves (set STATIC_ROOT in your settings)"
        )


def offline_compression() -> bool:
    """Whether the settings in effect ask django-compressor for offline compression."""
    from django.apps import apps

    if not apps.is_installed("compressor"):
        return False
    from compressor.conf import settings as compressor_settings  # the settings with compressor's defaults

    return bool(compressor_settings.COMPRESS_ENABLED and compressor_settings.COMPRESS_OFFLINE)


def collect() -> None:
    """collectstatic, then `compress` when the project compresses offline."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    ensure_static_root()
    call_command("collectstatic", interactive=False)
    if not offline_compression():
        return
    log("COMPRESS_OFFLINE is on: compressing the templates' {% compress %} blocks (manage.py compress)")
    try:
        call_command("compress")
    except CommandError as exc:
        if "No 'compress' template tags found" not in str(exc):
            raise
        log(f"compress: {exc} (nothing to compress)")


def package_root(path: str) -> str | None:
    """The top-level folder, directly under a sys.path entry, that holds `path` (None: none does)."""
    path = os.path.abspath(path)
    best: tuple[str, str] | None = None
    for entry in sys.path:
        entry = os.path.abspath(entry or os.getcwd())
        if not os.path.isdir(entry) or not path.startswith(entry.rstrip("/") + "/"):
            continue
        top = os.path.join(entry, path[len(entry.rstrip("/")) + 1 :].split("/")[0])
        if os.path.isdir(top) and (best is None or len(entry) > len(best[0])):
            best = (entry, top)
    return best[1] if best else None


def read_only_package(exc: OSError) -> str | None:
    """The package a refused write went to, when it is code on sys.path (not the static volume)."""
    if exc.errno not in READ_ONLY_ERRNOS or not exc.filename:
        return None
    return package_root(os.fsdecode(exc.filename))


def child_collect() -> int:
    try:
        collect()
    except OSError as exc:
        top = read_only_package(exc)
        if top is None:
            raise
        print(f"\n{top}", flush=True)
        return EXIT_READ_ONLY
    return 0


def prepare_static() -> None:
    """collect() here; when a finder writes into read-only code, again with writable copies."""
    try:
        collect()
        return
    except OSError as exc:
        top = read_only_package(exc)
        if top is None:
            raise
        log(
            f"collectstatic: a static files finder writes into {os.fsdecode(exc.filename)} ({exc.strerror}), "
            f"which is read-only at run time; collecting again with a writable copy of {top}"
        )
    workdir = tempfile.mkdtemp(prefix="stackctl-static-")
    try:
        copied: list[str] = []
        while True:
            if top in copied or len(copied) >= MAX_COPIES:
                sys.exit(
                    f"entrypoint: collectstatic: a static files finder writes into {top}, which stays "
                    "read-only even as a copy; have it write into STATIC_ROOT or a folder under /tmp"
                )
            shutil.copytree(
                top, os.path.join(workdir, os.path.basename(top)), ignore=shutil.ignore_patterns("__pycache__")
            )
            copied.append(top)
            done = subprocess.run(
                [sys.executable, "-c", CHILD, "child", workdir], stdout=subprocess.PIPE, text=True, check=False
            )
            sys.stdout.write(done.stdout)
            if done.returncode == 0:
                return
            if done.returncode != EXIT_READ_ONLY:
                sys.exit(f"entrypoint: collectstatic failed (exit {done.returncode})")
            top = done.stdout.rstrip().rsplit("\n", 1)[-1]
            log(f"collectstatic: a static files finder writes into {top} too; copying it as well")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
