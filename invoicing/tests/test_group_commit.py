"""Group-commit numbering (invoices_number_due): one transaction numbers a batch of due
invoices, each in its own savepoint, under the simulated fault; batches run concurrently
from many threads on PostgreSQL; a batch whose connection dies mid-way gives every number
back. Whatever happens, the series is exactly 1..N and no invoice is issued twice."""

import threading
import time

import psycopg
import psycopg.conninfo
import pytest
from django.conf import settings
from django.db import connection

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order, run_in_threads
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceStatus
from invoicing.selectors import invoice_gap_audit
from invoicing.services import FaultInjector, InvoiceAttemptFailed, invoices_number_due
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _pending(count: int) -> None:
    user, product = UserFactory(), ProductFactory(on_hand=count + 10)
    for _ in range(count):
        order_place_paid(order_id=place_order(user=user, product=product).pk)


def _assert_exactly_one_to(n: int) -> None:
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, n + 1))
    [audit] = [row for row in invoice_gap_audit() if row["series"] == settings.INVOICE_SERIES]
    assert (audit["count"], audit["missing"], audit["duplicates"]) == (n, [], [])
    # Issued once each: one `invoice.issued` event per invoice.
    assert OutboxEvent.objects.filter(event_type="invoice.issued").count() == n


def test_eight_threads_number_500_invoices_at_failure_rate_half_exactly_1_to_500(settings, monkeypatch):
    settings.INVOICE_FAULT_RETRY_BASE_S = 0.001
    settings.INVOICE_FAULT_RETRY_MAX_S = 0.01
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdf", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)
    _pending(500)
    failures = [0] * 8

    def worker(i: int) -> int:
        fault = FaultInjector(rate=0.5)
        deadline = time.monotonic() + 120
        while Invoice.objects.filter(status=InvoiceStatus.PENDING).exists():
            assert time.monotonic() < deadline, "numbering did not finish"
            batch = invoices_number_due(limit=25, fault=fault)
            failures[i] += len(batch.failed)
            if not batch.issued and not batch.failed:
                time.sleep(0.005)  # everything due is in other threads' batches
        return failures[i]

    outcomes = run_in_threads(worker, 8, timeout=180)

    assert all(isinstance(o, int) for o in outcomes), outcomes
    assert sum(failures) > 100  # the fault really fired, inside batches
    assert not Invoice.objects.filter(status=InvoiceStatus.PENDING).exists()
    _assert_exactly_one_to(500)
    assert Invoice.objects.filter(attempts__gt=1).count() > 50


class _Stall:
    """A fault that never fires but, at its `at`-th invoice, waits until released: the
    batch is then in the middle of its transaction, numbers taken."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def maybe_fail(self, *, invoice: Invoice, number: int) -> None:
        self.seen += 1
        if self.seen == self.at:
            self.reached.set()
            self.release.wait(30)


def test_a_batch_whose_connection_dies_mid_way_gives_every_number_back(monkeypatch):
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdf", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)
    _pending(30)
    stall = _Stall(at=12)
    died: list[BaseException] = []
    backend: list[int] = []

    def doomed() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend.append(cursor.fetchone()[0])
            invoices_number_due(limit=20, fault=stall)  # type: ignore[arg-type]
        except BaseException as exc:  # the connection is killed under it
            died.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=doomed)
    thread.start()
    assert stall.reached.wait(30), "the batch never reached the stall"
    db = connection.settings_dict
    dsn = psycopg.conninfo.make_conninfo(
        dbname=db["NAME"], user=db["USER"] or "root", host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
    )
    with psycopg.connect(dsn, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [backend[0]])
    stall.release.set()
    thread.join(30)

    assert died, "the batch should have failed with its connection"
    assert not Invoice.objects.filter(number__isnull=False).exists()  # 11 numbers taken, all given back

    batch = invoices_number_due(limit=100, fault=FaultInjector(rate=0))
    assert len(batch.issued) == 30
    _assert_exactly_one_to(30)


def test_a_failed_invoice_waits_for_its_retry_time_and_gives_its_number_to_the_next(monkeypatch, settings):
    # A retry time far enough ahead that a loaded machine cannot reach it between two calls.
    settings.INVOICE_FAULT_RETRY_BASE_S = 30.0
    settings.INVOICE_FAULT_RETRY_MAX_S = 60.0
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdf", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)
    _pending(3)
    first, second, third = Invoice.objects.order_by("created_at", "id")

    class FailFirst:
        def maybe_fail(self, *, invoice: Invoice, number: int) -> None:
            if invoice.pk == first.pk:
                raise InvoiceAttemptFailed(f"simulated fault while issuing number {number}")

    batch = invoices_number_due(fault=FailFirst())  # type: ignore[arg-type]

    assert batch.failed == [first.pk]
    assert batch.issued == [second.pk, third.pk]
    first.refresh_from_db()
    assert (first.status, first.attempts, first.number) == ("pending", 1, None)
    assert first.next_attempt_at is not None
    assert "number 1" in first.last_error
    assert Invoice.objects.get(pk=second.pk).number == 1  # the number the fault gave back
    # Not due yet: a batch leaves it alone unless its own retry timer fired (include_id).
    assert invoices_number_due(fault=FaultInjector(rate=0)).issued == []
    assert invoices_number_due(include_id=first.pk, fault=FaultInjector(rate=0)).issued == [first.pk]
    _assert_exactly_one_to(3)
