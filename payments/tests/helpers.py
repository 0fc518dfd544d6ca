"""Test helpers for payments: attempts through the real service, and webhook requests
signed independently with the standardwebhooks library (not with the app's own code)."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.test import Client
from standardwebhooks.webhooks import Webhook

from payments.models import PaymentAttempt
from payments.services import payment_attempt_create

WEBHOOK_PATH = "/api/v1/webhooks/payments/"


def attempt_for(order: Any, *, payment_method: str = "pm_card_success") -> PaymentAttempt:
    return payment_attempt_create(order_id=order.pk, user=order.user, payment_method=payment_method)


def event_body(
    attempt: PaymentAttempt,
    event_type: str,
    *,
    event_id: str | None = None,
    amount: Decimal | None = None,
    currency: str | None = None,
    failure_reason: str | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "data": {
            "provider_reference": attempt.provider_reference,
            "amount": f"{amount if amount is not None else attempt.amount:.2f}",
            "currency": currency or attempt.currency,
            "failure_reason": failure_reason,
        },
    }


def signed_headers(
    raw: str, *, msg_id: str, timestamp: datetime | None = None, secret: str | None = None
) -> dict[str, str]:
    timestamp = timestamp or datetime.now(UTC)
    signature = Webhook(secret or settings.PAYMENT_WEBHOOK_SECRET).sign(msg_id, timestamp, raw)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def post_webhook(client: Client, body: dict[str, Any], *, msg_id: str | None = None, **sign: Any) -> Any:
    """POST a correctly signed event to the real endpoint; returns the response."""
    raw = json.dumps(body)
    headers = signed_headers(raw, msg_id=msg_id or body["id"], **sign)
    return client.post(WEBHOOK_PATH, data=raw, content_type="application/json", headers=headers)


def record_delivery_kicks(monkeypatch) -> list[dict]:
    """Stand in for the simulated provider's delivery task: each kick is recorded as the
    stored delivery it points at (attempt_id, script, step); nothing is sent."""
    from payments.models import SimulatedDelivery
    from payments.tasks import simulated_deliver

    kicks: list[dict] = []

    def kick(delivery_id: int) -> None:
        row = SimulatedDelivery.objects.get(pk=delivery_id)
        kicks.append({"delivery_id": row.pk, "attempt_id": row.attempt_id, "script": row.script, "step": row.step})

    monkeypatch.setattr(simulated_deliver, "delay", lambda **kwargs: kick(kwargs["delivery_id"]))
    monkeypatch.setattr(simulated_deliver, "apply_async", lambda kwargs, **options: kick(kwargs["delivery_id"]))
    return kicks
