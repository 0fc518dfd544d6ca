import pytest
import redis
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from common.tests.factories import ProductFactory, StaffFactory, UserFactory


@pytest.fixture(scope="session", autouse=True)
def _clean_redis() -> None:
    """The test run owns its Redis database (REDIS_URL, db 15 by default): start empty."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def product(db):
    return ProductFactory(on_hand=10)


def _token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
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
