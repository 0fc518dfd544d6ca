"""Gauges of the inventory app, read from the database at scrape time (registered with
common.metrics in AppConfig.ready)."""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inventory.models import Reservation, ReservationStatus


class InventoryCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        active = Reservation.objects.filter(status=ReservationStatus.ACTIVE).count()
        yield GaugeMetricFamily("reservations_active", "Stock reservations held for unpaid orders.", value=active)
