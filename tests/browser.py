"""Debian's Chromium for the browser tests: where it is, the flags it runs with, skipping without it, a fresh
page, and screenshots saved to test-artifacts/."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = Path(os.environ.get("ARENA_CHROMIUM", "/usr/bin/chromium"))
# Chromium as root, with no network beyond localhost: flags that keep it from reaching out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # git-ignored


def require_chromium() -> None:
    """Skip the calling test module without Chromium; under CI its absence is an error."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        raise RuntimeError(f"CI needs Chromium at {CHROMIUM} for the browser tests (`make test` installs it)")
    pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs it as root", allow_module_level=True)


@asynccontextmanager
async def browser_page(width: int = 1200, height: int = 900) -> AsyncIterator[Page]:
    """A fresh page in headless Chromium (its own profile, so its own localStorage), `width` x `height`.
    Errors thrown by the page's scripts fail the test when the page closes."""
    from playwright.async_api import async_playwright

    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
        finally:
            await browser.close()
    assert not errors, f"the page threw: {errors}"


async def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as test-artifacts/web-NAME.png (for a person to look at; nothing compares it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"web-{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
