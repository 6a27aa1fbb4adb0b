"""Adapters own the filesystem and docker. The core calls them; nothing else does I/O."""
