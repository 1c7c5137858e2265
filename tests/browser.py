"""Debian's Chromium for the browser tests: where it is, the flags it runs with, and skipping without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ARENA_CHROMIUM", "/usr/bin/chromium"))
# Chromium as root, with no network beyond localhost: flags that keep it from reaching out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def require_chromium() -> None:
    """Skip the calling test module without Chromium; under CI its absence is an error."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        raise RuntimeError(f"CI needs Chromium at {CHROMIUM} for the browser tests (`make test` installs it)")
    pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs it as root", allow_module_level=True)
