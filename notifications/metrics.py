"""Gauges of the customer e-mails, read from the database at scrape time."""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notifications.selectors import customer_emails_backlog


class CustomerEmailCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        backlog = customer_emails_backlog()
        yield GaugeMetricFamily("customer_emails_pending", "Customer e-mails not yet sent.", value=backlog.pending)
        yield GaugeMetricFamily(
            "customer_emails_retrying", "Pending customer e-mails whose last try failed.", value=backlog.retrying
        )
        yield GaugeMetricFamily(
            "customer_emails_failed", "Customer e-mails given up after EMAIL_MAX_TRIES.", value=backlog.failed
        )
        yield GaugeMetricFamily(
            "customer_emails_oldest_due_seconds",
            "How late the most overdue pending customer e-mail is (0 when none is due).",
            value=backlog.oldest_due_s,
        )
