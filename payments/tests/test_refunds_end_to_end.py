"""Refunds end to end over HTTP with a real Celery worker: the shop's API creates the
refund, the simulated provider's task delivers its signed refund webhooks over real HTTP to
the live server, the refund-succeeded flow restocks, moves the order and issues the credit
note (numbered by the same worker)."""

import pytest
from rest_framework.test import APIClient

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order, wait_until
from conftest import api_token_for
from inventory.models import Stock
from invoicing.models import CreditNote
from orders.models import Order, OrderStatus
from payments.models import DeliveryStatus, PaymentAttempt, Refund, RefundStatus, SimulatedDelivery, WebhookEvent

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_settled")]

TIMEOUT_S = 30


def _client(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(user)}")
    return client


def _paid(product, quantity: int, method: str) -> Order:  # type: ignore[no-untyped-def]
    order = place_order(user=UserFactory(), product=product, quantity=quantity)
    response = _client(order.user).post(
        f"/api/v1/orders/{order.pk}/payments/",
        {"payment_method": method},
        format="json",
        headers={"Idempotency-Key": f"pay-{order.pk}"},
    )
    assert response.status_code == 201, response.content
    wait_until(lambda: Order.objects.get(pk=order.pk).status == OrderStatus.PAID, timeout=TIMEOUT_S, message="paid")
    return order


def _settled(refund_id: int) -> bool:
    deliveries = SimulatedDelivery.objects.filter(refund_id=refund_id)
    return deliveries.exists() and not deliveries.exclude(status=DeliveryStatus.DELIVERED).exists()


def test_refund_over_http_is_settled_by_the_providers_webhook_restocked_and_credited(payments_worker, relay_up):
    product = ProductFactory(on_hand=6)
    order = _paid(product, 3, "pm_card_success")
    assert Stock.objects.get(product=product).on_hand == 3
    staff = _client(StaffFactory())

    response = staff.post(
        f"/api/v1/orders/{order.pk}/refunds/",
        {"lines": [{"sku": product.sku, "quantity": 2}], "reason": "two arrived broken", "restock": True},
        format="json",
        headers={"Idempotency-Key": "e2e-refund-1"},
    )

    assert response.status_code == 201, response.content
    refund_id = response.json()["id"]
    wait_until(
        lambda: Refund.objects.get(pk=refund_id).status == RefundStatus.SUCCEEDED,
        timeout=TIMEOUT_S,
        message="refund succeeded by webhook",
    )
    wait_until(lambda: _settled(refund_id), timeout=TIMEOUT_S, message="refund deliveries done")
    refund = Refund.objects.get(pk=refund_id)
    assert refund.submitted_at is not None
    assert Stock.objects.get(product=product).on_hand == 5
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PARTIALLY_REFUNDED
    events = list(WebhookEvent.objects.filter(refund=refund).values_list("event_type", "changed_state"))
    assert events == [("refund.succeeded", True)]
    wait_until(
        lambda: CreditNote.objects.filter(refund=refund, status="issued").exists(),
        timeout=TIMEOUT_S,
        message="credit note numbered",
    )
    listed = staff.get(f"/api/v1/orders/{order.pk}/refunds/").json()
    assert listed[0]["credit_note"]["status"] == "issued"

    # The rest, amount-only: the order is refunded, to the cent.
    rest = staff.post(
        f"/api/v1/orders/{order.pk}/refunds/",
        {"reason": "the rest", "restock": False},
        format="json",
        headers={"Idempotency-Key": "e2e-refund-2"},
    )
    assert rest.status_code == 201, rest.content
    wait_until(
        lambda: Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED, timeout=TIMEOUT_S, message="refunded"
    )
    wait_until(lambda: _settled(rest.json()["id"]), timeout=TIMEOUT_S, message="second refund's deliveries done")
    given = sum(r.amount for r in Refund.objects.filter(order=order, status=RefundStatus.SUCCEEDED))
    assert given == order.total
    assert Stock.objects.get(product=product).on_hand == 5  # restock was for the first refund only


def test_flaky_refund_webhooks_arrive_three_times_and_change_state_once(payments_worker, relay_up):
    product = ProductFactory(on_hand=4)
    order = _paid(product, 1, "pm_card_refund_flaky")
    staff = _client(StaffFactory())

    response = staff.post(
        f"/api/v1/orders/{order.pk}/refunds/",
        {"reason": "all", "restock": True},
        format="json",
        headers={"Idempotency-Key": "e2e-flaky"},
    )
    refund_id = response.json()["id"]

    wait_until(lambda: _settled(refund_id), timeout=TIMEOUT_S, message="three deliveries done")
    assert SimulatedDelivery.objects.filter(refund_id=refund_id).count() == 3
    refund = Refund.objects.get(pk=refund_id)
    assert refund.status == RefundStatus.SUCCEEDED
    records = list(WebhookEvent.objects.filter(refund=refund).order_by("id").values_list("event_type", "changed_state"))
    assert records == [("refund.succeeded", True), ("refund.failed", False)]  # the repeat was a duplicate id
    assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED
    assert Stock.objects.get(product=product).on_hand == 4
    assert CreditNote.objects.filter(refund=refund).count() == 1


def test_a_refund_the_provider_declines_fails_and_changes_nothing_else(payments_worker, relay_up):
    product = ProductFactory(on_hand=4)
    order = _paid(product, 2, "pm_card_refund_fails")
    attempt = PaymentAttempt.objects.get(order=order)

    response = _client(StaffFactory()).post(
        f"/api/v1/orders/{order.pk}/cancel/", {"reason": "customer asked"}, format="json"
    )

    assert response.status_code == 200, response.content
    refund = Refund.objects.get(order=order)
    wait_until(lambda: _settled(refund.pk), timeout=TIMEOUT_S, message="refund delivery done")
    refund.refresh_from_db()
    assert (refund.status, refund.attempt_id) == (RefundStatus.FAILED, attempt.pk)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert Stock.objects.get(product=product).on_hand == 2
    assert not CreditNote.objects.filter(refund=refund).exists()
