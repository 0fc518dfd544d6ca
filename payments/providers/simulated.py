"""The simulated provider: a hosted payment page, an API path, and real webhooks.

Charging stores the first webhook of a short script of events as owed (SimulatedDelivery:
the provider's own storage, like an outside service's); a Celery task POSTs each one,
signed per Standard Webhooks, to settings.PAYMENT_WEBHOOK_URL (the app's own endpoint),
retrying with backoff while the endpoint is down; beat re-kicks deliveries whose message
was lost. Test methods:

- pm_card_success:  succeeded
- pm_card_declined: failed ("Your card was declined.")
- pm_card_slow:     processing, then succeeded after PAYMENT_SIM_SLOW_S seconds
- pm_card_flaky:    processing, succeeded, the same succeeded again (same webhook-id),
                    then a stale processing event (older created_at, new id) after the final one
- cancel (the hosted page's "Cancel payment"): processing, failed ("canceled")
- pm_card_refund_fails: pays like pm_card_success; its refunds fail ("refund declined")
- pm_card_refund_flaky: pays like pm_card_success; a refund's succeeded webhook arrives
                    twice (same webhook-id), then a stale refund.failed (older created_at)

A card the issuer answers at once settles with one webhook, as real providers do (Stripe
sends no `processing` event for a card payment): only the methods that settle later say
`processing` first.

Refunds (refund_submit) play a script of refund events for the refund's reference:
refund.succeeded for every other method.

Event ids are derived from the provider reference and the step, so a re-run of a step (a
redelivered task, a retry) re-sends the same webhook-id and the shop dedupes it.
"""

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from common.backoff import backoff_s
from common.commit import on_commit_robust
from common.db import instance_insert_unless_conflict
from common.errors import ValidationFailed
from payments.models import DeliveryStatus, PaymentAttempt, Refund, SimulatedDelivery
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
# A kick may fire a moment before the stored time (clocks of web and worker processes).
DUE_TOLERANCE = timedelta(seconds=1)
# Beat re-kicks a scheduled delivery once it is this late (its message was lost).
KICK_GRACE = timedelta(seconds=5)
CANCELED_REASON = "The payment was canceled on the payment page."
REFUND_DECLINED_REASON = "The refund was declined by the card issuer."
# The refund script each payment method's refunds play (default: REFUND_SCRIPT).
REFUND_SCRIPT = "refund"
REFUND_SCRIPTS = {"pm_card_refund_fails": "refund_fails", "pm_card_refund_flaky": "refund_flaky"}


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
        PaymentMethodChoice("pm_card_success", "Test card, succeeds", "Visa •••• 4242: the payment succeeds."),
        PaymentMethodChoice("pm_card_declined", "Test card, declined", "Visa •••• 0002: the issuer declines it."),
        PaymentMethodChoice(
            "pm_card_slow", "Test card, succeeds slowly", f"Visa •••• 3220: the payment succeeds after {slow} s."
        ),
        PaymentMethodChoice(
            "pm_card_flaky",
            "Test card, flaky webhooks",
            "Mastercard •••• 4444: succeeds; the webhook arrives twice and a stale event arrives last.",
        ),
        PaymentMethodChoice(
            "pm_card_refund_fails", "Test card, refunds fail", "Visa •••• 0119: succeeds; refunds of it fail."
        ),
        PaymentMethodChoice(
            "pm_card_refund_flaky",
            "Test card, flaky refund webhooks",
            "Visa •••• 5556: succeeds; a refund's webhook arrives twice, then a stale failure.",
        ),
    ]


def simulated_script(script: str) -> list[Step]:
    processing = Step(PaymentEventType.PROCESSING, "processing")
    succeeded = Step(PaymentEventType.SUCCEEDED, "succeeded")
    refunded = Step(PaymentEventType.REFUND_SUCCEEDED, "refund-succeeded")
    scripts = {
        "pm_card_success": [succeeded],
        "pm_card_declined": [Step(PaymentEventType.FAILED, "failed", failure_reason=DECLINED_REASON)],
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
        "pm_card_refund_fails": [succeeded],
        "pm_card_refund_flaky": [succeeded],
        REFUND_SCRIPT: [refunded],
        "refund_fails": [Step(PaymentEventType.REFUND_FAILED, "refund-failed", failure_reason=REFUND_DECLINED_REASON)],
        "refund_flaky": [
            refunded,
            refunded,
            Step(PaymentEventType.REFUND_FAILED, "refund-failed-late", failure_reason="stale", stale=True),
        ],
    }
    try:
        return scripts[script]
    except KeyError:
        raise LookupError(f"no simulated script {script!r}") from None


def simulated_event(
    *, attempt: PaymentAttempt, script: str, step: int, started_at: datetime, refund: Refund | None = None
) -> dict[str, object]:
    """The body of one step's event (of the refund's script when `refund` is given).
    Deterministic: the same step gives the same body."""
    steps = simulated_script(script)
    current = steps[step]
    first = next(i for i, s in enumerate(steps) if s.key == current.key)
    # Each event happens a millisecond after the previous one (plus any delay); a stale
    # event carries the script's start time: older than the events delivered before it.
    waited = sum(s.delay_s for s in steps[: first + 1])
    created_at = started_at if current.stale else started_at + timedelta(seconds=waited, milliseconds=first)
    source: PaymentAttempt | Refund = refund if refund is not None else attempt
    return {
        "id": f"evt_{source.provider_reference}_{current.key}",
        "type": current.event_type.value,
        "created_at": created_at.isoformat(),
        "data": {
            "provider_reference": source.provider_reference,
            "amount": f"{source.amount:.2f}",
            "currency": source.currency,
            "failure_reason": current.failure_reason or None,
        },
    }


_http = threading.local()


def _http_session() -> requests.Session:
    """This thread's HTTP session (the provider's worker runs 16 threads): its connection to
    the shop stays open between webhooks, as a real provider's does, so neither side pays a
    TCP handshake and a new gunicorn connection per event (0.7 ms of the shop's CPU each,
    measured). A connection the shop closed while idle (gunicorn's keep-alive is 5 s) is
    noticed before reuse; one closed in the very moment it is reused is sent again once,
    harmless as every webhook is deduplicated by its webhook-id."""
    session = getattr(_http, "session", None)
    if session is None:
        session = requests.Session()
        retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods=None, raise_on_status=False)
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        _http.session = session
    return session


def webhook_deliver(*, url: str, msg_id: str, body: str, timeout_s: float = 10.0) -> int:
    """POST one signed event; returns the HTTP status. Signed at send time, so a retry
    hours later still carries a fresh timestamp. Raises WebhookDeliveryFailed unless 2xx."""
    headers = standard_webhook_sign(secret=webhook_secret(), msg_id=msg_id, timestamp=timezone.now(), body=body)
    headers |= {"Content-Type": "application/json", "User-Agent": "simulated-payments/1.0"}
    try:
        response = _http_session().post(url, data=body.encode(), headers=headers, timeout=timeout_s)
    except requests.RequestException as exc:
        raise WebhookDeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise WebhookDeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")
    return response.status_code


# --- The provider's own storage: deliveries it owes the shop ------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    """What one run of a delivery did: `sent` (2xx), `failed` (retry at `retry_in_s`),
    `abandoned` (retries exhausted), or `skipped` (not due, taken by another run, done)."""

    outcome: str
    retry_in_s: float | None = None


def _kick(*, delivery_id: int, countdown_s: float = 0.0) -> None:
    from payments.tasks import simulated_deliver

    def send() -> None:
        if countdown_s > 0:
            simulated_deliver.apply_async(kwargs={"delivery_id": delivery_id}, countdown=countdown_s)
        else:
            simulated_deliver.delay(delivery_id=delivery_id)

    # A lost kick only delays the delivery until beat re-kicks it (simulated_deliveries_kick_due).
    on_commit_robust(hook="payments.simulated_deliver", fn=send)


def simulated_delivery_schedule(
    *,
    attempt: PaymentAttempt,
    script: str,
    step: int,
    started_at: datetime,
    due_at: datetime,
    refund: Refund | None = None,
) -> SimulatedDelivery:
    """Store step `step` of the attempt's (or refund's) script as owed (once: a second call
    returns the stored one), and kick its delivery when the caller's transaction commits."""
    steps = simulated_script(script)
    event = simulated_event(attempt=attempt, script=script, step=step, started_at=started_at, refund=refund)
    delivery = SimulatedDelivery(
        attempt=attempt,
        refund=refund,
        step=step,
        script=script,
        event_id=str(event["id"]),
        event_type=steps[step].event_type.value,
        url=settings.PAYMENT_WEBHOOK_URL,
        started_at=started_at,
        next_attempt_at=due_at,
    )
    # One statement, no savepoint: INSERT ... ON CONFLICT DO NOTHING (the partial unique
    # constraints on (attempt, step) and (refund, step) keep it once); the stored one otherwise.
    if not instance_insert_unless_conflict(delivery):
        lookup: dict[str, Any] = {"refund": refund} if refund is not None else {"attempt": attempt, "refund": None}
        return SimulatedDelivery.objects.get(**lookup, step=step)
    _kick(delivery_id=delivery.pk, countdown_s=max((due_at - timezone.now()).total_seconds(), 0.0))
    return delivery


def simulated_delivery_run(*, delivery_id: int) -> DeliveryResult:
    """Send one owed webhook if it is due: claim it (a lease, so a second run does not send it
    at the same time), POST it outside any transaction, then record the outcome. Delivered:
    the script's next step is stored. Failed: retried with backoff, up to
    PAYMENT_WEBHOOK_MAX_RETRIES tries after the first, then abandoned."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            SimulatedDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("attempt", "refund")
            .filter(pk=delivery_id, status=DeliveryStatus.SCHEDULED, next_attempt_at__lte=now + DUE_TOLERANCE)
            .first()
        )
        if delivery is None:
            return DeliveryResult("skipped")
        delivery.tries += 1
        delivery.last_tried_at = now
        delivery.url = settings.PAYMENT_WEBHOOK_URL
        # If this run dies (SIGKILL mid-POST), the delivery is due again after the lease.
        delivery.next_attempt_at = now + timedelta(seconds=settings.PAYMENT_SIM_DELIVERY_LEASE_S)
        delivery.save(update_fields=["tries", "last_tried_at", "url", "next_attempt_at"])

    event = simulated_event(
        attempt=delivery.attempt,
        script=delivery.script,
        step=delivery.step,
        started_at=delivery.started_at,
        refund=delivery.refund,
    )
    try:
        status = webhook_deliver(url=delivery.url, msg_id=delivery.event_id, body=json_body(event))
    except WebhookDeliveryFailed as exc:
        return _delivery_failed(delivery=delivery, error=str(exc))
    logger.info("delivered %s (%s) for attempt %s: HTTP %s", delivery.event_id, delivery.event_type,
                delivery.attempt_id, status)  # fmt: skip
    with transaction.atomic():
        SimulatedDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), last_status_code=status, last_error=""
        )
        steps = simulated_script(delivery.script)
        following = delivery.step + 1
        if following < len(steps):
            simulated_delivery_schedule(
                attempt=delivery.attempt,
                refund=delivery.refund,
                script=delivery.script,
                step=following,
                started_at=delivery.started_at,
                due_at=timezone.now() + timedelta(seconds=steps[following].delay_s),
            )
    return DeliveryResult("sent")


def _delivery_failed(*, delivery: SimulatedDelivery, error: str) -> DeliveryResult:
    status_code = int(error[5:8]) if error.startswith("HTTP ") and error[5:8].isdigit() else None
    fields = {"last_error": error[:300], "last_status_code": status_code}
    if delivery.tries > settings.PAYMENT_WEBHOOK_MAX_RETRIES:
        SimulatedDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.ABANDONED, **fields)
        logger.error("simulated provider: gave up on %s after %d tries: %s", delivery.event_id, delivery.tries, error)
        return DeliveryResult("abandoned")
    retry_in_s = backoff_s(
        retries=delivery.tries - 1,
        base_s=settings.PAYMENT_WEBHOOK_RETRY_BASE_S,
        max_s=settings.PAYMENT_WEBHOOK_RETRY_MAX_S,
    )
    with transaction.atomic():
        SimulatedDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() + timedelta(seconds=retry_in_s), **fields
        )
        _kick(delivery_id=delivery.pk, countdown_s=retry_in_s)
    logger.warning("webhook %s to %s failed (try %d: %s); retry in %.1fs", delivery.event_id, delivery.url,
                   delivery.tries, error, retry_in_s)  # fmt: skip
    return DeliveryResult("failed", retry_in_s=retry_in_s)


def simulated_deliveries_kick_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Beat: re-kick scheduled deliveries whose time has passed by more than the grace (their
    message was lost: a killed worker, a flushed broker). Returns how many were kicked."""
    now = now or timezone.now()
    due = list(
        SimulatedDelivery.objects.filter(status=DeliveryStatus.SCHEDULED, next_attempt_at__lte=now - KICK_GRACE)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due:
        _kick(delivery_id=delivery_id)
    if due:
        logger.info("simulated provider: re-kicked %d overdue webhook deliveries", len(due))
    return len(due)


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

    def charge(self, *, attempt: PaymentAttempt, payment_method: str) -> None:
        self._play(attempt=attempt, script=payment_method)

    def cancel(self, *, attempt: PaymentAttempt) -> None:
        self._play(attempt=attempt, script=CANCEL_SCRIPT)

    def refund_submit(self, *, refund: Refund) -> str:
        """Accept the refund: its first webhook is stored as owed (once), like a charge."""
        script = REFUND_SCRIPTS.get(refund.attempt.payment_method, REFUND_SCRIPT)
        now = timezone.now()
        simulated_delivery_schedule(
            attempt=refund.attempt, refund=refund, script=script, step=0, started_at=now, due_at=now
        )
        return ""

    def _play(self, *, attempt: PaymentAttempt, script: str) -> None:
        """Accept the request: its first webhook is stored as owed (the provider's own
        durable state), then delivered by a worker and retried until the shop answers."""
        simulated_script(script)  # refuse an unknown script here, not in the worker
        now = timezone.now()
        simulated_delivery_schedule(attempt=attempt, script=script, step=0, started_at=now, due_at=now)

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        webhook_id, parsed = standard_webhook_verify(secret=webhook_secret(), body=body, headers=headers)
        return provider_event_from_body(webhook_id=webhook_id, body=parsed)
