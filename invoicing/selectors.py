from decimal import Decimal

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from invoicing.models import Invoice
from orders.models import OrderStatus
from outbox.models import OutboxEvent


def invoices_visible_to(user: User | AnonymousUser) -> QuerySet[Invoice]:
    """Staff see every invoice; a customer only those of their own orders."""
    if not user.is_authenticated:
        return Invoice.objects.none()
    qs = Invoice.objects.select_related("order").prefetch_related("lines")
    return qs if user.is_staff else qs.filter(order__user=user)


def invoice_get_for_user(*, user: User | AnonymousUser, invoice_id: int) -> Invoice:
    return invoices_visible_to(user).get(pk=invoice_id)


def invoice_for_order(*, user: User | AnonymousUser, order_id: int) -> Invoice:
    """The invoice of an order `user` may see; Invoice.DoesNotExist otherwise."""
    return invoices_visible_to(user).get(order_id=order_id)


def invoice_amount_paid(*, invoice: Invoice) -> Decimal:
    if invoice.order.status in (OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.REFUNDED):
        return invoice.total
    return Decimal("0.00")


def invoice_payment_status(*, invoice: Invoice) -> str:
    paid = invoice_amount_paid(invoice=invoice)
    if paid >= invoice.total:
        return "paid"
    return "partially_paid" if paid > 0 else "unpaid"


def invoice_events(*, invoice: Invoice, limit: int = 20) -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="invoicing.invoice", aggregate_id=str(invoice.pk)).order_by("-id")[
            :limit
        ]
    )


def invoice_gap_audit() -> list[dict[str, object]]:
    """Per series: count, max, duplicated numbers and missing ranges, computed by SQL
    (window functions) so "no gaps" is only said when the database proves it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT series, COUNT(*), COUNT(DISTINCT number), MIN(number), MAX(number) "
            "FROM invoicing_invoice WHERE number IS NOT NULL GROUP BY series ORDER BY series"
        )
        summaries = cursor.fetchall()
        cursor.execute(
            "SELECT series, prev + 1, number - 1 FROM ("
            "  SELECT series, number, LAG(number, 1, 0) OVER (PARTITION BY series ORDER BY number) AS prev"
            "  FROM invoicing_invoice WHERE number IS NOT NULL"
            ") t WHERE number - prev > 1 ORDER BY series, prev"
        )
        gaps = cursor.fetchall()
        cursor.execute(
            "SELECT series, number, COUNT(*) FROM invoicing_invoice WHERE number IS NOT NULL "
            "GROUP BY series, number HAVING COUNT(*) > 1 ORDER BY series, number"
        )
        duplicates = cursor.fetchall()
    from invoicing.models import InvoiceSequence

    next_values = dict(InvoiceSequence.objects.values_list("series", "next_value"))
    report = []
    for series, count, distinct, low, high in summaries:
        sequence_next = next_values.get(series)
        series_gaps = [(start, end) for s, start, end in gaps if s == series]
        series_dups = [(number, n) for s, number, n in duplicates if s == series]
        report.append(
            {
                "series": series,
                "count": count,
                "distinct": distinct,
                "min": low,
                "max": high,
                "missing": series_gaps,
                "missing_count": sum(end - start + 1 for start, end in series_gaps),
                "duplicates": series_dups,
                # The counter must sit right after the highest number: nothing taken and lost.
                "sequence_next": sequence_next,
                "complete": not series_gaps
                and not series_dups
                and low == 1
                and high == count == distinct
                and sequence_next == high + 1,
            }
        )
    return report
