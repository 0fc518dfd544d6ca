"""Invoice writes: creation with the order, and gapless numbering.

Numbering takes the system's one hot lock (the series row) last and holds it only for
the few statements that write the invoice and its event. See docs/invoice-numbering.md.
"""

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import Case, F, Q, Sum, TextField, Value, When
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from common.backoff import backoff_s
from common.commit import on_commit_robust
from common.db import PreparedQuery, RowLookup, instance_insert_unless_conflict, instances_insert
from common.errors import Conflict, IllegalTransition, NotFound, ValidationFailed
from common.metrics import metrics_invoice_attempt, metrics_invoice_issued, metrics_invoice_simulated_failure
from common.money import ZERO, money_allocate, money_round
from invoicing.locks import invoice_lock, invoice_lock_for_order
from invoicing.models import (
    INVOICE_TRANSITIONS,
    CreditNote,
    CreditNoteDocument,
    CreditNoteLine,
    Invoice,
    InvoiceDocument,
    InvoiceLine,
    InvoiceSequence,
    InvoiceState,
    InvoiceStatus,
    InvoiceStatusChange,
    SalesReport,
)
from orders.locks import order_lock
from orders.models import Order, OrderLine, OrderStatus
from orders.pricing import taxable_by_rate
from outbox.services import outbox_kick_on_commit, outbox_record, outbox_record_many
from payments.models import PaymentAttempt, Refund, RefundStatus
from payments.services import PaymentInProgress

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
            metrics_invoice_simulated_failure(series=invoice.series)
            raise InvoiceAttemptFailed(f"simulated fault while issuing number {number} (rate {self.rate})")


def fault_from_settings() -> FaultInjector:
    return FaultInjector(rate=settings.INVOICE_FAILURE_RATE)


def invoice_series_for(*, at: datetime) -> str:
    base: str = settings.INVOICE_SERIES
    return f"{base}-{at.year}" if settings.INVOICE_SERIES_YEARLY_RESET else base


def credit_note_series_for(*, at: datetime) -> str:
    """CREDIT_NOTE_SERIES ("CN"), reset yearly like invoices when INVOICE_SERIES_YEARLY_RESET."""
    base: str = settings.CREDIT_NOTE_SERIES
    return f"{base}-{at.year}" if settings.INVOICE_SERIES_YEARLY_RESET else base


@dataclass(frozen=True)
class InvoiceTerms:
    """What staff billing adds to an invoice. The storefront's default: due on issue (the
    order is paid before it is invoiced), billed to the shipping address, paid in full."""

    due_days: int = 0
    allow_partial: bool = False
    notes: str = ""
    billing_details: dict[str, str] | None = None


_invoice_of_order = RowLookup(Invoice, "order")


_order_lines = PreparedQuery(
    OrderLine, lambda order_id: OrderLine.objects.filter(order_id=order_id).order_by("id"), order_id=int
)


def invoice_create_for_order(*, order: Order, terms: InvoiceTerms | None = None) -> Invoice:
    """Create the order's pending invoice inside the transaction that places the order,
    and ask a worker to number it once that transaction commits. Idempotent per order.

    The document's content is snapshotted here (lines, tax by rate, seller and buyer,
    terms) and never edited afterwards: corrections are a void plus a new invoice."""
    if not connection.in_atomic_block:
        raise RuntimeError("invoice_create_for_order must run in the order's transaction")
    terms = terms or InvoiceTerms()
    if "lines" in getattr(order, "_prefetched_objects_cache", {}):
        lines = list(order.lines.all())  # the caller holds them (e.g. just placed)
    else:
        lines = _order_lines(order_id=order.pk)
        for line in lines:
            OrderLine.order.field.set_cached_value(line, order)
    invoice = Invoice(
        order=order,
        series=settings.INVOICE_SERIES,
        currency=order.currency,
        subtotal=order.subtotal,
        discount=order.discount,
        shipping=order.shipping,
        tax=order.tax,
        total=order.total,
        seller_details=dict(settings.SELLER),
        billing_details=terms.billing_details or billing_details_from_address(order.shipping_address),
        tax_breakdown=invoice_tax_breakdown(order=order, lines=lines),
        due_days=terms.due_days,
        allow_partial=terms.allow_partial,
        notes=terms.notes,
    )
    # One statement whether or not the order already has its invoice (the unique order_id):
    # the first call inserts, a repeated one finds the row it conflicted with.
    if not instance_insert_unless_conflict(invoice):
        existing = _invoice_of_order(order.pk)
        assert existing is not None  # the conflict was with it; rows are never deleted
        return existing
    instances_insert(
        [
            InvoiceLine(
                invoice=invoice,
                sku=line.sku,
                description=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                tax_rate=line.tax_rate,
                line_total=line.line_total,
            )
            for line in lines
        ]
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

    on_commit_robust(hook="invoicing.assign_invoice_number", fn=lambda: assign_invoice_number.delay(invoice_id))


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
            invoice = invoice_lock(invoice_id=invoice_id)
            if invoice.number is not None or invoice.status != InvoiceStatus.PENDING:
                metrics_invoice_attempt(outcome="noop")
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
            invoice_enqueue_pdf(invoice_id=invoice.pk)  # on commit; its own queue, off this hot path
    except InvoiceAttemptFailed as exc:
        metrics_invoice_attempt(outcome="failed")
        invoice_record_failed_attempt(invoice_id=invoice_id, error=str(exc))
        raise
    invoice.refresh_from_db()
    metrics_invoice_attempt(outcome="issued")
    metrics_invoice_issued(series=invoice.series, placed_at=invoice.created_at, issued_at=invoice.issued_at)
    return invoice


@dataclass(frozen=True)
class NumberingBatch:
    issued: list[int]
    failed: list[int]  # the simulated fault: each keeps its retry time in `next_attempt_at`

    @property
    def claimed(self) -> int:
        return len(self.issued) + len(self.failed)


def invoice_fault_retry_s(*, attempts: int) -> float:
    """Wait before retrying an invoice the simulated fault failed: short and capped (the
    fault is random, waiting longer does not make it likelier to pass). Database trouble
    backs off exponentially instead (invoicing.tasks.backoff_s)."""
    return backoff_s(
        retries=attempts - 1, base_s=settings.INVOICE_FAULT_RETRY_BASE_S, max_s=settings.INVOICE_FAULT_RETRY_MAX_S
    )


@dataclass(frozen=True)
class NumberedKind:
    """One kind of gapless document the numbering worker issues. Invoices and credit notes
    share the numbering columns (series, number, status pending -> issued, issued_at and the
    retry state attempts / last_error / last_attempt_at / next_attempt_at / enqueued_at), so
    one code path numbers both, each in its own series."""

    label: str  # for logs: "invoice", "credit note"
    model: Any  # Invoice or CreditNote
    series_for: Callable[[datetime], str]
    event_type: str  # written in the numbering transaction
    payload: Callable[[Any, str, int], dict[str, Any]]
    after_issue: Callable[[list[int]], None]  # on commit: render the batch's PDFs (one documents task)
    enqueue: Callable[[int], None]  # the numbering task (a doorbell)
    due: Q = field(default_factory=Q)  # what else must hold before a number is given


def documents_number_due(
    *, kind: NumberedKind, include_id: int | None = None, limit: int | None = None, fault: FaultInjector | None = None
) -> "NumberingBatch":
    """Group commit: number the due pending documents of `kind` (and `include_id`, the one
    whose retry timer fired) in ONE transaction, oldest first, each attempt inside its own
    savepoint.

    Due documents are claimed with SKIP LOCKED (another batch's are left to it). The series
    row is locked by the first number taken and held to the end (the one hot lock, taken
    once per batch instead of once per document). Each attempt (take the number, the
    simulated fault) runs in its savepoint: a failed one rolls back to it, which gives its
    number back to the next one of the batch, and records its attempt and next retry time in
    its row. The numbers the savepoints kept are then written, with their outbox events, in
    one UPDATE and one INSERT of the same transaction. Numbers stay exactly 1..N.

    Work after commit is kicked once per batch, not once per document: one outbox relay kick
    and one PDF task for all the documents issued (a lost kick is covered as before: beat's
    relay, and the PDF rendered on first need by the download and the e-mail).
    """
    fault = fault or fault_from_settings()
    limit = limit or settings.INVOICE_BATCH_SIZE
    model = kind.model
    issued: list[int] = []
    failed: list[int] = []
    with transaction.atomic():
        now = timezone.now()
        claimable = model.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            kind.due, status="pending", number__isnull=True
        )
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        if include_id is not None:
            due |= Q(pk=include_id)
        batch = list(claimable.filter(due).order_by("created_at", "id")[:limit])
        if include_id is not None and include_id not in {d.pk for d in batch}:
            mine = claimable.filter(pk=include_id).first()
            batch += [mine] if mine is not None else []
        series = kind.series_for(now)
        numbered: list[tuple[Any, int]] = []
        savepoints = _SavepointAttempts(series=series)
        for document in batch:
            try:
                number = savepoints.take_number()
                # `invoice=`: the fault's keyword, whatever the document (see FaultInjector).
                fault.maybe_fail(invoice=document, number=number)
            except InvoiceAttemptFailed as exc:
                savepoints.roll_back()
                metrics_invoice_attempt(outcome="failed")
                attempts = document.attempts + 1
                model.objects.filter(pk=document.pk).update(
                    attempts=attempts,
                    last_error=str(exc)[:2000],
                    last_attempt_at=now,
                    next_attempt_at=now + timedelta(seconds=invoice_fault_retry_s(attempts=attempts)),
                    updated_at=now,
                )
                failed.append(document.pk)
                continue
            numbered.append((document, number))
            issued.append(document.pk)
        savepoints.close()
        if numbered:
            # The numbers the savepoints kept, written in this same transaction: one UPDATE
            # and one outbox INSERT for the batch instead of one of each per document.
            _documents_write_issued(kind=kind, series=series, now=now, numbered=numbered)
            # Registered outside every savepoint: they run once the batch commits.
            outbox_kick_on_commit()
            kind.after_issue(issued)  # its own queue
    # Committed: every issued document got `series` and `issued_at=now` in the batch above.
    issued_ids = set(issued)
    for document in batch:
        if document.pk in issued_ids:
            metrics_invoice_attempt(outcome="issued")
            metrics_invoice_issued(series=series, placed_at=document.created_at, issued_at=now)
    return NumberingBatch(issued=issued, failed=failed)


def documents_number_drain(
    *, kind: NumberedKind, include_id: int | None = None, budget_s: float | None = None
) -> NumberingBatch:
    """documents_number_due, again and again while there is a backlog (a batch claimed more
    than one document), for up to INVOICE_DRAIN_S: under load one trigger keeps the series
    busy batch after batch (each its own transaction, so each commits on its own), while the
    triggers of the documents it numbered are answered by the other pool processes with one
    read. Without it the series idled while those already-answered triggers went by, one
    Celery message each. A batch of one (no backlog: its own document) ends the loop, so a
    quiet shop runs one batch per trigger, as before."""
    budget_s = settings.INVOICE_DRAIN_S if budget_s is None else budget_s
    deadline = time.monotonic() + budget_s
    batch = documents_number_due(kind=kind, include_id=include_id)
    issued, failed = list(batch.issued), list(batch.failed)
    while batch.claimed > 1 and time.monotonic() < deadline:
        batch = documents_number_due(kind=kind)
        issued += batch.issued
        failed += batch.failed
    return NumberingBatch(issued=issued, failed=failed)


class _SavepointAttempts:
    """One savepoint per attempt, in one round trip each: RELEASE of the previous attempt's
    savepoint, SAVEPOINT for this one and the number (UPDATE ... RETURNING) go to PostgreSQL
    as one statement string (Django's client-side binding allows several). The same SQL as
    transaction.savepoint() + sequence_take_next() + savepoint_commit(), a third of the
    round trips, each taken while the batch holds the series row. Raw savepoints nest inside
    the batch's atomic block: whatever rolls that back takes them with it."""

    def __init__(self, *, series: str) -> None:
        self.series = series
        self.count = 0
        self.open: str | None = None

    def take_number(self) -> int:
        name = f"numbering_{self.count}"
        self.count += 1
        previous, self.open = self.open, name
        take = (
            "UPDATE invoicing_invoicesequence SET next_value = next_value + 1 "
            "WHERE series = %s RETURNING next_value - 1"
        )
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                release = f"RELEASE SAVEPOINT {previous}; " if previous else ""
                # Our own savepoint names; the series is a parameter.
                cursor.execute(f"{release}SAVEPOINT {name}; {take}", [self.series])
                while cursor.nextset():  # to the UPDATE's result
                    pass
            else:  # SQLite (make run's embedded default) runs one statement per call
                if previous:
                    cursor.execute(f"RELEASE SAVEPOINT {previous}")
                cursor.execute(f"SAVEPOINT {name}")
                cursor.execute(take, [self.series])
            row = cursor.fetchone()
        if row is None:  # the series' first number: sequence_take_next creates its row
            return sequence_take_next(series=self.series)
        return int(row[0])

    def roll_back(self) -> None:
        """Undo the open attempt: its number goes back to the sequence for the next one."""
        with connection.cursor() as cursor:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {self.open}")

    def close(self) -> None:
        if self.open:
            with connection.cursor() as cursor:
                cursor.execute(f"RELEASE SAVEPOINT {self.open}")
            self.open = None


def _documents_write_issued(*, kind: NumberedKind, series: str, now: datetime, numbered: list[tuple[Any, int]]) -> None:
    """Issue the batch's numbered documents (rows locked by the batch): number + `issued` +
    the retry state cleared in one UPDATE ... FROM (VALUES ...), and their `kind.event_type`
    outbox events in one INSERT. The constraints (unique series+number, number iff issued)
    check every row; any error fails the whole batch, which gives every number back."""
    if connection.vendor == "postgresql":
        _documents_update_issued(kind=kind, series=series, now=now, numbered=numbered)
    else:  # SQLite (make run's embedded default): no column list on a VALUES alias
        _documents_update_issued_each(kind=kind, series=series, now=now, numbered=numbered)
    outbox_record_many(
        events=[(kind.event_type, document, kind.payload(document, series, number)) for document, number in numbered],
        kick=False,  # the caller kicks once the batch is written
    )


def _documents_update_issued(
    *, kind: NumberedKind, series: str, now: datetime, numbered: list[tuple[Any, int]]
) -> None:
    table = connection.ops.quote_name(kind.model._meta.db_table)
    values = ", ".join(["(%s, %s)"] * len(numbered))
    params: list[Any] = [series, now, now, now]
    for document, number in numbered:
        params += [document.pk, number]
    # The model's own table name and placeholders only: every value is a parameter.
    sql = (
        f"UPDATE {table} AS d SET series = %s, number = v.number, status = 'issued', issued_at = %s, "  # noqa: S608
        "attempts = d.attempts + 1, last_attempt_at = %s, next_attempt_at = NULL, last_error = '', "
        f"updated_at = %s FROM (VALUES {values}) AS v(id, number) "
        "WHERE d.id = v.id AND d.status = 'pending' AND d.number IS NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != len(numbered):  # never expected: the batch holds these rows
            raise RuntimeError(f"{kind.label} batch: {cursor.rowcount} of {len(numbered)} rows issued")


def _documents_update_issued_each(
    *, kind: NumberedKind, series: str, now: datetime, numbered: list[tuple[Any, int]]
) -> None:
    """_documents_update_issued one row at a time (the embedded SQLite of `make run`)."""
    for document, number in numbered:
        updated = kind.model.objects.filter(pk=document.pk, status="pending", number__isnull=True).update(
            series=series,
            number=number,
            status="issued",
            issued_at=now,
            attempts=F("attempts") + 1,
            last_attempt_at=now,
            next_attempt_at=None,
            last_error="",
            updated_at=now,
        )
        if updated != 1:  # never expected: the batch holds these rows
            raise RuntimeError(f"{kind.label} batch: {document.pk} was not pending")


def invoices_number_due(
    *, include_id: int | None = None, limit: int | None = None, fault: FaultInjector | None = None
) -> NumberingBatch:
    """Group commit of invoices (documents_number_due with INVOICE_KIND)."""
    return documents_number_due(kind=INVOICE_KIND, include_id=include_id, limit=limit, fault=fault)


def credit_notes_number_due(
    *, include_id: int | None = None, limit: int | None = None, fault: FaultInjector | None = None
) -> NumberingBatch:
    """Group commit of credit notes (documents_number_due with CREDIT_NOTE_KIND): series CN,
    the same fault, savepoints, retry state and guarantees as invoices."""
    return documents_number_due(kind=CREDIT_NOTE_KIND, include_id=include_id, limit=limit, fault=fault)


def invoice_record_failed_attempt(*, invoice_id: int, error: str) -> None:
    """Count a failed attempt in its own transaction, after the attempt's rollback."""
    now = timezone.now()
    # Counted even if another delivery of the task issued the invoice meanwhile (the attempt
    # happened); only a pending invoice shows the error.
    Invoice.objects.filter(pk=invoice_id).update(
        attempts=F("attempts") + 1,
        last_error=Case(
            When(status=InvoiceStatus.PENDING, then=Value(error[:2000])),
            default=F("last_error"),
            output_field=TextField(),
        ),
        last_attempt_at=now,
        updated_at=now,
    )


def documents_requeue_stale(*, kind: NumberedKind, older_than_s: float | None = None, limit: int = 500) -> list[int]:
    """Re-enqueue pending documents with no attempt for a while (a lost message, a killed
    worker, a broker restart). Numbering is idempotent, so a duplicate is harmless."""
    older_than_s = settings.INVOICE_SWEEP_STALE_S if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    stale = list(
        kind.model.objects.filter(status="pending", enqueued_at__lt=cutoff)
        .filter(Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lt=cutoff))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for document_id in stale:
        document_retry_now(kind=kind, document_id=document_id)
    if stale:
        logger.warning("re-enqueued %d stale pending %ss", len(stale), kind.label)
    return stale


def invoices_requeue_stale(*, older_than_s: float | None = None, limit: int = 500) -> list[int]:
    return documents_requeue_stale(kind=INVOICE_KIND, older_than_s=older_than_s, limit=limit)


def credit_notes_requeue_stale(*, older_than_s: float | None = None, limit: int = 500) -> list[int]:
    return documents_requeue_stale(kind=CREDIT_NOTE_KIND, older_than_s=older_than_s, limit=limit)


def document_retry_now(*, kind: NumberedKind, document_id: int) -> None:
    """Enqueue a numbering attempt now (staff's "retry now", the sweeper)."""
    # Remember the enqueue so the sweeper does not enqueue it again at once.
    kind.model.objects.filter(pk=document_id, status="pending").update(enqueued_at=timezone.now())
    kind.enqueue(document_id)


def invoice_retry_now(*, invoice_id: int) -> None:
    document_retry_now(kind=INVOICE_KIND, document_id=invoice_id)


def credit_note_retry_now(*, credit_note_id: int) -> None:
    document_retry_now(kind=CREDIT_NOTE_KIND, document_id=credit_note_id)


def _enqueue_invoice_numbering_now(invoice_id: int) -> None:
    from invoicing.tasks import assign_invoice_number

    assign_invoice_number.delay(invoice_id)


def _enqueue_credit_note_numbering_now(credit_note_id: int) -> None:
    from invoicing.tasks import assign_credit_note_number

    assign_credit_note_number.delay(credit_note_id)


# The two numbered kinds. Lambdas look their functions up when called (tests replace them).
INVOICE_KIND = NumberedKind(
    label="invoice",
    model=Invoice,
    series_for=lambda at: invoice_series_for(at=at),
    event_type="invoice.issued",
    payload=lambda invoice, series, number: {
        "invoice_id": invoice.pk,
        "order_id": invoice.order_id,
        "series": series,
        "number": number,
    },
    after_issue=lambda invoice_ids: invoice_enqueue_pdfs(invoice_ids=invoice_ids),
    enqueue=lambda invoice_id: _enqueue_invoice_numbering_now(invoice_id),
)

CREDIT_NOTE_KIND = NumberedKind(
    label="credit note",
    model=CreditNote,
    series_for=lambda at: credit_note_series_for(at=at),
    event_type="credit_note.issued",
    payload=lambda note, series, number: {
        "credit_note_id": note.pk,
        "invoice_id": note.invoice_id,
        "order_id": note.order_id,
        "refund_id": note.refund_id,
        "series": series,
        "number": number,
    },
    after_issue=lambda credit_note_ids: credit_note_enqueue_pdfs(credit_note_ids=credit_note_ids),
    enqueue=lambda credit_note_id: _enqueue_credit_note_numbering_now(credit_note_id),
    # A credit note corrects a numbered invoice: it waits (seconds) for the invoice's number.
    due=Q(invoice__number__isnull=False),
)


# --- The document's content --------------------------------------------------------------------


def billing_details_from_address(address: dict[str, Any]) -> dict[str, str]:
    """Buyer details of a storefront invoice: the order's address, as given at checkout."""
    keys = ("name", "line1", "line2", "city", "postal_code", "country")
    return {k: str(address[k]) for k in keys if address.get(k)}


def invoice_tax_breakdown(*, order: Order, lines: list[OrderLine]) -> list[dict[str, str]]:
    """Net and tax per rate by the pricing rule the order was priced with (decimal strings).

    The order's snapshotted tax is authoritative: should the rule's settings have changed
    between checkout and invoicing (the shipping rate), the difference goes on the largest
    row, so the rows always add up to the invoice's tax and total."""
    currency = order.currency
    net_by_rate = taxable_by_rate(
        lines=[(line.line_total, line.tax_rate) for line in lines],
        discount=order.discount,
        shipping=order.shipping,
        currency=currency,
    )
    rows = [[rate, money_round(net, currency), money_round(net * rate, currency)] for rate, net in net_by_rate.items()]
    difference = order.tax - sum((row[2] for row in rows), ZERO)
    if rows and difference:
        logger.warning("order %s: tax by rate differs from the order's tax by %s", order.pk, difference)
        max(rows, key=lambda row: row[2])[2] += difference
    return [{"rate": str(rate), "net": str(net), "tax": str(tax)} for rate, net, tax in rows]


# --- State machine: void and overdue -----------------------------------------------------------


class InvoiceNotIssued(Conflict):
    code = "invoice_not_issued"


class InvoicePaid(Conflict):
    code = "invoice_paid"


class InvoiceVoid(Conflict):
    code = "invoice_void"


def _lock_order_then_invoice(*, invoice_id: int) -> tuple[Order, Invoice]:
    """Order, then invoice (flows/__init__.py). Raises NotFound."""
    order_id = Invoice.objects.filter(pk=invoice_id).values_list("order_id", flat=True).first()
    if order_id is None:
        raise NotFound("No such invoice.")
    order = order_lock(order_id=order_id)
    invoice = invoice_lock(invoice_id=invoice_id)
    invoice.order = order
    return order, invoice


def _invoice_transition(
    *, invoice: Invoice, to: str, reason: str, actor: User | None, changes: dict[str, Any]
) -> Invoice:
    """Check INVOICE_TRANSITIONS, write `changes` guarded by the current status, record the
    change and an `invoice.<to>` OutboxEvent. Caller holds the invoice row lock."""
    from_state = invoice.state
    if to not in INVOICE_TRANSITIONS.get(from_state, set()):
        raise IllegalTransition(
            f"An invoice cannot go from {from_state} to {to}.", details={"from": from_state, "to": to}
        )
    now = timezone.now()
    updated = Invoice.objects.filter(pk=invoice.pk, status=invoice.status).update(**changes, updated_at=now)
    if not updated:
        raise IllegalTransition("The invoice changed meanwhile.", details={"from": from_state, "to": to})
    for name, value in changes.items():
        setattr(invoice, name, value)
    InvoiceStatusChange.objects.create(
        invoice=invoice, from_state=from_state, to_state=to, reason=reason[:200], actor=actor
    )
    outbox_record(
        event_type=f"invoice.{to}",
        aggregate=invoice,
        payload={
            "invoice_id": invoice.pk,
            "order_id": invoice.order_id,
            "number": invoice.number,
            "from": from_state,
            "to": to,
            "reason": reason,
            "actor_id": actor.pk if actor else None,
        },
    )
    return invoice


def invoice_void(*, invoice_id: int, actor: User | None = None, reason: str = "") -> Invoice:
    """Void an issued invoice nobody has paid anything on: the number stays used, the
    invoice stays visible (marked VOID) and can no longer be paid; the order is cancelled
    and its held stock released. One transaction.

    Raises IllegalTransition (pending or already void), InvoicePaid (money received or the
    order paid), PaymentInProgress (an attempt is processing), NotFound. Nothing changes then.
    """
    from invoicing.selectors import invoice_amount_paid, invoice_has_processing_payment
    from orders.services import order_cancel

    with transaction.atomic():
        order, invoice = _lock_order_then_invoice(invoice_id=invoice_id)
        if InvoiceState.VOID not in INVOICE_TRANSITIONS.get(invoice.state, set()):
            raise IllegalTransition(
                f"A {invoice.state} invoice cannot be voided.", details={"from": invoice.state, "to": "void"}
            )
        paid = invoice_amount_paid(invoice=invoice)
        if paid > 0 or order.status != OrderStatus.PENDING_PAYMENT:
            raise InvoicePaid(
                f"Invoice {invoice.display_number} has payments ({paid} {invoice.currency}); it cannot be voided.",
                details={"amount_paid": str(paid), "order_status": order.status},
            )
        if invoice_has_processing_payment(invoice=invoice):
            raise PaymentInProgress("A payment for this invoice is being processed; try again once it has completed.")
        _invoice_transition(
            invoice=invoice,
            to=InvoiceState.VOID,
            reason=reason or "voided by staff",
            actor=actor,
            changes={"status": InvoiceStatus.VOID, "voided_at": timezone.now(), "void_reason": reason[:200]},
        )
        order_cancel(order_id=order.pk, reason=f"invoice {invoice.display_number} void", actor=actor)
        invoice_enqueue_pdf(invoice_id=invoice.pk)  # the stored PDF gets its VOID watermark
    return invoice


def invoice_mark_overdue(*, invoice_id: int, now: datetime | None = None) -> Invoice:
    """Flag an issued invoice whose due date has passed with an amount still due, and
    e-mail its one reminder after commit. Raises IllegalTransition with nothing changed
    when it is pending, void, already overdue, not yet past due or fully paid."""
    from invoicing.selectors import invoice_amount_due

    now = now or timezone.now()
    with transaction.atomic():
        order, invoice = _lock_order_then_invoice(invoice_id=invoice_id)
        due_date = invoice.due_date
        if invoice.state == InvoiceState.ISSUED and due_date is not None:
            if due_date >= now.date():
                raise IllegalTransition(
                    f"Invoice {invoice.display_number} is due on {due_date}; it is not overdue yet.",
                    details={"from": invoice.state, "to": "overdue", "due_date": due_date.isoformat()},
                )
            if order.status != OrderStatus.PENDING_PAYMENT or invoice_amount_due(invoice=invoice) <= 0:
                raise IllegalTransition(
                    f"Invoice {invoice.display_number} is paid; it cannot become overdue.",
                    details={"from": invoice.state, "to": "overdue"},
                )
        _invoice_transition(
            invoice=invoice,
            to=InvoiceState.OVERDUE,
            reason=f"unpaid after the due date {due_date}",
            actor=None,
            changes={"overdue_at": now},
        )
        invoice_enqueue_reminder(invoice_id=invoice.pk)
    return invoice


def invoices_mark_overdue(*, now: datetime | None = None) -> list[int]:
    """The daily sweep: flag every issued, unpaid invoice past its due date (each in its own
    transaction), and re-enqueue reminders that were never sent. Returns the ids flagged."""
    now = now or timezone.now()
    candidates = Invoice.objects.filter(
        status=InvoiceStatus.ISSUED, overdue_at__isnull=True, order__status=OrderStatus.PENDING_PAYMENT
    ).values_list("pk", "issued_at", "due_days")
    flagged = []
    for invoice_id, issued_at, due_days in candidates.iterator():
        if issued_at is None or issued_at.date() + timedelta(days=due_days) >= now.date():
            continue
        try:
            invoice_mark_overdue(invoice_id=invoice_id, now=now)
        except (IllegalTransition, NotFound) as exc:  # paid or voided meanwhile
            logger.info("invoice %s not marked overdue: %s", invoice_id, exc)
            continue
        flagged.append(invoice_id)
    unsent = Invoice.objects.filter(
        status=InvoiceStatus.ISSUED,
        overdue_at__isnull=False,
        reminder_sent_at__isnull=True,
        order__status=OrderStatus.PENDING_PAYMENT,
    ).exclude(pk__in=flagged)
    for invoice_id in unsent.values_list("pk", flat=True):
        invoice_enqueue_reminder(invoice_id=invoice_id)
    if flagged:
        logger.info("marked %d invoices overdue", len(flagged))
    return flagged


def invoice_enqueue_reminder(*, invoice_id: int) -> None:
    from invoicing.tasks import send_overdue_reminder

    on_commit_robust(hook="invoicing.send_overdue_reminder", fn=lambda: send_overdue_reminder.delay(invoice_id))


def invoice_reminder_send(*, invoice_id: int) -> bool:
    """E-mail the one overdue reminder (with the PDF and a fresh payment link). Sent inside
    the transaction that holds the invoice row and records `reminder_sent_at`: a second
    run waits, then sees it sent. Returns False when there is nothing to send."""
    from invoicing.selectors import invoice_amount_due

    with transaction.atomic():
        # Only the invoice row: a payment for the order is not held up by the mail server.
        invoice = (
            Invoice.objects.select_for_update(of=("self",)).select_related("order__user").filter(pk=invoice_id).first()
        )
        if invoice is None:
            raise NotFound("No such invoice.")
        if (
            invoice.reminder_sent_at is not None
            or invoice.order.status != OrderStatus.PENDING_PAYMENT
            or invoice.state != InvoiceState.OVERDUE
            or invoice_amount_due(invoice=invoice) <= 0
        ):
            return False
        link = invoice_payment_link_create(invoice_id=invoice.pk)
        recipient = _invoice_recipient(invoice=invoice)
        message = _invoice_email(invoice=invoice, template="reminder", to=recipient, link=link)
        message.send()
        now = timezone.now()
        Invoice.objects.filter(pk=invoice.pk).update(reminder_sent_at=now, updated_at=now)
        outbox_record(
            event_type="invoice.reminder_sent",
            aggregate=invoice,
            payload={"invoice_id": invoice.pk, "to": recipient, "amount_due": link.amount},
        )
    return True


# --- E-mail ------------------------------------------------------------------------------------


def _invoice_recipient(*, invoice: Invoice) -> str:
    email = invoice.billing_details.get("email") or invoice.order.user.email
    if not email:
        raise ValidationFailed(
            f"No e-mail address for invoice {invoice.display_number}: set one on the customer's billing profile.",
            details={"email": ["Missing."]},
        )
    return str(email)


def _invoice_email(*, invoice: Invoice, template: str, to: str, link: "PaymentLink | None") -> EmailMultiAlternatives:
    from invoicing.selectors import invoice_document_context

    document = invoice_pdf_store(invoice_id=invoice.pk)
    context = {
        **invoice_document_context(invoice=invoice),
        "pay_url": f"{settings.SITE_URL}{link.path}" if link else "",
        "link": link,
    }
    subject = render_to_string(f"invoicing/email/{template}_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"invoicing/email/{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        reply_to=[invoice.seller_details.get("email") or settings.DEFAULT_FROM_EMAIL],
    )
    message.attach_alternative(render_to_string(f"invoicing/email/{template}.html", context), "text/html")
    message.attach(f"invoice-{invoice.display_number}.pdf", bytes(document.pdf), "application/pdf")
    return message


def _invoice_issued(*, invoice_id: int, doing: str, void_means: str) -> Invoice:
    """An issued (or overdue), not void invoice with its order and customer, or raise
    NotFound, InvoiceNotIssued (pending) or InvoiceVoid, saying what cannot be done."""
    invoice = Invoice.objects.select_related("order__user").filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound("No such invoice.")
    if invoice.status == InvoiceStatus.PENDING:
        raise InvoiceNotIssued(f"The invoice has no number yet; {doing} once it is issued.")
    if invoice.status == InvoiceStatus.VOID:
        raise InvoiceVoid(f"Invoice {invoice.display_number} is void; {void_means}.")
    return invoice


def invoice_send_email(*, invoice_id: int, actor: User | None = None) -> Invoice:
    """E-mail an issued invoice to the customer with its PDF attached and, while money is
    due, a payment link. Raises InvoiceNotIssued (pending), InvoiceVoid, ValidationFailed
    (no address). Records `sent_at` and an `invoice.sent` event."""
    from invoicing.selectors import invoice_amount_due

    invoice = _invoice_issued(invoice_id=invoice_id, doing="send it", void_means="it is not sent")
    recipient = _invoice_recipient(invoice=invoice)
    link = invoice_payment_link_create(invoice_id=invoice.pk) if invoice_amount_due(invoice=invoice) > 0 else None
    _invoice_email(invoice=invoice, template="invoice", to=recipient, link=link).send()
    with transaction.atomic():
        now = timezone.now()
        Invoice.objects.filter(pk=invoice.pk).update(sent_at=now, updated_at=now)
        invoice.sent_at = now
        outbox_record(
            event_type="invoice.sent",
            aggregate=invoice,
            payload={"invoice_id": invoice.pk, "to": recipient, "actor_id": actor.pk if actor else None},
        )
    return invoice


# --- PDF ---------------------------------------------------------------------------------------


def invoice_enqueue_pdf(*, invoice_id: int) -> None:
    """Render the stored PDF after the current transaction commits (documents queue). A
    lost message costs nothing: the download renders a missing or stale PDF on demand."""
    from invoicing.tasks import render_invoice_pdf

    on_commit_robust(hook="invoicing.render_invoice_pdf", fn=lambda: render_invoice_pdf.delay(invoice_id))


def invoice_enqueue_pdfs(*, invoice_ids: list[int]) -> None:
    """The PDFs of a numbering batch's invoices: one documents task after commit (one
    publish per batch, not per invoice). Lost, it costs what a lost single one costs: the
    download and the e-mail render a missing PDF on demand."""
    from invoicing.tasks import render_invoice_pdfs

    ids = list(invoice_ids)
    on_commit_robust(hook="invoicing.render_invoice_pdfs", fn=lambda: render_invoice_pdfs.delay(ids))


def invoice_pdf_store(*, invoice_id: int, force: bool = False) -> InvoiceDocument:
    """The invoice's PDF as it should look now (status, amounts paid), rendered and stored
    if missing or stale, else the stored one. Raises InvoiceNotIssued while pending (a
    document without a number does not exist), NotFound."""
    from invoicing.pdf import render_invoice_pdf_bytes
    from invoicing.selectors import invoice_document_context

    invoice = Invoice.objects.select_related("order__user").prefetch_related("lines").filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound("No such invoice.")
    if invoice.status == InvoiceStatus.PENDING:
        raise InvoiceNotIssued(
            "The invoice is pending: it gets its number and its PDF in a moment. Try again shortly.",
            details={"invoice_id": invoice.pk, "status": invoice.status},
        )
    context = invoice_document_context(invoice=invoice)
    fingerprint = str(context["fingerprint"])
    if not force:
        stored = InvoiceDocument.objects.filter(invoice_id=invoice.pk, fingerprint=fingerprint).first()
        if stored is not None:
            return stored
    pdf, pages = render_invoice_pdf_bytes(context=context)
    document = InvoiceDocument(
        invoice_id=invoice.pk,
        pdf=pdf,
        fingerprint=fingerprint,
        page_count=pages,
        size=len(pdf),
        rendered_at=timezone.now(),
    )
    # An upsert: two concurrent renders of one invoice both succeed, the last one stays.
    InvoiceDocument.objects.bulk_create(
        [document],
        update_conflicts=True,
        unique_fields=["invoice"],
        update_fields=["pdf", "fingerprint", "page_count", "size", "rendered_at"],
    )
    return document


# --- Payment links -----------------------------------------------------------------------------

PAYMENT_LINK_SALT = "invoicing.payment-link"


@dataclass(frozen=True)
class PaymentLink:
    token: str
    path: str
    invoice_id: int
    amount: Decimal
    currency: str
    expires_at: datetime


def invoice_payment_link_create(*, invoice_id: int, actor: User | None = None) -> PaymentLink:
    """A signed, expiring link to pay an issued invoice, bound to the invoice and to its
    amount due now (the most the link can ever charge). Stateless: the signature is the
    record; an `invoice.payment_link_created` event is the audit trail.

    Raises InvoiceNotIssued (pending), InvoiceVoid, InvoicePaid (nothing due), NotFound."""
    from invoicing.selectors import invoice_amount_due

    invoice = _invoice_issued(invoice_id=invoice_id, doing="create the payment link", void_means="it cannot be paid")
    amount = invoice_amount_due(invoice=invoice)
    if amount <= 0:
        raise InvoicePaid(f"Invoice {invoice.display_number} is paid; nothing is due.")
    token = signing.dumps(
        {"invoice": invoice.pk, "amount": str(amount), "currency": invoice.currency}, salt=PAYMENT_LINK_SALT
    )
    expires_at = timezone.now() + settings.PAYMENT_LINK_TTL
    with transaction.atomic():
        outbox_record(
            event_type="invoice.payment_link_created",
            aggregate=invoice,
            payload={
                "invoice_id": invoice.pk,
                "amount": amount,
                "currency": invoice.currency,
                "expires_at": expires_at,
                "actor_id": actor.pk if actor else None,
            },
        )
    return PaymentLink(
        token=token,
        path=reverse("invoice-pay", args=[token]),
        invoice_id=invoice.pk,
        amount=amount,
        currency=invoice.currency,
        expires_at=expires_at,
    )


# --- Daily sales report ------------------------------------------------------------------------


def sales_report_send(*, day: date) -> SalesReport:
    """Build `day`'s report, store it and e-mail it to STAFF_EMAILS once. The row per day
    (unique date) is locked while sending, so a second run (or a concurrent one) waits and
    then finds `sent_at` set: it sends nothing. A failed send rolls back and is retried."""
    from invoicing.selectors import sales_report_build

    SalesReport.objects.bulk_create([SalesReport(date=day, generated_at=timezone.now())], ignore_conflicts=True)
    with transaction.atomic():
        report = SalesReport.objects.select_for_update().get(date=day)
        if report.sent_at is not None:
            return report
        data = sales_report_build(day=day)
        context = {"report": data, "day": day, "site_url": settings.SITE_URL}
        message = EmailMultiAlternatives(
            subject=render_to_string("invoicing/email/sales_report_subject.txt", context).strip(),
            body=render_to_string("invoicing/email/sales_report.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=list(settings.STAFF_EMAILS),
        )
        message.attach_alternative(render_to_string("invoicing/email/sales_report.html", context), "text/html")
        message.send()
        now = timezone.now()
        report.data = data
        report.generated_at = now
        report.sent_at = now
        report.recipients = list(settings.STAFF_EMAILS)
        report.save(update_fields=["data", "generated_at", "sent_at", "recipients"])
        outbox_record(
            event_type="sales_report.sent",
            aggregate=report,
            payload={"date": day.isoformat(), "recipients": report.recipients},
        )
    return report


# --- Paying an invoice (the payment seams) -----------------------------------------------------


class AmountExceedsDue(Conflict):
    code = "amount_exceeds_due"


def invoice_payment_amount(*, order: Order, requested: Decimal | None = None) -> Decimal:
    """The amount a new payment attempt for `order` takes. Call with the order row locked
    (payments.services.payment_attempt_create does): the invoice row is locked next.

    A storefront order (not placed before payment, no invoice yet) is paid in one go: its
    total. A staff-billed order is paid against its invoice: by default what is due and
    not already in flight; a smaller amount only when the invoice allows partial payments;
    never more than total - (paid + processing), so concurrent partial payments cannot
    exceed the total. Raises InvoiceNotIssued, InvoiceVoid, InvoicePaid, AmountExceedsDue,
    ValidationFailed (partial not allowed, not a whole minor unit)."""
    from invoicing.selectors import invoice_amount_committed

    currency = order.currency
    if requested is not None and (requested <= 0 or requested != money_round(requested, currency)):
        raise ValidationFailed(
            f"The amount must be positive, in whole minor units of {currency}.",
            details={"amount": [f"Not a valid amount in {currency}."]},
        )
    if order.placed_at is None:  # storefront: placed by this payment, invoiced afterwards
        if requested is not None and requested != order.total:
            raise ValidationFailed(
                f"This order is paid in full: {order.total} {currency}.", details={"amount": ["Must be the total."]}
            )
        return order.total
    invoice = invoice_lock_for_order(order_id=order.pk)
    if invoice is None:
        return order.total if requested is None else requested
    if invoice.status == InvoiceStatus.PENDING:
        raise InvoiceNotIssued("The invoice is being issued; try again in a moment.")
    if invoice.status == InvoiceStatus.VOID:
        raise InvoiceVoid(f"Invoice {invoice.display_number} is void; it cannot be paid.")
    room = invoice.total - invoice_amount_committed(invoice=invoice)
    if room <= 0:
        raise InvoicePaid(f"Invoice {invoice.display_number} is paid or being paid; nothing more is due.")
    amount = room if requested is None else requested
    if amount > room:
        raise AmountExceedsDue(
            f"At most {room} {currency} can be paid on invoice {invoice.display_number} now.",
            details={"amount": str(amount), "payable": str(room)},
        )
    if amount < room and not invoice.allow_partial:
        raise ValidationFailed(
            f"Invoice {invoice.display_number} is paid in full: {room} {currency}.",
            details={"amount": [f"Must be {room}."]},
        )
    return amount


def invoice_amount_policy(order: Order, requested: Decimal | None) -> Decimal:
    """invoice_payment_amount as payments' `amount_policy` (payments.services.AmountPolicy)."""
    return invoice_payment_amount(order=order, requested=requested)


def invoice_payment_settles(*, order: Order) -> bool:
    """A payment of `order` just succeeded (order row locked): True when the order is now
    paid in full, so the caller marks it paid (order_mark_paid; its invoice already exists
    for a staff-billed order and is not created twice). A partial payment leaves the order
    awaiting the rest. The stored PDF is rendered again with the new amounts."""
    from invoicing.selectors import invoice_amount_paid

    if order.placed_at is None:
        return True  # storefront: one payment of the total
    invoice = invoice_lock_for_order(order_id=order.pk)
    if invoice is None:
        return True
    if invoice.status != InvoiceStatus.PENDING:
        invoice_enqueue_pdf(invoice_id=invoice.pk)
    return invoice_amount_paid(invoice=invoice) >= invoice.total


def invoice_pay_by_link(*, token: str, amount: Decimal, payment_method: str) -> PaymentAttempt:
    """Start paying an invoice through its payment link: the same PaymentAttempt, provider
    and webhooks as checkout, for `amount` (at most the link's bound amount; the cap of
    what is still due is enforced under the order and invoice locks). Raises
    LinkNotPayable (expired, tampered, void, paid, processing) or what
    payments.services.payment_attempt_create raises."""
    from invoicing.selectors import payment_link_resolve
    from payments.services import payment_attempt_create

    link = payment_link_resolve(token=token)
    if link.state != "payable" or link.invoice is None or link.link_amount is None:
        raise LinkNotPayable(link.message, details={"state": link.state})
    if amount > link.link_amount:
        raise AmountExceedsDue(
            f"This link pays at most {link.link_amount} {link.invoice.currency}.",
            details={"amount": str(amount), "payable": str(link.link_amount)},
        )
    order = link.invoice.order
    return payment_attempt_create(
        order_id=order.pk,
        user=order.user,
        payment_method=payment_method,
        amount=amount,
        amount_policy=invoice_amount_policy,
    )


class LinkNotPayable(Conflict):
    code = "link_not_payable"


# --- Credit notes ------------------------------------------------------------------------------


class CreditNoteNotIssued(Conflict):
    code = "credit_note_not_issued"


class CreditNoteNotPossible(Conflict):
    code = "credit_note_not_possible"


def _net_of_gross(*, gross: Decimal, rate: Decimal, currency: str) -> Decimal:
    return money_round(gross / (1 + rate), currency)


def credit_note_amount_split(
    *, amount: Decimal, tax_rows: list[dict[str, Decimal]], currency: str
) -> list[tuple[Decimal, Decimal]]:
    """Split a gross `amount` over the invoice's tax rates in proportion to each rate's gross
    (net + tax), exactly: the parts add up to `amount` to the minor unit (largest remainder).
    Returns [(rate, gross part)], zero parts left out. No rows (a zero invoice): one part at
    the shop's default rate."""
    return _split_over_rates(
        amount=amount, weights=[(row["rate"], row["net"] + row["tax"]) for row in tax_rows], currency=currency
    )


def _split_over_rates(
    *, amount: Decimal, weights: list[tuple[Decimal, Decimal]], currency: str
) -> list[tuple[Decimal, Decimal]]:
    rows = [(rate, weight) for rate, weight in weights if weight > 0]
    if not rows:
        return [(Decimal(settings.DEFAULT_TAX_RATE), amount)]
    parts = money_allocate(amount, [weight for _, weight in rows], currency)
    return [(rate, part) for (rate, _), part in zip(rows, parts, strict=True) if part != 0]


def credit_note_tax_breakdown(*, gross_by_rate: dict[Decimal, Decimal], currency: str) -> list[dict[str, str]]:
    """Net and tax per rate of the credited gross amounts: net rounded once per rate, tax the
    rest, so each row's net + tax is exactly its gross (and the rows add up to the total)."""
    rows = []
    for rate in sorted(gross_by_rate, reverse=True):
        gross = gross_by_rate[rate]
        if gross == 0:
            continue
        net = _net_of_gross(gross=gross, rate=rate, currency=currency)
        rows.append({"rate": str(rate), "net": str(net), "tax": str(gross - net)})
    return rows


def credit_note_create_for_refund(*, refund_id: int) -> CreditNote:
    """Create the pending credit note of a succeeded refund inside the refund-succeeded
    flow's transaction (locks held: order -> attempt -> refund), and ask the numbering worker
    to number it once that transaction commits. Idempotent: one credit note per refund (a
    unique column); a second call returns the first.

    Its content is snapshotted here: the refunded lines (the order line's sku, name, unit
    price and tax rate, the refunded quantity and gross amount) or, for an amount-only
    refund, the amount split over the invoice's tax rates; tax by rate, totals, the seller and
    buyer copied from the invoice, the refund's reason. Raises CreditNoteNotPossible when
    the refund has not succeeded or the order has no invoice (nothing is created)."""
    if not connection.in_atomic_block:
        raise RuntimeError("credit_note_create_for_refund must run in the refund's transaction")
    existing = CreditNote.objects.filter(refund_id=refund_id).first()
    if existing is not None:
        return existing
    refund = Refund.objects.prefetch_related("lines__order_line").get(pk=refund_id)
    if refund.status != RefundStatus.SUCCEEDED:
        raise CreditNoteNotPossible(
            f"Refund {refund.pk} is {refund.status}: only a succeeded refund gets a credit note.",
            details={"refund_id": refund.pk, "status": refund.status},
        )
    invoice = Invoice.objects.filter(order_id=refund.order_id).first()
    if invoice is None:
        raise CreditNoteNotPossible(
            f"Order {refund.order_id} has no invoice to credit.", details={"order_id": refund.order_id}
        )
    currency = refund.currency
    lines = _credit_note_lines(refund=refund, invoice=invoice, currency=currency)
    gross_by_rate: dict[Decimal, Decimal] = {}
    for line in lines:
        gross_by_rate[line.tax_rate] = gross_by_rate.get(line.tax_rate, ZERO) + line.amount
    tax_breakdown = credit_note_tax_breakdown(gross_by_rate=gross_by_rate, currency=currency)
    subtotal = sum((Decimal(row["net"]) for row in tax_breakdown), ZERO)
    tax = sum((Decimal(row["tax"]) for row in tax_breakdown), ZERO)
    note = CreditNote.objects.create(
        refund=refund,
        invoice=invoice,
        order_id=refund.order_id,
        series=settings.CREDIT_NOTE_SERIES,
        currency=currency,
        subtotal=money_round(subtotal, currency),
        tax=money_round(tax, currency),
        total=refund.amount,
        reason=refund.reason[:200],
        seller_details=dict(invoice.seller_details),
        billing_details=dict(invoice.billing_details),
        tax_breakdown=tax_breakdown,
    )
    for line in lines:
        line.credit_note = note
    CreditNoteLine.objects.bulk_create(lines)
    outbox_record(
        event_type="credit_note.created",
        aggregate=note,
        payload={
            "credit_note_id": note.pk,
            "invoice_id": invoice.pk,
            "order_id": refund.order_id,
            "refund_id": refund.pk,
            "total": note.total,
            "currency": currency,
        },
    )
    credit_note_enqueue_numbering(credit_note_id=note.pk)
    return note


def _credit_note_lines(*, refund: Refund, invoice: Invoice, currency: str) -> list[CreditNoteLine]:
    """The refund's lines as credited lines; what the refund's amount holds beyond its lines
    (all of it for an amount-only refund) split over the invoice's tax rates, a line per rate."""
    lines = []
    refund_lines = list(refund.lines.all())
    amounts = [rl.amount for rl in refund_lines]
    lines_sum = sum(amounts, ZERO)
    if lines_sum > refund.amount:  # never expected: the refund flow caps the lines; keep the total exact
        logger.error("refund %s: lines %s exceed the amount %s; scaled", refund.pk, lines_sum, refund.amount)
        amounts = money_allocate(refund.amount, amounts, currency)
        lines_sum = refund.amount
    for refund_line, amount in zip(refund_lines, amounts, strict=True):
        order_line = refund_line.order_line
        lines.append(
            CreditNoteLine(
                sku=order_line.sku,
                description=order_line.name,
                quantity=refund_line.quantity,
                unit_price=order_line.unit_price,
                tax_rate=order_line.tax_rate,
                line_total=_net_of_gross(gross=amount, rate=order_line.tax_rate, currency=currency),
                amount=amount,
            )
        )
    rest = refund.amount - lines_sum
    if rest > 0:
        label = "Refund" if not refund_lines else "Further refund"
        for rate, gross in _rest_split(rest=rest, invoice=invoice, lines=lines, currency=currency):
            net = _net_of_gross(gross=gross, rate=rate, currency=currency)
            lines.append(
                CreditNoteLine(
                    sku="",
                    description=f"{label} (VAT {(rate * 100).normalize():f}%)",
                    quantity=1,
                    unit_price=net,
                    tax_rate=rate,
                    line_total=net,
                    amount=gross,
                )
            )
    return lines


def _rest_split(
    *, rest: Decimal, invoice: Invoice, lines: list[CreditNoteLine], currency: str
) -> list[tuple[Decimal, Decimal]]:
    """Split what a refund holds beyond its lines over the invoice's tax rates, in proportion
    to what each rate has left to credit (the invoice's gross per rate minus earlier credit
    notes and this one's lines); with nothing left anywhere, in proportion to the invoice's
    gross per rate. A first amount-only refund is thus in proportion to the invoice, and a
    refund of everything left ends with the credit notes adding up to the invoice per rate
    (shipping goes back at its own rate)."""
    credited: dict[Decimal, Decimal] = {}
    earlier = (
        CreditNoteLine.objects.filter(credit_note__invoice=invoice)
        .order_by()
        .values_list("tax_rate")
        .annotate(s=Sum("amount"))
    )
    for rate, amount in [*earlier, *((line.tax_rate, line.amount) for line in lines)]:
        credited[rate] = credited.get(rate, ZERO) + (amount or ZERO)
    left = [(row["rate"], row["net"] + row["tax"] - credited.get(row["rate"], ZERO)) for row in invoice.tax_rows]
    if any(weight > 0 for _, weight in left):
        return _split_over_rates(amount=rest, weights=left, currency=currency)
    return credit_note_amount_split(amount=rest, tax_rows=invoice.tax_rows, currency=currency)


def credit_note_enqueue_numbering(*, credit_note_id: int) -> None:
    """Enqueue numbering after the current transaction commits (at once outside one)."""
    from invoicing.tasks import assign_credit_note_number

    on_commit_robust(
        hook="invoicing.assign_credit_note_number", fn=lambda: assign_credit_note_number.delay(credit_note_id)
    )


def credit_note_enqueue_pdf(*, credit_note_id: int) -> None:
    """Render the stored PDF after commit (documents queue); the download renders a missing one."""
    from invoicing.tasks import render_credit_note_pdf

    on_commit_robust(hook="invoicing.render_credit_note_pdf", fn=lambda: render_credit_note_pdf.delay(credit_note_id))


def credit_note_enqueue_pdfs(*, credit_note_ids: list[int]) -> None:
    """The PDFs of a numbering batch's credit notes: one documents task after commit."""
    from invoicing.tasks import render_credit_note_pdfs

    ids = list(credit_note_ids)
    on_commit_robust(hook="invoicing.render_credit_note_pdfs", fn=lambda: render_credit_note_pdfs.delay(ids))


def credit_note_pdf_store(*, credit_note_id: int, force: bool = False) -> CreditNoteDocument:
    """The credit note's PDF, rendered and stored if missing (or stale), else the stored one.
    Raises CreditNoteNotIssued while pending, NotFound."""
    from invoicing.pdf import render_credit_note_pdf_bytes
    from invoicing.selectors import credit_note_document_context

    note = (
        CreditNote.objects.select_related("invoice", "order__user", "refund")
        .prefetch_related("lines")
        .filter(pk=credit_note_id)
        .first()
    )
    if note is None:
        raise NotFound("No such credit note.")
    if note.status == "pending":
        raise CreditNoteNotIssued(
            "The credit note is pending: it gets its number and its PDF in a moment. Try again shortly.",
            details={"credit_note_id": note.pk, "status": note.status},
        )
    context = credit_note_document_context(credit_note=note)
    fingerprint = str(context["fingerprint"])
    if not force:
        stored = CreditNoteDocument.objects.filter(credit_note_id=note.pk, fingerprint=fingerprint).first()
        if stored is not None:
            return stored
    pdf, pages = render_credit_note_pdf_bytes(context=context)
    document = CreditNoteDocument(
        credit_note_id=note.pk,
        pdf=pdf,
        fingerprint=fingerprint,
        page_count=pages,
        size=len(pdf),
        rendered_at=timezone.now(),
    )
    CreditNoteDocument.objects.bulk_create(
        [document],
        update_conflicts=True,
        unique_fields=["credit_note"],
        update_fields=["pdf", "fingerprint", "page_count", "size", "rendered_at"],
    )
    return document
