"""A real browser for the dashboard's tests: Debian's chromium, headless, driven by
Playwright (pointed at the system browser: these machines cannot download one)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Page, ViewportSize, async_playwright

from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# Where a test run's screenshot goes: an ignored path, so `make test` leaves the tree clean.
# `make screenshot` sets SWITCHYARD_SCREENSHOT=docs/dashboard.png to refresh the README's.
SCREENSHOT_ENV = "SWITCHYARD_SCREENSHOT"
DEFAULT_SCREENSHOT = "build/dashboard.png"


def screenshot_path() -> Path:
    """The screenshot's file: $SWITCHYARD_SCREENSHOT (relative to the repository), else build/."""
    path = Path(os.environ.get(SCREENSHOT_ENV) or DEFAULT_SCREENSHOT)
    return path if path.is_absolute() else ROOT / path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: install Debian's chromium (tools/system-packages)")
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class WatchedPage:
    """A page whose console errors and uncaught exceptions are kept, to assert none."""

    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location}")

    def on_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")


async def open_page(browser: Browser, url: str) -> WatchedPage:
    """A fresh tab (its own sessionStorage) at 1280x800, watched from before it loads."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    watched = WatchedPage(page)
    page.on("console", watched.on_console)
    page.on("pageerror", watched.on_error)
    page.on("request", lambda request: watched.requests.append(request.url))
    await page.goto(url)
    return watched
