"""Payment writes: attempts, provider events, and giving up on silent attempts.

Locks follow the one order written in flows/__init__.py: every function here that touches
an attempt locks its order first. Payments know orders, not invoices: what a payment may be
for (`amount_policy`) and what happens when money arrives (`on_succeeded`) are callables
given by the layer above (flows/, invoicing), so this app never imports them.

An attempt only moves forward (processing -> succeeded | failed). The order is paid at
most once: a success that cannot be applied (order already paid or cancelled, or the shop
had already given up on the attempt) is recorded and flagged `refund_required` for staff.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.commit import on_commit_robust
from common.db import PreparedQuery, instance_insert, instance_insert_unless_conflict, instance_update, rows_update
from common.errors import Conflict, IllegalTransition, NotFound, ValidationFailed
from orders.locks import order_lock, order_lock_or_skip
from orders.models import Order, OrderStatus
from outbox.services import outbox_record
from payments.locks import attempt_lock
from payments.models import FailureCode, PaymentAttempt, PaymentStatus, WebhookEvent
from payments.providers import payment_provider
from payments.providers.base import PaymentEventType, PaymentProvider, ProviderEvent
from payments.refunds import REFUND_EVENT_TYPES, RefundSuccessHandler, refund_webhook_apply

logger = logging.getLogger(__name__)

ONE_PROCESSING_CONSTRAINT = "payment_one_processing_per_order"


class PaymentInProgress(Conflict):
    code = "payment_in_progress"


class ReservationExpired(Conflict):
    code = "reservation_expired"


# (the locked order, the amount asked for or None) -> the amount of the new attempt; raises
# an ApplicationError when the order cannot take that payment.
AmountPolicy = Callable[[Order, Decimal | None], Decimal]
# (the locked order, the attempt that just succeeded for it) -> what happened, for the
# webhook record: flows.order_paid.payment_succeeded marks the order paid and invoices it.
SuccessHandler = Callable[[Order, PaymentAttempt], str]


def payment_amount_order_total(order: Order, requested: Decimal | None) -> Decimal:
    """The default policy: an order is paid in one go, for its total."""
    if requested is not None and requested != order.total:
        raise ValidationFailed(
            f"This order is paid in full: {order.total} {order.currency}.", details={"amount": ["Must be the total."]}
        )
    return order.total


# --- Attempts ---------------------------------------------------------------------------------


def _payload(attempt: PaymentAttempt, **extra: object) -> dict[str, object]:
    return {
        "attempt_id": attempt.pk,
        "order_id": attempt.order_id,
        "amount": attempt.amount,
        "currency": attempt.currency,
        "provider": attempt.provider,
        "provider_reference": attempt.provider_reference,
        "status": attempt.status,
        **extra,
    }


def _is_one_processing_violation(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    if diag is not None:
        return getattr(diag, "constraint_name", None) == ONE_PROCESSING_CONSTRAINT
    return "payments_paymentattempt.order_id" in str(exc)  # SQLite names the columns


def payment_attempt_create(
    *,
    order_id: int,
    user: User,
    payment_method: str = "",
    provider: PaymentProvider | None = None,
    amount: Decimal | None = None,
    amount_policy: AmountPolicy = payment_amount_order_total,
) -> PaymentAttempt:
    """Start paying an order: one `processing` attempt for what `amount_policy` allows
    (by default the order total; for a staff-billed order, an amount of its invoice:
    invoicing.services.invoice_payment_amount, given by flows/).

    With a payment method the provider is asked to charge once this transaction commits;
    without one the attempt waits for the shopper on the provider's hosted page
    (`redirect_url`). Raises ValidationFailed (unknown method), NotFound (not the user's
    order), IllegalTransition (order not pending_payment), ReservationExpired, or
    PaymentInProgress (an attempt is already processing; backed by a partial unique
    index). Nothing is written when it raises.
    """
    provider = provider or payment_provider()
    if payment_method:
        provider.validate_method(payment_method)
    try:
        with transaction.atomic():
            try:
                order = order_lock(order_id=order_id)
            except Order.DoesNotExist:
                raise NotFound("No such order.") from None
            if order.user_id != user.pk:
                raise NotFound("No such order.")
            if order.status != OrderStatus.PENDING_PAYMENT:
                raise IllegalTransition(
                    f"Order #{order.pk} is {order.status}; only an order awaiting payment can be paid.",
                    details={"order_id": order.pk, "status": order.status},
                )
            now = timezone.now()
            if order.reservation_expires_at is not None and order.reservation_expires_at <= now:
                raise ReservationExpired(
                    f"The items of order #{order.pk} are no longer reserved; please order again.",
                    details={"order_id": order.pk, "reservation_expires_at": order.reservation_expires_at.isoformat()},
                )
            # One attempt processing per order: the partial unique index refuses a second one
            # (IntegrityError, below), so there is no SELECT for it first.
            # The policy may lock rows after the order (a staff-billed order's invoice).
            amount = amount_policy(order, amount)
            reference = provider.new_reference()
            attempt = instance_insert(
                PaymentAttempt(
                    order=order,
                    amount=amount,
                    currency=order.currency,
                    provider=provider.name,
                    provider_reference=reference,
                    payment_method=payment_method,
                    status=PaymentStatus.PROCESSING,
                    redirect_url="" if payment_method else provider.hosted_page_url(provider_reference=reference),
                    charge_requested_at=now if payment_method else None,
                )
            )
            # Provider hook (base.PaymentProvider.prepare): Stripe opens its Checkout Session
            # here and returns its URL; the simulated provider returns "" (nothing changes).
            if hosted_url := provider.prepare(attempt=attempt):
                attempt.redirect_url = hosted_url
                attempt.save(update_fields=["redirect_url", "updated_at"])
            outbox_record(event_type="payment.created", aggregate=attempt, payload=_payload(attempt))
            if payment_method:
                _charge_on_commit(provider=provider, attempt=attempt)
    except IntegrityError as exc:
        if not _is_one_processing_violation(exc):
            raise
        current = PaymentAttempt.objects.filter(order_id=order_id, status=PaymentStatus.PROCESSING).first()
        if current is None:  # it ended meanwhile
            raise PaymentInProgress("A payment for this order is already being processed.") from exc
        raise _in_progress(current) from exc
    return attempt


def _in_progress(current: PaymentAttempt) -> PaymentInProgress:
    return PaymentInProgress(
        "A payment for this order is already being processed.",
        details={
            "attempt_id": current.pk,
            "awaiting_customer": current.awaiting_customer,
            "redirect_url": current.redirect_url if current.awaiting_customer else "",
        },
    )


def _charge_on_commit(*, provider: PaymentProvider, attempt: PaymentAttempt) -> None:
    # The attempt as this transaction commits it: nobody else writes it before the charge is
    # submitted (beat's resubmission waits PAYMENT_CHARGE_RESUBMIT_S), so it is not read again.
    on_commit_robust(hook="payments.charge", fn=lambda: payment_charge_submit(attempt=attempt, provider=provider))


def payment_charge_submit(*, attempt: PaymentAttempt, provider: PaymentProvider | None = None) -> bool:
    """Hand a requested charge (or, without a method, the hosted page's cancel) to the
    provider, once: True when it was submitted now. Called after the request's commit and
    by beat for requests whose after-commit call was lost; providers take it idempotently
    (the simulated one stores its first webhook once; Stripe gets an idempotency key)."""
    if attempt.is_final or attempt.charge_requested_at is None or attempt.charge_submitted_at:
        return False
    provider = provider or payment_provider(attempt.provider)
    if attempt.payment_method:
        provider.charge(attempt=attempt, payment_method=attempt.payment_method)
    else:
        provider.cancel(attempt=attempt)
    submitted = rows_update(
        PaymentAttempt,
        where={"pk": attempt.pk, "charge_submitted_at": None},
        values={"charge_submitted_at": timezone.now()},
    )
    return submitted == 1


def payment_charges_resubmit(*, now: datetime | None = None, stale_s: float | None = None, limit: int = 200) -> int:
    """Beat: submit again the charge requests whose after-commit call never reached the
    provider (the process died, the broker was down). Returns how many were submitted."""
    now = now or timezone.now()
    stale_s = settings.PAYMENT_CHARGE_RESUBMIT_S if stale_s is None else stale_s
    lost = list(
        PaymentAttempt.objects.filter(
            status=PaymentStatus.PROCESSING,
            charge_requested_at__lte=now - timedelta(seconds=stale_s),
            charge_submitted_at__isnull=True,
        )
        .order_by("charge_requested_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    submitted = 0
    for attempt_id in lost:
        try:
            attempt = PaymentAttempt.objects.filter(pk=attempt_id).first()  # as it is now, not as listed
            submitted += attempt is not None and payment_charge_submit(attempt=attempt)
        except Exception:  # one provider error must not stop the others; the next run retries
            logger.warning("charge request of attempt %s could not be submitted", attempt_id, exc_info=True)
    if submitted:
        logger.warning("submitted %d charge requests whose after-commit call was lost", submitted)
    return submitted


def _lock_attempt(*, attempt_id: int, order_id: int | None = None) -> tuple[Order, PaymentAttempt]:
    """Lock an attempt's order, then the attempt (the fixed order). `order_id`, when the
    caller already read it with the attempt's id, saves that read (it never changes)."""
    if order_id is None:
        order_id = PaymentAttempt.objects.filter(pk=attempt_id).values_list("order_id", flat=True).first()
    if order_id is None:
        raise NotFound("No such payment.")
    order = order_lock(order_id=order_id)
    attempt = attempt_lock(attempt_id=attempt_id)
    return order, attempt


def payment_attempt_request_charge(
    *, attempt_id: int, payment_method: str, provider: PaymentProvider | None = None
) -> PaymentAttempt:
    """The shopper chose a method on the hosted page: ask the provider to charge.

    At most once per attempt: a second submit (double click, back button) changes nothing
    and charges nothing. Raises ValidationFailed for an unknown method, NotFound."""
    provider = provider or payment_provider()
    provider.validate_method(payment_method)
    with transaction.atomic():
        _, attempt = _lock_attempt(attempt_id=attempt_id)
        if not attempt.awaiting_customer:
            return attempt
        attempt.payment_method = payment_method
        attempt.charge_requested_at = timezone.now()
        attempt.save(update_fields=["payment_method", "charge_requested_at", "updated_at"])
        _charge_on_commit(provider=provider, attempt=attempt)
    return attempt


def payment_attempt_request_cancel(*, attempt_id: int, provider: PaymentProvider | None = None) -> PaymentAttempt:
    """The shopper canceled on the hosted page: the provider reports the attempt failed
    (by webhook, like any outcome). Only before a charge was requested; else a no-op."""
    provider = provider or payment_provider()
    with transaction.atomic():
        _, attempt = _lock_attempt(attempt_id=attempt_id)
        if not attempt.awaiting_customer:
            return attempt
        attempt.charge_requested_at = timezone.now()
        attempt.save(update_fields=["charge_requested_at", "updated_at"])
        _charge_on_commit(provider=provider, attempt=attempt)
    return attempt


def _attempt_fail(*, attempt: PaymentAttempt, code: str, reason: str, now: datetime) -> None:
    attempt.status = PaymentStatus.FAILED
    attempt.failure_code = code
    attempt.failure_reason = reason[:200]
    attempt.completed_at = now
    attempt.save(update_fields=["status", "failure_code", "failure_reason", "completed_at", "updated_at"])
    outbox_record(
        event_type="payment.failed", aggregate=attempt, payload=_payload(attempt, failure_reason=attempt.failure_reason)
    )


# --- Provider events ----------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    duplicate: bool
    changed_state: bool
    outcome: str


# (provider, provider_reference) is unique: every webhook looks its attempt up by it.
_attempt_by_reference = PreparedQuery(
    PaymentAttempt,
    lambda provider, reference: PaymentAttempt.objects.filter(provider=provider, provider_reference=reference),
    provider=str,
    reference=str,
)


def payment_webhook_apply(
    *,
    event: ProviderEvent,
    provider_name: str,
    on_succeeded: SuccessHandler,
    on_refund_succeeded: RefundSuccessHandler | None = None,
) -> WebhookResult:
    """Apply one verified provider event exactly once. A success for an order awaiting
    payment is handed to `on_succeeded` in the same transaction (flows.order_paid); a
    refund event goes to payments.refunds.refund_webhook_apply (its success to
    `on_refund_succeeded`, flows.refund_succeeded).

    A success or failure: one transaction that locks the order, then the attempt; moves the
    attempt forward if the event allows it; records the event (webhook-id is unique: a
    duplicate, even a concurrent one, returns `duplicate` and changes nothing). Events for
    a final attempt are recorded and ignored. A `processing` event, or one for an unknown
    reference, can change nothing: it is recorded with its outcome in one INSERT, no lock.
    """
    if event.type in REFUND_EVENT_TYPES:
        assert on_refund_succeeded is not None, "route the webhook with on_refund_succeeded (flows/urls_api.py)"
        applied = refund_webhook_apply(event=event, provider_name=provider_name, on_succeeded=on_refund_succeeded)
        return WebhookResult(duplicate=applied.duplicate, changed_state=applied.changed_state, outcome=applied.outcome)
    attempt_found = _attempt_by_reference.first(provider=provider_name, reference=event.provider_reference)
    found = (attempt_found.pk, attempt_found.order_id, attempt_found.status) if attempt_found is not None else None
    record = WebhookEvent(
        webhook_id=event.webhook_id,
        event_type=event.type.value,
        provider=provider_name,
        provider_reference=event.provider_reference,
        attempt_id=found[0] if found is not None else None,
        payload=event.payload,
        signature_valid=True,
        event_created_at=event.created_at,
    )
    if found is None or event.type == PaymentEventType.PROCESSING:
        # Changes nothing whatever the attempt's state (it only moves forward from
        # processing), so it takes no lock: the event is recorded with its outcome in one
        # INSERT. webhook_id is unique: a duplicate inserts nothing.
        if found is None:
            logger.warning("webhook %s for unknown reference %s", event.webhook_id, event.provider_reference)
            record.outcome = "no payment attempt with this reference; ignored"
        elif found[2] != PaymentStatus.PROCESSING:
            record.outcome = f"attempt already {found[2]}; stale processing event ignored"
        else:
            record.outcome = "attempt is processing"
        if not instance_insert_unless_conflict(record):
            return WebhookResult(duplicate=True, changed_state=False, outcome="duplicate delivery ignored")
        return WebhookResult(duplicate=False, changed_state=False, outcome=record.outcome)
    try:
        with transaction.atomic():
            order, attempt = _lock_attempt(attempt_id=found[0], order_id=found[1])
            changed, outcome = _apply(order=order, attempt=attempt, event=event, on_succeeded=on_succeeded)
            record.changed_state, record.outcome = changed, outcome[:200]
            # The event is recorded last, with its outcome (one statement, no savepoint).
            # webhook_id is unique: a duplicate, even a concurrent one (it waited on the
            # order lock until the first one committed), inserts nothing, and then whatever
            # it applied is rolled back: a duplicate never changes anything.
            if not instance_insert_unless_conflict(record):
                raise _DuplicateEvent
    except _DuplicateEvent:
        return WebhookResult(duplicate=True, changed_state=False, outcome="duplicate delivery ignored")
    return WebhookResult(duplicate=False, changed_state=changed, outcome=outcome)


class _DuplicateEvent(Exception):
    """Rolls back a duplicate's transaction (payment_webhook_apply)."""


def _apply(
    *, order: Order, attempt: PaymentAttempt, event: ProviderEvent, on_succeeded: SuccessHandler
) -> tuple[bool, str]:
    now = timezone.now()
    if event.type == PaymentEventType.FAILED:
        if attempt.is_final:
            return False, f"attempt already {attempt.status}; failure ignored"
        _attempt_fail(
            attempt=attempt, code=FailureCode.PROVIDER, reason=event.failure_reason or "Payment failed.", now=now
        )
        return True, "attempt failed; order still awaiting payment"

    # payment.succeeded: the provider has the money.
    if (event.amount, event.currency) != (attempt.amount, attempt.currency):
        reported = f"{event.amount} {event.currency}"
        if attempt.is_final:
            return False, f"attempt already {attempt.status}; success for {reported} ignored"
        _attempt_fail(
            attempt=attempt,
            code=FailureCode.MISMATCH,
            reason=f"Provider reported {reported}, expected {attempt.amount} {attempt.currency}.",
            now=now,
        )
        _flag_refund(attempt=attempt, reason=f"captured {reported}, which does not match the attempt")
        return True, "amount or currency mismatch: attempt failed, refund required"
    if attempt.status == PaymentStatus.SUCCEEDED:
        return False, "attempt already succeeded; ignored"
    if attempt.status == PaymentStatus.FAILED:
        if attempt.failure_code == FailureCode.TIMEOUT and not attempt.refund_required:
            _flag_refund(attempt=attempt, reason="succeeded at the provider after the shop gave up waiting")
            return True, "late success after timeout: refund required"
        return False, "attempt already failed; success ignored"

    attempt.status = PaymentStatus.SUCCEEDED
    attempt.completed_at = now
    instance_update(attempt, fields=["status", "completed_at", "updated_at"])  # save(update_fields=), cached
    applied = order.status == OrderStatus.PENDING_PAYMENT
    outbox_record(event_type="payment.succeeded", aggregate=attempt, payload=_payload(attempt, applied=applied))
    if not applied:
        # Never paid twice, never resurrected: the money goes back (staff see the flag).
        _flag_refund(attempt=attempt, reason=f"order was already {order.status} when this payment succeeded")
        logger.warning("attempt %s succeeded for %s order %s: refund required", attempt.pk, order.status, order.pk)
        return True, f"order already {order.status}: not applied, refund required"
    return True, on_succeeded(order, attempt)


def _flag_refund(*, attempt: PaymentAttempt, reason: str) -> None:
    attempt.refund_required = True
    attempt.refund_reason = reason[:200]
    attempt.save(update_fields=["refund_required", "refund_reason", "updated_at"])
    outbox_record(event_type="payment.refund_required", aggregate=attempt, payload=_payload(attempt, reason=reason))


# --- Attempts the provider never answered -------------------------------------------------


def payment_attempts_fail_stale(*, now: datetime | None = None, timeout_s: float | None = None) -> int:
    """Fail attempts still processing `timeout_s` after they started (beat task).

    Each in its own short transaction, order then attempt locked; an order another
    transaction holds (a webhook being applied) is skipped and seen on the next run. A
    success that arrives later is flagged for refund, never applied. Returns how many failed.
    """
    now = now or timezone.now()
    timeout_s = settings.PAYMENT_PROCESSING_TIMEOUT_S if timeout_s is None else timeout_s
    cutoff = now - timedelta(seconds=timeout_s)
    stale = list(
        PaymentAttempt.objects.filter(status=PaymentStatus.PROCESSING, created_at__lte=cutoff)
        .order_by("created_at", "id")
        .values_list("pk", "order_id")[:500]
    )
    failed = 0
    for attempt_id, order_id in stale:
        with transaction.atomic():
            if order_lock_or_skip(order_id=order_id) is None:
                continue
            attempt = attempt_lock(attempt_id=attempt_id)
            if attempt.is_final:
                continue
            _attempt_fail(
                attempt=attempt,
                code=FailureCode.TIMEOUT,
                reason=f"No result from the payment provider within {timeout_s:g} seconds.",
                now=now,
            )
            failed += 1
    if failed:
        logger.warning("failed %d payment attempts stuck in processing", failed)
    return failed
