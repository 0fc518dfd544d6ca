"""Credit notes: created with a succeeded refund (lines or an amount split over the
invoice's tax rates), one per refund, numbered in their own gapless series CN by the same
group-commit path as invoices, after their invoice has its number."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from common.tests.factories import ProductFactory
from invoicing.models import CreditNote, CreditNoteLine, Invoice
from invoicing.selectors import document_kind_of_series, invoice_amount_refunded, invoice_gap_audit
from invoicing.services import (
    CreditNoteNotPossible,
    FaultInjector,
    credit_note_amount_split,
    credit_note_create_for_refund,
    credit_notes_number_due,
    invoices_number_due,
)
from invoicing.tests.helpers import paid_order, refund_succeeded
from outbox.models import OutboxEvent
from payments.models import PaymentAttempt, Refund, RefundStatus

NO_FAULT = FaultInjector(rate=0)


@pytest.fixture(autouse=True)
def _no_side_effects(monkeypatch):
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdf", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.credit_note_enqueue_pdf", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.credit_note_enqueue_numbering", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.invoice_enqueue_numbering", lambda **kwargs: None)


def _two_rate_order():
    book = ProductFactory(price=Decimal("20.00"), tax_rate=Decimal("0.0550"), on_hand=20)
    lamp = ProductFactory(price=Decimal("35.00"), tax_rate=Decimal("0.2000"), on_hand=20)
    return paid_order(products=[book, lamp], quantities=[2, 1])


def test_a_line_refund_credits_the_refunded_lines_with_tax_by_rate_and_the_invoice_snapshot(db):
    order = _two_rate_order()
    book_line = order.lines.get(tax_rate=Decimal("0.0550"))
    # One of the two books: 20.00 net + 5.5 % = 21.10 gross.
    note = refund_succeeded(order=order, lines=[(book_line, 1, "21.10")], reason="Torn cover")

    invoice = Invoice.objects.get(order=order)
    assert (note.invoice_id, note.order_id, note.series, note.number, note.status) == (
        invoice.pk, order.pk, "CN", None, "pending"
    )  # fmt: skip
    [line] = note.lines.all()
    assert (line.sku, line.description, line.quantity, line.unit_price, line.tax_rate) == (
        book_line.sku, book_line.name, 1, Decimal("20.00"), Decimal("0.0550")
    )  # fmt: skip
    assert (line.line_total, line.amount) == (Decimal("20.00"), Decimal("21.10"))
    assert note.tax_breakdown == [{"rate": "0.0550", "net": "20.00", "tax": "1.10"}]
    assert (note.subtotal, note.tax, note.total) == (Decimal("20.00"), Decimal("1.10"), Decimal("21.10"))
    assert note.reason == "Torn cover"
    assert note.seller_details == invoice.seller_details
    assert note.seller_details["name"]
    assert note.billing_details == invoice.billing_details
    assert note.billing_details["name"] == "Ada Shopper"
    [event] = OutboxEvent.objects.filter(event_type="credit_note.created")
    assert event.payload["refund_id"] == note.refund_id
    assert event.payload["total"] == "21.10"
    assert invoice_amount_refunded(invoice=invoice) == Decimal("21.10")


def test_an_amount_only_refund_is_split_over_the_invoice_rates_in_proportion_exactly(db):
    order = _two_rate_order()
    invoice = Invoice.objects.get(order=order)
    note = refund_succeeded(order=order, amount="10.01")

    lines = list(note.lines.order_by("-tax_rate"))
    assert [line.tax_rate for line in lines] == sorted((row["rate"] for row in invoice.tax_rows), reverse=True)
    assert sum(line.amount for line in lines) == Decimal("10.01")
    assert note.total == note.subtotal + note.tax == Decimal("10.01")
    for row in note.tax_rows:  # net of each rate's gross, rounded once; the tax is the rest
        assert row["net"] == ((row["net"] + row["tax"]) / (1 + row["rate"])).quantize(Decimal("0.01"))
    gross = {r["rate"]: r["net"] + r["tax"] for r in invoice.tax_rows}
    parts = {line.tax_rate: line.amount for line in lines}
    # In proportion: each part within a cent of its exact share.
    for rate, part in parts.items():
        exact = Decimal("10.01") * gross[rate] / sum(gross.values())
        assert abs(part - exact) < Decimal("0.01")


def test_one_credit_note_per_refund_a_second_call_returns_the_first_and_the_database_refuses_two(db):
    order = paid_order()
    note = refund_succeeded(order=order, amount="3.00")

    with transaction.atomic():
        again = credit_note_create_for_refund(refund_id=note.refund_id)
    assert again.pk == note.pk
    assert CreditNote.objects.count() == 1
    assert CreditNoteLine.objects.count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNote.objects.create(
            refund_id=note.refund_id, invoice_id=note.invoice_id, order_id=order.pk, series="CN", currency="EUR",
            subtotal=Decimal("1.00"), tax=Decimal("0.20"), total=Decimal("1.20"),
        )  # fmt: skip


def test_the_database_refuses_a_number_without_issue_and_totals_that_do_not_add_up(db):
    note = refund_succeeded(order=paid_order(), amount="3.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNote.objects.filter(pk=note.pk).update(number=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNote.objects.filter(pk=note.pk).update(tax=Decimal("9.99"))


def test_a_refund_that_has_not_succeeded_gets_no_credit_note(db):
    order = paid_order()
    refund = Refund.objects.create(
        order=order, attempt=PaymentAttempt.objects.get(order=order), amount=Decimal("1.00"), currency="EUR",
        reason="x", provider_reference="re_pending",
    )  # fmt: skip
    with pytest.raises(CreditNoteNotPossible), transaction.atomic():
        credit_note_create_for_refund(refund_id=refund.pk)
    assert refund.status == RefundStatus.PENDING
    assert not CreditNote.objects.exists()
    assert not OutboxEvent.objects.filter(event_type__startswith="credit_note.").exists()


def test_credit_notes_wait_for_their_invoice_number_then_take_cn_1_2_3(db):
    orders = [paid_order() for _ in range(3)]
    notes = [refund_succeeded(order=order, amount="2.00") for order in orders]

    assert credit_notes_number_due(fault=NO_FAULT).issued == []  # the invoices are still pending
    invoices_number_due(fault=NO_FAULT)
    batch = credit_notes_number_due(fault=NO_FAULT)

    assert batch.issued == [n.pk for n in notes]
    numbered = CreditNote.objects.order_by("number")
    assert [n.number_display for n in numbered] == ["CN-1", "CN-2", "CN-3"]
    assert [n.invoice.number for n in numbered] == [1, 2, 3]  # invoices keep their own series
    first = numbered[0]
    [event] = OutboxEvent.objects.filter(event_type="credit_note.issued", aggregate_id=str(first.pk))
    assert event.payload == {
        "credit_note_id": first.pk, "invoice_id": first.invoice_id, "order_id": first.order_id,
        "refund_id": first.refund_id, "series": "CN", "number": 1,
    }  # fmt: skip
    by_series = {row["series"]: row for row in invoice_gap_audit()}
    assert (by_series["CN"]["count"], by_series["CN"]["complete"]) == (3, True)
    assert (by_series["INV"]["count"], by_series["INV"]["complete"]) == (3, True)
    assert [document_kind_of_series(s) for s in ("CN", "CN-2026", "INV")] == ["credit_note", "credit_note", "invoice"]


def test_a_credit_note_the_fault_fails_consumes_no_number(db):
    orders = [paid_order() for _ in range(2)]
    invoices_number_due(fault=NO_FAULT)
    first, second = (refund_succeeded(order=order, amount="1.00") for order in orders)

    class FailFirst:
        def maybe_fail(self, *, invoice, number):
            from invoicing.services import InvoiceAttemptFailed

            if invoice.pk == first.pk:
                raise InvoiceAttemptFailed(f"simulated fault while issuing number {number}")

    batch = credit_notes_number_due(fault=FailFirst())
    assert (batch.failed, batch.issued) == ([first.pk], [second.pk])
    first.refresh_from_db()
    assert (first.status, first.attempts, first.number, first.next_attempt_at is not None) == (
        "pending", 1, None, True
    )  # fmt: skip
    assert CreditNote.objects.get(pk=second.pk).number == 1
    assert credit_notes_number_due(include_id=first.pk, fault=NO_FAULT).issued == [first.pk]
    assert CreditNote.objects.get(pk=first.pk).number == 2


@hyp_settings(max_examples=300, deadline=None)
@given(
    amount_cents=st.integers(min_value=1, max_value=10_000_000),
    rows=st.lists(
        st.tuples(
            st.sampled_from(["0.0000", "0.0210", "0.0550", "0.1000", "0.2000"]),
            st.integers(min_value=0, max_value=5_000_000),
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda row: row[0],
    ),
)
def test_the_amount_split_adds_up_to_the_refund_exactly_and_each_row_to_its_part(amount_cents, rows):
    amount = Decimal(amount_cents) / 100
    tax_rows = []
    for rate, net_cents in rows:
        net = Decimal(net_cents) / 100
        tax_rows.append({"rate": Decimal(rate), "net": net, "tax": (net * Decimal(rate)).quantize(Decimal("0.01"))})
    parts = credit_note_amount_split(amount=amount, tax_rows=tax_rows, currency="EUR")
    assert sum(part for _, part in parts) == amount
    assert all(part > 0 and part == part.quantize(Decimal("0.01")) for _, part in parts)
    weights = {row["rate"]: row["net"] + row["tax"] for row in tax_rows}
    total_weight = sum(weights.values())
    for rate, part in parts:
        if total_weight:
            assert abs(part - amount * weights[rate] / total_weight) < Decimal("0.01")


def _refund_webhook(client, refund) -> None:
    import uuid
    from datetime import UTC, datetime

    from payments.tests.helpers import post_webhook

    body = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "refund.succeeded",
        "created_at": datetime.now(UTC).isoformat(),
        "data": {
            "provider_reference": refund.provider_reference,
            "amount": f"{refund.amount:.2f}",
            "currency": refund.currency,
            "failure_reason": None,
        },
    }
    response = post_webhook(client, body)
    assert response.status_code == 200, response.content


def test_through_the_refund_flow_a_line_refund_then_the_rest_credit_the_invoice_exactly_per_rate(db, client):
    from common.tests.factories import UserFactory
    from common.tests.helpers import ADDRESS
    from orders.services import cart_add_item, cart_get_or_create, checkout_place_order
    from payments.refunds import RefundLineSpec, refund_create
    from payments.tests.helpers import attempt_for, event_body, post_webhook

    # Under FREE_SHIPPING_OVER: shipping (taxed at the default rate) is refunded too, by the
    # second refund, as its amount beyond its lines.
    book = ProductFactory(price=Decimal("9.99"), tax_rate=Decimal("0.0550"), on_hand=20)
    lamp = ProductFactory(price=Decimal("15.00"), tax_rate=Decimal("0.2000"), on_hand=20)
    user = UserFactory()
    cart = cart_get_or_create(user=user)
    cart_add_item(cart=cart, sku=book.sku, quantity=3)
    cart_add_item(cart=cart, sku=lamp.sku, quantity=1)
    order = checkout_place_order(cart=cart, user=user, shipping_address=ADDRESS)
    assert post_webhook(client, event_body(attempt_for(order), "payment.succeeded")).status_code == 200
    invoice = Invoice.objects.get(order=order)
    assert invoice.shipping > 0

    first = refund_create(
        order_id=order.pk, reason="Torn cover", lines=[RefundLineSpec(sku=book.sku, quantity=1)], restock=True
    )
    _refund_webhook(client, first)
    rest = refund_create(order_id=order.pk, reason="Returned the rest")  # everything left
    _refund_webhook(client, rest)

    one, two = CreditNote.objects.filter(order=order).order_by("id")
    [line] = one.lines.all()
    assert (line.sku, line.quantity, line.amount, one.total) == (book.sku, 1, first.amount, first.amount)
    assert (one.refund_id, two.refund_id, two.total) == (first.pk, rest.pk, rest.amount)
    assert sorted(line.sku for line in two.lines.all() if line.sku) == [book.sku, lamp.sku]
    assert two.lines.filter(sku="", description__startswith="Further refund").exists()  # shipping
    credited: dict = {}
    for note in (one, two):
        for row in note.tax_rows:
            net, tax = credited.get(row["rate"], (Decimal(0), Decimal(0)))
            credited[row["rate"]] = (net + row["net"], tax + row["tax"])
    # Everything refunded: the credit notes add up to the invoice, rate by rate and in total.
    assert credited == {row["rate"]: (row["net"], row["tax"]) for row in invoice.tax_rows}
    assert one.total + two.total == invoice.total
    assert invoice_amount_refunded(invoice=invoice) == invoice.total


def test_with_a_yearly_reset_credit_notes_take_their_own_yearly_series(db, settings):
    from datetime import UTC, datetime

    import time_machine

    settings.INVOICE_SERIES_YEARLY_RESET = True
    with time_machine.travel(datetime(2027, 1, 5, 10, tzinfo=UTC), tick=False):
        order = paid_order()
        invoices_number_due(fault=NO_FAULT)
        note = refund_succeeded(order=order, amount="1.00")
        credit_notes_number_due(fault=NO_FAULT)

    note.refresh_from_db()
    invoice = Invoice.objects.get(order=order)
    assert (note.number_display, invoice.number_display) == ("CN-2027-1", "INV-2027-1")
    by_series = {row["series"]: row for row in invoice_gap_audit()}
    assert by_series["CN-2027"]["complete"]
    assert document_kind_of_series("CN-2027") == "credit_note"
