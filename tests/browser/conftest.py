"""Playwright (sync API) driving Debian's Chromium, headless, against pytest-django's live server.

Playwright's sync API keeps an event loop running in the test thread, so Django's guard against
ORM calls from async contexts is switched off for these tests (the calls are plain sync code).
Screenshots go to test-artifacts/screenshots/ (ignored by git).
"""
import os
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.helpers import SCREENSHOTS

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser-deps` (apt-get install chromium) installs it")
    from playwright.sync_api import expect, sync_playwright

    # Live pages poll every 2 s; on a busy two-core machine a swap can take longer than
    # Playwright's default 5 s.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The Content-Security-Policy blocks inline scripts and styles; Chromium reports each violation.
    # live.js reports a live part that has no element of its id on the page to be swapped into.
    page.on(
        "console",
        lambda message: errors.append(message.text)
        if "Content Security Policy" in message.text or message.text.startswith("live.js:")
        else None,
    )
    yield page
    context.close()
    assert not errors, f"JavaScript errors, CSP violations or live parts with no place on the page: {errors}"


@pytest.fixture
def screenshot():
    """screenshot(page, "name") saves test-artifacts/screenshots/name.png (the whole page) as a person
    sees it once it has settled: the page's lazy images below the fold are loaded first (a full-page
    picture does not scroll to them; it waits up to 15 s for every image, then takes what is there),
    and CSS animations and transitions are fast-forwarded to their end (a tile fading in shows as it
    will look)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name, *, full_page=True):
        path = SCREENSHOTS / f"{name}.png"
        if full_page:
            page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(img => { img.loading = 'eager'; })")
        try:
            page.wait_for_function("() => Array.from(document.images).every(img => img.complete)", timeout=15_000)
        except PlaywrightTimeout:
            pass  # a picture of the page as it is is still worth having; the tests check the images
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    return take
