"""The provider gave money back: the refund is succeeded, restocked units go back to stock,
the order becomes partially_refunded / refunded (cancelled for a staff cancel of a paid
order) and a credit note is created (numbered after commit by the worker). One
transaction: the refund webhook's. Locks: order -> attempt -> refund (held by the
caller) -> invoice -> credit note (invoicing) -> stock by product id (last)."""

from inventory.restock import stock_restock
from invoicing.services import credit_note_create_for_refund
from orders.models import Order
from orders.services import order_record_refund
from payments.models import PaymentAttempt, Refund, RefundStatus
from payments.refunds import order_paid_amount, order_refunded_amount


def refund_succeeded(order: Order, attempt: PaymentAttempt, refund: Refund) -> str:
    """payments' `on_refund_succeeded`: called inside the webhook's transaction with order,
    attempt and refund locked, the refund just marked succeeded."""
    if attempt.refund_required:
        # Money the order never took (a late or wrong-amount success): nothing was invoiced.
        return "refund succeeded; the payment it returns was never applied to the order"
    fully = order_refunded_amount(order_id=order.pk) >= order_paid_amount(order_id=order.pk)
    order_record_refund(
        order=order,
        fully_refunded=fully,
        # A staff cancel's refund may finish before another pending refund of the order.
        cancels=order.refunds.filter(cancels_order=True, status=RefundStatus.SUCCEEDED).exists(),
        reason=f"refund {refund.provider_reference} of {refund.amount} {refund.currency} succeeded",
        actor=refund.requested_by,
    )
    credit_note_create_for_refund(refund_id=refund.pk)
    restocked: dict[int, int] = {}
    if refund.restock:
        for line in refund.lines.select_related("order_line"):
            if line.order_line.product_id is not None:
                product_id = line.order_line.product_id
                restocked[product_id] = restocked.get(product_id, 0) + line.quantity
        if restocked:
            stock_restock(quantities=restocked)
    units = sum(restocked.values())
    return f"refund succeeded; order {order.status}" + (f", {units} units restocked" if units else "")
