"""Both numbered documents at once: 8 threads run invoice and credit note batches
concurrently under the simulated fault (0.5), each batch in its own transaction with
SKIP LOCKED and a savepoint per document. Both series end exactly 1..N, issued once each."""

import time

import pytest

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import run_in_threads
from invoicing.models import CreditNote, Invoice
from invoicing.selectors import invoice_gap_audit
from invoicing.services import FaultInjector, credit_notes_number_due, invoices_number_due
from invoicing.tests.helpers import paid_order, refund_succeeded
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)

N = 150


def test_eight_threads_number_invoices_and_credit_notes_at_once_both_series_exactly_1_to_n(settings, monkeypatch):
    settings.INVOICE_FAULT_RETRY_BASE_S = 0.001
    settings.INVOICE_FAULT_RETRY_MAX_S = 0.01
    for hook in (
        "invoice_enqueue_pdf",
        "invoice_enqueue_pdfs",
        "credit_note_enqueue_pdf",
        "credit_note_enqueue_pdfs",
        "invoice_enqueue_numbering",
    ):
        monkeypatch.setattr(f"invoicing.services.{hook}", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.credit_note_enqueue_numbering", lambda **kwargs: None)
    user, product = UserFactory(), ProductFactory(on_hand=N + 10)
    for _ in range(N):  # pending invoices, each with a pending credit note waiting for its number
        refund_succeeded(order=paid_order(user=user, products=[product]), amount="1.00")
    failures = [0] * 8

    def worker(i: int) -> int:
        fault = FaultInjector(rate=0.5)
        deadline = time.monotonic() + 150
        # Even threads start with invoices, odd ones with credit notes: both series at once.
        kinds = [invoices_number_due, credit_notes_number_due]
        if i % 2:
            kinds.reverse()
        while CreditNote.objects.filter(status="pending").exists() or Invoice.objects.filter(status="pending").exists():
            assert time.monotonic() < deadline, "numbering did not finish"
            idle = True
            for number_due in kinds:
                batch = number_due(limit=20, fault=fault)
                failures[i] += len(batch.failed)
                idle = idle and not batch.issued and not batch.failed
            if idle:
                time.sleep(0.005)
        return failures[i]

    outcomes = run_in_threads(worker, 8, timeout=200)

    assert all(isinstance(o, int) for o in outcomes), outcomes
    assert sum(failures) > 100  # the fault really fired
    assert sorted(Invoice.objects.values_list("number", flat=True)) == list(range(1, N + 1))
    assert sorted(CreditNote.objects.values_list("number", flat=True)) == list(range(1, N + 1))
    assert CreditNote.objects.filter(attempts__gt=1).count() > 10
    audit = {row["series"]: row for row in invoice_gap_audit()}
    for series in ("INV", "CN"):
        assert (audit[series]["count"], audit[series]["missing"], audit[series]["duplicates"]) == (N, [], [])
        assert audit[series]["complete"]
    assert OutboxEvent.objects.filter(event_type="invoice.issued").count() == N
    assert OutboxEvent.objects.filter(event_type="credit_note.issued").count() == N
    # A credit note is numbered only once its invoice is: never before it in time.
    for note in CreditNote.objects.select_related("invoice"):
        assert note.issued_at >= note.invoice.issued_at
