from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CommonConfig(AppConfig):
    name = "common"

    def ready(self) -> None:
        from common.roles import staff_group_sync_after_migrate

        # Keeps the "staff" group's permissions complete when apps add models later.
        post_migrate.connect(staff_group_sync_after_migrate, sender=self, dispatch_uid="common.staff_group_sync")
