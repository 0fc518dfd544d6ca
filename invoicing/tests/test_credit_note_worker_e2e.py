"""Credit notes through a real Celery worker, the local Redis broker and the test database:
refunds succeed, their credit notes are numbered in series CN by the worker while the
simulated fault fails half of the attempts, the worker is SIGKILLed mid-flight, the broker
loses its messages, and the sweeper (a real beat) still gets every credit note a number:
exactly CN-1..CN-N, and the invoices' own series stays gapless beside it."""

import time

import pytest
from django.db.models import Max, Sum
from django.utils import timezone

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import WorkerProcess, broker_purge, wait_until, worker_env
from invoicing.models import CreditNote, CreditNoteDocument, Invoice
from invoicing.selectors import invoice_gap_audit
from invoicing.tests.helpers import paid_order, refund_succeeded
from outbox.models import OutboxEvent

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAULTY = {
    "INVOICE_FAILURE_RATE": "0.5",
    "INVOICE_RETRY_BASE_S": "0.02",
    "INVOICE_RETRY_MAX_S": "0.3",
    "INVOICE_SWEEP_STALE_S": "3",
}


def _refunded_orders(n: int, *, user, product) -> list[int]:
    """n paid orders, each with a succeeded amount-only refund: its credit note's numbering
    is enqueued when the refund's transaction commits."""
    notes = []
    for _ in range(n):
        order = paid_order(user=user, products=[product])
        notes.append(refund_succeeded(order=order, amount="5.00").pk)
    return notes


def _cn_numbers() -> list[int]:
    return sorted(CreditNote.objects.filter(number__isnull=False).values_list("number", flat=True))


def _wait_issued(expected: int, *, worker: WorkerProcess, timeout: float) -> None:
    def done() -> bool:
        return CreditNote.objects.filter(status="issued").count() == expected

    try:
        wait_until(done, timeout=timeout, interval=0.25)
    except AssertionError as exc:
        pending = CreditNote.objects.filter(status="pending").count()
        raise AssertionError(f"{exc}; {pending} still pending; worker log tail:\n{worker.log()[-4000:]}") from exc


def test_worker_numbers_every_credit_note_cn_1_to_n_through_faults_a_crash_and_lost_messages():
    broker_purge()
    broker_purge("documents")
    user, product = UserFactory(), ProductFactory(on_hand=1000)
    workers: list[WorkerProcess] = []
    try:
        # 1. 60 refunded orders, numbered by the worker's retry chain alone (no beat, no sweeper).
        first = WorkerProcess(worker_env(**FAULTY), concurrency=4)
        workers.append(first.start())
        _refunded_orders(60, user=user, product=product)

        _wait_issued(60, worker=first, timeout=150)

        assert _cn_numbers() == list(range(1, 61))
        attempts = CreditNote.objects.aggregate(total=Sum("attempts"), most=Max("attempts"))
        assert attempts["most"] > 1  # the fault fired on credit notes too, and was retried
        assert attempts["total"] > 60
        assert CreditNote.objects.filter(attempts__gt=1).count() >= 5
        # Each credit note came after its invoice's number, and the PDFs followed on the documents queue.
        assert not CreditNote.objects.filter(invoice__number__isnull=True).exists()
        wait_until(lambda: CreditNoteDocument.objects.count() == 60, timeout=120, message="60 credit note PDFs")

        # 2. 30 more: the worker is SIGKILLed while their numbering is in flight, then the broker
        #    loses the messages sent meanwhile. Only the sweeper can bring these back.
        _refunded_orders(15, user=user, product=product)
        first.kill()
        _refunded_orders(15, user=user, product=product)
        broker_purge()
        time.sleep(0.5)
        stranded = set(CreditNote.objects.filter(status="pending").values_list("pk", flat=True))
        assert len(stranded) >= 15

        restarted_at = timezone.now()
        second = WorkerProcess(worker_env(**FAULTY), concurrency=4, beat=True)
        workers.append(second.start())

        _wait_issued(90, worker=second, timeout=120)

        assert _cn_numbers() == list(range(1, 91))
        assert CreditNote.objects.count() == 90
        requeued = CreditNote.objects.filter(pk__in=stranded, enqueued_at__gt=restarted_at).count()
        assert requeued >= 1  # the sweeper re-enqueued credit notes whose messages were lost
        assert "stale pending credit notes" in second.log()
        assert OutboxEvent.objects.filter(event_type="credit_note.issued").count() == 90  # issued once each
        wait_until(lambda: not Invoice.objects.filter(status="pending").exists(), timeout=60)
        audit = {row["series"]: row for row in invoice_gap_audit()}
        assert (audit["CN"]["count"], audit["CN"]["missing"], audit["CN"]["duplicates"]) == (90, [], [])
        assert audit["CN"]["complete"]
        assert audit["INV"]["complete"]
        assert audit["INV"]["count"] == 90
    finally:
        for worker in workers:
            worker.kill()
        broker_purge()
        broker_purge("documents")
