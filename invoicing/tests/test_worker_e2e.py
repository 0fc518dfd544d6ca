"""A real Celery worker process, the local Redis broker and the test PostgreSQL database:
orders are paid, invoices are numbered by the worker while the simulated fault fails half
of the attempts, the worker is SIGKILLed mid-flight, the broker loses its messages, and
the sweeper (run by a real beat) still gets every invoice a number, with no gap."""

import time

import pytest
from django.db.models import Max, Sum
from django.utils import timezone

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import WorkerProcess, broker_purge, place_order, wait_until, worker_env
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from invoicing.selectors import invoice_gap_audit

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAULTY = {
    "INVOICE_FAILURE_RATE": "0.5",
    "INVOICE_RETRY_BASE_S": "0.02",
    "INVOICE_RETRY_MAX_S": "0.3",
    "INVOICE_SWEEP_STALE_S": "3",
}


def _place_and_pay(n: int, *, user, product) -> list[int]:
    """n storefront orders paid; each payment's commit enqueues the invoice's numbering."""
    order_ids = []
    for _ in range(n):
        order = place_order(user=user, product=product, quantity=1)
        order_place_paid(order_id=order.pk)
        order_ids.append(order.pk)
    return order_ids


def _numbers() -> list[int]:
    return sorted(Invoice.objects.filter(number__isnull=False).values_list("number", flat=True))


def _all_issued(expected: int) -> bool:
    return Invoice.objects.filter(status="issued").count() == expected


def _wait_all_issued(expected: int, *, worker: WorkerProcess, timeout: float) -> None:
    try:
        wait_until(lambda: _all_issued(expected), timeout=timeout, interval=0.25)
    except AssertionError as exc:
        pending = Invoice.objects.filter(status="pending").count()
        raise AssertionError(f"{exc}; {pending} still pending; worker log tail:\n{worker.log()[-4000:]}") from exc


def test_worker_numbers_every_invoice_gaplessly_through_faults_a_crash_and_lost_messages():
    broker_purge()
    user, product = UserFactory(), ProductFactory(on_hand=1000)
    workers: list[WorkerProcess] = []
    try:
        # 1. 100 paid orders, numbered by the worker's retry chain alone (no beat, no sweeper).
        first = WorkerProcess(worker_env(**FAULTY), concurrency=4)
        workers.append(first.start())
        _place_and_pay(100, user=user, product=product)

        _wait_all_issued(100, worker=first, timeout=120)

        assert _numbers() == list(range(1, 101))
        attempts = Invoice.objects.aggregate(total=Sum("attempts"), most=Max("attempts"))
        assert attempts["most"] > 1  # the fault fired and was retried
        assert attempts["total"] > 100
        assert Invoice.objects.filter(attempts__gt=1).count() >= 10

        # 2. 30 more: the worker is SIGKILLed while their numbering is in flight (its reserved
        #    and retrying messages die unacked with it), and the broker then loses the messages
        #    sent meanwhile. Only the sweeper can bring these invoices back.
        _place_and_pay(15, user=user, product=product)
        first.kill()
        _place_and_pay(15, user=user, product=product)
        broker_purge()
        time.sleep(0.5)
        stranded = set(Invoice.objects.filter(status="pending").values_list("pk", flat=True))
        assert len(stranded) >= 15

        restarted_at = timezone.now()
        second = WorkerProcess(worker_env(**FAULTY), concurrency=4, beat=True)
        workers.append(second.start())

        _wait_all_issued(130, worker=second, timeout=90)

        assert _numbers() == list(range(1, 131))
        assert Invoice.objects.count() == 130
        # Their messages were lost: only the sweeper could start numbering again. One kick
        # numbers every due invoice in one batch (group commit), so it need not re-enqueue each.
        requeued = Invoice.objects.filter(pk__in=stranded, enqueued_at__gt=restarted_at).count()
        assert requeued >= 1
        assert "re-enqueued" in second.log()
        [audit] = invoice_gap_audit()
        assert (audit["count"], audit["missing"], audit["duplicates"], audit["complete"]) == (130, [], [], True)
    finally:
        for worker in workers:
            worker.kill()
        broker_purge()
        broker_purge("documents")
