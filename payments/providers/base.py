"""The provider interface, the normalized provider event, and Standard Webhooks checks.

A provider turns "charge this attempt" into an outcome it reports later by webhook, and
turns an incoming webhook request into a verified ProviderEvent. What the shop does with
the event is provider-independent (payments/services.py).
"""

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.conf import settings
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from common.errors import ApplicationError

if TYPE_CHECKING:
    from payments.models import PaymentAttempt, Refund


class PaymentEventType(StrEnum):
    PROCESSING = "payment.processing"
    SUCCEEDED = "payment.succeeded"
    FAILED = "payment.failed"
    # data.provider_reference is then the refund's (payments.models.Refund)
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"


class WebhookSignatureInvalid(ApplicationError):
    """Missing, malformed, wrong or stale signature: refused, nothing stored."""

    status_code = 400
    code = "webhook_signature_invalid"


class WebhookPayloadInvalid(ApplicationError):
    """Signed, but not an event this endpoint understands: refused, nothing stored."""

    status_code = 400
    code = "webhook_payload_invalid"


@dataclass(frozen=True)
class PaymentMethodChoice:
    code: str
    label: str
    description: str


@dataclass(frozen=True)
class ProviderEvent:
    """A verified provider event, normalized. `webhook_id` is the dedupe key."""

    webhook_id: str
    event_id: str
    type: PaymentEventType
    created_at: datetime
    provider_reference: str
    amount: Decimal
    currency: str
    failure_reason: str
    payload: dict[str, Any]


class PaymentProvider(ABC):
    """What the shop needs from a payment provider."""

    name: str

    @abstractmethod
    def payment_methods(self) -> list[PaymentMethodChoice]:
        """Methods a shopper may choose on the hosted page (and API clients may pass)."""

    def method_label(self, payment_method: str) -> str:
        """The method as a shopper reads it ("Test card, succeeds"); the code if unknown."""
        return next((m.label for m in self.payment_methods() if m.code == payment_method), payment_method)

    @abstractmethod
    def validate_method(self, payment_method: str) -> None:
        """Raise common.errors.ValidationFailed if the method is not usable."""

    @abstractmethod
    def new_reference(self) -> str:
        """A fresh, unguessable reference for a new attempt (unique per provider)."""

    @abstractmethod
    def hosted_page_url(self, *, provider_reference: str) -> str:
        """Where to send a shopper to choose a method and pay ("" if there is none)."""

    def prepare(self, *, attempt: "PaymentAttempt") -> str:
        """Optional hook, called inside payment_attempt_create's transaction once the attempt
        row exists: a provider that opens a hosted page per attempt (Stripe's Checkout
        Session) opens it here and returns its URL, which becomes the attempt's
        redirect_url. Raising an ApplicationError refuses the attempt (nothing is written).
        The default does nothing and returns "" (keep what hosted_page_url gave)."""
        return ""

    @abstractmethod
    def charge(self, *, attempt: "PaymentAttempt", payment_method: str) -> None:
        """Ask the provider to charge `attempt` (as committed). Called after the attempt's
        transaction commits; the outcome arrives later as webhooks. Must be safe to call
        again (idempotent)."""

    @abstractmethod
    def cancel(self, *, attempt: "PaymentAttempt") -> None:
        """The shopper gave up on the hosted page; the provider reports a failure."""

    def refund_submit(self, *, refund: "Refund") -> str:
        """Ask the provider to give `refund.amount` of `refund.attempt` back; the outcome
        arrives later as a refund webhook. Called after the refund's transaction commits
        and again by beat if that call was lost: must be idempotent (key: the refund's
        provider_reference). Returns the provider's id for the refund ("" if none yet).
        Raises an ApplicationError: 5xx (unavailable, retried), else refused (the refund fails)."""
        raise NotImplementedError(f"{self.name} cannot refund")

    @abstractmethod
    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Verify a webhook request and return its event, or raise WebhookSignatureInvalid /
        WebhookPayloadInvalid. Verification covers the raw body, byte for byte."""


# --- Standard Webhooks (https://www.standardwebhooks.com/) -------------------------------------


def standard_webhook_sign(*, secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The three headers for one delivery of `body`."""
    signature = Webhook(secret).sign(msg_id, timestamp, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def standard_webhook_verify(*, secret: str, body: bytes, headers: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """Check the signature of the raw body (5 minute timestamp tolerance, the library's
    default); return (webhook-id, parsed JSON body)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        parsed = Webhook(secret).verify(body, lowered)
    except (WebhookVerificationError, ValueError, TypeError) as exc:
        # ValueError covers malformed base64, a signature without "v1,", non-UTF-8 bodies
        # and bodies that are signed but not JSON.
        raise WebhookSignatureInvalid(f"Webhook signature verification failed: {exc}.") from exc
    return lowered["webhook-id"], parsed


def provider_event_from_body(*, webhook_id: str, body: Any) -> ProviderEvent:
    """Validate the event body of the shop's webhook contract:
    {"id", "type", "created_at", "data": {"provider_reference", "amount", "currency", "failure_reason"}}."""
    errors: dict[str, list[str]] = {}
    if not isinstance(body, dict):
        raise WebhookPayloadInvalid("The webhook body must be a JSON object.")
    data = body.get("data")
    if not isinstance(data, dict):
        raise WebhookPayloadInvalid("The webhook body has no data object.", details={"data": ["Required."]})
    try:
        event_type = PaymentEventType(str(body.get("type")))
    except ValueError:
        errors["type"] = [f"Must be one of {', '.join(t.value for t in PaymentEventType)}."]
    event_id = body.get("id")
    if not isinstance(event_id, str) or not event_id:
        errors["id"] = ["Required."]
    created_at: datetime | None = None
    try:
        created_at = datetime.fromisoformat(str(body.get("created_at")))
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
    except ValueError:
        errors["created_at"] = ["Must be an ISO 8601 timestamp."]
    reference = data.get("provider_reference")
    if not isinstance(reference, str) or not reference or len(reference) > 100:
        errors["data.provider_reference"] = ["Required, at most 100 characters."]
    amount: Decimal | None = None
    try:
        amount = Decimal(str(data.get("amount")))
        if not amount.is_finite() or amount <= 0:
            raise InvalidOperation
    except InvalidOperation:
        errors["data.amount"] = ["Must be a positive decimal string."]
    currency = data.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        errors["data.currency"] = ["Must be an ISO 4217 code."]
    failure_reason = data.get("failure_reason") or ""
    if not isinstance(failure_reason, str):
        errors["data.failure_reason"] = ["Must be a string or null."]
    if len(webhook_id) > 100:
        errors["webhook-id"] = ["At most 100 characters."]
    if errors:
        raise WebhookPayloadInvalid("The webhook event is not valid; see details.", details=errors)
    assert isinstance(event_id, str)
    assert isinstance(reference, str)
    assert isinstance(currency, str)
    assert created_at is not None
    assert amount is not None
    return ProviderEvent(
        webhook_id=webhook_id,
        event_id=event_id,
        type=event_type,
        created_at=created_at,
        provider_reference=reference,
        amount=amount,
        currency=currency.upper(),
        failure_reason=failure_reason[:200],
        payload=body,
    )


def webhook_secret() -> str:
    secret: str = settings.PAYMENT_WEBHOOK_SECRET
    return secret


def json_body(payload: dict[str, Any]) -> str:
    """The exact text that is signed and sent."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)
