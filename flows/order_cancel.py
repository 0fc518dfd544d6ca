"""Cancel an order, as its shopper or as staff.

- Awaiting payment (shopper or staff): cancelled, reservations released at once; refused
  with 409 payment_in_progress while a payment attempt is processing (the money may be
  on its way).
- Paid and not shipped (staff only): cancelled by refunding it in full, with restock: a
  pending refund now; the refund-succeeded flow ends the order `cancelled` when the
  provider confirms (a failed refund leaves it as it was).

One transaction; locks: order -> payment attempt (payments.refunds.refund_create).
"""

from django.contrib.auth.models import User
from django.db import transaction

from common.errors import ApplicationError, ErrorCode, IllegalTransition, NotFound
from orders.locks import order_lock
from orders.models import Order, OrderStatus
from orders.services import order_cancel
from payments.models import PaymentAttempt, PaymentStatus
from payments.refunds import refund_create
from payments.services import PaymentInProgress


class RefundNotPermitted(ApplicationError):
    status_code = 403
    code = ErrorCode.PERMISSION_DENIED


# Paid states a staff cancel refunds in full; once shipped, refund (and take back) instead.
_CANCEL_BY_REFUND = {OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.PARTIALLY_REFUNDED}


def order_cancel_by(
    *, order_id: int, actor: User, staff: bool, reason: str = "", may_refund: bool | None = None
) -> Order:
    """Cancel `order_id` for `actor` (`staff`: may cancel any order; a paid one by refund
    when `may_refund`, the payments.add_refund permission, by default as `staff`).

    Raises NotFound (no such order, or not the shopper's), PaymentInProgress,
    IllegalTransition (already final, shipped, or paid and the actor is not staff).
    Nothing changes when it raises. Returns the order (still paid, with its full refund
    pending, for a staff cancel of a paid order)."""
    with transaction.atomic():
        try:
            order = order_lock(order_id=order_id)
        except Order.DoesNotExist:
            raise NotFound("No such order.") from None
        if not staff and order.user_id != actor.pk:
            raise NotFound("No such order.")
        if order.status == OrderStatus.PENDING_PAYMENT:
            processing = PaymentAttempt.objects.filter(order_id=order.pk, status=PaymentStatus.PROCESSING).first()
            if processing is not None:
                raise PaymentInProgress(
                    "A payment for this order is being processed; it cannot be cancelled now.",
                    details={"attempt_id": processing.pk, "order_id": order.pk},
                )
            who = "staff" if staff else "the customer"
            return order_cancel(order_id=order.pk, reason=reason or f"cancelled by {who}", actor=actor)
        if order.status in _CANCEL_BY_REFUND and order.shipped_at is None:
            if staff and not (staff if may_refund is None else may_refund):
                raise RefundNotPermitted("Cancelling a paid order refunds it: that needs the refund permission.")
            if not staff:
                raise IllegalTransition(
                    f"Order #{order.pk} is paid; please contact us to cancel it.",
                    details={"from": order.status, "to": OrderStatus.CANCELLED},
                )
            refund_create(
                order_id=order.pk,
                reason=reason or "order cancelled by staff",
                restock=True,
                actor=actor,
                cancels_order=True,
            )
            order.refresh_from_db()
            return order
        raise IllegalTransition(
            f"Order #{order.pk} is {order.status}; it cannot be cancelled"
            + (" (refund it instead)." if order.shipped_at else "."),
            details={"from": order.status, "to": OrderStatus.CANCELLED},
        )
