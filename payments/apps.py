from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from common.health import health_backlog_register
        from common.metrics import metrics_collector_register
        from payments.metrics import DeliveryCollector
        from payments.selectors import simulated_deliveries_health

        health_backlog_register(name="webhook_deliveries", check=simulated_deliveries_health)
        metrics_collector_register(collector=DeliveryCollector())
