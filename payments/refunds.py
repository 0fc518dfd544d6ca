"""Refunds through the provider: create (capped, under the order lock), submit after commit
(durable: `submitted_at` + a beat sweeper, like charge requests), apply the provider's
refund webhooks exactly once, forward only.

Locks follow flows/__init__.py: order -> payment attempt -> refund. Every refund of an
order is created under its order lock, so the cap (never more than was paid) is checked
against every refund already pending or succeeded, whatever the concurrency.

What a success does beyond the refund row (restock, order state, credit note) is the
layer above's: `on_succeeded` (flows.refund_succeeded), handed in by the webhook routes.
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from common.commit import on_commit_robust
from common.errors import ApplicationError, Conflict, NotFound, ValidationFailed
from common.money import ZERO, money_allocate, money_round
from orders.locks import order_lock
from orders.models import REFUNDABLE_STATES, Order, OrderLine
from outbox.services import outbox_record
from payments.locks import attempt_lock, refund_lock
from payments.models import PaymentAttempt, PaymentStatus, Refund, RefundLine, RefundStatus, WebhookEvent
from payments.providers import payment_provider
from payments.providers.base import PaymentEventType, ProviderEvent

logger = logging.getLogger(__name__)

_LIVE = (RefundStatus.PENDING, RefundStatus.SUCCEEDED)  # what counts against the cap


class OrderNotRefundable(Conflict):
    code = "order_not_refundable"


class RefundExceedsRefundable(Conflict):
    code = "refund_exceeds_refundable"


class RefundInProgress(Conflict):
    code = "refund_in_progress"


# (the locked order, attempt and refund, just marked succeeded) -> the outcome for the
# webhook record: flows.refund_succeeded restocks, moves the order, issues the credit note.
RefundSuccessHandler = Callable[[Order, PaymentAttempt, Refund], str]


@dataclass(frozen=True)
class RefundLineSpec:
    sku: str
    quantity: int


@dataclass(frozen=True)
class LineRefundable:
    """One order line: units and gross amount (discount spread, tax included) still refundable."""

    line: OrderLine
    gross: Decimal
    quantity_left: int
    amount_left: Decimal

    def amount_for(self, quantity: int, currency: str) -> Decimal:
        # The last units take the remainder: a line refunded in parts adds up to its gross exactly.
        if quantity == self.quantity_left:
            return self.amount_left
        return min(money_round(self.gross * quantity / self.line.quantity, currency), self.amount_left)


def order_lines_refundable(*, order: Order) -> list[LineRefundable]:
    lines = list(order.lines.all().order_by("id"))
    discounts = money_allocate(order.discount, [line.line_total for line in lines], order.currency)
    taken = {
        row["order_line_id"]: (row["q"], row["a"])
        for row in RefundLine.objects.filter(refund__order_id=order.pk, refund__status__in=_LIVE)
        .values("order_line_id")
        .annotate(q=Sum("quantity"), a=Sum("amount"))
    }
    result = []
    for line, discount in zip(lines, discounts, strict=True):
        gross = money_round((line.line_total - discount) * (1 + line.tax_rate), order.currency)
        quantity, amount = taken.get(line.pk, (0, ZERO))
        result.append(LineRefundable(line, gross, line.quantity - quantity, gross - amount))
    return result


def _applied_attempts(*, order_id: int) -> list[PaymentAttempt]:
    """The payments that paid this order (a success flagged refund_required never did)."""
    return list(
        PaymentAttempt.objects.filter(
            order_id=order_id, status=PaymentStatus.SUCCEEDED, refund_required=False
        ).order_by("completed_at", "id")
    )


def _refunded_by_attempt(*, attempt_ids: list[int]) -> dict[int, Decimal]:
    rows = (
        Refund.objects.filter(attempt_id__in=attempt_ids, status__in=_LIVE)
        .values("attempt_id")
        .annotate(total=Sum("amount"))
    )
    return {row["attempt_id"]: row["total"] for row in rows}


def order_refundable_amount(*, order_id: int) -> Decimal:
    """Paid minus every refund pending or succeeded (exact; read it under the order lock
    to decide anything)."""
    attempts = _applied_attempts(order_id=order_id)
    refunded = _refunded_by_attempt(attempt_ids=[a.pk for a in attempts])
    return sum((a.amount - refunded.get(a.pk, ZERO) for a in attempts), ZERO)


def order_refunded_amount(*, order_id: int) -> Decimal:
    """What succeeded refunds gave back of the order's applied payments."""
    total = Refund.objects.filter(
        order_id=order_id, status=RefundStatus.SUCCEEDED, attempt__refund_required=False
    ).aggregate(total=Sum("amount"))["total"]
    return total or ZERO


def order_paid_amount(*, order_id: int) -> Decimal:
    return sum((a.amount for a in _applied_attempts(order_id=order_id)), ZERO)


def _parse_amount(*, amount: Decimal | str | None, currency: str) -> Decimal | None:
    if amount is None:
        return None
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0 or value != money_round(value, currency):
        raise ValidationFailed(
            "The amount must be a positive decimal in whole minor units.",
            details={"amount": [f"Must be more than 0, in whole minor units of {currency}."]},
        )
    return value


def _lines_build(
    *, order: Order, specs: list[RefundLineSpec]
) -> tuple[list[tuple[LineRefundable, int, Decimal]], Decimal]:
    """Validate refund lines against what was bought and not yet refunded; every problem
    is reported at once, by line index. Returns (line, quantity, amount) and the sum."""
    refundable = order_lines_refundable(order=order)
    by_sku: dict[str, LineRefundable] = {}
    for candidate in refundable:
        if candidate.line.sku and candidate.line.sku not in by_sku:
            by_sku[candidate.line.sku] = candidate
    errors: dict[str, dict[str, list[str]]] = {}
    seen: set[str] = set()
    built = []
    for index, spec in enumerate(specs):
        problems: dict[str, list[str]] = {}
        item = by_sku.get(spec.sku)
        if item is None:
            problems["sku"] = [f"Order #{order.pk} has no line with SKU {spec.sku!r}."]
        elif spec.sku in seen:
            problems["sku"] = [f"SKU {spec.sku!r} is listed twice."]
        if spec.quantity <= 0:
            problems["quantity"] = ["Must be at least 1."]
        elif item is not None and spec.quantity > item.quantity_left:
            problems["quantity"] = [
                f"At most {item.quantity_left} of {spec.sku} can be refunded "
                f"({item.line.quantity} bought, {item.line.quantity - item.quantity_left} refunded or pending)."
            ]
        seen.add(spec.sku)
        if problems:
            errors[str(index)] = problems
            continue
        assert item is not None
        built.append((item, spec.quantity, item.amount_for(spec.quantity, order.currency)))
    if errors:
        raise ValidationFailed("Some refund lines are not valid; see details.", details={"lines": errors})
    return built, sum((amount for _, _, amount in built), ZERO)


def _pick_attempt(*, order: Order, amount: Decimal) -> PaymentAttempt:
    """The one payment that gives `amount` back (an order paid in parts may have several)."""
    attempts = _applied_attempts(order_id=order.pk)
    refunded = _refunded_by_attempt(attempt_ids=[a.pk for a in attempts])
    left = {a.pk: a.amount - refunded.get(a.pk, ZERO) for a in attempts}
    total_left = sum(left.values(), ZERO)
    if amount > total_left:
        raise RefundExceedsRefundable(
            f"At most {total_left} {order.currency} of order #{order.pk} can still be refunded.",
            details={"refundable": f"{total_left:.2f}", "requested": f"{amount:.2f}", "currency": order.currency},
        )
    chosen = next((a for a in attempts if left[a.pk] >= amount), None)
    if chosen is None:
        largest = max(left.values())
        raise RefundExceedsRefundable(
            f"The order was paid in parts; one refund gives back at most one payment ({largest} {order.currency}).",
            details={"refundable": f"{largest:.2f}", "requested": f"{amount:.2f}", "currency": order.currency},
        )
    return chosen


def _payload(refund: Refund, **extra: object) -> dict[str, object]:
    return {
        "refund_id": refund.pk,
        "order_id": refund.order_id,
        "attempt_id": refund.attempt_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "provider_reference": refund.provider_reference,
        "restock": refund.restock,
        **extra,
    }


def refund_create(
    *,
    order_id: int,
    reason: str,
    restock: bool = False,
    amount: Decimal | str | None = None,
    lines: list[RefundLineSpec] | None = None,
    actor: User | None = None,
    cancels_order: bool = False,
) -> Refund:
    """Give money of a paid order back through the provider: a pending Refund, submitted
    to the provider after commit; the provider's webhook settles it.

    - `lines`: these units (their gross amounts, discount spread, tax included); `amount`,
      if given too, must equal their sum.
    - `amount` alone: an amount-only refund (no lines, nothing restocked).
    - neither: everything still refundable, with every unit not yet refunded as lines
      (the refund's amount may then exceed its lines' sum: shipping, earlier amount-only
      refunds are not lines).

    One refund gives back one payment; an order paid in parts (a staff-billed invoice) is
    refunded payment by payment, except a staff cancel (`cancels_order`, nothing given),
    which makes one refund per payment with something left (the units go with the first)
    and returns the first.

    Raises ValidationFailed (reason missing, bad amount, unknown SKU, more units than are
    left), NotFound, OrderNotRefundable (not paid, or fully refunded / cancelled),
    RefundExceedsRefundable (above what was paid minus every pending or succeeded
    refund). Nothing is written when it raises.
    """
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("A refund needs a reason.", details={"reason": ["Required."]})
    with transaction.atomic():
        try:
            order = order_lock(order_id=order_id)
        except Order.DoesNotExist:
            raise NotFound("No such order.") from None
        if order.status not in REFUNDABLE_STATES:
            raise OrderNotRefundable(
                f"Order #{order.pk} is {order.status}; only a paid order can be refunded.",
                details={"order_id": order.pk, "status": order.status},
            )
        if Refund.objects.filter(order_id=order.pk, status=RefundStatus.PENDING, cancels_order=True).exists():
            raise RefundInProgress(
                f"Order #{order.pk} is being cancelled; its full refund is pending.", details={"order_id": order.pk}
            )
        requested = _parse_amount(amount=amount, currency=order.currency)
        built: list[tuple[LineRefundable, int, Decimal]] = []
        if lines:
            built, lines_total = _lines_build(order=order, specs=lines)
            if requested is not None and requested != lines_total:
                raise ValidationFailed(
                    f"The lines come to {lines_total} {order.currency}; leave out amount or send that.",
                    details={"amount": [f"Must equal the lines' total, {lines_total}."]},
                )
            requested = lines_total
            if requested <= 0:
                raise ValidationFailed("These lines have nothing left to refund.", details={"lines": ["Nothing left."]})
        elif requested is None:
            requested = order_refundable_amount(order_id=order.pk)
            if requested <= 0:
                raise RefundExceedsRefundable(
                    f"Nothing of order #{order.pk} is left to refund.",
                    details={"refundable": "0.00", "requested": "0.00", "currency": order.currency},
                )
            built = [
                (item, item.quantity_left, item.amount_left)
                for item in order_lines_refundable(order=order)
                if item.quantity_left > 0
            ]
            if sum((a for _, _, a in built), ZERO) > requested:  # earlier amount-only refunds
                shares = money_allocate(requested, [a for _, _, a in built], order.currency)
                built = [(item, qty, share) for (item, qty, _), share in zip(built, shares, strict=True)]
        if cancels_order and amount is None and not lines:
            # A cancel gives back everything: one refund per payment when it was paid in parts.
            parts = _split_over_attempts(order=order, amount=requested)
        else:
            parts = [(_pick_attempt(order=order, amount=requested), requested)]
        refunds = []
        for index, (attempt, part) in enumerate(parts):
            part_lines = built if index == 0 else []  # the units (and the restock) go with the first
            if part_lines and sum((a for _, _, a in part_lines), ZERO) > part:
                shares = money_allocate(part, [a for _, _, a in part_lines], order.currency)
                part_lines = [(item, qty, share) for (item, qty, _), share in zip(part_lines, shares, strict=True)]
            refunds.append(
                _refund_insert(
                    order=order,
                    attempt=attempt,
                    amount=part,
                    lines=part_lines,
                    reason=reason,
                    restock=restock,
                    actor=actor,
                    cancels_order=cancels_order,
                )
            )
    return refunds[0]


def _split_over_attempts(*, order: Order, amount: Decimal) -> list[tuple[PaymentAttempt, Decimal]]:
    """`amount` (everything left) as one part per payment with something left, oldest first."""
    attempts = _applied_attempts(order_id=order.pk)
    refunded = _refunded_by_attempt(attempt_ids=[a.pk for a in attempts])
    parts = [(a, a.amount - refunded.get(a.pk, ZERO)) for a in attempts]
    parts = [(a, left) for a, left in parts if left > 0]
    assert sum((left for _, left in parts), ZERO) == amount
    return parts


def _refund_insert(
    *,
    order: Order,
    attempt: PaymentAttempt,
    amount: Decimal,
    lines: list[tuple[LineRefundable, int, Decimal]],
    reason: str,
    restock: bool,
    actor: User | None,
    cancels_order: bool,
) -> Refund:
    """One pending refund of `attempt` (locked here: order -> attempt), its lines, its
    outbox event, and its provider call after commit. The caller holds the order lock."""
    attempt_lock(attempt_id=attempt.pk)
    refund = Refund.objects.create(
        order=order,
        attempt=attempt,
        amount=amount,
        currency=order.currency,
        reason=reason[:200],
        restock=restock,
        provider=attempt.provider,
        provider_reference=f"rf_{uuid.uuid4().hex}",
        requested_by=actor,
        cancels_order=cancels_order,
    )
    RefundLine.objects.bulk_create(
        RefundLine(refund=refund, order_line=item.line, quantity=quantity, amount=line_amount)
        for item, quantity, line_amount in lines
    )
    outbox_record(event_type="refund.created", aggregate=refund, payload=_payload(refund))
    _submit_on_commit(refund_id=refund.pk)
    return refund


def refund_create_for_flagged_attempt(*, attempt_id: int, actor: User | None = None) -> Refund:
    """Staff's "Refund now" for a success flagged refund_required (a late or wrong-amount
    payment the order never took): the whole attempt goes back through the same path.
    Raises RefundInProgress if a refund of it is pending or succeeded, Conflict otherwise."""
    with transaction.atomic():
        order_id = PaymentAttempt.objects.filter(pk=attempt_id).values_list("order_id", flat=True).first()
        if order_id is None:
            raise NotFound("No such payment.")
        order_lock(order_id=order_id)
        attempt = attempt_lock(attempt_id=attempt_id)
        if not attempt.refund_required:
            raise Conflict(f"Payment {attempt.provider_reference} is not flagged for refund.")
        if Refund.objects.filter(attempt=attempt, status__in=_LIVE).exists():
            raise RefundInProgress(f"Payment {attempt.provider_reference} is already being refunded.")
        refund = Refund.objects.create(
            order_id=order_id,
            attempt=attempt,
            amount=attempt.amount,
            currency=attempt.currency,
            reason=(attempt.refund_reason or "refund required")[:200],
            restock=False,
            provider=attempt.provider,
            provider_reference=f"rf_{uuid.uuid4().hex}",
            requested_by=actor,
        )
        outbox_record(event_type="refund.created", aggregate=refund, payload=_payload(refund))
        _submit_on_commit(refund_id=refund.pk)
    return refund


# --- The provider call: after commit, durable -------------------------------------------------


def _submit_on_commit(*, refund_id: int) -> None:
    on_commit_robust(hook="payments.refund_submit", fn=lambda: refund_submit(refund_id=refund_id))


def refund_submit(*, refund_id: int) -> bool:
    """Hand a pending refund to its provider once: True when submitted now. Called after
    the creating commit and by beat for refunds whose call was lost; providers take it
    idempotently (the simulated one stores its first webhook once, Stripe gets an
    idempotency key from the refund's reference). A provider that refuses outright fails it."""
    refund = Refund.objects.select_related("attempt").filter(pk=refund_id).first()
    if refund is None or refund.status != RefundStatus.PENDING or refund.submitted_at is not None:
        return False
    provider = payment_provider(refund.provider)
    try:
        provider_refund_id = provider.refund_submit(refund=refund)
    except ApplicationError as exc:
        if exc.status_code >= 500:  # unavailable: the sweeper tries again
            raise
        refund_mark_failed_now(refund_id=refund.pk, reason=exc.message)
        return False
    updated = Refund.objects.filter(pk=refund.pk, submitted_at__isnull=True).update(
        submitted_at=timezone.now(), provider_refund_id=provider_refund_id[:100]
    )
    return updated == 1


def refunds_resubmit(*, now: datetime | None = None, stale_s: float | None = None, limit: int = 200) -> int:
    """Beat: submit pending refunds whose after-commit call never reached the provider."""
    now = now or timezone.now()
    stale_s = settings.PAYMENT_CHARGE_RESUBMIT_S if stale_s is None else stale_s
    lost = list(
        Refund.objects.filter(
            status=RefundStatus.PENDING, submitted_at__isnull=True, created_at__lte=now - timedelta(seconds=stale_s)
        )
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    submitted = 0
    for refund_id in lost:
        try:
            submitted += refund_submit(refund_id=refund_id)
        except Exception:  # one provider error must not stop the others; the next run retries
            logger.warning("refund %s could not be submitted", refund_id, exc_info=True)
    if submitted:
        logger.warning("submitted %d refunds whose after-commit call was lost", submitted)
    return submitted


# --- Outcomes -------------------------------------------------------------------------------


def refund_mark_succeeded(*, refund: Refund) -> None:
    """Pending -> succeeded (the caller holds order, attempt and refund locks)."""
    refund.status = RefundStatus.SUCCEEDED
    refund.succeeded_at = timezone.now()
    refund.save(update_fields=["status", "succeeded_at", "updated_at"])
    outbox_record(event_type="refund.succeeded", aggregate=refund, payload=_payload(refund))


def _mark_failed(*, refund: Refund, reason: str) -> None:
    refund.status = RefundStatus.FAILED
    refund.failed_at = timezone.now()
    refund.failure_reason = (reason or "The provider refused the refund.")[:200]
    refund.save(update_fields=["status", "failed_at", "failure_reason", "updated_at"])
    outbox_record(event_type="refund.failed", aggregate=refund, payload=_payload(refund, reason=refund.failure_reason))


def refund_mark_failed_now(*, refund_id: int, reason: str) -> None:
    """The provider refused at submission: failed (locks order -> attempt -> refund)."""
    with transaction.atomic():
        _, _, refund = _lock_refund(refund_id=refund_id)
        if refund.status == RefundStatus.PENDING:
            _mark_failed(refund=refund, reason=reason)


def _lock_refund(*, refund_id: int) -> tuple[Order, PaymentAttempt, Refund]:
    ids = Refund.objects.filter(pk=refund_id).values_list("order_id", "attempt_id").first()
    if ids is None:
        raise NotFound("No such refund.")
    order = order_lock(order_id=ids[0])
    attempt = attempt_lock(attempt_id=ids[1])
    return order, attempt, refund_lock(refund_id=refund_id)


REFUND_EVENT_TYPES = frozenset({PaymentEventType.REFUND_SUCCEEDED, PaymentEventType.REFUND_FAILED})


@dataclass(frozen=True)
class RefundWebhookResult:
    duplicate: bool
    changed_state: bool
    outcome: str


def refund_webhook_apply(
    *, event: ProviderEvent, provider_name: str, on_succeeded: RefundSuccessHandler
) -> RefundWebhookResult:
    """Apply one verified refund event exactly once: record it (webhook-id unique: a
    duplicate changes nothing), and move a pending refund forward. An event for a final
    refund (a failure after the success, a repeated success) is recorded and ignored."""
    found = (
        Refund.objects.filter(provider=provider_name, provider_reference=event.provider_reference)
        .values_list("pk", flat=True)
        .first()
    )
    with transaction.atomic():
        order, attempt, refund = _lock_refund(refund_id=found) if found is not None else (None, None, None)
        try:
            with transaction.atomic():
                record = WebhookEvent.objects.create(
                    webhook_id=event.webhook_id,
                    event_type=event.type.value,
                    provider=provider_name,
                    provider_reference=event.provider_reference,
                    attempt=attempt,
                    refund=refund,
                    payload=event.payload,
                    signature_valid=True,
                    event_created_at=event.created_at,
                )
        except IntegrityError:
            if not WebhookEvent.objects.filter(webhook_id=event.webhook_id).exists():
                raise
            return RefundWebhookResult(duplicate=True, changed_state=False, outcome="duplicate delivery ignored")
        if order is None or attempt is None or refund is None:
            changed, outcome = False, "no refund with this reference; ignored"
            logger.warning("refund webhook %s for unknown reference %s", event.webhook_id, event.provider_reference)
        elif refund.status != RefundStatus.PENDING:
            changed, outcome = False, f"refund already {refund.status}; {event.type.value} ignored"
        elif event.type == PaymentEventType.REFUND_FAILED:
            _mark_failed(refund=refund, reason=event.failure_reason)
            changed, outcome = True, "refund failed; nothing given back"
        elif (event.amount, event.currency) != (refund.amount, refund.currency):
            changed = False
            outcome = f"refund reported {event.amount} {event.currency}, expected {refund.amount}; ignored"
            logger.error("refund %s: %s", refund.pk, outcome)
        else:
            refund_mark_succeeded(refund=refund)
            changed, outcome = True, on_succeeded(order, attempt, refund)
        record.changed_state = changed
        record.outcome = outcome[:200]
        record.save(update_fields=["changed_state", "outcome"])
    return RefundWebhookResult(duplicate=False, changed_state=changed, outcome=outcome)
