import random

import pytest
from django.db import transaction

from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceSequence, InvoiceStatus
from invoicing.selectors import invoice_gap_audit
from invoicing.services import (
    FaultInjector,
    InvoiceAttemptFailed,
    invoice_assign_number,
    invoice_create_for_order,
    invoice_record_failed_attempt,
)
from invoicing.tests.helpers import record_numbering_enqueues
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


def _paid_invoice(django_capture_on_commit_callbacks) -> Invoice:
    order = place_order()
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    return Invoice.objects.get(order=order)


def test_failed_attempt_consumes_no_number_and_is_recorded(django_capture_on_commit_callbacks):
    invoice = _paid_invoice(django_capture_on_commit_callbacks)

    with pytest.raises(InvoiceAttemptFailed):
        invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=1.0))

    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING
    assert invoice.number is None
    assert invoice.attempts == 1
    assert "simulated fault" in invoice.last_error
    assert invoice.last_attempt_at is not None
    # The sequence row was created and taken inside the attempt, then rolled back.
    assert not InvoiceSequence.objects.filter(series="INV", next_value__gt=1).exists()
    assert not OutboxEvent.objects.filter(event_type="invoice.issued").exists()


def test_success_issues_next_number_and_records_event(django_capture_on_commit_callbacks):
    first = _paid_invoice(django_capture_on_commit_callbacks)
    second = _paid_invoice(django_capture_on_commit_callbacks)

    with pytest.raises(InvoiceAttemptFailed):
        invoice_assign_number(invoice_id=second.pk, fault=FaultInjector(rate=1.0))
    issued_second = invoice_assign_number(invoice_id=second.pk, fault=FaultInjector(rate=0))
    issued_first = invoice_assign_number(invoice_id=first.pk, fault=FaultInjector(rate=0))

    assert (issued_second.number, issued_first.number) == (1, 2)  # order of success, not creation
    assert issued_second.status == InvoiceStatus.ISSUED
    assert issued_second.attempts == 2
    assert issued_second.last_error == ""
    assert InvoiceSequence.objects.get(series="INV").next_value == 3
    events = OutboxEvent.objects.filter(event_type="invoice.issued").order_by("id")
    assert [e.payload["number"] for e in events] == [1, 2]


def test_assigning_twice_is_a_no_op(django_capture_on_commit_callbacks):
    invoice = _paid_invoice(django_capture_on_commit_callbacks)
    once = invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))
    twice = invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=1.0))

    assert once.number == twice.number == 1
    assert twice.attempts == 1
    assert InvoiceSequence.objects.get(series="INV").next_value == 2
    assert OutboxEvent.objects.filter(event_type="invoice.issued").count() == 1


def test_missing_invoice_raises_does_not_exist():
    with pytest.raises(Invoice.DoesNotExist):
        invoice_assign_number(invoice_id=999_999, fault=FaultInjector(rate=0))


def test_fault_injector_rate_is_respected():
    injector = FaultInjector(rate=0.5, rng=random.Random(42))
    failures = 0
    for _ in range(1000):
        try:
            injector.maybe_fail(invoice=Invoice(series="INV"), number=1)
        except InvoiceAttemptFailed:
            failures += 1
    assert 430 < failures < 570


def test_paid_order_gets_exactly_one_invoice_enqueued(monkeypatch, django_capture_on_commit_callbacks):
    enqueued = record_numbering_enqueues(monkeypatch)
    order = place_order()

    with django_capture_on_commit_callbacks(execute=True):
        order_place_paid(order_id=order.pk)
        assert enqueued == []  # on commit only: the worker must find the invoice committed

    invoice = Invoice.objects.get(order=order)
    assert enqueued == [invoice.pk]

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        again = invoice_create_for_order(order=order)

    assert again.pk == invoice.pk
    assert Invoice.objects.filter(order=order).count() == 1
    assert enqueued == [invoice.pk]  # the existing invoice is returned, not enqueued again


# --- Gap audit: it says "complete" only when the database proves 1..N -------------------------


def _issue(n: int, django_capture_on_commit_callbacks) -> list[Invoice]:
    invoices = [_paid_invoice(django_capture_on_commit_callbacks) for _ in range(n)]
    return [invoice_assign_number(invoice_id=i.pk, fault=FaultInjector(rate=0)) for i in invoices]


def _audit_of(series: str = "INV") -> dict:
    [report] = [r for r in invoice_gap_audit() if r["series"] == series]
    return report


def test_gap_audit_of_nothing_numbered_is_empty():
    assert invoice_gap_audit() == []


def test_gap_audit_proves_a_complete_series(django_capture_on_commit_callbacks):
    _issue(3, django_capture_on_commit_callbacks)

    assert invoice_gap_audit() == [
        {
            "series": "INV", "count": 3, "distinct": 3, "min": 1, "max": 3, "missing": [], "missing_count": 0,
            "duplicates": [], "sequence_next": 4, "complete": True,
        }
    ]  # fmt: skip


def test_gap_audit_reports_a_hole_in_the_middle(django_capture_on_commit_callbacks):
    *_, third = _issue(3, django_capture_on_commit_callbacks)
    # Break the invariant on purpose: 3 becomes 5 (and the counter follows), so 3..4 are missing.
    Invoice.objects.filter(pk=third.pk).update(number=5)
    InvoiceSequence.objects.filter(series="INV").update(next_value=6)

    audit = _audit_of()

    assert (audit["missing"], audit["missing_count"], audit["complete"]) == ([(3, 4)], 2, False)


def test_gap_audit_reports_a_missing_first_number(django_capture_on_commit_callbacks):
    first, *_ = _issue(3, django_capture_on_commit_callbacks)
    Invoice.objects.filter(pk=first.pk).update(number=4)
    InvoiceSequence.objects.filter(series="INV").update(next_value=5)

    audit = _audit_of()

    assert (audit["min"], audit["missing"], audit["complete"]) == (2, [(1, 1)], False)


def test_gap_audit_reports_numbers_taken_by_the_sequence_but_never_issued(django_capture_on_commit_callbacks):
    _issue(3, django_capture_on_commit_callbacks)
    # A number taken outside the numbering transaction and lost: the counter ran ahead.
    InvoiceSequence.objects.filter(series="INV").update(next_value=6)

    audit = _audit_of()

    assert (audit["missing"], audit["missing_count"], audit["complete"]) == ([(4, 5)], 2, False)


def test_gap_audit_reports_a_series_whose_every_number_was_lost():
    InvoiceSequence.objects.create(series="INV", next_value=3)

    audit = _audit_of()

    assert (audit["count"], audit["missing"], audit["missing_count"], audit["complete"]) == (0, [(1, 2)], 2, False)


def test_gap_audit_flags_a_counter_behind_the_numbers(django_capture_on_commit_callbacks):
    _issue(3, django_capture_on_commit_callbacks)
    InvoiceSequence.objects.filter(series="INV").update(next_value=2)  # the next number would collide

    audit = _audit_of()

    assert (audit["missing"], audit["sequence_next"], audit["complete"]) == ([], 2, False)


def test_failed_attempt_is_counted_even_when_another_worker_issued_the_invoice_meanwhile(
    django_capture_on_commit_callbacks,
):
    # Two deliveries of one invoice (a retry and a sweeper re-enqueue): A fails and rolls
    # back; B issues; then A records its failed attempt. Every attempt stays visible.
    invoice = _paid_invoice(django_capture_on_commit_callbacks)
    invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))

    invoice_record_failed_attempt(invoice_id=invoice.pk, error="simulated fault (late report)")

    invoice.refresh_from_db()
    assert (invoice.status, invoice.number, invoice.attempts) == ("issued", 1, 2)
    assert invoice.last_error == ""  # an issued invoice shows no error
