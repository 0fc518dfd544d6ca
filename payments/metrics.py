"""Gauges of the payments app, read from the database at scrape time (registered with
common.metrics in AppConfig.ready)."""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from payments.selectors import simulated_deliveries_backlog


class DeliveryCollector(Collector):
    """Gauges of the simulated provider's outgoing webhooks, read at scrape time."""

    def collect(self) -> Iterator[Metric]:
        backlog = simulated_deliveries_backlog()
        yield GaugeMetricFamily(
            "payment_webhook_deliveries_scheduled", "Provider webhooks owed to the shop.", value=backlog.scheduled
        )
        yield GaugeMetricFamily(
            "payment_webhook_deliveries_failing",
            "Owed provider webhooks whose earlier tries failed (the shop's webhook URL did not answer 2xx).",
            value=backlog.failing,
        )
        yield GaugeMetricFamily(
            "payment_webhook_deliveries_abandoned", "Provider webhooks given up after every retry.",
            value=backlog.abandoned,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "payment_webhook_delivery_lag_seconds",
            "How late the most overdue owed provider webhook is (0 when none).",
            value=backlog.oldest_due_s,
        )
