from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import task_success
        from django.core.checks import register

        from common.health import health_backlog_register
        from common.metrics import metrics_collector_register
        from notifications.checks import check_email_url
        from notifications.metrics import CustomerEmailCollector
        from notifications.selectors import customer_emails_health
        from notifications.tasks import after_relay

        # A relay that published events kicks the dispatcher at once; beat covers a lost kick.
        task_success.connect(after_relay, weak=False, dispatch_uid="notifications.after_relay")
        health_backlog_register(name="customer_emails", check=customer_emails_health)
        metrics_collector_register(collector=CustomerEmailCollector())
        register(check_email_url, "email", deploy=True)
