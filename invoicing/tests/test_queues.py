"""Nothing slow on the critical path: PDFs flooding their own queue never delay numbering.

Real workers, one per queue as in the Procfile and compose: the documents queue holds a
flood of real PDF renders (each a WeasyPrint render of a distinct issued invoice); while its
worker chews through them, newly paid orders are numbered by the numbering worker within a
bounded wait. With the PDFs routed to the numbering queue (as before this change), the same
numbers would wait behind every render."""

import time

import pytest
from django.conf import settings

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import WorkerProcess, broker_purge, broker_queue, place_order, wait_until, worker_env
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceDocument, InvoiceStatus
from invoicing.services import FaultInjector, invoice_assign_number
from invoicing.tasks import render_invoice_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FLOOD = 60
NEW_ORDERS = 10


def test_routes_keep_documents_and_the_provider_off_the_numbering_queue():
    routes = settings.CELERY_TASK_ROUTES
    assert routes["invoicing.render_invoice_pdf"]["queue"] == "documents"
    assert routes["invoicing.render_invoice_pdfs"]["queue"] == "documents"
    assert routes["invoicing.render_credit_note_pdfs"]["queue"] == "documents"
    assert routes["invoicing.send_overdue_reminder"]["queue"] == "documents"
    assert routes["invoicing.send_daily_sales_report"]["queue"] == "documents"
    assert routes["payments.simulated_deliver"]["queue"] == "provider"
    assert "invoicing.assign_invoice_number" not in routes  # the default queue, "celery"


def test_a_flood_of_pdfs_does_not_delay_numbering():
    for queue in ("celery", "documents"):
        broker_purge(queue)
    user, product = UserFactory(), ProductFactory(on_hand=500)
    # FLOOD issued invoices whose PDFs are not rendered yet, then the flood of renders.
    for _ in range(FLOOD):
        order = order_place_paid(order_id=place_order(user=user, product=product).pk)
        invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    InvoiceDocument.objects.all().delete()
    broker_purge("celery")
    broker_purge("documents")
    for invoice_id in Invoice.objects.values_list("pk", flat=True):
        render_invoice_pdf.delay(invoice_id)
    assert broker_queue().llen("documents") == FLOOD

    env = worker_env(INVOICE_FAILURE_RATE="0")
    workers = [
        WorkerProcess(env, concurrency=1, queues="documents").start(),
        WorkerProcess(env, concurrency=1, queues="celery").start(),
    ]
    try:
        wait_until(lambda: InvoiceDocument.objects.exists(), timeout=60, message="the documents worker started")
        started = time.monotonic()
        fresh = [order_place_paid(order_id=place_order(user=user, product=product).pk).pk for _ in range(NEW_ORDERS)]

        def numbered() -> bool:
            return Invoice.objects.filter(order_id__in=fresh, status=InvoiceStatus.ISSUED).count() == NEW_ORDERS

        wait_until(numbered, timeout=20, interval=0.1, message="numbers while PDFs flood their queue")
        took = time.monotonic() - started
        rendered = InvoiceDocument.objects.count()
    finally:
        for worker in workers:
            worker.kill()
    # The numbers did not wait for the flood: most renders were still queued when they came.
    assert rendered < FLOOD, f"all {FLOOD} PDFs were rendered before the numbers: the test proved nothing"
    print(f"{NEW_ORDERS} invoices numbered in {took:.2f}s while {FLOOD - rendered} of {FLOOD} PDFs still waited")
