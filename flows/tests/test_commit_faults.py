"""The broker and the cache unreachable at commit: the change is committed, so the request
answers its committed result (never a 500), every later after-commit hook still runs, the
failure is counted, and the work is picked up by its sweeper once the broker is back.

Real commits (transactional tests): the after-commit hooks run as in production. "Redis
down" is a cache and a Celery `delay` that raise redis' ConnectionError.
"""

import uuid
from datetime import timedelta

import pytest
import redis
from django.core.cache import cache
from django.utils import timezone
from prometheus_client import REGISTRY

from common.commit import on_commit_robust
from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import ADDRESS
from invoicing.models import Invoice, InvoiceStatus
from invoicing.services import FaultInjector, invoice_assign_number, invoices_requeue_stale
from invoicing.tasks import assign_invoice_number
from orders.models import Order, OrderStatus
from orders.services import cart_add_item, cart_get_or_create
from outbox.tasks import relay
from payments.models import PaymentAttempt, SimulatedDelivery
from payments.services import payment_charges_resubmit
from payments.tasks import simulated_deliver
from payments.tests.helpers import event_body, post_webhook

pytestmark = pytest.mark.django_db(transaction=True)


def _failures(hook: str) -> float:
    return REGISTRY.get_sample_value("commit_hook_failures_total", {"hook": hook}) or 0.0


class RedisDown:
    """Every way the app reaches Redis after commit raises ConnectionError."""

    def __init__(self, monkeypatch) -> None:
        self.monkeypatch = monkeypatch

    def __enter__(self) -> "RedisDown":
        def down(*args, **kwargs):
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        self.monkeypatch.setattr(cache, "add", down)
        for task in (relay, assign_invoice_number, simulated_deliver):
            self.monkeypatch.setattr(task, "delay", down)
            self.monkeypatch.setattr(task, "apply_async", down)
        return self

    def __exit__(self, *exc: object) -> None:
        self.monkeypatch.undo()


def test_a_failing_hook_is_counted_and_the_hooks_after_it_still_run(db):
    ran: list[str] = []
    before = _failures("probe.first")

    def broken() -> None:
        raise redis.ConnectionError("down")

    from django.db import transaction

    with transaction.atomic():
        on_commit_robust(hook="probe.first", fn=broken)
        on_commit_robust(hook="probe.second", fn=lambda: ran.append("second"))

    assert ran == ["second"]
    assert _failures("probe.first") == before + 1


def test_checkout_answers_201_with_redis_down_and_a_retry_replays_the_order(client_for, monkeypatch):
    user = UserFactory()
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=5).sku, quantity=1)
    api = client_for(user)
    key = uuid.uuid4().hex
    before = _failures("outbox.relay")

    with RedisDown(monkeypatch):
        first = api.post("/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == 201, first.content
    assert _failures("outbox.relay") > before

    again = api.post("/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.filter(user=user).count() == 1


def test_payment_answers_201_with_redis_down_and_beat_submits_the_lost_charge(client_for, monkeypatch):
    user = UserFactory()
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=5).sku, quantity=1)
    api = client_for(user)
    order = api.post("/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json",
                     HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex).json()  # fmt: skip
    key = uuid.uuid4().hex
    submitted: list[int] = []

    def lost(**kwargs):  # the process died right after commit: the provider never heard of it
        raise redis.ConnectionError("down")

    with RedisDown(monkeypatch):
        monkeypatch.setattr("payments.providers.simulated.SimulatedProvider.charge", lambda self, **kw: lost(**kw))
        paid = api.post(f"/api/v1/orders/{order['id']}/payments/", {"payment_method": "pm_card_success"},
                        format="json", HTTP_IDEMPOTENCY_KEY=key)  # fmt: skip
    assert paid.status_code == 201, paid.content
    attempt = PaymentAttempt.objects.get(pk=paid.json()["id"])
    assert (attempt.status, attempt.charge_requested_at is not None, attempt.charge_submitted_at) == (
        "processing", True, None,
    )  # fmt: skip
    replay = api.post(f"/api/v1/orders/{order['id']}/payments/", {"payment_method": "pm_card_success"},
                      format="json", HTTP_IDEMPOTENCY_KEY=key)  # fmt: skip
    assert (replay.status_code, replay["Idempotent-Replayed"], replay.json()["id"]) == (201, "true", attempt.pk)

    # Too early: the after-commit call may still be on its way.
    assert payment_charges_resubmit(now=attempt.charge_requested_at + timedelta(seconds=1)) == 0
    monkeypatch.setattr(simulated_deliver, "delay", lambda **kwargs: submitted.append(kwargs["delivery_id"]))
    assert payment_charges_resubmit(now=timezone.now() + timedelta(seconds=60)) == 1
    attempt.refresh_from_db()
    assert attempt.charge_submitted_at is not None
    [delivery] = SimulatedDelivery.objects.filter(attempt=attempt)
    assert (delivery.step, delivery.event_type) == (0, "payment.succeeded")
    assert submitted == [delivery.pk]
    assert payment_charges_resubmit(now=timezone.now() + timedelta(seconds=60)) == 0  # once


def test_webhook_answers_200_with_redis_down_and_the_sweeper_numbers_the_invoice(client, client_for, monkeypatch):
    user = UserFactory()
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=5).sku, quantity=1)
    api = client_for(user)
    order = api.post("/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json",
                     HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex).json()  # fmt: skip
    monkeypatch.setattr(simulated_deliver, "delay", lambda **kwargs: None)
    attempt_id = api.post(f"/api/v1/orders/{order['id']}/payments/", {"payment_method": "pm_card_success"},
                          format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex).json()["id"]  # fmt: skip
    attempt = PaymentAttempt.objects.get(pk=attempt_id)
    before = _failures("invoicing.assign_invoice_number")

    with RedisDown(monkeypatch):
        response = post_webhook(client, event_body(attempt, "payment.succeeded"))
    assert response.status_code == 200, response.content
    assert response.json()["changed_state"] is True
    assert Order.objects.get(pk=order["id"]).status == OrderStatus.PAID
    invoice = Invoice.objects.get(order_id=order["id"])
    assert invoice.status == InvoiceStatus.PENDING
    assert _failures("invoicing.assign_invoice_number") == before + 1

    # Redis is back: the sweeper finds the invoice nobody enqueued and numbering issues it.
    requeued: list[int] = []
    monkeypatch.setattr(assign_invoice_number, "delay", lambda invoice_id: requeued.append(invoice_id))
    assert invoices_requeue_stale(older_than_s=0) == [invoice.pk]
    assert requeued == [invoice.pk]
    assert invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0)).number is not None
