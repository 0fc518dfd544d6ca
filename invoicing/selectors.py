from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.postgres.aggregates import JSONBAgg
from django.core import signing
from django.db import connection
from django.db.models import (
    Count,
    DecimalField,
    JSONField,
    Max,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
)
from django.db.models.functions import Cast, Coalesce, JSONObject, TruncDate

from common.money import ZERO, money_round
from invoicing.models import CreditNote, Invoice, InvoiceStatus
from orders.models import Order, OrderLine, OrderStatus
from outbox.models import OutboxEvent
from payments.models import PaymentAttempt, PaymentStatus


def _paid_attempts() -> QuerySet[PaymentAttempt]:
    """Money received: succeeded attempts, except successes flagged to be given back."""
    return PaymentAttempt.objects.filter(status=PaymentStatus.SUCCEEDED, refund_required=False)


def invoices_with_amounts(qs: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """Annotate `paid_total`, `refunded_total` and `credit_notes_json` (subqueries in the
    same query instead of queries per invoice or a prefetch: the list's budget stays put)."""
    notes = CreditNote.objects.filter(invoice_id=OuterRef("pk")).order_by().values("invoice_id")
    refunded = notes.annotate(s=Sum("total")).values("s")
    qs = qs.annotate(
        refunded_total=Coalesce(
            Subquery(refunded, output_field=DecimalField(max_digits=12, decimal_places=2)),
            Value(ZERO),
            output_field=DecimalField(max_digits=12, decimal_places=2),
        )
    )
    if connection.vendor != "postgresql":  # the embedded SQLite of `make run`: a query per invoice instead
        return _with_paid_total(qs)
    summaries = notes.annotate(
        j=JSONBAgg(
            JSONObject(
                id="id",
                series="series",
                number="number",
                status="status",
                total=Cast("total", TextField()),
                issued_at="issued_at",
            ),
            order_by=("created_at", "id"),
        )
    ).values("j")
    return _with_paid_total(qs.annotate(credit_notes_json=Subquery(summaries, output_field=JSONField())))


def _with_paid_total(qs: QuerySet[Invoice]) -> QuerySet[Invoice]:
    paid = (
        _paid_attempts()
        .filter(order_id=OuterRef("order_id"))
        .order_by()
        .values("order_id")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    return qs.annotate(
        paid_total=Coalesce(
            Subquery(paid, output_field=DecimalField(max_digits=12, decimal_places=2)),
            Value(ZERO),
            output_field=DecimalField(max_digits=12, decimal_places=2),
        )
    )


def invoices_visible_to(user: User | AnonymousUser) -> QuerySet[Invoice]:
    """Staff with the view permission see every invoice; anyone else those of their own orders."""
    if not user.is_authenticated:
        return Invoice.objects.none()
    qs = invoices_with_amounts(Invoice.objects.select_related("order").prefetch_related("lines"))
    return qs if user.is_staff and user.has_perm("invoicing.view_invoice") else qs.filter(order__user=user)


def invoice_get_for_user(*, user: User | AnonymousUser, invoice_id: int) -> Invoice:
    return invoices_visible_to(user).get(pk=invoice_id)


def invoice_for_order(*, user: User | AnonymousUser, order_id: int) -> Invoice:
    """The invoice of an order `user` may see; Invoice.DoesNotExist otherwise."""
    return invoices_visible_to(user).get(order_id=order_id)


def invoice_amount_paid(*, invoice: Invoice) -> Decimal:
    """The sum of the order's succeeded payment attempts (a success flagged for refund does
    not count). Uses the `paid_total` annotation when the queryset has it."""
    paid = getattr(invoice, "paid_total", None)
    if paid is None:
        paid = _paid_attempts().filter(order_id=invoice.order_id).aggregate(s=Sum("amount"))["s"]
    return money_round(Decimal(paid or ZERO), invoice.currency)


def invoice_amount_due(*, invoice: Invoice) -> Decimal:
    """What is still to be paid; nothing on a void invoice."""
    if invoice.status == InvoiceStatus.VOID:
        return money_round(ZERO, invoice.currency)
    return max(invoice.total - invoice_amount_paid(invoice=invoice), money_round(ZERO, invoice.currency))


def invoice_amount_committed(*, invoice: Invoice) -> Decimal:
    """Paid plus in flight (processing attempts): what a new partial payment must fit under."""
    in_flight = (
        PaymentAttempt.objects.filter(order_id=invoice.order_id, status=PaymentStatus.PROCESSING).aggregate(
            s=Sum("amount")
        )["s"]
        or ZERO
    )
    return invoice_amount_paid(invoice=invoice) + money_round(Decimal(in_flight), invoice.currency)


def invoice_has_processing_payment(*, invoice: Invoice) -> bool:
    return PaymentAttempt.objects.filter(order_id=invoice.order_id, status=PaymentStatus.PROCESSING).exists()


def invoice_payment_status(*, invoice: Invoice) -> str:
    """unpaid | partially_paid | paid, derived from the succeeded payments."""
    paid = invoice_amount_paid(invoice=invoice)
    if paid >= invoice.total:
        return "paid"
    return "partially_paid" if paid > 0 else "unpaid"


def invoice_is_overdue(*, invoice: Invoice) -> bool:
    """Flagged overdue by the daily task and still not fully paid."""
    return (
        invoice.status == InvoiceStatus.ISSUED
        and invoice.overdue_at is not None
        and invoice_amount_paid(invoice=invoice) < invoice.total
    )


def invoice_events(*, invoice: Invoice, limit: int = 20) -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="invoicing.invoice", aggregate_id=str(invoice.pk)).order_by("-id")[
            :limit
        ]
    )


def document_kind_of_series(series: str) -> str:
    """ "credit_note" for CREDIT_NOTE_SERIES (and its yearly "CN-2026"), else "invoice"."""
    base = settings.CREDIT_NOTE_SERIES
    return "credit_note" if series == base or series.startswith(f"{base}-") else "invoice"


_NUMBERED_TABLES = (("invoice", "invoicing_invoice"), ("credit_note", "invoicing_creditnote"))


def invoice_gap_audit() -> list[dict[str, object]]:
    """Per series of both numbered documents (invoices, credit notes): count, max, duplicated
    numbers and missing ranges, computed by SQL (window functions) so "no gaps" is only said
    when the database proves it. document_kind_of_series tells which document a series numbers."""

    from invoicing.models import InvoiceSequence

    summaries: list[tuple[Any, ...]] = []
    gaps: list[tuple[Any, ...]] = []
    duplicates: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for kind, table in _NUMBERED_TABLES:  # constant table names, no user input
            cursor.execute(
                f"SELECT series, COUNT(*), COUNT(DISTINCT number), MIN(number), MAX(number) "  # noqa: S608
                f"FROM {table} WHERE number IS NOT NULL GROUP BY series ORDER BY series"
            )
            summaries += [(kind, *row) for row in cursor.fetchall()]
            cursor.execute(
                f"SELECT series, prev + 1, number - 1 FROM ("  # noqa: S608
                f"  SELECT series, number, LAG(number, 1, 0) OVER (PARTITION BY series ORDER BY number) AS prev"
                f"  FROM {table} WHERE number IS NOT NULL"
                f") t WHERE number - prev > 1 ORDER BY series, prev"
            )
            gaps += cursor.fetchall()
            cursor.execute(
                f"SELECT series, number, COUNT(*) FROM {table} WHERE number IS NOT NULL "  # noqa: S608
                f"GROUP BY series, number HAVING COUNT(*) > 1 ORDER BY series, number"
            )
            duplicates += cursor.fetchall()

    next_values = dict(InvoiceSequence.objects.values_list("series", "next_value"))
    by_series = {series: rest for _, series, *rest in summaries}
    for series, next_value in next_values.items():  # a series may have lost every number it took
        if series not in by_series and next_value > 1:
            by_series[series] = [0, 0, None, None]
    report = []
    for series, (count, distinct, low, high) in sorted(by_series.items()):
        sequence_next = next_values.get(series)
        series_gaps = [(start, end) for s, start, end in gaps if s == series]
        if sequence_next is not None and sequence_next - 1 > (high or 0):
            # Numbers the counter handed out above the highest issued one were lost too.
            series_gaps.append(((high or 0) + 1, sequence_next - 1))
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


# --- The document ------------------------------------------------------------------------------


def invoice_document_context(*, invoice: Invoice) -> dict[str, object]:
    """Everything the PDF and the e-mails show, with a fingerprint of what can change after
    issue (status, amount paid): a stored PDF with another fingerprint is stale."""
    paid = invoice_amount_paid(invoice=invoice)
    due = invoice_amount_due(invoice=invoice)
    credit_notes = invoice_credit_notes(invoice=invoice)
    refunded = invoice_amount_refunded(invoice=invoice)
    credited = ",".join(n.number_display or "pending" for n in credit_notes)
    return {
        "invoice": invoice,
        "credit_notes": credit_notes,
        "amount_refunded": refunded,
        "lines": list(invoice.lines.all()),
        "tax_rows": invoice.tax_rows,
        "seller": invoice.seller_details,
        "buyer": invoice.billing_details,
        "amount_paid": paid,
        "amount_due": due,
        "payment_status": invoice_payment_status(invoice=invoice),
        "is_void": invoice.status == InvoiceStatus.VOID,
        # Refunds show on the invoice too: a new credit note (or its number) makes it stale.
        "fingerprint": f"{invoice.status}|{paid}" + (f"|{refunded}|{credited}" if credit_notes else ""),
    }


def invoice_document_filename(*, invoice: Invoice) -> str:
    return f"invoice-{invoice.display_number}.pdf"


# --- Payment links -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentLinkView:
    """What a payment link leads to: `state` is payable, processing, paid, void, expired or
    invalid; `payable` is the most this link may charge now (its bound amount, capped by
    what is still due)."""

    state: str
    message: str
    invoice: Invoice | None = None
    link_amount: Decimal | None = None
    payable: Decimal | None = None
    amount_paid: Decimal | None = None
    amount_due: Decimal | None = None
    payment_status: str = ""


def payment_link_resolve(*, token: str) -> PaymentLinkView:
    """Check a link's signature and age (PAYMENT_LINK_TTL) and the invoice's state now."""
    from invoicing.services import PAYMENT_LINK_SALT

    try:
        data = signing.loads(token, salt=PAYMENT_LINK_SALT, max_age=settings.PAYMENT_LINK_TTL)
    except signing.SignatureExpired:
        return PaymentLinkView(state="expired", message="This payment link has expired. Please ask us for a new one.")
    except signing.BadSignature:
        return PaymentLinkView(state="invalid", message="This payment link is not valid. Please check the address.")
    try:
        invoice_id, link_amount = int(data["invoice"]), Decimal(data["amount"])
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return PaymentLinkView(state="invalid", message="This payment link is not valid. Please check the address.")
    invoice = (
        invoices_with_amounts(Invoice.objects.select_related("order__user").prefetch_related("lines"))
        .filter(pk=invoice_id)
        .first()
    )
    if invoice is None or invoice.status == InvoiceStatus.PENDING or invoice.currency != data.get("currency"):
        return PaymentLinkView(state="invalid", message="This payment link is not valid. Please check the address.")
    paid, due = invoice_amount_paid(invoice=invoice), invoice_amount_due(invoice=invoice)
    view = PaymentLinkView(
        state="payable",
        message=f"Invoice {invoice.display_number}: {min(link_amount, due)} {invoice.currency} to pay.",
        invoice=invoice,
        link_amount=link_amount,
        payable=min(link_amount, due),
        amount_paid=paid,
        amount_due=due,
        payment_status=invoice_payment_status(invoice=invoice),
    )
    if invoice.status == InvoiceStatus.VOID:
        return replace(
            view, state="void", payable=None, message=f"Invoice {invoice.display_number} was voided; nothing is due."
        )
    if due <= 0:
        return replace(
            view, state="paid", payable=None, message=f"Invoice {invoice.display_number} is paid. Thank you!"
        )
    if invoice_has_processing_payment(invoice=invoice):
        return replace(
            view,
            state="processing",
            payable=None,
            message="A payment for this invoice is being processed. This page updates when it completes.",
        )
    return view


# --- Daily sales report ------------------------------------------------------------------------


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _money_by_currency(rows: Iterable[tuple[str, Decimal | None]]) -> dict[str, str]:
    return {currency: str(money_round(amount or ZERO, currency)) for currency, amount in sorted(rows)}


def sales_report_build(*, day: date) -> dict[str, Any]:
    """The figures of one UTC day, JSON-ready (amounts are decimal strings, per currency).

    - orders placed: orders whose `placed_at` falls in the day (paid storefront orders,
      finalized staff orders), not since cancelled; revenue = their totals, per currency;
    - credit notes issued in the day (numbers, amounts) and net revenue = revenue - them;
    - invoices issued in the day, and the number range per series;
    - payments completed in the day: succeeded (amounts) and failed; refunds flagged;
    - top products of the day's orders by units.
    """
    start, end = _day_bounds(day)
    placed = Order.objects.filter(placed_at__gte=start, placed_at__lt=end).exclude(status=OrderStatus.CANCELLED)
    by_currency = placed.order_by().values_list("currency").annotate(n=Count("id"), revenue=Sum("total"))
    orders = {cur: {"count": n, "revenue": str(money_round(rev or ZERO, cur))} for cur, n, rev in sorted(by_currency)}

    issued = Invoice.objects.filter(issued_at__gte=start, issued_at__lt=end, number__isnull=False)
    ranges = [
        {"series": series, "count": n, "first": low, "last": high}
        for series, n, low, high in issued.order_by()
        .values_list("series")
        .annotate(n=Count("id"), low=Min("number"), high=Max("number"))
        .order_by("series")
    ]

    completed = PaymentAttempt.objects.filter(completed_at__gte=start, completed_at__lt=end).order_by()
    succeeded = completed.filter(status=PaymentStatus.SUCCEEDED, refund_required=False)
    refunds = PaymentAttempt.objects.filter(refund_required=True, updated_at__gte=start, updated_at__lt=end).order_by()

    top = (
        OrderLine.objects.filter(order__in=placed, product__isnull=False)
        .order_by()
        .values("sku", "name", "order__currency")
        .annotate(units=Sum("quantity"), revenue=Sum("line_total"))
        .order_by("-units", "-revenue", "sku")[: settings.SALES_REPORT_TOP_PRODUCTS]
    )
    credited = CreditNote.objects.filter(issued_at__gte=start, issued_at__lt=end, number__isnull=False).order_by()
    credit_ranges = [
        {"series": series, "count": n, "first": low, "last": high}
        for series, n, low, high in credited.values_list("series")
        .annotate(n=Count("id"), low=Min("number"), high=Max("number"))
        .order_by("series")
    ]
    refunded = credit_notes_refunded_by_day(start=start, end=end)
    revenue = {cur: Decimal(o["revenue"]) for cur, o in orders.items()}
    net = {
        cur: str(money_round(revenue.get(cur, ZERO) - refunded.get(cur, ZERO), cur))
        for cur in sorted(set(revenue) | set(refunded))
    }
    return {
        "date": day.isoformat(),
        "orders": {"count": sum(o["count"] for o in orders.values()), "by_currency": orders},
        "revenue": {cur: o["revenue"] for cur, o in orders.items()},
        # Credit notes issued in the day (refunds that succeeded, numbered): subtracted.
        "credit_notes": {
            "count": sum(r["count"] for r in credit_ranges),
            "ranges": credit_ranges,
            "by_currency": {cur: str(amount) for cur, amount in sorted(refunded.items())},
        },
        "net_revenue": net,
        "invoices": {"count": sum(r["count"] for r in ranges), "ranges": ranges},
        "payments": {
            "succeeded": {
                "count": succeeded.count(),
                "by_currency": _money_by_currency(succeeded.values_list("currency").annotate(s=Sum("amount"))),
            },
            "failed": {"count": completed.filter(status=PaymentStatus.FAILED).count()},
        },
        "refunds_flagged": {
            "count": refunds.count(),
            "by_currency": _money_by_currency(refunds.values_list("currency").annotate(s=Sum("amount"))),
        },
        "top_products": [
            {
                "sku": row["sku"],
                "name": row["name"],
                "units": row["units"],
                "revenue": str(money_round(row["revenue"], row["order__currency"])),
                "currency": row["order__currency"],
            }
            for row in top
        ],
    }


def sales_revenue_by_day(*, last_day: date, days: int = 30) -> dict[str, list[tuple[date, Decimal]]]:
    """Net revenue per currency for each of `days` days ending with `last_day`: totals of
    orders placed (not cancelled) minus the credit notes issued that day; days without
    either are zero (a day of refunds alone is negative)."""
    first_day = last_day - timedelta(days=days - 1)
    start, _ = _day_bounds(first_day)
    _, end = _day_bounds(last_day)
    rows = (
        Order.objects.filter(placed_at__gte=start, placed_at__lt=end)
        .exclude(status=OrderStatus.CANCELLED)
        .annotate(day=TruncDate("placed_at", tzinfo=UTC))
        .order_by()
        .values_list("currency", "day")
        .annotate(revenue=Sum("total"))
    )
    totals: dict[str, dict[date, Decimal]] = {}
    for currency, day, revenue in rows:
        totals.setdefault(currency, {})[day] = money_round(revenue or ZERO, currency)
    # Net of refunds: credit notes issued that day subtract.
    credited = (
        CreditNote.objects.filter(issued_at__gte=start, issued_at__lt=end, number__isnull=False)
        .annotate(day=TruncDate("issued_at", tzinfo=UTC))
        .order_by()
        .values_list("currency", "day")
        .annotate(refunded=Sum("total"))
    )
    for currency, day, refunded in credited:
        per_day = totals.setdefault(currency, {})
        per_day[day] = money_round(per_day.get(day, ZERO) - (refunded or ZERO), currency)
    all_days = [first_day + timedelta(days=i) for i in range(days)]
    return {
        currency: [(d, per_day.get(d, money_round(ZERO, currency))) for d in all_days]
        for currency, per_day in sorted(totals.items())
    }


# --- Accounting export ----------------------------------------------------------------------------

EXPORT_COLUMNS = [
    "invoice", "series", "number", "status", "payment_status", "issue_date", "due_date", "customer", "email",
    "vat_id", "currency", "net_by_tax_rate", "subtotal", "discount", "shipping", "tax", "total", "amount_paid",
    "amount_due", "amount_refunded", "credit_notes", "order_id",
]  # fmt: skip


def invoice_export_rows(*, invoices: QuerySet[Invoice]) -> Iterator[list[str]]:
    """The accounting export, a header then one row per invoice (amounts as plain decimals, dates
    ISO 8601; `net_by_tax_rate` as `20%=100.00; 5.5%=10.00`). Streams: rows are read in chunks."""
    yield EXPORT_COLUMNS
    for invoice in invoices_with_amounts(invoices.select_related("order__user")).iterator(chunk_size=500):
        billing = invoice.billing_details or {}
        user = invoice.order.user
        rates = "; ".join(
            f"{(Decimal(row['rate']) * 100).normalize():f}%={row['net']}" for row in invoice.tax_breakdown or []
        )
        due_date = invoice.due_date
        yield [
            invoice.number_display or "",
            invoice.series,
            "" if invoice.number is None else str(invoice.number),
            invoice.status,
            invoice_payment_status(invoice=invoice),
            invoice.issue_date.isoformat() if invoice.issue_date else "",
            due_date.isoformat() if due_date else "",
            billing.get("company") or billing.get("name") or user.get_full_name() or user.get_username(),
            billing.get("email") or user.email,
            billing.get("vat_id", ""),
            invoice.currency,
            rates,
            f"{invoice.subtotal:.2f}",
            f"{invoice.discount:.2f}",
            f"{invoice.shipping:.2f}",
            f"{invoice.tax:.2f}",
            f"{invoice.total:.2f}",
            f"{invoice_amount_paid(invoice=invoice):.2f}",
            f"{invoice_amount_due(invoice=invoice):.2f}",
            # Refunds: what the credit notes give back, and their numbers (`CN-1; CN-4`).
            f"{invoice_amount_refunded(invoice=invoice):.2f}",
            "; ".join(note.number_display or "pending" for note in invoice_credit_notes(invoice=invoice)),
            str(invoice.order_id),  # last: a stable key for consumers
        ]


# --- Credit notes ------------------------------------------------------------------------------


def credit_notes_visible_to(user: User | AnonymousUser) -> QuerySet[CreditNote]:
    """Staff with the view permission (view_creditnote, or view_invoice: whoever sees every
    invoice sees what corrects it) see every credit note; anyone else those of their orders."""
    if not user.is_authenticated:
        return CreditNote.objects.none()
    qs = CreditNote.objects.select_related("invoice", "order").prefetch_related("lines")
    staff = user.is_staff and (user.has_perm("invoicing.view_creditnote") or user.has_perm("invoicing.view_invoice"))
    return qs if staff else qs.filter(order__user=user)


def credit_note_get_for_user(*, user: User | AnonymousUser, credit_note_id: int) -> CreditNote:
    """CreditNote.DoesNotExist when it does not exist or is not `user`'s (the API's 404)."""
    return credit_notes_visible_to(user).get(pk=credit_note_id)


@dataclass(frozen=True)
class CreditNoteRef:
    """What an invoice shows of one of its credit notes."""

    id: int
    series: str
    number: int | None
    status: str
    total: Decimal
    issued_at: datetime | None

    @property
    def display_number(self) -> str:
        return f"{self.series}-{self.number}" if self.number is not None else "Pending"

    @property
    def number_display(self) -> str | None:
        return f"{self.series}-{self.number}" if self.number is not None else None


def invoice_credit_notes(*, invoice: Invoice) -> list[CreditNoteRef]:
    """The invoice's credit notes, oldest first: from the `credit_notes_json` annotation of
    invoices_with_amounts when present, else one query."""
    if hasattr(invoice, "credit_notes_json"):
        return [
            CreditNoteRef(
                id=int(row["id"]),
                series=str(row["series"]),
                number=row["number"],
                status=str(row["status"]),
                total=Decimal(row["total"]),
                issued_at=datetime.fromisoformat(row["issued_at"]) if row["issued_at"] else None,
            )
            for row in invoice.credit_notes_json or []
        ]
    rows = CreditNote.objects.filter(invoice_id=invoice.pk).order_by("created_at", "id")
    return [
        CreditNoteRef(id=n.pk, series=n.series, number=n.number, status=n.status, total=n.total, issued_at=n.issued_at)
        for n in rows.only("id", "series", "number", "status", "total", "issued_at")
    ]


def invoice_amount_refunded(*, invoice: Invoice) -> Decimal:
    """What the invoice's credit notes give back (pending ones included: the refund
    succeeded, only their number is still to come). Uses the `refunded_total` annotation."""
    refunded = getattr(invoice, "refunded_total", None)
    if refunded is None:
        refunded = CreditNote.objects.filter(invoice_id=invoice.pk).aggregate(s=Sum("total"))["s"]
    return money_round(Decimal(refunded or ZERO), invoice.currency)


def credit_note_document_context(*, credit_note: CreditNote) -> dict[str, object]:
    """Everything the credit note's PDF shows. Nothing on it changes after issue: the
    fingerprint is its number."""
    return {
        "note": credit_note,
        "invoice": credit_note.invoice,
        "lines": list(credit_note.lines.all()),
        "tax_rows": credit_note.tax_rows,
        "seller": credit_note.seller_details,
        "buyer": credit_note.billing_details,
        "fingerprint": f"{credit_note.status}|{credit_note.number_display}",
    }


def credit_note_document_filename(*, credit_note: CreditNote) -> str:
    return f"credit-note-{credit_note.display_number}.pdf"


def credit_notes_refunded_by_day(*, start: datetime, end: datetime) -> dict[str, Decimal]:
    """Credit notes issued in [start, end), per currency (the sales report nets them)."""
    rows = (
        CreditNote.objects.filter(issued_at__gte=start, issued_at__lt=end, number__isnull=False)
        .order_by()
        .values_list("currency")
        .annotate(s=Sum("total"))
    )
    return {currency: money_round(amount or ZERO, currency) for currency, amount in rows}
