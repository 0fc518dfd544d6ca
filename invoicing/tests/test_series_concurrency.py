"""Numbering under concurrency, by series and through a worker's death.

1. Two series numbered at the same time by 8 threads (4 each) through the group-commit
   service (`documents_number_due`, the invoice kind restricted to the invoices stored in one
   series, as a series chosen per channel or country would be) at failure rate 0.5: each
   series is exactly 1..N, every invoice keeps its own series, none is issued twice.
2. A real Celery worker process is SIGKILLed while its batch is in the middle of its
   transaction (numbers taken, invoices issued in their savepoints, nothing committed): no
   number is lost, and a new worker with beat numbers everything exactly 1..N, each once.
"""

import dataclasses
import time

import psycopg
import psycopg.conninfo
import pytest
from django.db import connection
from django.db.models import Q

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import WorkerProcess, broker_purge, place_order, run_in_threads, wait_until, worker_env
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceSequence, InvoiceStatus
from invoicing.services import INVOICE_KIND, FaultInjector, documents_number_due
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _pending(count: int) -> list[int]:
    """`count` paid storefront orders; their pending invoices' ids, oldest first."""
    user, product = UserFactory(), ProductFactory(on_hand=count + 10)
    for _ in range(count):
        order_place_paid(order_id=place_order(user=user, product=product).pk)
    return list(Invoice.objects.order_by("created_at", "id").values_list("pk", flat=True))


def _series_kind(name: str):
    """Group commit of the invoices stored in series `name`, numbered in it."""
    return dataclasses.replace(INVOICE_KIND, series_for=lambda at: name, due=Q(series=name))


def _assert_exactly_one_to(series: str, ids: list[int]) -> None:
    rows = list(Invoice.objects.filter(pk__in=ids).values_list("series", "number", "status"))
    assert {s for s, _, _ in rows} == {series}  # never numbered in another series
    assert sorted(n for _, n, _ in rows) == list(range(1, len(ids) + 1))
    assert {status for _, _, status in rows} == {InvoiceStatus.ISSUED}
    assert InvoiceSequence.objects.get(series=series).next_value == len(ids) + 1
    issued = OutboxEvent.objects.filter(event_type="invoice.issued", aggregate_id__in=[str(i) for i in ids])
    assert issued.count() == len(ids)  # issued once each
    assert sorted(e.payload["number"] for e in issued) == list(range(1, len(ids) + 1))


def test_two_series_numbered_concurrently_by_8_threads_at_failure_rate_half_stay_gapless_each(settings, monkeypatch):
    settings.INVOICE_FAULT_RETRY_BASE_S = 0.001
    settings.INVOICE_FAULT_RETRY_MAX_S = 0.01
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdf", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.invoice_enqueue_pdfs", lambda **kwargs: None)
    ids = _pending(300)
    by_series = {"EU": ids[0::2], "US": ids[1::2]}  # interleaved: both series' batches overlap in time
    for name, members in by_series.items():
        Invoice.objects.filter(pk__in=members).update(series=name)
    failures = [0] * 8

    def worker(i: int) -> int:
        name = "EU" if i % 2 == 0 else "US"
        kind, fault = _series_kind(name), FaultInjector(rate=0.5)
        deadline = time.monotonic() + 120
        while Invoice.objects.filter(series=name, status=InvoiceStatus.PENDING).exists():
            assert time.monotonic() < deadline, "numbering did not finish"
            batch = documents_number_due(kind=kind, limit=20, fault=fault)
            failures[i] += len(batch.failed)
            if not batch.issued and not batch.failed:
                time.sleep(0.005)  # the rest of the series is in another thread's batch
        return failures[i]

    outcomes = run_in_threads(worker, 8, timeout=180)

    assert all(isinstance(o, int) for o in outcomes), outcomes
    assert sum(failures[0::2]) > 40  # the fault fired in both series
    assert sum(failures[1::2]) > 40
    for name, members in by_series.items():
        _assert_exactly_one_to(name, members)
    assert Invoice.objects.filter(attempts__gt=1).count() > 50


# --- A worker SIGKILLed mid-batch -------------------------------------------------------------

STALL_LOCK = 727_412  # an advisory lock the test holds: the batch waits on it at number STALL_AT
STALL_AT = 12


def _dsn() -> str:
    db = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=db["NAME"], user=db["USER"] or "root", host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
    )


def _stall_at_number(at: int) -> None:
    """Make the UPDATE that gives number `at` wait for the test's advisory lock: the batch is
    then inside its transaction with `at` numbers taken and `at - 1` invoices issued."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE OR REPLACE FUNCTION test_stall_numbering() RETURNS trigger AS $$
            BEGIN
                IF NEW.number = {at} AND OLD.number IS NULL THEN
                    PERFORM pg_advisory_xact_lock({STALL_LOCK});
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_stall_numbering BEFORE UPDATE ON invoicing_invoice
                FOR EACH ROW EXECUTE FUNCTION test_stall_numbering();
            """
        )


def _committed_next_value(series: str) -> int:
    """The series' next number as committed (no row yet: 1)."""
    value = InvoiceSequence.objects.filter(series=series).values_list("next_value", flat=True).first()
    return value if value is not None else 1


def _unstall() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS test_stall_numbering ON invoicing_invoice")
        cursor.execute("DROP FUNCTION IF EXISTS test_stall_numbering()")


@pytest.mark.slow
def test_a_worker_sigkilled_mid_batch_loses_no_number_and_issues_none_twice():
    faulty = {
        "INVOICE_FAILURE_RATE": "0.5",
        "INVOICE_FAULT_RETRY_BASE_S": "0.02",
        "INVOICE_FAULT_RETRY_MAX_S": "0.2",
        "INVOICE_SWEEP_STALE_S": "2",
    }
    broker_purge()
    holder = psycopg.connect(_dsn(), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", [STALL_LOCK])
    _stall_at_number(STALL_AT)
    workers: list[WorkerProcess] = []
    try:
        ids = _pending(60)  # 60 numbering kicks wait in the broker
        doomed = WorkerProcess(worker_env(**faulty), concurrency=1, queues="celery")
        workers.append(doomed.start())

        def stalled_backend() -> int | None:
            row = holder.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted", [STALL_LOCK]
            ).fetchone()
            return row[0] if row else None

        wait_until(lambda: stalled_backend() is not None, timeout=60, message="the batch reaches number 12")
        backend = stalled_backend()
        # Mid-batch: 11 invoices issued and 12 numbers taken inside the open transaction;
        # nothing of it is visible outside.
        assert not Invoice.objects.filter(number__isnull=False).exists()
        assert _committed_next_value("INV") == 1

        doomed.kill()  # SIGKILL, parent and pool child: no rollback sent, no ack
        holder.execute("SELECT pg_advisory_unlock(%s)", [STALL_LOCK])  # the orphan backend finds its client gone
        wait_until(
            lambda: (
                holder.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend]).fetchone()[0] == 0
            ),
            timeout=30,
            message="the dead worker's backend ends",
        )
        assert not Invoice.objects.filter(number__isnull=False).exists()  # every taken number given back
        assert _committed_next_value("INV") == 1
        assert not OutboxEvent.objects.filter(event_type="invoice.issued").exists()

        _unstall()
        # Its unacked messages are gone until the visibility timeout; the others wait in the
        # broker, and beat's sweeper kicks anything stale.
        second = WorkerProcess(worker_env(**faulty), concurrency=2, queues="celery", beat=True)
        workers.append(second.start())
        wait_until(
            lambda: not Invoice.objects.filter(status=InvoiceStatus.PENDING).exists(),
            timeout=90,
            message="every invoice numbered after the crash",
        )

        _assert_exactly_one_to("INV", ids)
        assert Invoice.objects.filter(attempts__gt=1).exists()  # the fault fired in the new worker too
    finally:
        for worker in workers:
            worker.kill()
        _unstall()
        holder.close()
        broker_purge()
        broker_purge("documents")
