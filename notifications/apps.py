from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import task_success

        from notifications.tasks import after_relay

        # A relay that published events kicks the dispatcher at once; beat covers a lost kick.
        task_success.connect(after_relay, weak=False, dispatch_uid="notifications.after_relay")
