from django.apps import AppConfig


class InvoicingConfig(AppConfig):
    name = "invoicing"

    def ready(self) -> None:
        from common.metrics import metrics_collector_register
        from invoicing.metrics import InvoicingCollector

        metrics_collector_register(collector=InvoicingCollector())
