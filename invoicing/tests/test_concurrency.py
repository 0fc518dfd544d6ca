"""Gapless numbering under concurrency on PostgreSQL: many threads, each with its own
connection, number invoices through the real service while the simulated fault fails
half of the attempts; every failure is retried until it succeeds."""

import queue
import random
from decimal import Decimal

import pytest
from django.db.models import Sum

from common.tests.factories import UserFactory
from common.tests.helpers import run_in_threads
from invoicing.models import Invoice, InvoiceSequence
from invoicing.selectors import invoice_gap_audit
from invoicing.services import FaultInjector, InvoiceAttemptFailed, invoice_assign_number
from orders.models import Order
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)

INVOICES = 200
THREADS = 8


def _pending_invoices(n: int) -> list[int]:
    """n paid orders with a pending invoice each, written directly (the checkout path is not
    under test here, and nothing is enqueued)."""
    user = UserFactory()
    amount = Decimal("10.00")
    orders = Order.objects.bulk_create(
        Order(user=user, status="paid", currency="EUR", subtotal=amount, total=amount) for _ in range(n)
    )
    invoices = Invoice.objects.bulk_create(
        Invoice(order=o, series="INV", currency="EUR", subtotal=amount, total=amount) for o in orders
    )
    return [i.pk for i in invoices]


def test_many_threads_with_a_failing_fault_number_exactly_1_to_n():
    ids = _pending_invoices(INVOICES)
    work: queue.Queue[int] = queue.Queue()
    # Every invoice is handed out twice, so two threads often race for the same one.
    for invoice_id in random.sample(ids * 2, len(ids) * 2):
        work.put(invoice_id)

    def number_until_done(thread: int) -> tuple[int, int]:
        fault = FaultInjector(rate=0.5, rng=random.Random(thread))
        failures = calls = 0
        while True:
            try:
                invoice_id = work.get_nowait()
            except queue.Empty:
                return calls, failures
            while True:
                calls += 1
                try:
                    invoice_assign_number(invoice_id=invoice_id, fault=fault)
                except InvoiceAttemptFailed:
                    failures += 1
                    continue
                break

    outcomes = run_in_threads(number_until_done, THREADS)

    # No other error escaped (deadlock, serialization, unique violation...).
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    failures = sum(f for _, f in outcomes)
    assert failures > 0  # the fault really fired
    invoices = list(Invoice.objects.values_list("status", "number"))
    assert sorted(number for _, number in invoices) == list(range(1, INVOICES + 1))
    assert {status for status, _ in invoices} == {"issued"}
    assert InvoiceSequence.objects.get(series="INV").next_value == INVOICES + 1
    # Each invoice was issued once: one event each, numbers 1..N, and every attempt counted.
    issued = OutboxEvent.objects.filter(event_type="invoice.issued")
    assert issued.count() == INVOICES
    assert sorted(int(a) for a in issued.values_list("aggregate_id", flat=True)) == sorted(ids)
    assert sorted(e.payload["number"] for e in issued) == list(range(1, INVOICES + 1))
    assert Invoice.objects.aggregate(n=Sum("attempts"))["n"] == INVOICES + failures
    [audit] = invoice_gap_audit()
    assert (audit["series"], audit["count"], audit["max"], audit["missing"], audit["duplicates"]) == (
        "INV", INVOICES, INVOICES, [], [],
    )  # fmt: skip
    assert audit["complete"] is True


def test_concurrent_attempts_on_one_invoice_issue_it_once():
    [invoice_id] = _pending_invoices(1)

    def attempt(_: int) -> int | None:
        return invoice_assign_number(invoice_id=invoice_id, fault=FaultInjector(rate=0)).number

    numbers = run_in_threads(attempt, THREADS)

    assert numbers == [1] * THREADS
    assert OutboxEvent.objects.filter(event_type="invoice.issued").count() == 1
    assert Invoice.objects.get(pk=invoice_id).attempts == 1
    assert InvoiceSequence.objects.get(series="INV").next_value == 2
