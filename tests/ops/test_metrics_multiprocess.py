"""Multiprocess metrics: the numbering happens in Celery worker processes, and /metrics
(served by a web process) adds up every service's files under the shared metrics root."""

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from common.tests.factories import StaffFactory, UserFactory
from common.tests.helpers import WorkerProcess, place_order, wait_until, worker_env
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_worker_series_reach_the_web_scrape_through_the_shared_directory(tmp_path):
    root = tmp_path / "metrics"
    (root / "web").mkdir(parents=True)
    worker = WorkerProcess(
        worker_env(PROMETHEUS_MULTIPROC_DIR=str(root / "worker"), INVOICE_FAILURE_RATE="0"), concurrency=2
    ).start()
    try:
        order = place_order(user=UserFactory())
        order_place_paid(order_id=order.pk)
        wait_until(
            lambda: Invoice.objects.get(order=order).status == InvoiceStatus.ISSUED,
            timeout=60,
            message="the worker issues the invoice",
        )
        client = APIClient()
        client.force_login(StaffFactory())

        def scraped() -> dict[tuple[str, tuple], float]:
            with override_settings(PROMETHEUS_MULTIPROC_DIR=str(root / "web")):
                response = client.get("/metrics")
            assert response.status_code == 200
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.content.decode())
                for s in family.samples
            }

        wait_until(
            lambda: scraped().get(("invoice_numbering_attempts_total", (("outcome", "issued"),))) == 1.0,
            timeout=20,
            message="the worker's numbering counter in the web scrape",
        )
        samples = scraped()
        assert samples[("invoice_time_to_number_seconds_count", (("series", "INV"),))] == 1.0
        task = (("outcome", "success"), ("task", "invoicing.assign_invoice_number"))
        assert samples[("celery_tasks_total", task)] == 1.0
        assert samples[("invoices_pending", ())] == 0.0
        assert list((root / "worker").glob("*.db")), "the worker wrote its values to its own directory"
    finally:
        worker.stop()
