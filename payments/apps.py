from typing import Any

from django.apps import AppConfig
from django.conf import settings


def payments_health_info() -> dict[str, Any]:
    """Which payment provider this process uses (/health/ "payments")."""
    return {"provider": settings.PAYMENT_PROVIDER}


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from common.health import health_backlog_register, health_info_register
        from common.metrics import metrics_collector_register
        from payments.metrics import DeliveryCollector
        from payments.selectors import refunds_health, simulated_deliveries_health

        health_backlog_register(name="webhook_deliveries", check=simulated_deliveries_health)
        health_backlog_register(name="refunds", check=refunds_health)
        health_info_register(name="payments", info=payments_health_info)
        metrics_collector_register(collector=DeliveryCollector())
