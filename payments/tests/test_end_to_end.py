"""End to end with a real Celery worker process: the simulated provider's task delivers
signed webhooks over real HTTP to the live server; the worker also numbers the invoice."""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order, wait_until
from conftest import api_token_for
from inventory.models import Reservation, ReservationStatus, Stock
from invoicing.models import Invoice, InvoiceStatus
from orders.models import Order, OrderStatus
from orders.services import orders_expire_unpaid
from payments.models import PaymentAttempt, PaymentStatus, WebhookEvent
from payments.providers.simulated import DECLINED_REASON
from payments.tests.conftest import SLOW_S

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_settled")]

TIMEOUT_S = 30


def _pay(order: Order, payment_method: str, key: str) -> PaymentAttempt:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(order.user)}")
    response = client.post(
        f"/api/v1/orders/{order.pk}/payments/",
        {"payment_method": payment_method},
        format="json",
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.content
    return PaymentAttempt.objects.get(pk=response.json()["id"])


def _status(model, pk) -> str:  # type: ignore[no-untyped-def]
    return model.objects.filter(pk=pk).values_list("status", flat=True).get()


def _reservations(order: Order) -> set[str]:
    return set(Reservation.objects.filter(order_line__order=order).values_list("status", flat=True))


def test_pm_card_success_pays_the_order_commits_stock_and_numbers_the_invoice(payments_worker, relay_up):
    product = ProductFactory(on_hand=5)
    order = place_order(user=UserFactory(), product=product, quantity=2)

    attempt = _pay(order, "pm_card_success", "e2e-success")

    wait_until(lambda: _status(Order, order.pk) == OrderStatus.PAID, timeout=TIMEOUT_S, message="order paid")
    wait_until(
        lambda: Invoice.objects.filter(order=order, status=InvoiceStatus.ISSUED).exists(),
        timeout=TIMEOUT_S,
        message="invoice numbered",
    )
    assert connection.vendor == "postgresql"
    attempt.refresh_from_db()
    assert attempt.status == PaymentStatus.SUCCEEDED
    assert attempt.refund_required is False
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (3, 0)
    assert _reservations(order) == {ReservationStatus.COMMITTED}
    invoice = Invoice.objects.get(order=order)
    assert invoice.number is not None
    assert list(Invoice.objects.order_by("number").values_list("number", flat=True)) == [1]
    received = WebhookEvent.objects.filter(attempt=attempt).order_by("received_at")
    # A card settles at once: one webhook, no `processing` first (as a real provider).
    wait_until(lambda: received.count() == 1, timeout=TIMEOUT_S, message="the webhook recorded")
    events = list(received.values_list("event_type", "changed_state"))
    assert events == [("payment.succeeded", True)]
    assert relay_up.refused == 0


def test_pm_card_declined_leaves_the_order_payable_with_stock_reserved(payments_worker, relay_up):
    product = ProductFactory(on_hand=5)
    order = place_order(user=UserFactory(), product=product, quantity=2)

    declined = _pay(order, "pm_card_declined", "e2e-declined")

    wait_until(lambda: _status(PaymentAttempt, declined.pk) == PaymentStatus.FAILED, timeout=TIMEOUT_S)
    declined.refresh_from_db()
    assert declined.failure_reason == DECLINED_REASON
    assert _status(Order, order.pk) == OrderStatus.PENDING_PAYMENT
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (5, 2)
    assert _reservations(order) == {ReservationStatus.ACTIVE}
    assert not Invoice.objects.filter(order=order).exists()

    # Payable again while reserved: a second attempt with a good card pays it.
    _pay(order, "pm_card_success", "e2e-declined-retry")
    wait_until(lambda: _status(Order, order.pk) == OrderStatus.PAID, timeout=TIMEOUT_S, message="paid on retry")
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (3, 0)
    assert PaymentAttempt.objects.filter(order=order).count() == 2


def test_a_reservation_expires_only_when_no_attempt_is_processing(payments_worker, relay_up):
    product = ProductFactory(on_hand=10)
    slow_order = place_order(user=UserFactory(), product=product, quantity=1)
    declined_order = place_order(user=UserFactory(), product=product, quantity=2)
    slow = _pay(slow_order, "pm_card_slow", "e2e-slow")
    declined = _pay(declined_order, "pm_card_declined", "e2e-expiry-declined")
    # Both reservations run out while the payments are under way.
    Order.objects.filter(pk__in=[slow_order.pk, declined_order.pk]).update(reservation_expires_at=slow.created_at)
    wait_until(lambda: _status(PaymentAttempt, declined.pk) == PaymentStatus.FAILED, timeout=TIMEOUT_S)
    assert _status(PaymentAttempt, slow.pk) == PaymentStatus.PROCESSING  # succeeds after SLOW_S

    assert orders_expire_unpaid() == 1

    assert _status(Order, declined_order.pk) == OrderStatus.CANCELLED
    assert _reservations(declined_order) == {ReservationStatus.RELEASED}
    assert _status(Order, slow_order.pk) == OrderStatus.PENDING_PAYMENT
    assert _reservations(slow_order) == {ReservationStatus.ACTIVE}
    assert Stock.objects.get(product=product).reserved == 1

    wait_until(lambda: _status(Order, slow_order.pk) == OrderStatus.PAID, timeout=SLOW_S + TIMEOUT_S)
    assert orders_expire_unpaid() == 0
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (9, 0)
    assert _reservations(slow_order) == {ReservationStatus.COMMITTED}


def test_webhooks_are_retried_until_the_endpoint_is_back(payments_worker, relay_up):
    order = place_order(user=UserFactory(), product=ProductFactory(on_hand=3))
    relay_up.down = True
    refused_before = relay_up.refused

    attempt = _pay(order, "pm_card_success", "e2e-outage")
    wait_until(lambda: relay_up.refused >= refused_before + 3, timeout=TIMEOUT_S, message="deliveries refused")
    assert _status(PaymentAttempt, attempt.pk) == PaymentStatus.PROCESSING
    assert not WebhookEvent.objects.filter(attempt=attempt).exists()  # a 503 from the endpoint stores nothing

    relay_up.down = False
    wait_until(lambda: _status(Order, order.pk) == OrderStatus.PAID, timeout=TIMEOUT_S, message="paid after outage")
    assert _status(PaymentAttempt, attempt.pk) == PaymentStatus.SUCCEEDED
    assert "retry in" in payments_worker.log()
