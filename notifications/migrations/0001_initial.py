import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone


def cursor_at_deploy(apps, schema_editor):
    """Start reading the outbox now: installing the app never e-mails the past."""
    apps.get_model("notifications", "EmailDispatchCursor").objects.get_or_create(
        name="customer-emails", defaults={"position": timezone.now()}
    )


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("orders", "0001_initial"),
        ("outbox", "0002_outboxevent_metadata"),
    ]

    operations = [
        migrations.CreateModel(
            name="EmailDispatchCursor",
            fields=[
                ("name", models.CharField(max_length=40, primary_key=True, serialize=False)),
                ("position", models.DateTimeField()),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.CreateModel(
            name="CustomerEmail",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("order_confirmation", "Order confirmation"),
                            ("payment_receipt", "Payment receipt"),
                            ("invoice_issued", "Invoice issued"),
                            ("order_shipped", "Order shipped"),
                            ("refund_issued", "Refund issued"),
                            ("order_cancelled", "Order cancelled"),
                        ],
                        max_length=30,
                    ),
                ),
                ("to", models.EmailField(blank=True, max_length=254)),
                ("subject", models.CharField(blank=True, max_length=200)),
                (
                    "state",
                    models.CharField(
                        choices=[("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed"), ("skipped", "Skipped")],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("skip_reason", models.CharField(blank=True, max_length=200)),
                ("tries", models.PositiveIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField()),
                ("kicked_at", models.DateTimeField(blank=True, null=True)),
                ("last_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="outbox.outboxevent"
                    ),
                ),
                (
                    "order",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="customer_emails",
                        to="orders.order",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "indexes": [
                    models.Index(
                        condition=models.Q(("state", "pending")), fields=["next_attempt_at"], name="customer_email_due_idx"
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("event", "kind"), name="customer_email_once_per_event"),
                    models.CheckConstraint(
                        condition=models.Q(("state__in", ["pending", "sent", "failed", "skipped"])),
                        name="customer_email_state_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            (
                                "kind__in",
                                [
                                    "order_confirmation",
                                    "payment_receipt",
                                    "invoice_issued",
                                    "order_shipped",
                                    "refund_issued",
                                    "order_cancelled",
                                ],
                            )
                        ),
                        name="customer_email_kind_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("sent_at__isnull", False), ("state", "sent")),
                            models.Q(models.Q(("state", "sent"), _negated=True), ("sent_at", None)),
                            _connector="OR",
                        ),
                        name="customer_email_sent_iff_sent_at",
                    ),
                ],
            },
        ),
        migrations.RunPython(cursor_at_deploy, migrations.RunPython.noop),
    ]
