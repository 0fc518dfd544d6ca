"""POST /api/v1/webhooks/payments/ with real Standard Webhooks signatures: refusals store
nothing, every event changes state at most once, attempts only move forward, and an order
is paid exactly once."""

import json
import queue
import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order, run_in_threads
from flows.order_paid import order_place_paid
from inventory.models import Reservation, Stock
from invoicing.models import Invoice
from orders.models import Order, OrderStatus, OrderStatusChange
from orders.services import order_cancel
from outbox.models import OutboxEvent
from payments.models import FailureCode, PaymentAttempt, PaymentStatus, WebhookEvent
from payments.providers.base import json_body
from payments.providers.simulated import simulated_event, simulated_script, webhook_deliver
from payments.services import payment_attempts_fail_stale
from payments.tasks import simulated_deliver
from payments.tests.helpers import WEBHOOK_PATH, attempt_for, event_body, post_webhook, signed_headers


@pytest.fixture(autouse=True)
def _no_provider_calls(monkeypatch):
    monkeypatch.setattr(simulated_deliver, "delay", lambda **kwargs: None)


def snapshot(order: Order) -> dict:
    """Everything a webhook could change, for before/after comparisons."""
    return {
        "order": Order.objects.get(pk=order.pk).status,
        "attempts": list(
            PaymentAttempt.objects.filter(order=order)
            .order_by("id")
            .values_list("status", "failure_code", "failure_reason", "refund_required", "completed_at")
        ),
        "outbox": sorted(OutboxEvent.objects.values_list("event_type", flat=True)),
        "invoices": Invoice.objects.filter(order=order).count(),
        "stock": list(Stock.objects.order_by("product_id").values_list("product_id", "on_hand", "reserved")),
        "reservations": list(Reservation.objects.order_by("id").values_list("status", flat=True)),
        "status_changes": OrderStatusChange.objects.filter(order=order).count(),
        "webhook_events": WebhookEvent.objects.count(),
    }


@pytest.fixture
def order(db):
    return place_order(product=ProductFactory(on_hand=10), quantity=2)


@pytest.fixture
def attempt(order):
    return attempt_for(order)


# --- Refused deliveries: 400, nothing stored, nothing changed ------------------------------------


def _assert_refused(response, before: dict, order: Order) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "webhook_signature_invalid"
    assert snapshot(order) == before
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_bad_signature_is_refused(client, order, attempt):
    before = snapshot(order)
    body = event_body(attempt, "payment.succeeded")

    response = post_webhook(client, body, secret="whsec_" + "c29tZW9uZS1lbHNlcy1zZWNyZXQ=")

    _assert_refused(response, before, order)


@pytest.mark.django_db
@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_stale_or_future_timestamp_is_refused(client, order, attempt, skew):
    before = snapshot(order)
    body = event_body(attempt, "payment.succeeded")

    response = post_webhook(client, body, timestamp=datetime.now(UTC) + skew)

    _assert_refused(response, before, order)


@pytest.mark.django_db
def test_a_timestamp_within_tolerance_is_accepted(client, order, attempt):
    response = post_webhook(
        client, event_body(attempt, "payment.succeeded"), timestamp=datetime.now(UTC) - timedelta(minutes=4)
    )

    assert response.status_code == 200
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_a_tampered_body_is_refused(client, order, attempt):
    before = snapshot(order)
    raw = json.dumps(event_body(attempt, "payment.failed", failure_reason="Your card was declined."))
    headers = signed_headers(raw, msg_id="msg_tampered")
    tampered = raw.replace("payment.failed", "payment.succeeded")

    response = client.post(WEBHOOK_PATH, data=tampered, content_type="application/json", headers=headers)

    _assert_refused(response, before, order)


@pytest.mark.django_db
@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(client, order, attempt, drop):
    before = snapshot(order)
    raw = json.dumps(event_body(attempt, "payment.succeeded"))
    headers = signed_headers(raw, msg_id="msg_1")
    del headers[drop]

    response = client.post(WEBHOOK_PATH, data=raw, content_type="application/json", headers=headers)

    _assert_refused(response, before, order)


@pytest.mark.django_db
def test_a_garbled_signature_header_is_refused(client, order, attempt):
    before = snapshot(order)
    raw = json.dumps(event_body(attempt, "payment.succeeded"))
    headers = signed_headers(raw, msg_id="msg_1") | {"webhook-signature": "not-a-signature"}

    response = client.post(WEBHOOK_PATH, data=raw, content_type="application/json", headers=headers)

    _assert_refused(response, before, order)


@pytest.mark.django_db
def test_a_signed_event_of_an_unknown_shape_is_refused_and_not_stored(client, order, attempt):
    before = snapshot(order)
    body = event_body(attempt, "payment.refunded")

    response = post_webhook(client, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_payload_invalid"
    assert "type" in response.json()["error"]["details"]
    assert snapshot(order) == before


# --- Each event delivered 5 times changes state once ----------------------------------------------


@pytest.mark.django_db
def test_succeeded_delivered_five_times_pays_the_order_once(client, order, attempt):
    body = event_body(attempt, "payment.succeeded")

    responses = [post_webhook(client, body) for _ in range(5)]

    assert [r.status_code for r in responses] == [200] * 5
    assert [r.json()["duplicate"] for r in responses] == [False, True, True, True, True]
    assert responses[0].json()["changed_state"] is True
    attempt.refresh_from_db()
    assert attempt.status == PaymentStatus.SUCCEEDED
    assert attempt.refund_required is False
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert Invoice.objects.filter(order=order).count() == 1
    assert OutboxEvent.objects.filter(event_type="payment.succeeded").count() == 1
    assert OutboxEvent.objects.filter(event_type="order.paid").count() == 1
    assert list(Stock.objects.values_list("on_hand", "reserved")) == [(8, 0)]  # committed
    event = WebhookEvent.objects.get()
    assert (event.webhook_id, event.attempt_id, event.changed_state) == (body["id"], attempt.pk, True)
    assert event.signature_valid is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event_type", "changes"),
    [("payment.processing", False), ("payment.succeeded", True), ("payment.failed", True)],
)
def test_each_event_delivered_five_times_changes_state_at_most_once(client, order, attempt, event_type, changes):
    body = event_body(attempt, event_type, failure_reason="Your card was declined." if "failed" in event_type else None)
    before = snapshot(order)

    first = post_webhook(client, body)
    after_first = snapshot(order)
    again = [post_webhook(client, body) for _ in range(4)]

    assert first.status_code == 200
    assert first.json()["changed_state"] is changes
    assert (after_first["attempts"] != before["attempts"]) is changes
    assert [(r.status_code, r.json()["duplicate"], r.json()["changed_state"]) for r in again] == [
        (200, True, False)
    ] * 4
    assert snapshot(order) == after_first
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_processing_after_succeeded_changes_nothing(client, order, attempt):
    post_webhook(client, event_body(attempt, "payment.processing", event_id="evt_p1"))
    post_webhook(client, event_body(attempt, "payment.succeeded", event_id="evt_s"))
    before = snapshot(order)

    late = post_webhook(
        client,
        event_body(
            attempt, "payment.processing", event_id="evt_p2", created_at=datetime.now(UTC) - timedelta(seconds=30)
        ),
    )

    assert late.status_code == 200
    assert late.json() == {
        "received": True,
        "duplicate": False,
        "changed_state": False,
        "outcome": "attempt already succeeded; stale processing event ignored",
    }
    after = snapshot(order)
    assert after["webhook_events"] == before["webhook_events"] + 1  # recorded
    assert {k: v for k, v in after.items() if k != "webhook_events"} == {
        k: v for k, v in before.items() if k != "webhook_events"
    }
    assert WebhookEvent.objects.get(webhook_id="evt_p2").changed_state is False


@pytest.mark.django_db
def test_failed_after_succeeded_and_succeeded_after_failed_are_ignored(client, order, attempt):
    post_webhook(client, event_body(attempt, "payment.succeeded"))
    paid = snapshot(order)
    response = post_webhook(client, event_body(attempt, "payment.failed", failure_reason="late"))
    assert response.json()["changed_state"] is False
    assert snapshot(order)["attempts"] == paid["attempts"]
    assert snapshot(order)["order"] == OrderStatus.PAID

    other = place_order()
    declined = attempt_for(other, payment_method="pm_card_declined")
    post_webhook(client, event_body(declined, "payment.failed", failure_reason="Your card was declined."))
    response = post_webhook(client, event_body(declined, "payment.succeeded"))
    assert response.json()["changed_state"] is False
    declined.refresh_from_db()
    assert declined.status == PaymentStatus.FAILED
    assert declined.refund_required is False
    assert Order.objects.get(pk=other.pk).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db
def test_failed_keeps_the_order_payable_with_stock_reserved(client, order, attempt):
    response = post_webhook(client, event_body(attempt, "payment.failed", failure_reason="Your card was declined."))

    assert response.status_code == 200
    attempt.refresh_from_db()
    assert (attempt.status, attempt.failure_code, attempt.failure_reason) == (
        PaymentStatus.FAILED,
        FailureCode.PROVIDER,
        "Your card was declined.",
    )
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert list(Stock.objects.values_list("on_hand", "reserved")) == [(10, 2)]
    assert OutboxEvent.objects.filter(event_type="payment.failed").count() == 1
    assert not Invoice.objects.exists()
    assert attempt_for(order).status == PaymentStatus.PROCESSING  # the shopper may pay again


# --- Successes that must not be applied --------------------------------------------------------


@pytest.mark.django_db
def test_a_late_success_for_an_attempt_given_up_on_is_flagged_for_refund_not_applied_twice(client, order):
    first = attempt_for(order)
    PaymentAttempt.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=1))
    payment_attempts_fail_stale(timeout_s=60)
    second = attempt_for(order)
    post_webhook(client, event_body(second, "payment.succeeded"))

    late = post_webhook(client, event_body(first, "payment.succeeded"))

    assert late.json()["changed_state"] is True
    first.refresh_from_db()
    assert (first.status, first.failure_code, first.refund_required) == (
        PaymentStatus.FAILED,
        FailureCode.TIMEOUT,
        True,
    )
    assert first.refund_reason == "succeeded at the provider after the shop gave up waiting"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert Invoice.objects.filter(order=order).count() == 1
    assert OrderStatusChange.objects.filter(order=order, to_status=OrderStatus.PAID).count() == 1
    assert OutboxEvent.objects.filter(event_type="order.paid").count() == 1
    assert OutboxEvent.objects.filter(event_type="payment.refund_required").count() == 1


@pytest.mark.django_db
def test_success_for_an_order_already_paid_is_recorded_and_flagged_for_refund(
    client, order, attempt, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk, reason="paid by bank transfer")

    response = post_webhook(client, event_body(attempt, "payment.succeeded"))

    assert response.json()["changed_state"] is True
    attempt.refresh_from_db()
    assert (attempt.status, attempt.refund_required) == (PaymentStatus.SUCCEEDED, True)
    assert attempt.refund_reason == "order was already paid when this payment succeeded"
    assert Invoice.objects.filter(order=order).count() == 1
    assert OrderStatusChange.objects.filter(order=order, to_status=OrderStatus.PAID).count() == 1
    assert OutboxEvent.objects.filter(event_type="order.paid").count() == 1


@pytest.mark.django_db
def test_success_for_a_cancelled_order_never_resurrects_it(client, order, attempt):
    order_cancel(order_id=order.pk, reason="staff cancelled")
    released = list(Stock.objects.values_list("on_hand", "reserved"))

    response = post_webhook(client, event_body(attempt, "payment.succeeded"))

    assert response.status_code == 200
    attempt.refresh_from_db()
    assert (attempt.status, attempt.refund_required) == (PaymentStatus.SUCCEEDED, True)
    assert attempt.refund_reason == "order was already cancelled when this payment succeeded"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert list(Stock.objects.values_list("on_hand", "reserved")) == released == [(10, 0)]
    assert not Invoice.objects.exists()
    assert not OutboxEvent.objects.filter(event_type="order.paid").exists()


@pytest.mark.django_db
def test_a_success_for_another_amount_fails_the_attempt_and_asks_for_a_refund(client, order, attempt):
    response = post_webhook(client, event_body(attempt, "payment.succeeded", amount=Decimal("0.01")))

    assert response.json()["changed_state"] is True
    attempt.refresh_from_db()
    assert (attempt.status, attempt.failure_code, attempt.refund_required) == (
        PaymentStatus.FAILED,
        FailureCode.MISMATCH,
        True,
    )
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert not Invoice.objects.exists()


@pytest.mark.django_db
def test_an_event_for_an_unknown_reference_is_recorded_and_ignored(client, order, attempt):
    body = event_body(attempt, "payment.succeeded")
    body["data"]["provider_reference"] = "sim_pi_unknown"

    response = post_webhook(client, body)

    assert response.status_code == 200
    assert response.json()["changed_state"] is False
    assert WebhookEvent.objects.get().attempt_id is None
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


# --- Concurrency through the real HTTP endpoint -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_same_success_delivered_concurrently_pays_once(client):
    order = place_order(product=ProductFactory(on_hand=5))
    attempt = attempt_for(order)
    body = event_body(attempt, "payment.succeeded")

    def deliver(i: int):
        from django.test import Client

        # Half with the same webhook-id (a redelivery), half as new ids for the same event.
        same = i % 2 == 0
        return post_webhook(Client(), body if same else {**body, "id": f"{body['id']}-{i}"}).status_code

    outcomes = run_in_threads(deliver, 10)

    assert outcomes == [200] * 10
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert PaymentAttempt.objects.get().status == PaymentStatus.SUCCEEDED
    assert WebhookEvent.objects.count() == 6  # 1 shared id + 5 distinct ids
    assert WebhookEvent.objects.filter(changed_state=True).count() == 1
    assert Invoice.objects.count() == 1
    assert OutboxEvent.objects.filter(event_type="order.paid").count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_hundred_flaky_payments_end_paid_exactly_once_each(live_server):
    """pm_card_flaky's deliveries for 100 orders (the succeeded event twice with one
    webhook-id, a stale processing event after it), shuffled across all orders and sent
    by 8 concurrent senders over real HTTP with the provider's own signing code."""
    product = ProductFactory(on_hand=150)
    user = UserFactory()
    orders = [place_order(user=user, product=product) for _ in range(100)]
    attempts = [attempt_for(o, payment_method="pm_card_flaky") for o in orders]
    started_at = timezone.now()
    deliveries = [
        (event := simulated_event(attempt=a, script="pm_card_flaky", step=step, started_at=started_at))
        and (str(event["id"]), json_body(event))
        for a in attempts
        for step in range(len(simulated_script("pm_card_flaky")))
    ]
    assert len(deliveries) == 400
    random.Random(4).shuffle(deliveries)
    work: queue.Queue = queue.Queue()
    for item in deliveries:
        work.put(item)
    url = live_server.url + WEBHOOK_PATH
    failures: list[str] = []

    def sender() -> None:
        while True:
            try:
                msg_id, body = work.get_nowait()
            except queue.Empty:
                return
            try:
                webhook_deliver(url=url, msg_id=msg_id, body=body, timeout_s=30)
            except Exception as exc:  # collected and asserted below
                failures.append(f"{msg_id}: {exc}")

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert connection.vendor == "postgresql"
    assert failures == []
    order_ids = [o.pk for o in orders]
    assert set(Order.objects.filter(pk__in=order_ids).values_list("status", flat=True)) == {OrderStatus.PAID}
    paid_changes = OrderStatusChange.objects.filter(order_id__in=order_ids, to_status=OrderStatus.PAID)
    assert sorted(paid_changes.values_list("order_id", flat=True)) == sorted(order_ids)  # exactly once each
    assert sorted(Invoice.objects.values_list("order_id", flat=True)) == sorted(order_ids)  # exactly one each
    assert set(PaymentAttempt.objects.values_list("status", "refund_required")) == {(PaymentStatus.SUCCEEDED, False)}
    assert OutboxEvent.objects.filter(event_type="order.paid").count() == 100
    assert OutboxEvent.objects.filter(event_type="payment.succeeded").count() == 100
    assert WebhookEvent.objects.count() == 300  # processing, succeeded, late processing: duplicates not stored
    assert WebhookEvent.objects.filter(changed_state=True).count() == 100
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (50, 0)
