"""Refunds with Stripe: the same path as the simulated provider's (refund_create ->
refund_submit after commit -> webhook), against the local fake Stripe over HTTP through
the real SDK; Stripe's refund events (refund.updated, refund.failed, charge.refunded) go
through the existing Stripe webhook view."""

# ruff: noqa: F811  (the fixtures of test_stripe are imported and used as parameters)

import pytest

from orders.models import Order, OrderStatus
from payments.models import Refund, RefundStatus, WebhookEvent
from payments.refunds import refund_create, refund_submit
from payments.tests.test_stripe import fake, hosted, order, post_event  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(client, fake, order, hosted):
    session = fake.complete_session(fake.only_session()["id"])
    assert post_event(client, fake.event("checkout.session.completed", session)).status_code == 200
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    return order


def _stripe_refund(fake, refund: Refund) -> dict:
    (stripe_refund,) = [r for r in fake.refunds.values() if r["metadata"].get("shop_refund_reference")]
    assert stripe_refund["metadata"]["shop_refund_reference"] == refund.provider_reference
    return stripe_refund


def test_a_refund_goes_to_stripe_once_and_its_refund_updated_event_settles_it(client, fake, paid):
    refund = refund_create(order_id=paid.pk, reason="damaged", amount="5.00")

    assert refund_submit(refund_id=refund.pk) is True
    assert refund_submit(refund_id=refund.pk) is False  # submitted: not again
    refund.refresh_from_db()
    stripe_refund = _stripe_refund(fake, refund)
    assert (stripe_refund["amount"], refund.provider_refund_id) == (500, stripe_refund["id"])
    assert [c.idempotency_key for c in fake.calls("/v1/refunds")] == [f"{refund.provider_reference}:refund"]

    event = fake.event("refund.updated", stripe_refund)
    first = post_event(client, event)
    again = post_event(client, event)

    assert first.json()["changed_state"] is True
    assert again.json()["duplicate"] is True
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    assert Order.objects.get(pk=paid.pk).status == OrderStatus.PARTIALLY_REFUNDED
    # A late refund.failed for the same refund changes nothing (forward only).
    late = post_event(client, fake.event("refund.failed", {**stripe_refund, "status": "failed"}))
    assert late.json()["changed_state"] is False
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED


def test_charge_refunded_settles_the_latest_listed_shop_refund(client, fake, paid):
    refund = refund_create(order_id=paid.pk, reason="all of it")
    refund_submit(refund_id=refund.pk)
    stripe_refund = _stripe_refund(fake, refund)
    charge = {"id": "ch_1", "object": "charge", "amount": 2500, "currency": "eur", "refunds": {"data": [stripe_refund]}}

    response = post_event(client, fake.event("charge.refunded", charge))

    assert response.json()["changed_state"] is True
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    assert Order.objects.get(pk=paid.pk).status == OrderStatus.REFUNDED


def test_a_failed_stripe_refund_fails_the_refund_only(client, fake, paid):
    refund = refund_create(order_id=paid.pk, reason="r", amount="1.00")
    refund_submit(refund_id=refund.pk)
    stripe_refund = {**_stripe_refund(fake, refund), "status": "failed", "failure_reason": "expired_or_canceled_card"}

    post_event(client, fake.event("refund.failed", stripe_refund))

    refund.refresh_from_db()
    assert (refund.status, refund.failure_reason) == (RefundStatus.FAILED, "expired_or_canceled_card")
    assert Order.objects.get(pk=paid.pk).status == OrderStatus.PAID


def test_a_pending_stripe_refund_event_is_recorded_and_changes_nothing(client, fake, paid):
    refund = refund_create(order_id=paid.pk, reason="r", amount="1.00")
    refund_submit(refund_id=refund.pk)

    response = post_event(client, fake.event("refund.created", {**_stripe_refund(fake, refund), "status": "pending"}))

    assert response.status_code == 200
    assert response.json()["changed_state"] is False
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.PENDING
    assert WebhookEvent.objects.filter(event_type="refund.created").count() == 1


def test_stripe_refusing_the_refund_fails_it_at_once(fake, paid):
    refund = refund_create(order_id=paid.pk, reason="r", amount="1.00")
    intent = next(iter(fake.payment_intents.values()))
    fake.refunds["re_existing"] = {  # refunded in the Stripe dashboard, outside the shop
        "id": "re_existing", "amount": intent["amount_received"], "payment_intent": intent["id"], "metadata": {},
    }  # fmt: skip

    assert refund_submit(refund_id=refund.pk) is False

    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED
    assert "Stripe refused" in refund.failure_reason
