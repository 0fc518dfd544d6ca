"""The Idempotency-Key mechanism (common/idempotency.py), driven through the checkout API."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from rest_framework.test import APIClient

from common.idempotency import idempotency_fingerprint, idempotency_keys_purge, idempotency_owner
from common.models import IdempotencyKey
from common.tasks import purge_idempotency_keys
from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import ADDRESS, run_in_threads
from conftest import api_token_for
from inventory.models import Stock
from orders.models import Order
from orders.services import cart_add_item, cart_get_or_create

pytestmark = pytest.mark.django_db

CHECKOUT = "/api/v1/checkout/"
BODY = {"shipping_address": ADDRESS}
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _fill_cart(user, product=None, quantity=1):
    product = product or ProductFactory(on_hand=100)
    cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=quantity)
    return product


def _checkout(client, body=BODY, key="key-1", **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(CHECKOUT, body, format="json", **headers, **extra)


def test_same_key_twice_replays_the_first_response_and_places_one_order(shopper_client, user):
    _fill_cart(user)

    first = _checkout(shopper_client)
    second = _checkout(shopper_client)

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Order.objects.count() == 1
    assert first.json()["id"] == Order.objects.get().pk
    record = IdempotencyKey.objects.get()
    assert (record.owner, record.scope, record.key, record.status, record.response_status) == (
        f"user:{user.pk}", "checkout", "key-1", "completed", 201,
    )  # fmt: skip


def test_replay_does_not_depend_on_json_key_order(shopper_client, user):
    _fill_cart(user)
    address_reordered = dict(reversed(list(ADDRESS.items())))

    first = shopper_client.post(
        CHECKOUT, json.dumps({"shipping_address": ADDRESS}), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )
    second = shopper_client.post(
        CHECKOUT,
        json.dumps({"shipping_address": address_reordered}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


def test_same_key_with_a_different_body_is_422_and_changes_nothing(shopper_client, user):
    _fill_cart(user)
    first = _checkout(shopper_client)
    _fill_cart(user)

    response = _checkout(shopper_client, {"shipping_address": {**ADDRESS, "city": "Lyon"}})

    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "idempotency_mismatch",
            "message": "This Idempotency-Key was already used with a different request.",
            "details": {"idempotency_key": "key-1"},
        }
    }
    assert Order.objects.count() == 1
    assert IdempotencyKey.objects.get().response_body == first.json()


@pytest.mark.parametrize("key", [None, ""])
def test_missing_key_is_400_and_changes_nothing(shopper_client, user, key):
    product = _fill_cart(user)

    response = _checkout(shopper_client, key=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_missing"
    assert "Idempotency-Key" in response.json()["error"]["message"]
    assert Order.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0
    assert Stock.objects.get(product=product).reserved == 0


def test_overlong_key_is_400_invalid(shopper_client, user):
    _fill_cart(user)

    response = _checkout(shopper_client, key="k" * 256)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_invalid"
    assert Order.objects.count() == IdempotencyKey.objects.count() == 0


def test_same_key_while_the_first_request_runs_is_409(shopper_client, user):
    _fill_cart(user)
    IdempotencyKey.objects.create(
        owner=f"user:{user.pk}",
        scope="checkout",
        key="key-1",
        fingerprint=idempotency_fingerprint(method="POST", path=CHECKOUT, payload=BODY),
        created_at=datetime.now(UTC),
        expires_at=datetime.now(UTC) + timedelta(hours=24),
    )

    response = _checkout(shopper_client)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_progress"
    assert Order.objects.count() == 0
    assert IdempotencyKey.objects.get().status == "in_progress"


def test_keys_are_scoped_per_user(client_for):
    ada, bob = UserFactory(), UserFactory()
    _fill_cart(ada)
    _fill_cart(bob)

    first = _checkout(client_for(ada), key="shared-key")
    second = _checkout(client_for(bob), key="shared-key")

    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert sorted(Order.objects.values_list("user_id", flat=True)) == sorted([ada.pk, bob.pk])


def test_a_domain_refusal_is_stored_and_replayed(shopper_client, user):
    product = _fill_cart(user, ProductFactory(on_hand=1))
    Stock.objects.filter(product=product).update(on_hand=0)
    refused = _checkout(shopper_client)
    Stock.objects.filter(product=product).update(on_hand=5)

    replayed = _checkout(shopper_client)

    assert refused.status_code == replayed.status_code == 409
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == refused.json()
    assert refused.json()["error"]["code"] == "insufficient_stock"
    assert Order.objects.count() == 0


def test_a_validation_error_is_not_stored_so_a_corrected_retry_runs(shopper_client, user):
    _fill_cart(user)

    invalid = _checkout(shopper_client, {"shipping_address": {"name": "only a name"}})
    assert IdempotencyKey.objects.count() == 0
    corrected = _checkout(shopper_client)

    assert (invalid.status_code, corrected.status_code) == (400, 201)
    assert "Idempotent-Replayed" not in corrected.headers
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_place_one_order():
    user = UserFactory()
    _fill_cart(user)
    token = api_token_for(user)

    def checkout(_: int) -> tuple[int, str, int | None]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = _checkout(client, key="double-click")
        body = response.json()
        if response.status_code == 201:
            replayed = "replay" if response.headers.get("Idempotent-Replayed") == "true" else "first"
            return 201, replayed, body["id"]
        return response.status_code, body["error"]["code"], None

    outcomes = run_in_threads(checkout, 12)

    order = Order.objects.get()  # exactly one
    firsts = [o for o in outcomes if o[:2] == (201, "first")]
    others = Counter(o for o in outcomes if o[:2] != (201, "first"))
    assert firsts == [(201, "first", order.pk)]
    assert set(others) <= {(409, "idempotency_in_progress", None), (201, "replay", order.pk)}, outcomes
    assert sum(others.values()) == 11
    assert IdempotencyKey.objects.get().status == "completed"


def test_expired_keys_are_purged_and_fresh_ones_kept(shopper_client, user):
    _fill_cart(user)
    with time_machine.travel(T0, tick=False):
        _checkout(shopper_client, key="old")
    _fill_cart(user)
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        _checkout(shopper_client, key="younger")

    with time_machine.travel(T0 + timedelta(hours=24, seconds=1), tick=False):
        purged = idempotency_keys_purge()

    assert purged == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["younger"]
    assert Order.objects.count() == 2  # purging keys never touches what they produced


def test_purge_task_deletes_expired_keys(shopper_client, user):
    _fill_cart(user)
    with time_machine.travel(T0, tick=False):
        _checkout(shopper_client, key="old")

    with time_machine.travel(T0 + timedelta(hours=23, minutes=59), tick=False):
        kept = purge_idempotency_keys.apply().get()
    with time_machine.travel(T0 + timedelta(hours=24), tick=False):
        purged = purge_idempotency_keys.apply().get()

    assert (kept, purged) == (0, 1)
    assert IdempotencyKey.objects.count() == 0


def test_an_expired_key_no_longer_replays(shopper_client, user):
    _fill_cart(user)
    with time_machine.travel(T0, tick=False):
        first = _checkout(shopper_client)
    _fill_cart(user)

    with time_machine.travel(T0 + timedelta(hours=25), tick=False):
        second = _checkout(shopper_client)

    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert Order.objects.count() == 2
    assert IdempotencyKey.objects.count() == 1


def test_anonymous_keys_belong_to_the_browser_session():
    request = RequestFactory().post(CHECKOUT)
    request.user = AnonymousUser()
    request.session = SessionStore()

    owner = idempotency_owner(request=request)

    assert owner == f"session:{request.session.session_key}"
    assert request.session.session_key is not None


# --- the stored answer commits with the change --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_change_and_its_stored_answer_commit_together(client_for, monkeypatch):
    """If storing the answer fails, the change is rolled back with it and the key released:
    a retry with the same key then makes exactly one order (never an order without an
    answer to replay, which a retry would turn into `cart_empty`)."""
    import common.idempotency as idempotency
    from common.tests.factories import ProductFactory, UserFactory
    from common.tests.helpers import ADDRESS
    from orders.models import Order
    from orders.services import cart_add_item, cart_get_or_create

    user = UserFactory()
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=5).sku, quantity=1)
    api = client_for(user)
    real_complete = idempotency.idempotency_complete

    def lost(**kwargs):
        raise RuntimeError("the process died while storing the answer")

    monkeypatch.setattr(idempotency, "idempotency_complete", lost)
    with pytest.raises(RuntimeError):
        api.post("/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY="together")
    assert not Order.objects.filter(user=user).exists()

    monkeypatch.setattr(idempotency, "idempotency_complete", real_complete)
    retry = api.post("/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY="together")
    again = api.post("/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY="together")
    assert retry.status_code == 201
    assert (again.status_code, again["Idempotent-Replayed"], again.json()["id"]) == (201, "true", retry.json()["id"])
    assert Order.objects.filter(user=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_claim_left_by_a_request_that_died_is_taken_over(client_for):
    """A request that died before its commit changed nothing but left its claim: once the
    claim is stale, the retry runs (before, it answered 409 in progress for a day)."""
    from datetime import timedelta

    from django.utils import timezone

    from common.models import IdempotencyKey
    from common.tests.factories import ProductFactory, UserFactory
    from common.tests.helpers import ADDRESS
    from orders.services import cart_add_item, cart_get_or_create

    user = UserFactory()
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=5).sku, quantity=1)
    api = client_for(user)
    body = {"shipping_address": ADDRESS}
    first = api.post("/api/v1/checkout/", body, format="json", HTTP_IDEMPOTENCY_KEY="probe")  # learn the row's shape
    record = IdempotencyKey.objects.get(key="probe")
    IdempotencyKey.objects.create(
        owner=record.owner, scope=record.scope, key="died", fingerprint=record.fingerprint,
        created_at=timezone.now() - timedelta(seconds=30), expires_at=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=5).sku, quantity=1)
    recent = api.post("/api/v1/checkout/", body, format="json", HTTP_IDEMPOTENCY_KEY="died")
    assert (recent.status_code, recent.json()["error"]["code"]) == (409, "idempotency_in_progress")

    IdempotencyKey.objects.filter(key="died").update(created_at=timezone.now() - timedelta(minutes=5))
    taken = api.post("/api/v1/checkout/", body, format="json", HTTP_IDEMPOTENCY_KEY="died")
    assert first.status_code == 201
    assert taken.status_code == 201, taken.content
    assert IdempotencyKey.objects.get(key="died").status == IdempotencyKey.Status.COMPLETED
