from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = "Catalog"  # what staff call it (admin app list)

    def ready(self) -> None:
        from common.metrics import metrics_collector_register
        from inventory.metrics import InventoryCollector

        metrics_collector_register(collector=InventoryCollector())
