"""Money arrived: the order is paid, its stock committed and its invoice created, in the
webhook's one transaction; the invoice is numbered by the worker after commit."""

from common.db import atomic_joined
from invoicing.services import invoice_amount_policy, invoice_create_for_order, invoice_payment_settles
from orders.models import Order
from orders.services import order_mark_paid
from payments.models import PaymentAttempt


def order_place_paid(*, order_id: int, reason: str = "payment succeeded", locked: Order | None = None) -> Order:
    """Place a paid order: paid, stock committed, invoice created (once: a staff-billed
    order's invoice exists since finalize), numbering enqueued on commit. One transaction:
    the caller's if one is open (the webhook's, whose lock on the order is `locked`)."""
    with atomic_joined():
        order = order_mark_paid(order_id=order_id, reason=reason, locked=locked)
        invoice_create_for_order(order=order)
    return order


def payment_succeeded(order: Order, attempt: PaymentAttempt) -> str:
    """payments' `on_succeeded`: called with the order and the attempt locked, inside the
    webhook's transaction, for a success that applies to an order awaiting payment."""
    if not invoice_payment_settles(order=order):
        return "attempt succeeded; invoice partially paid, the order awaits the rest"
    order_place_paid(order_id=order.pk, reason=f"payment {attempt.provider_reference} succeeded", locked=order)
    return "attempt succeeded; order paid"


# payments' `amount_policy` for the shop's routes: the order total, or an amount of a
# staff-billed order's invoice (locked after the order), never more than what is due.
payment_amount = invoice_amount_policy
