"""Invoice writes: creation with the order, and gapless numbering.

Numbering takes the system's one hot lock (the series row) last and holds it only for
the few statements that write the invoice and its event. See docs/invoice-numbering.md.
"""

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from invoicing.models import Invoice, InvoiceLine, InvoiceSequence, InvoiceStatus
from orders.models import Order
from outbox.services import outbox_record

logger = logging.getLogger(__name__)


class InvoiceAttemptFailed(Exception):
    """A numbering attempt failed in a way worth retrying; no number was consumed."""


@dataclass
class FaultInjector:
    """The simulated fault of the mission: fails a numbering attempt with probability
    `rate`, after the number was taken, so the rollback visibly gives it back."""

    rate: float
    rng: random.Random = field(default_factory=random.Random)

    def maybe_fail(self, *, invoice: Invoice, number: int) -> None:
        if self.rate > 0 and self.rng.random() < self.rate:
            raise InvoiceAttemptFailed(f"simulated fault while issuing number {number} (rate {self.rate})")


def fault_from_settings() -> FaultInjector:
    return FaultInjector(rate=settings.INVOICE_FAILURE_RATE)


def invoice_series_for(*, at: datetime) -> str:
    base: str = settings.INVOICE_SERIES
    return f"{base}-{at.year}" if settings.INVOICE_SERIES_YEARLY_RESET else base


def invoice_create_for_order(*, order: Order) -> Invoice:
    """Create the order's pending invoice inside the transaction that places the order,
    and ask a worker to number it once that transaction commits. Idempotent per order."""
    if not connection.in_atomic_block:
        raise RuntimeError("invoice_create_for_order must run in the order's transaction")
    existing = Invoice.objects.filter(order=order).first()
    if existing is not None:
        return existing
    invoice = Invoice.objects.create(
        order=order,
        series=settings.INVOICE_SERIES,
        currency=order.currency,
        subtotal=order.subtotal,
        discount=order.discount,
        shipping=order.shipping,
        tax=order.tax,
        total=order.total,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            sku=line.sku,
            description=line.name,
            quantity=line.quantity,
            unit_price=line.unit_price,
            tax_rate=line.tax_rate,
            line_total=line.line_total,
        )
        for line in order.lines.all()
    )
    outbox_record(
        event_type="invoice.created",
        aggregate=invoice,
        payload={"invoice_id": invoice.pk, "order_id": order.pk, "total": invoice.total, "currency": invoice.currency},
    )
    invoice_enqueue_numbering(invoice_id=invoice.pk)
    return invoice


def invoice_enqueue_numbering(*, invoice_id: int) -> None:
    """Enqueue numbering after the current transaction commits (at once outside one)."""
    from invoicing.tasks import assign_invoice_number

    transaction.on_commit(lambda: assign_invoice_number.delay(invoice_id))


def sequence_take_next(*, series: str) -> int:
    """Take the next number of `series`: one UPDATE ... RETURNING that row-locks the
    sequence until the caller's transaction ends. Rolling back returns the number."""
    with connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute(
                "UPDATE invoicing_invoicesequence SET next_value = next_value + 1 "
                "WHERE series = %s RETURNING next_value - 1",
                [series],
            )
            row = cursor.fetchone()
            if row is not None:
                return int(row[0])
            # First number of a new series: create the row (a racing creator is fine).
            InvoiceSequence.objects.bulk_create([InvoiceSequence(series=series)], ignore_conflicts=True)
    raise RuntimeError(f"invoice sequence {series!r} could not be created")


def invoice_assign_number(*, invoice_id: int, fault: FaultInjector | None = None) -> Invoice:
    """Give a pending invoice the next number of its series, or do nothing if it has one.

    One transaction: lock the invoice, return early if numbered, take the number (hot
    lock, last), maybe fail (the simulated fault), write number + `issued` + the
    `invoice.issued` event, commit. Raises InvoiceAttemptFailed (retryable) with the
    number given back and the attempt recorded; Invoice.DoesNotExist if it is gone.
    """
    fault = fault or fault_from_settings()
    try:
        with transaction.atomic():
            invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
            if invoice.number is not None or invoice.status != InvoiceStatus.PENDING:
                return invoice
            now = timezone.now()
            series = invoice_series_for(at=now)
            number = sequence_take_next(series=series)
            fault.maybe_fail(invoice=invoice, number=number)
            Invoice.objects.filter(pk=invoice.pk).update(
                series=series,
                number=number,
                status=InvoiceStatus.ISSUED,
                issued_at=now,
                attempts=F("attempts") + 1,
                last_attempt_at=now,
                last_error="",
                updated_at=now,
            )
            outbox_record(
                event_type="invoice.issued",
                aggregate=invoice,
                payload={"invoice_id": invoice.pk, "order_id": invoice.order_id, "series": series, "number": number},
            )
    except InvoiceAttemptFailed as exc:
        invoice_record_failed_attempt(invoice_id=invoice_id, error=str(exc))
        raise
    invoice.refresh_from_db()
    return invoice


def invoice_record_failed_attempt(*, invoice_id: int, error: str) -> None:
    """Count a failed attempt in its own transaction, after the attempt's rollback."""
    now = timezone.now()
    Invoice.objects.filter(pk=invoice_id, status=InvoiceStatus.PENDING).update(
        attempts=F("attempts") + 1, last_error=error[:2000], last_attempt_at=now, updated_at=now
    )


def invoices_requeue_stale(*, older_than_s: float | None = None, limit: int = 500) -> list[int]:
    """Re-enqueue pending invoices with no attempt for a while (a lost message, a killed
    worker, a broker restart). Numbering is idempotent, so a duplicate is harmless."""
    older_than_s = settings.INVOICE_SWEEP_STALE_S if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    stale = list(
        Invoice.objects.filter(status=InvoiceStatus.PENDING, enqueued_at__lt=cutoff)
        .filter(Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lt=cutoff))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for invoice_id in stale:
        invoice_retry_now(invoice_id=invoice_id)
    if stale:
        logger.warning("re-enqueued %d stale pending invoices", len(stale))
    return stale


def invoice_retry_now(*, invoice_id: int) -> None:
    """Enqueue a numbering attempt now (staff's "retry now", the sweeper)."""
    from invoicing.tasks import assign_invoice_number

    # Remember the enqueue so the sweeper does not enqueue it again at once.
    Invoice.objects.filter(pk=invoice_id, status=InvoiceStatus.PENDING).update(enqueued_at=timezone.now())
    assign_invoice_number.delay(invoice_id)
