"""POST /api/v1/orders/{id}/payments/: the Idempotency-Key rules and one attempt per
logical request, including under real concurrency on PostgreSQL."""

import uuid
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from common.models import IdempotencyKey
from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order, run_in_threads
from conftest import api_token_for
from flows.order_paid import order_place_paid
from outbox.models import OutboxEvent
from payments.models import PaymentAttempt, PaymentStatus
from payments.tasks import simulated_deliver

ATTEMPT_FIELDS = {"id", "order_id", "amount", "currency", "status", "provider", "provider_reference",
                  "failure_reason", "redirect_url"}  # fmt: skip


def _url(order) -> str:
    return f"/api/v1/orders/{order.pk}/payments/"


def _post(client, order, body=None, key: str | None = "key-1"):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(_url(order), body if body is not None else {"payment_method": "pm_card_success"},
                       format="json", headers=headers)  # fmt: skip


@pytest.fixture(autouse=True)
def _no_provider_calls(monkeypatch):
    """The provider's Celery task is not run in these tests (the end-to-end tests run it)."""
    monkeypatch.setattr(simulated_deliver, "delay", lambda **kwargs: None)


@pytest.fixture
def order(user):
    return place_order(user=user)


@pytest.mark.django_db
def test_missing_idempotency_key_is_400_and_creates_nothing(shopper_client, order):
    response = _post(shopper_client, order, key=None)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_missing"
    assert not PaymentAttempt.objects.exists()


@pytest.mark.django_db
def test_create_returns_201_with_the_attempt(shopper_client, order):
    response = _post(shopper_client, order)

    assert response.status_code == 201, response.content
    body = response.json()
    attempt = PaymentAttempt.objects.get()
    assert set(body) >= ATTEMPT_FIELDS
    assert {k: body[k] for k in ATTEMPT_FIELDS} == {
        "id": attempt.pk,
        "order_id": order.pk,
        "amount": str(order.total),
        "currency": "EUR",
        "status": "processing",
        "provider": "simulated",
        "provider_reference": attempt.provider_reference,
        "failure_reason": None,
        "redirect_url": None,
    }
    assert response.get("Idempotent-Replayed") is None


@pytest.mark.django_db
def test_without_a_method_the_attempt_links_to_the_hosted_page(shopper_client, order):
    response = _post(shopper_client, order, body={})

    assert response.status_code == 201, response.content
    attempt = PaymentAttempt.objects.get()
    assert response.json()["redirect_url"] == f"http://testserver/payments/simulated/{attempt.provider_reference}/"


@pytest.mark.django_db
def test_replay_returns_the_stored_response_and_creates_nothing_more(shopper_client, order):
    first = _post(shopper_client, order)
    second = _post(shopper_client, order)

    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert PaymentAttempt.objects.count() == 1
    assert OutboxEvent.objects.filter(event_type="payment.created").count() == 1


@pytest.mark.django_db
def test_same_key_with_a_different_body_is_422(shopper_client, order):
    _post(shopper_client, order)
    response = _post(shopper_client, order, body={"payment_method": "pm_card_declined"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_mismatch"
    assert PaymentAttempt.objects.get().payment_method == "pm_card_success"


@pytest.mark.django_db
def test_another_customers_order_is_404_and_stores_nothing(client_for, order):
    stranger = client_for(UserFactory())
    response = _post(stranger, order)

    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert str(order.total) not in response.content.decode()
    assert not PaymentAttempt.objects.exists()


@pytest.mark.django_db
def test_anonymous_is_401(api_client, order):
    assert _post(api_client, order).status_code == 401
    assert not PaymentAttempt.objects.exists()


@pytest.mark.django_db
def test_a_paid_order_is_409_illegal_transition(shopper_client, order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)

    response = _post(shopper_client, order)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "illegal_transition"
    assert not PaymentAttempt.objects.exists()


@pytest.mark.django_db
def test_a_second_payment_while_one_processes_is_409(shopper_client, order):
    _post(shopper_client, order, key="a")
    response = _post(shopper_client, order, key="b")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_in_progress"
    assert PaymentAttempt.objects.count() == 1


@pytest.mark.django_db
def test_unknown_method_is_400_and_the_key_can_be_reused(shopper_client, order):
    refused = _post(shopper_client, order, body={"payment_method": "pm_card_platinum"})
    assert refused.status_code == 400
    assert "payment_method" in refused.json()["error"]["details"]
    assert not PaymentAttempt.objects.exists()

    corrected = _post(shopper_client, order, body={"payment_method": "pm_card_success"})
    assert corrected.status_code == 201


@pytest.mark.django_db
def test_list_shows_the_orders_attempts_to_its_owner_only(shopper_client, client_for, order):
    _post(shopper_client, order)

    mine = shopper_client.get(_url(order))
    assert mine.status_code == 200
    assert [a["order_id"] for a in mine.json()] == [order.pk]
    assert client_for(UserFactory()).get(_url(order)).status_code == 404


# --- Concurrency: real threads, real connections, PostgreSQL ----------------------------------


def _client(token: str) -> APIClient:
    """A client of its own per thread (clients keep cookies); the token is made beforehand."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_with_one_key_make_one_attempt():
    user = UserFactory()
    order = place_order(user=user, product=ProductFactory(on_hand=5))
    token = api_token_for(user)

    def pay(_: int):
        response = _post(_client(token), order, key="same-key")
        return response.status_code, response.json()

    outcomes = run_in_threads(pay, 20)

    assert connection.vendor == "postgresql"
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    statuses = Counter(status for status, _ in outcomes)
    assert set(statuses) <= {201, 409}, statuses
    assert statuses[201] >= 1
    conflicts = {body["error"]["code"] for status, body in outcomes if status == 409}
    assert conflicts <= {"idempotency_in_progress"}
    attempt = PaymentAttempt.objects.get()  # exactly one
    assert {body["id"] for status, body in outcomes if status == 201} == {attempt.pk}
    assert IdempotencyKey.objects.get(key="same-key").response_body["id"] == attempt.pk
    assert OutboxEvent.objects.filter(event_type="payment.created").count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_with_different_keys_make_at_most_one_processing_attempt():
    user = UserFactory()
    order = place_order(user=user, product=ProductFactory(on_hand=5))
    token = api_token_for(user)

    def pay(i: int):
        response = _post(_client(token), order, key=f"key-{i}-{uuid.uuid4().hex}")
        return response.status_code, response.json()

    outcomes = run_in_threads(pay, 20)

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    statuses = Counter(status for status, _ in outcomes)
    assert statuses == {201: 1, 409: 19}, statuses
    assert {body["error"]["code"] for status, body in outcomes if status == 409} == {"payment_in_progress"}
    assert PaymentAttempt.objects.filter(order=order, status=PaymentStatus.PROCESSING).count() == 1
    assert PaymentAttempt.objects.count() == 1
    assert OutboxEvent.objects.filter(event_type="payment.created").count() == 1
