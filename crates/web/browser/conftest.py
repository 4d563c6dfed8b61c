"""Fixtures of the storefront's browser suite.

The suite drives a running ferroshop (the gateway's address in --base-url or
SHOP_BASE_URL) in Debian's headless Chromium through Playwright, which is
pointed at that browser (--chromium or SHOP_BROWSER_CHROMIUM, default
/usr/bin/chromium): Playwright's own browser download is never used.

One browser serves the whole run; each test gets a fresh context (its own
cookies), so tests share nothing but the catalog. A failed test leaves a
screenshot and the page's HTML under --artifacts (default: a temporary
directory, named in the failure report).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from storefront import DESKTOP

# Checking out runs a saga behind the page; a debug build on a busy machine
# may take a while, and assertions wait for what a person would wait for.
expect.set_options(timeout=15_000)

# INFRA.md's flags for a headless Chromium in a sandboxed machine without
# a GPU or internet access.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ferroshop storefront")
    group.addoption(
        "--base-url",
        default=os.environ.get("SHOP_BASE_URL"),
        help="the gateway's address, e.g. http://127.0.0.1:8080 (env SHOP_BASE_URL)",
    )
    group.addoption(
        "--chromium",
        default=os.environ.get("SHOP_BROWSER_CHROMIUM", "/usr/bin/chromium"),
        help="the Chromium executable (env SHOP_BROWSER_CHROMIUM)",
    )
    group.addoption(
        "--screenshots",
        default=os.environ.get("SHOP_SCREENSHOTS"),
        help="where the screenshot test writes its PNGs (env SHOP_SCREENSHOTS)",
    )
    group.addoption(
        "--artifacts",
        default=None,
        help="where a failed test's screenshot and HTML go (default: a temporary directory)",
    )


@pytest.fixture(scope="session")
def base_url(pytestconfig: pytest.Config) -> str:
    url = pytestconfig.getoption("base_url")
    if not url:
        pytest.fail("no storefront to test: pass --base-url or set SHOP_BASE_URL")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def screenshots_dir(pytestconfig: pytest.Config) -> Path:
    raw = pytestconfig.getoption("screenshots")
    if not raw:
        pytest.skip("no --screenshots directory given")
    path = Path(raw)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def artifacts_dir(pytestconfig: pytest.Config) -> Path:
    raw = pytestconfig.getoption("artifacts")
    path = Path(raw) if raw else Path(tempfile.mkdtemp(prefix="ferroshop-browser-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser(pytestconfig: pytest.Config) -> Browser:
    executable = pytestconfig.getoption("chromium")
    if not Path(executable).exists():
        pytest.fail(f"no Chromium at {executable} (apt-get install chromium, or pass --chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Keeps each phase's report on the test item, so that a fixture's
    # teardown can tell whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class Contexts:
    """Opens browser contexts for one test and closes them after it; on a
    failure, saves what each of their pages showed."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self._browser = browser
        self._base_url = base_url
        self.opened: list[BrowserContext] = []

    def new(self, *, viewport: dict | None = None, javascript: bool = True) -> BrowserContext:
        context = self._browser.new_context(
            base_url=self._base_url,
            viewport=viewport or DESKTOP,
            java_script_enabled=javascript,
        )
        self.opened.append(context)
        return context

    def save_failure(self, directory: Path, name: str) -> list[Path]:
        saved = []
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        for i, context in enumerate(self.opened):
            for j, page in enumerate(context.pages):
                base = directory / f"{stem}-{i}-{j}"
                try:
                    page.screenshot(path=f"{base}.png", full_page=True)
                    Path(f"{base}.html").write_text(f"<!-- {page.url} -->\n{page.content()}")
                    saved.append(Path(f"{base}.png"))
                except Exception:  # noqa: BLE001 - a closed page has nothing to save
                    continue
        return saved

    def close(self) -> None:
        for context in self.opened:
            context.close()


@pytest.fixture
def contexts(request: pytest.FixtureRequest, browser: Browser, base_url: str, artifacts_dir: Path):
    opened = Contexts(browser, base_url)
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for path in opened.save_failure(artifacts_dir, request.node.name):
            print(f"failure screenshot: {path}")
    opened.close()


@pytest.fixture
def context(contexts: Contexts) -> BrowserContext:
    return contexts.new()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
