from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from orders.models import Order, OrderStatus
from payments.models import PaymentAttempt, PaymentStatus


def payment_attempts_for_order(*, order_id: int) -> QuerySet[PaymentAttempt]:
    return PaymentAttempt.objects.filter(order_id=order_id).order_by("-created_at", "-id")


def payment_attempt_by_reference(*, provider: str, provider_reference: str) -> PaymentAttempt:
    """The attempt behind a hosted-page URL; PaymentAttempt.DoesNotExist otherwise."""
    return PaymentAttempt.objects.select_related("order").get(provider=provider, provider_reference=provider_reference)


@dataclass(frozen=True)
class PaymentSummary:
    """What the order page says about payment. `state` is one of: unpaid, awaiting_customer,
    processing, failed, paid, cancelled, refunded."""

    state: str
    label: str
    attempt: PaymentAttempt | None
    can_pay: bool  # a "Pay now" / "Try again" button makes sense
    refund_pending: bool  # a payment was taken that will be given back


def payment_summary_for_order(*, order: Order) -> PaymentSummary:
    """Uses a prefetched `payment_attempts` (orders_for_list) when there is one."""
    attempts = sorted(order.payment_attempts.all(), key=lambda a: (a.created_at, a.pk), reverse=True)
    latest = attempts[0] if attempts else None
    refund_pending = any(a.refund_required for a in attempts)
    holds = order.reservation_expires_at is None or order.reservation_expires_at > timezone.now()
    if order.status in (OrderStatus.PAID, OrderStatus.FULFILLED):
        paid_by = next((a for a in attempts if a.status == PaymentStatus.SUCCEEDED and not a.refund_required), None)
        return PaymentSummary("paid", "Paid", paid_by, False, refund_pending)
    if order.status == OrderStatus.REFUNDED:
        return PaymentSummary("refunded", "Refunded", latest, False, refund_pending)
    if order.status == OrderStatus.CANCELLED:
        return PaymentSummary("cancelled", "Not paid (order cancelled)", latest, False, refund_pending)
    if latest is None:
        return PaymentSummary("unpaid", "Awaiting payment", None, holds, refund_pending)
    if latest.status == PaymentStatus.PROCESSING:
        if latest.awaiting_customer:
            return PaymentSummary("awaiting_customer", "Awaiting payment", latest, False, refund_pending)
        return PaymentSummary("processing", "Processing", latest, False, refund_pending)
    if latest.status == PaymentStatus.FAILED:
        return PaymentSummary("failed", "Failed", latest, holds, refund_pending)
    return PaymentSummary("unpaid", "Awaiting payment", latest, holds, refund_pending)
