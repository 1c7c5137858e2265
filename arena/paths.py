"""Where the arena keeps files it can rebuild: the catalog cache and converted models."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$ARENA_CACHE_DIR`, else `$XDG_CACHE_HOME/arena`, else `~/.cache/arena`."""
    root = os.environ.get("ARENA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "arena"
    )
    return Path(root)
