from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from orders.models import PAID_STATES, Order, OrderStatus
from orders.selectors import applying_payment
from payments.models import DeliveryStatus, PaymentAttempt, PaymentStatus, Refund, SimulatedDelivery


def payment_attempts_for_order(*, order_id: int) -> QuerySet[PaymentAttempt]:
    return PaymentAttempt.objects.filter(order_id=order_id).order_by("-created_at", "-id")


def payment_attempt_by_reference(*, provider: str, provider_reference: str) -> PaymentAttempt:
    """The attempt behind a hosted-page URL; PaymentAttempt.DoesNotExist otherwise."""
    return PaymentAttempt.objects.select_related("order").get(provider=provider, provider_reference=provider_reference)


def refunds_for_order(*, order_id: int) -> QuerySet[Refund]:
    """Oldest first, with lines and (through the reverse relation) the credit note."""
    return (
        Refund.objects.filter(order_id=order_id)
        .select_related("credit_note")
        .prefetch_related("lines__order_line")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class PaymentSummary:
    """What the order page says about payment. `state` is one of: unpaid, awaiting_customer,
    processing, failed, paid, cancelled, partially_refunded, refunded."""

    state: str
    label: str
    attempt: PaymentAttempt | None
    can_pay: bool  # a "Pay now" / "Try again" button makes sense
    refund_pending: bool  # a payment was taken that will be given back
    slow: bool = False  # processing for longer than PAYMENT_SLOW_NOTICE_S: say so


def _processing_is_slow(attempt: PaymentAttempt) -> bool:
    since = attempt.charge_requested_at or attempt.created_at
    return (timezone.now() - since).total_seconds() >= settings.PAYMENT_SLOW_NOTICE_S


def payment_summary_for_order(*, order: Order) -> PaymentSummary:
    """Uses a prefetched `payment_attempts` (orders_for_list) when there is one."""
    attempts = sorted(order.payment_attempts.all(), key=lambda a: (a.created_at, a.pk), reverse=True)
    latest = attempts[0] if attempts else None
    # Flagged money not given back yet (a query only for the rare flagged attempt).
    refund_pending = any(a.refund_required and not a.refunds.filter(status="succeeded").exists() for a in attempts)
    holds = order.reservation_expires_at is None or order.reservation_expires_at > timezone.now()
    if order.status in PAID_STATES:
        paid_by = next((a for a in attempts if a.status == PaymentStatus.SUCCEEDED and not a.refund_required), None)
        flagged = {a.pk for a in attempts if a.refund_required}
        if any(r.status == "succeeded" and r.attempt_id not in flagged for r in order.refunds.all()):
            return PaymentSummary("partially_refunded", "Partially refunded", paid_by, False, refund_pending)
        return PaymentSummary("paid", "Paid", paid_by, False, refund_pending)
    if order.status == OrderStatus.PARTIALLY_REFUNDED:
        return PaymentSummary("partially_refunded", "Partially refunded", latest, False, refund_pending)
    if order.status == OrderStatus.REFUNDED:
        return PaymentSummary("refunded", "Refunded", latest, False, refund_pending)
    if order.status == OrderStatus.CANCELLED and any(
        a.status == PaymentStatus.SUCCEEDED and not a.refund_required for a in attempts
    ):
        return PaymentSummary("refunded", "Refunded (order cancelled)", latest, False, refund_pending)
    if order.status == OrderStatus.CANCELLED:
        return PaymentSummary("cancelled", "Not paid (order cancelled)", latest, False, refund_pending)
    if latest is None:
        return PaymentSummary("unpaid", "Awaiting payment", None, holds, refund_pending)
    if latest.status == PaymentStatus.PROCESSING:
        if latest.awaiting_customer:
            return PaymentSummary("awaiting_customer", "Awaiting payment", latest, False, refund_pending)
        return PaymentSummary("processing", "Processing", latest, False, refund_pending, _processing_is_slow(latest))
    if latest.status == PaymentStatus.FAILED:
        return PaymentSummary("failed", "Failed", latest, holds, refund_pending)
    if applying_payment(order=order, latest_status=latest.status, refund_required=latest.refund_required):
        return PaymentSummary("processing", "Processing", latest, False, refund_pending)
    return PaymentSummary("unpaid", "Awaiting payment", latest, holds, refund_pending)


# --- The simulated provider's owed webhooks (health, metrics) ---------------------------------

# A delivery tried this often without success, or this late, is a warning in /health/.
DELIVERY_WARN_TRIES = 3
DELIVERY_WARN_LATE_S = 60.0


@dataclass(frozen=True)
class DeliveryBacklog:
    scheduled: int
    failing: int  # scheduled and already tried at least once
    abandoned: int
    oldest_due_s: float  # how late the most overdue scheduled delivery is (0 when none)
    worst_tries: int
    last_error: str


def simulated_deliveries_backlog(*, now: datetime | None = None) -> DeliveryBacklog:
    now = now or timezone.now()
    scheduled = SimulatedDelivery.objects.filter(status=DeliveryStatus.SCHEDULED)
    figures = scheduled.aggregate(
        n=Count("id"), failing=Count("id", filter=Q(tries__gt=0)), oldest=Min("next_attempt_at"), worst=Max("tries")
    )
    worst = scheduled.filter(tries__gt=0).order_by("-tries", "next_attempt_at").values_list("last_error", flat=True)
    oldest = figures["oldest"]
    return DeliveryBacklog(
        scheduled=figures["n"],
        failing=figures["failing"],
        abandoned=SimulatedDelivery.objects.filter(status=DeliveryStatus.ABANDONED).count(),
        oldest_due_s=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        worst_tries=figures["worst"] or 0,
        last_error=worst.first() or "",
    )


# A pending refund the provider has not taken this long after it was asked, or one the
# provider has not settled after this long, is a warning in /health/.
REFUND_WARN_UNSUBMITTED_S = 60.0
REFUND_WARN_PENDING_S = 3600.0


def refunds_health(*, now: datetime | None = None) -> dict[str, object]:
    """/health/ "refunds": pending refunds, those never handed to the provider, and the
    oldest pending one's age (one query)."""
    now = now or timezone.now()
    row = Refund.objects.filter(status="pending").aggregate(
        pending=Count("id"),
        unsubmitted=Count("id", filter=Q(submitted_at__isnull=True)),
        oldest=Min("created_at"),
        oldest_unsubmitted=Min("created_at", filter=Q(submitted_at__isnull=True)),
    )
    oldest_s = (now - row["oldest"]).total_seconds() if row["oldest"] else 0.0
    unsubmitted_s = (now - row["oldest_unsubmitted"]).total_seconds() if row["oldest_unsubmitted"] else 0.0
    warning = unsubmitted_s >= REFUND_WARN_UNSUBMITTED_S or oldest_s >= REFUND_WARN_PENDING_S
    return {
        "status": "warning" if warning else "ok",
        "pending": row["pending"],
        "unsubmitted": row["unsubmitted"],
        "oldest_pending_s": round(oldest_s, 1),
    }


def simulated_deliveries_health() -> dict[str, object]:
    backlog = simulated_deliveries_backlog()
    warning = backlog.worst_tries >= DELIVERY_WARN_TRIES or backlog.oldest_due_s >= DELIVERY_WARN_LATE_S
    return {
        "status": "warning" if warning else "ok",
        "scheduled": backlog.scheduled,
        "failing": backlog.failing,
        "abandoned": backlog.abandoned,
        "oldest_due_s": round(backlog.oldest_due_s, 1),
        "max_tries": backlog.worst_tries,
        "last_error": backlog.last_error,
        "url": settings.PAYMENT_WEBHOOK_URL,
    }
