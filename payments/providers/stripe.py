"""Stripe, through the official SDK: Checkout Sessions backed by PaymentIntents.

The pay step (payments.services.payment_attempt_create) makes a `processing` attempt with a
shop-minted reference; `prepare()` opens a Checkout Session for it in the same transaction
and its URL becomes the attempt's `redirect_url` (Stripe's hosted page; success and cancel
both lead back to the order page). The reference travels to Stripe as the session's
`client_reference_id` and as `metadata.shop_reference` on the session and on its
PaymentIntent, so every event Stripe sends names the attempt it is about. API clients may
instead pass a PaymentMethod id (`pm_...`): `charge()` then creates and confirms a
PaymentIntent after commit.

Every request carries an idempotency key derived from the attempt (its reference, unique
across databases and Stripe accounts), a timeout (STRIPE_TIMEOUT_S) and the SDK's network
retries (STRIPE_MAX_NETWORK_RETRIES: timeouts and connection errors, same key): a retried
request never charges twice, and neither does beat's resubmission of a lost charge.

Webhooks (payments/stripe_api.py) are verified with `stripe.Webhook.construct_event`
(STRIPE_WEBHOOK_SECRET, 300 s tolerance) and mapped here to the provider-independent
ProviderEvent applied by payments.services.payment_webhook_apply (exactly once, forward
only, late successes flagged for refund). Event types this shop does not act on are
recorded, acknowledged and change nothing (`stripe_event_record_ignored`).

Amounts go to Stripe in the currency's minor units as Stripe counts them
(https://docs.stripe.com/currencies): zero-decimal currencies as is, three-decimal ones x
1000, ISK x 100 (Stripe keeps it two-decimal), everything else x 100; both ways exactly,
never rounded.
"""

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from common.errors import ApplicationError, Conflict, ValidationFailed
from payments.models import PaymentAttempt, Refund, WebhookEvent
from payments.providers.base import (
    PaymentEventType,
    PaymentMethodChoice,
    PaymentProvider,
    ProviderEvent,
    WebhookPayloadInvalid,
    WebhookSignatureInvalid,
)

logger = logging.getLogger(__name__)

NAME = "stripe"
WEBHOOK_TOLERANCE_S = 300
# Stripe accepts a Checkout Session lifetime of 30 minutes to 24 hours. A success after the
# shop gave up on the attempt (PAYMENT_PROCESSING_TIMEOUT_S) is flagged for refund.
SESSION_MIN_S, SESSION_MAX_S = 31 * 60, 24 * 3600
EXPIRED_REASON = "The Stripe Checkout session expired before the payment was completed."
# A shop refund's reference, in the Stripe Refund's metadata: its refund.* events name it.
REFUND_REFERENCE_KEY = "shop_refund_reference"
_REFUND_EVENTS = {"refund.created", "refund.updated", "refund.failed"}

# --- Minor units ---------------------------------------------------------------------------

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def stripe_exponent(currency: str) -> int:
    """How many decimals Stripe's integer amounts carry for `currency`."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """12.50 EUR -> 1250, 500 JPY -> 500, 1.235 KWD -> 1235. Exact: ValueError when the
    amount has more decimals than the currency (never rounded), or is not finite."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"not a finite Decimal amount: {amount!r}")
    scaled = amount.scaleb(stripe_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} has more decimals than {currency} allows")
    return int(scaled)


def from_minor_units(units: int, currency: str) -> Decimal:
    """1250 EUR -> Decimal("12.50"), 500 JPY -> Decimal("500"), 1235 KWD -> Decimal("1.235")."""
    if isinstance(units, bool) or not isinstance(units, int):
        raise ValueError(f"minor units must be an integer, got {units!r}")
    exponent = stripe_exponent(currency)
    return Decimal(units).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def stripe_amount_check(units: int, currency: str) -> None:
    """Stripe's extra rules for card amounts: three-decimal currencies end in 0, ISK is whole
    krónur (a multiple of 100). Raises ValidationFailed naming the rule."""
    code = currency.upper()
    if code in THREE_DECIMAL and units % 10:
        raise ValidationFailed(f"Stripe charges {code} in multiples of 0.010.", details={"amount": ["Not payable."]})
    if code == "ISK" and units % 100:
        raise ValidationFailed("Stripe charges ISK in whole krónur.", details={"amount": ["Not payable."]})


# --- Errors ----------------------------------------------------------------------------------


class PaymentProviderUnavailable(ApplicationError):
    """Stripe did not answer (after the SDK's retries) or refused the request; nothing was
    charged twice: a retry sends the same idempotency key."""

    status_code = 503
    code = "payment_provider_unavailable"


class RefundRefused(Conflict):
    """Stripe answered and said no (more than is refundable, an unknown PaymentIntent)."""

    code = "refund_refused"


# --- The SDK client --------------------------------------------------------------------------


def stripe_client() -> stripe.StripeClient:
    """A client with the configured key, timeout, network retries and (optionally) API base."""
    if not settings.STRIPE_SECRET_KEY:
        raise PaymentProviderUnavailable("Stripe is not configured (STRIPE_SECRET_KEY).")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_S),
    )


def idempotency_key(attempt: PaymentAttempt, operation: str) -> str:
    """The key of one operation on one attempt: the same on every retry, unique across
    databases (the reference is a random id the shop minted for the attempt)."""
    return f"{attempt.provider_reference}:{operation}"


def _metadata(attempt: PaymentAttempt, *, flow: str) -> dict[str, str]:
    return {
        "shop_reference": attempt.provider_reference,
        "attempt_id": str(attempt.pk),
        "order_id": str(attempt.order_id),
        "flow": flow,
    }


def _order_url(order_id: int) -> str:
    return f"{settings.SITE_URL}{reverse('order', args=[order_id])}"


_SESSION_ID = re.compile(r"\b(cs_[A-Za-z0-9_]+)")


def session_id_from_url(url: str) -> str:
    """The Checkout Session id in its hosted page URL ("" if there is none)."""
    found = _SESSION_ID.search(url)
    return found.group(1) if found else ""


@dataclass(frozen=True)
class RefundSubmitted:
    id: str
    status: str  # Stripe's: pending, succeeded, failed, requires_action, canceled


class StripeProvider(PaymentProvider):
    name = NAME

    def payment_methods(self) -> list[PaymentMethodChoice]:
        # Shoppers choose on Stripe's hosted page; these are Stripe's test PaymentMethods for
        # API clients that charge at once.
        return [
            PaymentMethodChoice("pm_card_visa", "Test card, succeeds", "Stripe test Visa •••• 4242."),
            PaymentMethodChoice("pm_card_chargeDeclined", "Test card, declined", "Stripe test card, declined."),
        ]

    def validate_method(self, payment_method: str) -> None:
        if not re.fullmatch(r"pm_[A-Za-z0-9_]{1,61}", payment_method):
            raise ValidationFailed(
                f"Unknown payment method {payment_method!r}.",
                details={"payment_method": ["Must be a Stripe PaymentMethod id (pm_...)."]},
            )

    def new_reference(self) -> str:
        return f"shop_{uuid.uuid4().hex}"

    def hosted_page_url(self, *, provider_reference: str) -> str:
        return ""  # known once the Checkout Session exists: prepare()

    def prepare(self, *, attempt: PaymentAttempt) -> str:
        """Open the attempt's Checkout Session (hosted attempts only); its URL."""
        if attempt.payment_method:
            return ""
        units = to_minor_units(attempt.amount, attempt.currency)
        stripe_amount_check(units, attempt.currency)
        lifetime = min(max(int(settings.PAYMENT_PROCESSING_TIMEOUT_S), SESSION_MIN_S), SESSION_MAX_S)
        order_url = _order_url(attempt.order_id)
        try:
            session = stripe_client().v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "client_reference_id": attempt.provider_reference,
                    "success_url": order_url,
                    "cancel_url": order_url,
                    "expires_at": int(time.time()) + lifetime,
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": attempt.currency.lower(),
                                "unit_amount": units,
                                "product_data": {"name": f"Order #{attempt.order_id}"},
                            },
                        }
                    ],
                    "metadata": _metadata(attempt, flow="checkout"),
                    "payment_intent_data": {"metadata": _metadata(attempt, flow="checkout")},
                },
                options={"idempotency_key": idempotency_key(attempt, "checkout-session")},
            )
        except stripe.StripeError as exc:
            logger.warning("Stripe refused or did not answer a Checkout Session for %s: %s", attempt, exc)
            raise PaymentProviderUnavailable("The payment provider is unavailable; please try again.") from exc
        if not session.url:
            raise PaymentProviderUnavailable("Stripe returned a Checkout Session without a URL.")
        return str(session.url)

    def charge(self, *, attempt: PaymentAttempt, payment_method: str) -> None:
        """Create and confirm the attempt's PaymentIntent (API clients with a pm_... id).
        A decline is an outcome (it arrives as payment_intent.payment_failed); a network
        failure after the SDK's retries raises, and beat resubmits with the same key."""
        units = to_minor_units(attempt.amount, attempt.currency)
        stripe_amount_check(units, attempt.currency)
        try:
            stripe_client().v1.payment_intents.create(
                params={
                    "amount": units,
                    "currency": attempt.currency.lower(),
                    "payment_method": payment_method,
                    "confirm": True,
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "metadata": _metadata(attempt, flow="api"),
                },
                options={"idempotency_key": idempotency_key(attempt, "payment-intent")},
            )
        except stripe.CardError as exc:
            logger.info("Stripe declined attempt %s: %s", attempt.pk, exc.user_message)
        except stripe.StripeError as exc:  # not submitted: beat resubmits with the same key
            raise PaymentProviderUnavailable(f"Stripe did not take the charge of attempt {attempt.pk}.") from exc

    def cancel(self, *, attempt: PaymentAttempt) -> None:
        """Expire the attempt's open Checkout Session; Stripe reports checkout.session.expired."""
        session_id = session_id_from_url(attempt.redirect_url)
        if not session_id:
            logger.warning("attempt %s has no Checkout Session to expire", attempt.pk)
            return
        try:
            stripe_client().v1.checkout.sessions.expire(
                session_id, options={"idempotency_key": idempotency_key(attempt, "checkout-session-expire")}
            )
        except stripe.InvalidRequestError as exc:  # already complete or expired: its event tells
            logger.info("Checkout Session %s of attempt %s not expired: %s", session_id, attempt.pk, exc)

    def refund(
        self,
        *,
        payment_intent: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reason: str = "",
        metadata: dict[str, str] | None = None,
    ) -> RefundSubmitted:
        """Ask Stripe to give back `amount` of a PaymentIntent: the caller derives
        `idempotency_key` from its refund record, so a retried request refunds once. The
        outcome also arrives by webhook (refund.updated / refund.failed / charge.refunded)."""
        units = to_minor_units(amount, currency)
        try:
            refund = stripe_client().v1.refunds.create(
                params={
                    "payment_intent": payment_intent,
                    "amount": units,
                    "metadata": {**({"reason": reason[:500]} if reason else {}), **(metadata or {})},
                },
                options={"idempotency_key": idempotency_key},
            )
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            raise RefundRefused(f"Stripe refused the refund: {exc.user_message or exc}") from exc
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(f"Stripe did not take the refund: {exc.user_message or exc}") from exc
        return RefundSubmitted(id=str(refund.id), status=str(refund.status))

    def refund_submit(self, *, refund: "Refund") -> str:
        """A shop refund at Stripe: the PaymentIntent its attempt's webhooks named, the
        refund's reference as metadata (its webhooks name it) and its idempotency key."""
        attempt = refund.attempt
        intents = stripe_references(attempt=attempt).payment_intents
        if not intents and (session_id := session_id_from_url(attempt.redirect_url)):
            try:
                session = stripe_client().v1.checkout.sessions.retrieve(session_id)
            except stripe.StripeError as exc:
                raise PaymentProviderUnavailable(f"Stripe did not answer: {exc.user_message or exc}") from exc
            intents = [str(session.payment_intent)] if getattr(session, "payment_intent", None) else []
        if not intents:
            raise RefundRefused(f"No Stripe PaymentIntent is known for payment {attempt.provider_reference}.")
        submitted = self.refund(
            payment_intent=intents[0],
            amount=refund.amount,
            currency=refund.currency,
            idempotency_key=f"{refund.provider_reference}:refund",
            reason=refund.reason,
            metadata={
                REFUND_REFERENCE_KEY: refund.provider_reference,
                "refund_id": str(refund.pk),
                "order_id": str(refund.order_id),
            },
        )
        return submitted.id

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """The interface's form: verified and mapped, or WebhookPayloadInvalid for an event
        this shop does not act on (the Stripe endpoint records those instead)."""
        event = stripe_event_verify(body=body, signature=headers.get("Stripe-Signature"))
        mapped = stripe_event_map(event)
        if isinstance(mapped, Ignored):
            raise WebhookPayloadInvalid(mapped.reason)
        return mapped


# --- Webhooks --------------------------------------------------------------------------------


def stripe_event_verify(*, body: bytes, signature: str | None) -> dict[str, Any]:
    """The event of a request whose raw body carries a valid Stripe-Signature (within 300 s),
    as plain JSON. Raises WebhookSignatureInvalid (nothing is stored), or
    WebhookPayloadInvalid for a signed body that is not an event object."""
    secret: str = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookSignatureInvalid("Stripe webhooks are not configured here (STRIPE_WEBHOOK_SECRET).")
    try:
        stripe.Webhook.construct_event(body, signature, secret, tolerance=WEBHOOK_TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureInvalid(f"Stripe signature verification failed: {exc.user_message or exc}") from exc
    except UnicodeDecodeError as exc:  # before the check: a body Stripe cannot have signed
        raise WebhookSignatureInvalid("Stripe signature verification failed: the body is not UTF-8.") from exc
    except ValueError as exc:  # signed, but not JSON
        raise WebhookPayloadInvalid("The Stripe event is not JSON.") from exc
    # The SDK refuses old timestamps only; a signature dated in the future is refused too (the
    # header is well formed here: the SDK has just verified it).
    stamps = [item[2:] for item in str(signature).split(",") if item.startswith("t=")]
    if not stamps or not stamps[0].isdigit() or int(stamps[0]) > time.time() + WEBHOOK_TOLERANCE_S:
        raise WebhookSignatureInvalid("Stripe signature verification failed: timestamp in the future.")
    parsed = json.loads(body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("id"), str) or not parsed["id"]:
        raise WebhookPayloadInvalid("The Stripe event has no id.")
    if not isinstance(parsed.get("type"), str) or not isinstance(parsed.get("data"), dict):
        raise WebhookPayloadInvalid("The Stripe event has no type or data.")
    return parsed


@dataclass(frozen=True)
class Ignored:
    """A verified event the shop records and acknowledges without acting on it."""

    reason: str
    reference: str = ""


_SUCCEEDED_SESSION = {"paid", "no_payment_required"}


def stripe_event_map(event: dict[str, Any]) -> ProviderEvent | Ignored:
    """Map a verified Stripe event to the shop's event, or say why it is only recorded.

    checkout.session.completed (paid) / async_payment_succeeded, payment_intent.succeeded
    -> succeeded; checkout.session.expired, async_payment_failed -> failed; a declined
    PaymentIntent -> failed when it was confirmed by the API, but only recorded when it
    belongs to a Checkout Session (the shopper may try another card on the same page: the
    session's completion or expiry is the outcome); payment_intent.processing -> processing.
    Refunds: refund.created / refund.updated / refund.failed (the Refund object) and
    charge.refunded (the charge's latest listed shop refund), named by metadata
    shop_refund_reference -> refund.succeeded or refund.failed; a pending one is recorded.
    """
    event_type = str(event["type"])
    obj = event["data"].get("object")
    if not isinstance(obj, dict):
        raise WebhookPayloadInvalid("The Stripe event has no data.object.")
    if event_type == "charge.refunded":
        # The charge lists its refunds (when expanded): the latest one the shop made decides.
        listed = (obj.get("refunds") or {}).get("data") if isinstance(obj.get("refunds"), dict) else None
        ours = [r for r in listed or [] if isinstance(r, dict) and (r.get("metadata") or {}).get(REFUND_REFERENCE_KEY)]
        if not ours:
            return Ignored("charge.refunded without a shop refund listed; its refund.* event applies it")
        obj = max(ours, key=lambda r: r.get("created") or 0)
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    reference = str(obj.get("client_reference_id") or metadata.get("shop_reference") or "")
    failure = ""
    kind: PaymentEventType | None
    if event_type in _REFUND_EVENTS or event_type == "charge.refunded":
        reference = str(metadata.get(REFUND_REFERENCE_KEY) or "")
        status = obj.get("status")
        if status == "succeeded":
            kind = PaymentEventType.REFUND_SUCCEEDED
        elif status in ("failed", "canceled"):
            kind = PaymentEventType.REFUND_FAILED
            failure = str(obj.get("failure_reason") or f"The refund {status} at Stripe.")
        else:
            return Ignored(f"refund {status or 'pending'} at Stripe; its outcome comes later", reference)
    elif event_type == "checkout.session.completed":
        kind = PaymentEventType.SUCCEEDED if obj.get("payment_status") in _SUCCEEDED_SESSION else None
        if kind is None:
            return Ignored("checkout completed, payment not yet confirmed (asynchronous method)", reference)
    elif event_type == "checkout.session.async_payment_succeeded" or event_type == "payment_intent.succeeded":
        kind = PaymentEventType.SUCCEEDED
    elif event_type == "checkout.session.expired":
        kind, failure = PaymentEventType.FAILED, EXPIRED_REASON
    elif event_type == "checkout.session.async_payment_failed":
        kind, failure = PaymentEventType.FAILED, "The payment failed after checkout."
    elif event_type == "payment_intent.payment_failed":
        error = obj.get("last_payment_error") if isinstance(obj.get("last_payment_error"), dict) else {}
        failure = str((error or {}).get("message") or "The payment was declined.")
        if metadata.get("flow") == "checkout":
            return Ignored(f"declined on Stripe Checkout ({failure}); the session stays open", reference)
        kind = PaymentEventType.FAILED
    elif event_type == "payment_intent.processing":
        kind = PaymentEventType.PROCESSING
    else:
        return Ignored(f"event type {event_type} is not acted on", reference)
    if not reference:
        return Ignored(f"{event_type} for an object this shop did not create", reference)
    currency = obj.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise WebhookPayloadInvalid("The Stripe object has no currency.", details={"currency": ["Required."]})
    units = obj.get("amount_total", obj.get("amount_received") or obj.get("amount"))
    needs_amount = kind in (
        PaymentEventType.SUCCEEDED,
        PaymentEventType.REFUND_SUCCEEDED,
        PaymentEventType.REFUND_FAILED,
    )
    if needs_amount and (isinstance(units, bool) or not isinstance(units, int) or units <= 0):
        raise WebhookPayloadInvalid("The Stripe object has no amount.", details={"amount": ["Required."]})
    amount = from_minor_units(units, currency) if isinstance(units, int) and not isinstance(units, bool) else Decimal(0)
    created = event.get("created")
    created_at = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else datetime.now(UTC)
    event_id = str(event["id"])
    if len(event_id) > 100 or len(reference) > 100:
        raise WebhookPayloadInvalid("The Stripe event id or reference is too long.")
    return ProviderEvent(
        webhook_id=event_id,
        event_id=event_id,
        type=kind,
        created_at=created_at,
        provider_reference=reference,
        amount=amount,
        currency=currency.upper(),
        failure_reason=failure[:200],
        payload=event,
    )


@dataclass(frozen=True)
class IgnoredResult:
    duplicate: bool
    outcome: str


def stripe_event_record_ignored(*, event: dict[str, Any], ignored: Ignored) -> IgnoredResult:
    """Record a verified event the shop does not act on, once (its Stripe id is unique
    among WebhookEvents, shared with the applied ones): nothing else changes."""
    event_id = str(event["id"])[:100]
    attempt = (
        PaymentAttempt.objects.filter(provider=NAME, provider_reference=ignored.reference).first()
        if ignored.reference
        else None
    )
    created = event.get("created")
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(
                webhook_id=event_id,
                event_type=str(event["type"])[:40],
                provider=NAME,
                provider_reference=ignored.reference[:100],
                attempt=attempt,
                payload=event,
                signature_valid=True,
                changed_state=False,
                outcome=f"ignored: {ignored.reason}"[:200],
                event_created_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None,
            )
    except IntegrityError:
        if not WebhookEvent.objects.filter(webhook_id=event_id).exists():
            raise
        return IgnoredResult(duplicate=True, outcome="duplicate delivery ignored")
    return IgnoredResult(duplicate=False, outcome=f"ignored: {ignored.reason}")


# --- References, for staff --------------------------------------------------------------------


@dataclass(frozen=True)
class StripeReferences:
    checkout_sessions: list[str]
    payment_intents: list[str]
    refunds: list[str]
    events: list[str]


def stripe_references(*, attempt: PaymentAttempt) -> StripeReferences:
    """Stripe's ids for an attempt: its Checkout Session (from the hosted page URL) and the
    PaymentIntents, refunds and events named by the webhooks it received."""
    sessions: list[str] = []
    intents: list[str] = []
    refunds: list[str] = []
    events: list[str] = []

    def add(found: list[str], value: object, prefix: str) -> None:
        if isinstance(value, str) and value.startswith(prefix) and value not in found:
            found.append(value)

    add(sessions, session_id_from_url(attempt.redirect_url), "cs_")
    for payload in attempt.webhook_events.order_by("received_at", "id").values_list("payload", flat=True):
        if not isinstance(payload, dict):
            continue
        add(events, payload.get("id"), "evt_")
        obj = (payload.get("data") or {}).get("object") if isinstance(payload.get("data"), dict) else None
        if not isinstance(obj, dict):
            continue
        for key in ("id", "payment_intent", "refund"):
            add(sessions, obj.get(key), "cs_")
            add(intents, obj.get(key), "pi_")
            add(refunds, obj.get(key), "re_")
    return StripeReferences(sessions, intents, refunds, events)


def stripe_dashboard_url(stripe_id: str) -> str:
    """The Stripe dashboard page of an object (test-mode pages when the key is a test key)."""
    mode = "test/" if settings.STRIPE_SECRET_KEY.startswith(("sk_test_", "rk_test_")) else ""
    paths = {"pi_": "payments/", "re_": "refunds/", "cs_": "checkout/sessions/", "evt_": "events/"}
    path = next((p for prefix, p in paths.items() if stripe_id.startswith(prefix)), "search?query=")
    return f"https://dashboard.stripe.com/{mode}{path}{stripe_id}"
