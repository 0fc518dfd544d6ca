"""/metrics: access control and the named series moving through a real flow
(checkout -> payment + webhook -> invoice issued)."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import ADDRESS
from invoicing.models import Invoice, InvoiceStatus
from invoicing.services import FaultInjector, InvoiceAttemptFailed, invoice_assign_number
from invoicing.tasks import assign_invoice_number
from orders.services import cart_add_item, cart_get_or_create
from payments.models import PaymentAttempt


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def staff_web(db):
    client = APIClient()
    client.force_login(StaffFactory())
    return client


def test_anonymous_and_customers_are_refused(db, client):
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    client.force_login(UserFactory())
    customer = client.get("/metrics")
    assert customer.status_code == 403
    assert customer.json()["error"]["code"] == "permission_denied"


@override_settings(METRICS_TOKEN="scrape-token-0123456789")
def test_bearer_token_from_settings(db, client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Token scrape-token-0123456789").status_code == 401


@override_settings(METRICS_TOKEN="")
def test_an_empty_token_setting_disables_token_access(db, client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def _signed_webhook(client, attempt: PaymentAttempt, event_type: str, *, event_id: str, secret: str | None = None):
    body = json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created_at": datetime.now(UTC).isoformat(),
            "data": {
                "provider_reference": attempt.provider_reference,
                "amount": f"{attempt.amount:.2f}",
                "currency": attempt.currency,
                "failure_reason": None,
            },
        }
    )
    now = datetime.now(UTC)
    signature = Webhook(secret or settings.PAYMENT_WEBHOOK_SECRET).sign(event_id, now, body)
    return client.post(
        "/api/v1/webhooks/payments/",
        body,
        content_type="application/json",
        HTTP_WEBHOOK_ID=event_id,
        HTTP_WEBHOOK_TIMESTAMP=str(int(now.timestamp())),
        HTTP_WEBHOOK_SIGNATURE=signature,
    )


def test_series_move_through_checkout_payment_and_invoice(db, staff_web, client_for):
    user = UserFactory()
    shopper = client_for(user)
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=10).sku, quantity=2)
    before = scrape(staff_web)

    # Checkout: an HTTP request by route and status, a reservation, outbox events.
    checkout = shopper.post(
        "/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY="m-1"
    )
    assert checkout.status_code == 201
    order_id = checkout.json()["id"]
    after_checkout = scrape(staff_web)
    route = {"route": "/api/v1/checkout/", "method": "POST", "status": "201"}
    assert value(after_checkout, "http_requests_total", **route) == value(before, "http_requests_total", **route) + 1
    assert value(after_checkout, "http_request_duration_seconds_count", **route) == (
        value(before, "http_request_duration_seconds_count", **route) + 1
    )
    assert value(after_checkout, "reservations_active") == value(before, "reservations_active") + 1
    assert value(after_checkout, "outbox_backlog") > value(before, "outbox_backlog")
    assert value(after_checkout, "outbox_relay_lag_seconds") >= 0

    # Payment: the attempt, then the provider's signed webhooks (one good, one repeated, one forged).
    paid = shopper.post(
        f"/api/v1/orders/{order_id}/payments/",
        {"payment_method": "pm_card_success"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="m-2",
    )
    assert paid.status_code == 201
    attempt = PaymentAttempt.objects.get(pk=paid.json()["id"])
    provider = APIClient()
    event_id = f"msg_{uuid.uuid4().hex}"
    assert _signed_webhook(provider, attempt, "payment.succeeded", event_id=event_id).status_code == 200
    assert _signed_webhook(provider, attempt, "payment.succeeded", event_id=event_id).status_code == 200
    forged = _signed_webhook(provider, attempt, "payment.succeeded", event_id="msg_forged", secret="whsec_Zm9yZ2Vk")
    assert forged.status_code in {400, 401}
    after_payment = scrape(staff_web)
    assert value(after_payment, "payment_webhooks_received_total", type="payment.succeeded") == (
        value(before, "payment_webhooks_received_total", type="payment.succeeded") + 1
    )
    assert value(after_payment, "payment_webhooks_deduplicated_total", type="payment.succeeded") == (
        value(before, "payment_webhooks_deduplicated_total", type="payment.succeeded") + 1
    )
    rejected_before = sum(v for (n, _), v in before.items() if n == "payment_webhooks_rejected_total")
    rejected_after = sum(v for (n, _), v in after_payment.items() if n == "payment_webhooks_rejected_total")
    assert rejected_after == rejected_before + 1
    assert value(after_payment, "reservations_active") == value(before, "reservations_active")  # committed
    assert value(after_payment, "invoices_pending") == value(before, "invoices_pending") + 1
    assert value(after_payment, "invoice_oldest_pending_age_seconds") >= 0

    # Invoice: one failed attempt (the simulated fault), then the task issues the number.
    invoice = Invoice.objects.get(order_id=order_id)
    with pytest.raises(InvoiceAttemptFailed):
        invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=1.0))
    assign_invoice_number.apply(args=[invoice.pk])
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED
    after_invoice = scrape(staff_web)
    for outcome in ("failed", "issued"):
        assert value(after_invoice, "invoice_numbering_attempts_total", outcome=outcome) == (
            value(before, "invoice_numbering_attempts_total", outcome=outcome) + 1
        )
    series = {"series": invoice.series}
    assert value(after_invoice, "invoice_numbering_simulated_failures_total", **series) == (
        value(before, "invoice_numbering_simulated_failures_total", **series) + 1
    )
    assert value(after_invoice, "invoice_time_to_number_seconds_count", **series) == (
        value(before, "invoice_time_to_number_seconds_count", **series) + 1
    )
    assert value(after_invoice, "invoices_pending") == value(before, "invoices_pending")
    task = {"task": "invoicing.assign_invoice_number", "outcome": "success"}
    assert value(after_invoice, "celery_tasks_total", **task) == value(before, "celery_tasks_total", **task) + 1
