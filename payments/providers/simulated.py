"""The simulated provider: a hosted payment page, an API path, and real webhooks.

Charging enqueues a Celery task that plays a short script of events for the attempt and
POSTs each one, signed per Standard Webhooks, to settings.PAYMENT_WEBHOOK_URL (the app's
own endpoint), retrying with backoff while the endpoint is down. Test methods:

- pm_card_success:  processing, succeeded
- pm_card_declined: processing, failed ("Your card was declined.")
- pm_card_slow:     processing, then succeeded after PAYMENT_SIM_SLOW_S seconds
- pm_card_flaky:    processing, succeeded, the same succeeded again (same webhook-id),
                    then a stale processing event (older created_at, new id) after the final one
- cancel (the hosted page's "Cancel payment"): processing, failed ("canceled")

Event ids are derived from the provider reference and the step, so a re-run of a step (a
redelivered task, a retry) re-sends the same webhook-id and the shop dedupes it.
"""

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from common.errors import ValidationFailed
from payments.models import PaymentAttempt
from payments.providers.base import (
    PaymentEventType,
    PaymentMethodChoice,
    PaymentProvider,
    ProviderEvent,
    json_body,
    provider_event_from_body,
    standard_webhook_sign,
    standard_webhook_verify,
    webhook_secret,
)

logger = logging.getLogger(__name__)

NAME = "simulated"
CANCEL_SCRIPT = "cancel"
DECLINED_REASON = "Your card was declined."
CANCELED_REASON = "The payment was canceled on the payment page."


class WebhookDeliveryFailed(Exception):
    """The endpoint did not answer 2xx; the delivery is retried."""


@dataclass(frozen=True)
class Step:
    event_type: PaymentEventType
    key: str  # the event id's suffix: the same key is the same event (a duplicate delivery)
    delay_s: float = 0.0  # wait before this step
    failure_reason: str = ""
    stale: bool = False  # an old event delivered late: created_at is the script's start


def payment_methods() -> list[PaymentMethodChoice]:
    slow = f"{settings.PAYMENT_SIM_SLOW_S:g}"
    return [
        PaymentMethodChoice("pm_card_success", "Visa •••• 4242", "Payment succeeds."),
        PaymentMethodChoice("pm_card_declined", "Visa •••• 0002", "The issuer declines the payment."),
        PaymentMethodChoice("pm_card_slow", "Visa •••• 3220", f"Payment succeeds after {slow} seconds."),
        PaymentMethodChoice(
            "pm_card_flaky",
            "Mastercard •••• 4444",
            "Payment succeeds; the webhook is delivered twice and a stale event arrives last.",
        ),
    ]


def simulated_script(script: str) -> list[Step]:
    processing = Step(PaymentEventType.PROCESSING, "processing")
    succeeded = Step(PaymentEventType.SUCCEEDED, "succeeded")
    scripts = {
        "pm_card_success": [processing, succeeded],
        "pm_card_declined": [processing, Step(PaymentEventType.FAILED, "failed", failure_reason=DECLINED_REASON)],
        "pm_card_slow": [
            processing,
            Step(PaymentEventType.SUCCEEDED, "succeeded", delay_s=float(settings.PAYMENT_SIM_SLOW_S)),
        ],
        "pm_card_flaky": [
            processing,
            succeeded,
            succeeded,
            Step(PaymentEventType.PROCESSING, "processing-late", stale=True),
        ],
        CANCEL_SCRIPT: [processing, Step(PaymentEventType.FAILED, "failed", failure_reason=CANCELED_REASON)],
    }
    try:
        return scripts[script]
    except KeyError:
        raise LookupError(f"no simulated script {script!r}") from None


def simulated_event(*, attempt: PaymentAttempt, script: str, step: int, started_at: datetime) -> dict[str, object]:
    """The body of one step's event. Deterministic: the same step gives the same body."""
    steps = simulated_script(script)
    current = steps[step]
    first = next(i for i, s in enumerate(steps) if s.key == current.key)
    # Each event happens a millisecond after the previous one (plus any delay); a stale
    # event carries the script's start time: older than the events delivered before it.
    waited = sum(s.delay_s for s in steps[: first + 1])
    created_at = started_at if current.stale else started_at + timedelta(seconds=waited, milliseconds=first)
    return {
        "id": f"evt_{attempt.provider_reference}_{current.key}",
        "type": current.event_type.value,
        "created_at": created_at.isoformat(),
        "data": {
            "provider_reference": attempt.provider_reference,
            "amount": f"{attempt.amount:.2f}",
            "currency": attempt.currency,
            "failure_reason": current.failure_reason or None,
        },
    }


def webhook_deliver(*, url: str, msg_id: str, body: str, timeout_s: float = 10.0) -> int:
    """POST one signed event; returns the HTTP status. Signed at send time, so a retry
    hours later still carries a fresh timestamp. Raises WebhookDeliveryFailed unless 2xx."""
    headers = standard_webhook_sign(secret=webhook_secret(), msg_id=msg_id, timestamp=timezone.now(), body=body)
    headers |= {"Content-Type": "application/json", "User-Agent": "simulated-payments/1.0"}
    try:
        response = requests.post(url, data=body.encode(), headers=headers, timeout=timeout_s)
    except requests.RequestException as exc:
        raise WebhookDeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise WebhookDeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")
    return response.status_code


def simulated_deliver_step(*, attempt_id: int, script: str, step: int, started_at: datetime) -> float | None:
    """Deliver step `step` of the attempt's script; return the delay before the next step,
    or None after the last. Raises PaymentAttempt.DoesNotExist, WebhookDeliveryFailed."""
    attempt = PaymentAttempt.objects.get(pk=attempt_id)
    steps = simulated_script(script)
    event = simulated_event(attempt=attempt, script=script, step=step, started_at=started_at)
    msg_id = str(event["id"])
    status = webhook_deliver(url=settings.PAYMENT_WEBHOOK_URL, msg_id=msg_id, body=json_body(event))
    logger.info("delivered %s (%s) for attempt %s: HTTP %s", msg_id, event["type"], attempt_id, status)
    return steps[step + 1].delay_s if step + 1 < len(steps) else None


class SimulatedProvider(PaymentProvider):
    name = NAME

    def payment_methods(self) -> list[PaymentMethodChoice]:
        return payment_methods()

    def validate_method(self, payment_method: str) -> None:
        codes = [m.code for m in payment_methods()]
        if payment_method not in codes:
            raise ValidationFailed(
                f"Unknown payment method {payment_method!r}.",
                details={"payment_method": [f"Must be one of {', '.join(codes)}."]},
            )

    def new_reference(self) -> str:
        return f"sim_pi_{uuid.uuid4().hex}"

    def hosted_page_url(self, *, provider_reference: str) -> str:
        return reverse("payments-simulated-page", args=[provider_reference])

    def charge(self, *, attempt_id: int, payment_method: str) -> None:
        self._play(attempt_id=attempt_id, script=payment_method)

    def cancel(self, *, attempt_id: int) -> None:
        self._play(attempt_id=attempt_id, script=CANCEL_SCRIPT)

    def _play(self, *, attempt_id: int, script: str) -> None:
        from payments.tasks import simulated_deliver

        simulated_script(script)  # refuse an unknown script here, not in the worker
        simulated_deliver.delay(attempt_id=attempt_id, script=script, step=0, started_at=timezone.now().isoformat())

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        webhook_id, parsed = standard_webhook_verify(secret=webhook_secret(), body=body, headers=headers)
        return provider_event_from_body(webhook_id=webhook_id, body=parsed)
