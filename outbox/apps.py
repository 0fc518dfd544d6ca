from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"

    def ready(self) -> None:
        from common.metrics import metrics_collector_register
        from outbox.metrics import OutboxCollector

        metrics_collector_register(collector=OutboxCollector())
