"""Gauges of the invoicing app, read from the database at scrape time (registered with
common.metrics in AppConfig.ready)."""

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from invoicing.models import CreditNote, CreditNoteStatus, Invoice, InvoiceStatus


class InvoicingCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        pending = Invoice.objects.filter(status=InvoiceStatus.PENDING).aggregate(
            n=Count("id"), oldest=Min("created_at")
        )
        yield GaugeMetricFamily("invoices_pending", "Invoices waiting for their number.", value=pending["n"])
        yield GaugeMetricFamily(
            "invoice_oldest_pending_age_seconds",
            "Age of the oldest invoice still waiting for its number (0 when none).",
            value=(timezone.now() - pending["oldest"]).total_seconds() if pending["oldest"] else 0.0,
        )
        notes = CreditNote.objects.filter(status=CreditNoteStatus.PENDING).aggregate(
            n=Count("id"), oldest=Min("created_at")
        )
        yield GaugeMetricFamily("credit_notes_pending", "Credit notes waiting for their number.", value=notes["n"])
        yield GaugeMetricFamily(
            "credit_note_oldest_pending_age_seconds",
            "Age of the oldest credit note still waiting for its number (0 when none).",
            value=(timezone.now() - notes["oldest"]).total_seconds() if notes["oldest"] else 0.0,
        )
