"""PostgreSQL or Redis down while the web is up: readiness names what is down, reads that do
not need the missing piece keep working, and requests that need it get a fast 503 with
Retry-After in the one error shape (a page outside /api/), never a 500 stack or a hang.

Real outages, not mocks: the web's database connection is pointed at a port where nothing
listens (psycopg's connection refused), the cache at a Redis port where nothing listens."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import override_settings

from common.tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = {
    "default": {
        "BACKEND": "common.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


@contextmanager
def database_down() -> Iterator[None]:
    """The web's next queries open a connection to a port where nothing listens."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = "1"
    connection.settings_dict["HOST"] = "127.0.0.1"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def test_redis_down_the_catalog_and_the_api_reads_still_answer_and_health_names_the_cache(client):
    ProductFactory(sku="MUG-9", name="Down mug", on_hand=3)
    with override_settings(CACHES=DEAD_REDIS):
        page = client.get("/")
        api = client.get("/api/v1/products/")
        token = client.post(
            "/api/v1/auth/token/", {"username": "nobody", "password": "x"}, content_type="application/json"
        )
        health = client.get("/health/")

    assert page.status_code == 200
    assert b"Down mug" in page.content
    assert api.status_code == 200
    assert api.json()["count"] == 1
    # The throttled sign-in endpoint still answers (throttles fail open without their counts).
    assert token.status_code == 401  # refused on its merits, not a 500
    assert health.status_code == 503
    assert "cache" in health.json()["failing"]


def test_database_down_the_api_answers_503_with_retry_after_fast(client_for):
    api = client_for(UserFactory())
    with database_down():
        started = time.monotonic()
        response = api.get("/api/v1/orders/")
        took = time.monotonic() - started

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.json()["error"]["details"] == {"unavailable": "database"}
    assert took < 10  # connection refused, not a hang (measured ~0.01 s; the bound is generous)


def test_database_down_a_page_answers_a_503_page_not_a_stack(client):
    with database_down():
        response = client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"Temporarily unavailable" in response.content
    assert b"Traceback" not in response.content


def test_database_down_a_write_answers_503_and_changes_nothing_once_back(client_for):
    user = UserFactory()
    api = client_for(user)
    product = ProductFactory(on_hand=2)
    with database_down():
        response = api.post("/api/v1/cart/items/", {"sku": product.sku, "quantity": 1}, format="json")
    assert response.status_code == 503
    assert api.get("/api/v1/cart/").json()["lines"] == []


def test_health_names_the_database_while_it_is_down(client):
    with database_down():
        response = client.get("/health/")
    assert response.status_code == 503
    assert "database" in response.json()["failing"]


def test_redis_down_a_signed_in_shopper_keeps_browsing(client):
    """Sessions are read from the cache; with Redis down they come from the database."""
    from orders.models import Order

    user = UserFactory()
    client.force_login(user)
    ProductFactory(sku="MUG-8", name="Session mug", on_hand=3)
    with override_settings(CACHES=DEAD_REDIS):
        page = client.get("/")
        orders = client.get("/orders/")
    assert page.status_code == 200
    assert f"Hi, {user.username}".encode() in page.content
    assert orders.status_code == 200
    assert not Order.objects.exists()
