"""A real Chromium (the system one) driven by Playwright's sync API, for the storefront tests.

One browser per test session (the root conftest's `browser`); each test opens its own
contexts (cookies, JavaScript on or off) through `new_context`, which closes them afterwards
and, when the test failed, saves a screenshot of every open page to test-artifacts/ first.
"""

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Playwright's sync API runs an event loop in this thread; Django would refuse ORM calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class PageProblems:
    """Uncaught exceptions, console errors and failed requests (4xx/5xx) seen by a page:
    a shopper on the happy path must never get one."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status} {r.request.method} {r.url}"),
        )
        return page


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def new_context(
    request: pytest.FixtureRequest, browser: Browser, live_server: Any, artifacts_dir: Path, page_problems: PageProblems
) -> Iterator[Callable[..., BrowserContext]]:
    """Open a browser context on the live server: `new_context(java_script_enabled=False)`."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("base_url", live_server.url)
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        context.on("page", page_problems.watch)
        contexts.append(context)
        return context

    yield make

    report = getattr(request.node, "report_call", None)
    failed = report is not None and report.failed
    for n, context in enumerate(contexts):
        if failed:
            for m, page in enumerate(context.pages):
                name = re.sub(r"[^\w.-]+", "_", request.node.name)
                with contextlib.suppress(Exception):  # best effort; the failure itself is what matters
                    page.screenshot(path=str(artifacts_dir / f"FAILED-{name}-{n}-{m}.png"), full_page=True)
        context.close()
