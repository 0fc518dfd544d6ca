import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from knox.models import AuthToken
from rest_framework.test import APIClient

from common.tests.factories import ProductFactory, StaffFactory, UserFactory


@pytest.fixture(scope="session", autouse=True)
def _clean_redis() -> None:
    """The test run owns its Redis database (REDIS_URL, db 15 by default): start empty."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    from django.core.cache import cache

    from outbox.services import outbox_kick_gate_reset

    cache.clear()
    outbox_kick_gate_reset()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def product(db):
    return ProductFactory(on_hand=10)


def api_token_for(user) -> str:
    """A valid API key for `user` (what POST /api/v1/auth/token/ hands out)."""
    _, key = AuthToken.objects.create(user=user)
    return key


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(user)}")
    return client


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def shopper_client(user) -> APIClient:
    return _token_client(user)


@pytest.fixture
def staff_client(staff) -> APIClient:
    return _token_client(staff)


@pytest.fixture
def client_for():
    return _token_client


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """One Playwright for the whole run: its sync API owns an event loop in this thread,
    so a second one (per module) would refuse to start while the first is alive."""
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the loop makes Django refuse ORM calls otherwise
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """The system Chromium (Debian's `chromium`; `.ci/run` installs it)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install the `chromium` package or set CHROMIUM_PATH")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def chromium(browser: Any) -> Any:
    return browser
