"""Row locks of the invoicing app (models only; the order every flow takes them in is
written once, in flows/__init__.py). The series row is not locked here: it is taken by the
numbering's one `UPDATE ... RETURNING` (invoicing.services.sequence_take_next), last."""

from invoicing.models import Invoice


def invoice_lock(*, invoice_id: int) -> Invoice:
    """Raises Invoice.DoesNotExist. Take the invoice's order lock first."""
    return Invoice.objects.select_for_update().get(pk=invoice_id)


def invoice_lock_for_order(*, order_id: int) -> Invoice | None:
    return Invoice.objects.select_for_update().filter(order_id=order_id).first()
