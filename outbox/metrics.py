"""Gauges of the outbox app, read from the database at scrape time (registered with
common.metrics in AppConfig.ready)."""

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from outbox.models import OutboxEvent


class OutboxCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        backlog = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
            n=Count("id"), oldest=Min("created_at")
        )
        yield GaugeMetricFamily("outbox_backlog", "Outbox events not yet published.", value=backlog["n"])
        yield GaugeMetricFamily(
            "outbox_relay_lag_seconds",
            "Age of the oldest unpublished outbox event (0 when the relay is caught up).",
            value=(timezone.now() - backlog["oldest"]).total_seconds() if backlog["oldest"] else 0.0,
        )
