"""Browser tests: Debian's Chromium driven by Playwright against the running stack.

Playwright's own browser builds are not used (they are downloaded, which a
closed network cannot do); the tests launch the distribution's Chromium,
installed by tools/ensure-browser.sh. Under CI (CI=true) a missing browser
fails the tests; elsewhere it skips them.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import unavailable

CHROMIUM = os.environ.get("SALA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}


# Package scope, not session: the sync API keeps an event loop running while
# it is started, and the suite's asyncio tests (tests/integration) cannot run
# under it. Leaving tests/e2e stops it.
@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable(
            "the playwright package is not installed (pip install -e '.[test]')"
        )
    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="package")
def browser(playwright_driver) -> Iterator[object]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"Chromium is missing at {CHROMIUM}: run tools/ensure-browser.sh")
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def base_url(stack) -> str:
    return stack.edge_url


class PageProblems:
    """Console errors that mean the page is broken: CSP violations, uncaught exceptions."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def watch(self, page) -> None:
        page.on(
            "pageerror", lambda err: self.items.append(f"{page.url}: uncaught {err}")
        )
        page.on("console", self._console(page))

    def _console(self, page) -> Callable:
        def handler(message) -> None:
            text = message.text
            if "Content Security Policy" in text or (
                message.type == "error" and "SyntaxError" in text
            ):
                self.items.append(f"{page.url}: {text}")

        return handler


@pytest.fixture
def new_page(browser, base_url) -> Iterator[Callable]:
    """Open a page in a fresh browser context (its own cookies), like a separate person.

    new_page(locale="es-ES", viewport=PHONE) -> page; the page's base URL is the edge.
    """
    contexts = []
    problems = PageProblems()

    def make(
        locale: str = "en-US",
        viewport: dict | None = None,
        accept_language: str | None = None,
        bypass_csp: bool = False,
    ):
        headers = {"Accept-Language": accept_language} if accept_language else None
        context = browser.new_context(
            base_url=base_url,
            locale=locale,
            viewport=viewport or DESKTOP,
            extra_http_headers=headers,
            bypass_csp=bypass_csp,  # only to inject test tooling (axe) into the page
        )
        contexts.append(context)
        page = context.new_page()
        problems.watch(page)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems.items, "the pages reported problems:\n" + "\n".join(
        problems.items
    )


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
