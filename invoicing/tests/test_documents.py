"""Invoice content and states: exact totals (hypothesis), payment status derived from
payments, void and overdue transitions (and refusals that change nothing), reminders."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import IllegalTransition
from common.money import money_round
from common.tests.factories import ProductFactory
from inventory.models import Stock
from invoicing.models import INVOICE_TRANSITIONS, Invoice, InvoiceState, InvoiceStatus, InvoiceStatusChange
from invoicing.selectors import invoice_amount_due, invoice_amount_paid, invoice_is_overdue, invoice_payment_status
from invoicing.services import (
    InvoicePaid,
    invoice_mark_overdue,
    invoice_reminder_send,
    invoice_void,
    invoices_mark_overdue,
)
from invoicing.tasks import mark_overdue, send_overdue_reminder
from invoicing.tests.docs_helpers import FEE, pay, staff_invoice, succeed, webhook
from orders.models import OrderStatus
from orders.services import DraftLineSpec
from outbox.models import OutboxEvent
from payments.services import PaymentInProgress

pytestmark = pytest.mark.django_db

RATES = [Decimal(r) for r in ("0", "0.0550", "0.0700", "0.1000", "0.1900", "0.2000", "0.2150")]


def _events(invoice: Invoice) -> list[str]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="invoicing.invoice", aggregate_id=str(invoice.pk))
        .order_by("id")
        .values_list("event_type", flat=True)
    )


def _snapshot(invoice: Invoice) -> tuple:
    invoice.refresh_from_db()
    order = invoice.order
    order.refresh_from_db()
    return (
        invoice.status,
        invoice.number,
        invoice.overdue_at,
        invoice.voided_at,
        order.status,
        InvoiceStatusChange.objects.filter(invoice=invoice).count(),
        OutboxEvent.objects.count(),
        list(Stock.objects.order_by("pk").values_list("on_hand", "reserved")),
    )


# --- Totals: exact to the minor unit, Decimal all the way to JSON ------------------------------

line_strategy = st.tuples(
    st.integers(min_value=1, max_value=40),
    st.decimals(min_value=Decimal("0.00"), max_value=Decimal("2500.00"), places=2),
    st.sampled_from(RATES),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(line_strategy, min_size=1, max_size=60),
    shipping=st.decimals(min_value=Decimal("0.00"), max_value=Decimal("60.00"), places=2),
    coupon=st.sampled_from(["", "WELCOME10", "FIVEOFF"]),
)
def test_totals_with_many_lines_and_mixed_rates_add_up_exactly_in_the_invoice_and_its_json(
    staff_client, lines, shipping, coupon
):
    specs = [
        DraftLineSpec(description=f"Item {i}", quantity=q, unit_price=price, tax_rate=rate)
        for i, (q, price, rate) in enumerate(lines)
    ]
    invoice = staff_invoice(lines=specs, shipping=shipping, coupon=coupon)

    line_totals = [line.line_total for line in invoice.lines.all()]
    assert line_totals == [price * q for q, price, _ in lines]  # exact, per line
    assert sum(line_totals) == invoice.subtotal
    rows = invoice.tax_rows
    assert [row["rate"] for row in rows] == sorted({rate for _, _, rate in lines} | ({RATES[5]} if shipping else set()))
    assert sum(row["net"] for row in rows) == invoice.subtotal - invoice.discount + invoice.shipping
    assert all(row["tax"] == money_round(row["net"] * row["rate"], "EUR") for row in rows)
    assert sum(row["tax"] for row in rows) == invoice.tax
    assert invoice.subtotal - invoice.discount + invoice.shipping + invoice.tax == invoice.total
    assert invoice.total == invoice.order.total

    response = staff_client.get(f"/api/v1/invoices/{invoice.pk}/")
    body = json.loads(response.content, parse_float=lambda s: pytest.fail(f"float in JSON: {s}"))
    for name in ("subtotal", "discount", "shipping", "tax", "total", "amount_paid", "amount_due"):
        assert isinstance(body[name], str)
    assert Decimal(body["total"]) == invoice.total
    assert Decimal(body["amount_due"]) == invoice.total
    assert sum(Decimal(line["line_total"]) for line in body["lines"]) == Decimal(body["subtotal"])
    json_tax = sum(Decimal(row["tax"]) for row in body["tax_breakdown"])
    assert Decimal(body["subtotal"]) - Decimal(body["discount"]) + Decimal(body["shipping"]) + json_tax == Decimal(
        body["total"]
    )


def test_invoice_document_fields_in_the_api(staff_client, settings):
    settings.INVOICE_PAYMENT_TERMS_DAYS = 14
    invoice = staff_invoice(notes="PO 1234", allow_partial=True)

    body = staff_client.get(f"/api/v1/invoices/{invoice.pk}/").json()

    issue = invoice.issued_at.date()
    assert body["invoice_number"] == invoice.number
    assert (body["issue_date"], body["due_date"]) == (issue.isoformat(), (issue + timedelta(days=14)).isoformat())
    assert (body["status"], body["payment_status"], body["overdue"]) == ("issued", "unpaid", False)
    assert (body["notes"], body["allow_partial"], body["due_days"]) == ("PO 1234", True, 14)
    assert body["seller"]["name"] == settings.SELLER["name"]
    assert body["buyer"]["email"] == invoice.order.user.email
    assert body["tax_breakdown"] == [{"rate": "0.2000", "net": "100.00", "tax": "20.00"}]
    assert body["pdf_url"] == f"/api/v1/invoices/{invoice.pk}/pdf/"


# --- Payment status: from succeeded payments -----------------------------------------------------


def test_payment_status_is_derived_from_succeeded_payments():
    invoice = staff_invoice(allow_partial=True)  # total 120.00
    assert (invoice_payment_status(invoice=invoice), invoice_amount_due(invoice=invoice)) == (
        "unpaid",
        Decimal("120.00"),
    )

    failed = pay(invoice, Decimal("20.00"), method="pm_card_declined")
    webhook(failed, "payment.failed", failure_reason="declined")
    assert invoice_amount_paid(invoice=invoice) == Decimal("0.00")

    succeed(invoice, Decimal("20.00"))
    assert invoice_payment_status(invoice=invoice) == "partially_paid"
    assert invoice_amount_due(invoice=invoice) == Decimal("100.00")
    invoice.order.refresh_from_db()
    assert invoice.order.status == OrderStatus.PENDING_PAYMENT

    succeed(invoice)
    assert (invoice_payment_status(invoice=invoice), invoice_amount_due(invoice=invoice)) == ("paid", Decimal("0.00"))
    invoice.order.refresh_from_db()
    assert invoice.order.status == OrderStatus.PAID
    assert Invoice.objects.filter(order=invoice.order).count() == 1


def test_a_success_flagged_for_refund_does_not_count_as_paid():
    invoice = staff_invoice()
    attempt = succeed(invoice)
    assert invoice_payment_status(invoice=invoice) == "paid"

    type(attempt).objects.filter(pk=attempt.pk).update(refund_required=True, refund_reason="charged twice")

    assert invoice_amount_paid(invoice=invoice) == Decimal("0.00")
    assert invoice_payment_status(invoice=invoice) == "unpaid"


# --- Void --------------------------------------------------------------------------------------


def test_void_an_issued_unpaid_invoice_keeps_its_number_cancels_the_order_and_releases_stock():
    product = ProductFactory(on_hand=10)
    invoice = staff_invoice(lines=[DraftLineSpec(sku=product.sku, quantity=4), FEE])
    assert Stock.objects.get(product=product).reserved == 4

    voided = invoice_void(invoice_id=invoice.pk, reason="wrong address")

    invoice.refresh_from_db()
    assert (invoice.status, invoice.number, invoice.void_reason) == (InvoiceStatus.VOID, voided.number, "wrong address")
    assert invoice.number == 1
    assert invoice.voided_at is not None
    assert invoice_amount_due(invoice=invoice) == Decimal("0.00")
    invoice.order.refresh_from_db()
    assert invoice.order.status == OrderStatus.CANCELLED
    assert (Stock.objects.get(product=product).on_hand, Stock.objects.get(product=product).reserved) == (10, 0)
    change = InvoiceStatusChange.objects.get(invoice=invoice)
    assert (change.from_state, change.to_state) == ("issued", "void")
    assert _events(invoice)[-1] == "invoice.void"


@pytest.mark.parametrize("case", ["pending", "void", "partially_paid", "paid", "processing"])
def test_void_is_refused_with_nothing_changed(case):
    invoice = staff_invoice(issue=case != "pending", allow_partial=True)
    if case == "void":
        invoice_void(invoice_id=invoice.pk)
    elif case == "partially_paid":
        succeed(invoice, Decimal("0.01"))
    elif case == "paid":
        succeed(invoice)
    elif case == "processing":
        pay(invoice)
    before = _snapshot(invoice)

    expected = {
        "pending": IllegalTransition,
        "void": IllegalTransition,
        "partially_paid": InvoicePaid,
        "paid": InvoicePaid,
        "processing": PaymentInProgress,
    }[case]
    with pytest.raises(expected) as caught:
        invoice_void(invoice_id=invoice.pk)

    assert caught.value.status_code == 409
    assert _snapshot(invoice) == before


def test_a_void_invoice_cannot_be_paid():
    invoice = staff_invoice()
    invoice_void(invoice_id=invoice.pk)
    with pytest.raises(IllegalTransition):  # its order is cancelled
        pay(invoice)
    assert not invoice.order.payment_attempts.exists()


# --- Overdue -----------------------------------------------------------------------------------


def test_transition_table_is_explicit():
    expected = {
        InvoiceState.PENDING: {InvoiceState.ISSUED},
        InvoiceState.ISSUED: {InvoiceState.OVERDUE, InvoiceState.VOID},
        InvoiceState.OVERDUE: {InvoiceState.VOID},
        InvoiceState.VOID: set(),
    }
    assert expected == INVOICE_TRANSITIONS


def test_an_unpaid_invoice_becomes_overdue_the_day_after_its_due_date(django_capture_on_commit_callbacks, monkeypatch):
    reminders: list[int] = []
    monkeypatch.setattr(send_overdue_reminder, "delay", reminders.append)
    invoice = staff_invoice(due_days=30)
    due = invoice.due_date
    with time_machine.travel(timezone.now() + timedelta(days=30)):
        assert due == timezone.now().date()
        with pytest.raises(IllegalTransition):
            invoice_mark_overdue(invoice_id=invoice.pk)
        assert invoices_mark_overdue() == []
    with (
        time_machine.travel(timezone.now() + timedelta(days=31)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert invoices_mark_overdue() == [invoice.pk]

    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED  # overdue is a flag on an issued invoice
    assert invoice.state == InvoiceState.OVERDUE
    assert invoice_is_overdue(invoice=invoice)
    assert reminders == [invoice.pk]  # its reminder, enqueued after commit
    change = InvoiceStatusChange.objects.get(invoice=invoice)
    assert (change.from_state, change.to_state) == ("issued", "overdue")
    assert "invoice.overdue" in _events(invoice)


@pytest.mark.parametrize("case", ["not_due", "paid", "void", "pending", "already_overdue"])
def test_illegal_overdue_transitions_are_refused_with_nothing_changed(case):
    invoice = staff_invoice(due_days=0 if case != "not_due" else 10, issue=case != "pending")
    later = timezone.now() + timedelta(days=5)
    if case == "paid":
        succeed(invoice)
    elif case == "void":
        invoice_void(invoice_id=invoice.pk)
    elif case == "already_overdue":
        invoice_mark_overdue(invoice_id=invoice.pk, now=later)
    before = _snapshot(invoice)

    with pytest.raises(IllegalTransition) as caught:
        invoice_mark_overdue(invoice_id=invoice.pk, now=later)

    assert caught.value.status_code == 409
    assert _snapshot(invoice) == before
    if case != "already_overdue":
        assert invoices_mark_overdue(now=later) == []


def test_daily_task_marks_overdue_and_emails_one_reminder_with_pdf_and_link(
    monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(send_overdue_reminder, "delay", lambda invoice_id: send_overdue_reminder.apply((invoice_id,)))
    invoice = staff_invoice(due_days=7)
    fresh = staff_invoice(due_days=60)

    with time_machine.travel(timezone.now() + timedelta(days=8)):
        with django_capture_on_commit_callbacks(execute=True):
            mark_overdue.apply()
        with django_capture_on_commit_callbacks(execute=True):
            mark_overdue.apply()  # the beat runs again: no second reminder

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [invoice.order.user.email]
    assert invoice.display_number in message.subject
    assert "/pay/" in message.body
    assert message.attachments[0][2] == "application/pdf"
    assert message.alternatives[0][1] == "text/html"
    invoice.refresh_from_db()
    fresh.refresh_from_db()
    assert invoice.reminder_sent_at is not None
    assert fresh.overdue_at is None
    assert invoice_reminder_send(invoice_id=invoice.pk) is False
    assert len(mail.outbox) == 1


def test_no_reminder_for_an_invoice_paid_before_the_mail_goes_out():
    invoice = staff_invoice(due_days=0)
    invoice_mark_overdue(invoice_id=invoice.pk, now=timezone.now() + timedelta(days=2))
    succeed(invoice)

    assert invoice_reminder_send(invoice_id=invoice.pk) is False
    assert mail.outbox == []
    invoice.refresh_from_db()
    assert not invoice_is_overdue(invoice=invoice)  # paid late: no longer overdue
