"""Pages in a real browser for the station's web tests: Playwright driving Debian's own chromium
(``executable_path``; Playwright never downloads a browser here), headless, without the sandbox
(the tests run as root in CI, where Chromium's sandbox refuses to start), media allowed to play
without a gesture and muted.

- ``browser`` (fixture, one per test module) and ``page`` (fixture, a fresh context per test)
  give a Playwright ``Page``; ``page_problems(page)`` is what it logged to its console as an
  error and the exceptions its scripts raised, so a test can assert there were none.
- ``open_page()`` is the same as a context manager, for code outside a fixture.
- ``screenshot(page, name)`` keeps a PNG in ``$BWV_TEST_ARTIFACTS`` (CI keeps that directory),
  else in ``artifacts/`` under pytest's base temporary directory (kept for the last runs).

Skipped with the reason when chromium (Debian package) or playwright (the ``test`` extra) is
missing. Every wait has Playwright's timeout, set here to `TIMEOUT_MS`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS_ENV = "BWV_TEST_ARTIFACTS"
TIMEOUT_MS = 10_000
ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
        "--disable-gpu", "--disable-dev-shm-usage"]
# set by the ``page`` fixture from pytest's base temporary directory; open_page() alone falls
# back to the system's temporary directory
_default_artifacts = Path(tempfile.gettempdir()) / f"bwv-test-artifacts-{os.getpid()}"


@dataclass
class PageProblems:
    """What a page reported as wrong: console messages of type error, uncaught exceptions."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.console, *self.exceptions]


_PROBLEMS: dict[int, PageProblems] = {}


def skip_unless_available() -> None:
    """Skip the calling test, with the reason, when the browser or Playwright is missing."""
    if CHROMIUM is None:
        pytest.skip("needs chromium (Debian package, scripts/debian-packages-test.txt)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("needs playwright (pip install -e '.[test]')")


def watch(page: Page) -> PageProblems:
    """Start collecting the page's console errors and uncaught exceptions."""
    problems = PageProblems()

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.console.append(f"{message.text} ({message.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.exceptions.append(str(error)))
    _PROBLEMS[id(page)] = problems
    return problems


def page_problems(page: Page) -> PageProblems:
    """The problems collected for a page made by ``page`` or ``open_page``."""
    return _PROBLEMS[id(page)]


@contextmanager
def launched() -> Iterator[Browser]:
    """Headless Debian chromium under Playwright; closed (and Playwright stopped) on exit."""
    skip_unless_available()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                             timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context (no cookies or storage shared with other tests)."""
    context = browser.new_context(viewport={"width": 800, "height": 600})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        watch(page)
        yield page
        _PROBLEMS.pop(id(page), None)
    finally:
        context.close()


@contextmanager
def open_page() -> Iterator[Page]:
    """A page in its own browser, for code that does not use the fixtures."""
    with launched() as browser, new_page(browser) as page:
        yield page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched() as launched_browser:
        yield launched_browser


@pytest.fixture
def page(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    global _default_artifacts
    _default_artifacts = tmp_path_factory.getbasetemp() / "artifacts"
    with new_page(browser) as made:
        yield made


def artifacts_dir() -> Path:
    """Where screenshots go: ``$BWV_TEST_ARTIFACTS``, else ``artifacts/`` under pytest's base
    temporary directory."""
    configured = os.environ.get(ARTIFACTS_ENV)
    directory = Path(configured) if configured else _default_artifacts
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(page: Page, name: str) -> Path:
    """Save the page as ``NAME.png`` in the artifacts directory; its path."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "page"
    path = artifacts_dir() / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
