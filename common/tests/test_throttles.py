"""Throttles (429 + Retry-After, per client and per IP) and the login lockout (django-axes).

config/settings/test.py sets every throttle rate out of reach of the functional tests;
these tests set low rates with override_settings. Throttle counts live in the cache,
which conftest clears before each test; axes' failures live in the (rolled back) database.
"""

import uuid
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import ADDRESS
from orders.services import cart_add_item, cart_get_or_create

LOW = {
    "login": "3/min",
    "login_ip": "5/min",
    "checkout": "2/min",
    "checkout_ip": "100/min",
    "payments": "2/min",
    "payments_ip": "100/min",
    "webhooks": "100/min",
    "webhooks_ip": "3/min",
}


def _assert_throttled(response):
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["error"]["code"] == "throttled"
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60
    assert body["error"]["details"]["retry_after_s"] == pytest.approx(retry_after, abs=1)


def _token(client, username, password="wrong-password", ip="10.0.0.1"):  # noqa: S107
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=ip
    )


@override_settings(THROTTLE_RATES=LOW)
def test_token_login_is_throttled_per_username_whatever_the_ip(db):
    UserFactory(username="victim")
    client = APIClient()
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert _token(client, "victim", ip=ip).status_code == 401
    _assert_throttled(_token(client, "victim", ip="10.0.0.4"))
    # Another username from a fresh IP is not affected.
    assert _token(client, "someone-else", ip="10.0.0.9").status_code == 401


@override_settings(THROTTLE_RATES=LOW)
def test_token_login_is_throttled_per_ip_across_usernames(db):
    client = APIClient()
    for n in range(5):
        assert _token(client, f"guess{n}", ip="10.0.0.7").status_code == 401
    _assert_throttled(_token(client, "guess-next", ip="10.0.0.7"))
    # X-Forwarded-For is not trusted without NUM_PROXIES: spoofing it does not help.
    response = client.post(
        "/api/v1/auth/token/",
        {"username": "guess-xff", "password": "x"},
        format="json",
        REMOTE_ADDR="10.0.0.7",
        HTTP_X_FORWARDED_FOR="203.0.113.50",
    )
    _assert_throttled(response)
    # Another IP still gets through.
    assert _token(client, "guess-other-ip", ip="10.0.0.8").status_code == 401


@override_settings(THROTTLE_RATES=LOW)
def test_throttle_window_passes(db):
    client = APIClient()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(3):
            _token(client, "windowed")
        _assert_throttled(_token(client, "windowed"))
        traveller.shift(timedelta(seconds=61))
        assert _token(client, "windowed").status_code == 401


@override_settings(THROTTLE_RATES=LOW)
def test_checkout_is_throttled_per_user(db, client_for):
    user = UserFactory()
    product = ProductFactory(on_hand=100)
    client = client_for(user)
    for n in range(2):
        cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=1)
        response = client.post(
            "/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY=f"k{n}"
        )
        assert response.status_code == 201, response.content
    cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=1)
    throttled = client.post(
        "/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY="k-third"
    )
    _assert_throttled(throttled)
    # The refused request left no trace: no third order.
    assert user.orders.count() == 2
    # Another customer (same IP, under the IP rate) is not throttled.
    other = UserFactory()
    cart_add_item(cart=cart_get_or_create(user=other), sku=product.sku, quantity=1)
    response = client_for(other).post(
        "/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY="k-other"
    )
    assert response.status_code == 201


@override_settings(THROTTLE_RATES=LOW)
def test_payments_are_throttled_per_user(db, client_for):
    from common.tests.helpers import place_order

    user = UserFactory()
    order = place_order(user=user)
    client = client_for(user)
    url = f"/api/v1/orders/{order.pk}/payments/"
    for n in range(2):
        response = client.post(url, {"payment_method": "pm_card_declined"}, format="json", HTTP_IDEMPOTENCY_KEY=f"p{n}")
        assert response.status_code in {201, 409}, response.content
    _assert_throttled(client.post(url, {"payment_method": "pm_card_success"}, format="json", HTTP_IDEMPOTENCY_KEY="p"))
    assert client.get(url).status_code == 200  # reads are not limited


@override_settings(THROTTLE_RATES=LOW)
def test_webhook_endpoint_is_throttled_per_ip(db):
    client = APIClient()
    for _ in range(3):
        response = client.post("/api/v1/webhooks/payments/", b"{}", content_type="application/json")
        assert response.status_code != 429
    _assert_throttled(client.post("/api/v1/webhooks/payments/", b"{}", content_type="application/json"))


def _caller(user: int, ip: int) -> SimpleNamespace:
    return SimpleNamespace(user=SimpleNamespace(pk=user, is_authenticated=True), META={"REMOTE_ADDR": f"10.1.0.{ip}"})


@override_settings(THROTTLE_RATES=LOW)
@settings(max_examples=40, deadline=None)
@given(calls=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=14))
def test_one_redis_round_trip_decides_as_drfs_two_throttles(calls):
    """Both windows of a request (per user 2/min, per IP 100/min; per IP 3/min on webhooks,
    anonymous there) in one Lua call refuse exactly what DRF's two throttles on their own
    counts refuse, with the same Retry-After."""
    from django.core.cache import cache
    from django.core.cache.backends.locmem import LocMemCache

    from common import throttles

    cache.clear()
    round_trips: list[int] = []
    real = throttles._window_script
    counting = mock.patch.object(
        throttles, "_window_script", lambda **kw: round_trips.append(len(kw["keys"])) or real(**kw)
    )
    reference_cache = LocMemCache(f"reference-{uuid.uuid4()}", {})
    for scope in ("checkout", "webhooks"):
        view = SimpleNamespace(throttle_scope=scope)
        for user, ip in calls:
            request = _caller(user, ip)
            if scope == "webhooks":
                request.user = SimpleNamespace(pk=None, is_authenticated=False)
            ours = throttles.ScopeRateThrottles()
            with counting:
                allowed = ours.allow_request(request, view)
            reference = [throttles.ClientRateThrottle(), throttles.IPRateThrottle()]
            waits = []
            for window in reference:
                window.cache = reference_cache
                window.configure(view)
                if not SimpleRateThrottle.allow_request(window, request, view):
                    waits.append(window.wait())
            assert allowed == (not waits)
            if waits:
                assert ours.wait() == pytest.approx(max(waits), abs=0.5)
    assert round_trips == [2] * (2 * len(calls))


# --- login lockout (django-axes) ----------------------------------------------------------

LOCKOUT = {"AXES_FAILURE_LIMIT": 3, "AXES_COOLOFF_TIME": timedelta(minutes=10)}


@override_settings(**LOCKOUT)
def test_storefront_login_locks_after_the_limit_and_unlocks_after_the_window(db, client):
    UserFactory(username="shopper-x")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(2):
            response = client.post("/accounts/login/", {"username": "shopper-x", "password": "nope"})
            assert response.status_code == 200  # the form again, with its error
        locked = client.post("/accounts/login/", {"username": "shopper-x", "password": "nope"})
        assert locked.status_code == 429
        assert b"Sign-in temporarily locked" in locked.content
        assert locked["Retry-After"] == "600"
        # Even the right password is refused while locked.
        refused = client.post("/accounts/login/", {"username": "shopper-x", "password": "pass-word-123"})
        assert refused.status_code == 429
        assert "_auth_user_id" not in client.session

        traveller.shift(timedelta(minutes=10, seconds=1))
        response = client.post("/accounts/login/", {"username": "shopper-x", "password": "pass-word-123"})
        assert response.status_code == 302
        assert client.session["_auth_user_id"]


@override_settings(**LOCKOUT)
def test_admin_login_locks_after_the_limit(db, client):
    StaffFactory(username="staff-x")
    for _ in range(3):
        response = client.post("/admin/login/", {"username": "staff-x", "password": "nope"})
    assert response.status_code == 429
    assert b"Sign-in temporarily locked" in response.content
    refused = client.post("/admin/login/", {"username": "staff-x", "password": "pass-word-123"})
    assert refused.status_code == 429


@override_settings(**LOCKOUT)
def test_token_endpoint_locks_and_unlocks(db):
    UserFactory(username="api-user")
    client = APIClient()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(2):
            assert _token(client, "api-user").status_code == 401
        locked = _token(client, "api-user")
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "locked_out"
        assert locked["Retry-After"] == "600"
        still = _token(client, "api-user", password="pass-word-123")
        assert still.status_code == 429
        assert still.json()["error"]["code"] == "locked_out"
        # Locking is per (username, IP): the same username from another IP is not locked.
        assert _token(client, "api-user", password="pass-word-123", ip="10.9.9.9").status_code == 200

        traveller.shift(timedelta(minutes=10, seconds=1))
        response = _token(client, "api-user", password="pass-word-123")
        assert response.status_code == 200
        assert response.json()["token"]
