import random

import pytest
from django.db import transaction

from common.tests.helpers import place_order
from invoicing.models import Invoice, InvoiceSequence, InvoiceStatus
from invoicing.services import FaultInjector, InvoiceAttemptFailed, invoice_assign_number
from orders.services import order_mark_paid
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


def _paid_invoice(django_capture_on_commit_callbacks) -> Invoice:
    order = place_order()
    with django_capture_on_commit_callbacks(execute=False):
        order_mark_paid(order_id=order.pk)
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
            injector.maybe_fail(invoice=None, number=1)  # type: ignore[arg-type]
        except InvoiceAttemptFailed:
            failures += 1
    assert 430 < failures < 570


def test_paid_order_gets_exactly_one_invoice_enqueued(django_capture_on_commit_callbacks):
    order = place_order()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order_mark_paid(order_id=order.pk)
    assert Invoice.objects.filter(order=order).count() == 1
    assert len(callbacks) >= 1
    with transaction.atomic():
        from invoicing.services import invoice_create_for_order

        again = invoice_create_for_order(order=order)
    assert Invoice.objects.filter(order=order).count() == 1
    assert again.order_id == order.pk
