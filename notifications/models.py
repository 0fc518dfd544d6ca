from django.db import models
from django.db.models import Q


class EmailKind(models.TextChoices):
    ORDER_CONFIRMATION = "order_confirmation", "Order confirmation"
    PAYMENT_RECEIPT = "payment_receipt", "Payment receipt"
    INVOICE_ISSUED = "invoice_issued", "Invoice issued"
    ORDER_SHIPPED = "order_shipped", "Order shipped"
    REFUND_ISSUED = "refund_issued", "Refund issued"
    ORDER_CANCELLED = "order_cancelled", "Order cancelled"


# The outbox events that make a customer e-mail, one kind each.
KIND_FOR_EVENT: dict[str, str] = {
    "order.created": EmailKind.ORDER_CONFIRMATION,
    "order.paid": EmailKind.PAYMENT_RECEIPT,
    "invoice.issued": EmailKind.INVOICE_ISSUED,
    "order.shipped": EmailKind.ORDER_SHIPPED,
    "credit_note.issued": EmailKind.REFUND_ISSUED,
    "order.cancelled": EmailKind.ORDER_CANCELLED,
}


class EmailState(models.TextChoices):
    PENDING = "pending"  # to be sent (again) at next_attempt_at
    SENT = "sent"  # the SMTP server accepted it: never sent again
    FAILED = "failed"  # gave up after EMAIL_MAX_TRIES; staff may send it again from the admin
    SKIPPED = "skipped"  # nothing to send (no address, or a staff draft order: see skip_reason)


class CustomerEmail(models.Model):
    """One e-mail a customer is owed because of one outbox event. The row is the promise
    (created from the event by the dispatcher, unique per event and kind); Celery messages
    only kick it. `sent_at` is the sent marker, set under the row lock in the transaction
    that sends, so a duplicate task never sends twice."""

    event = models.ForeignKey("outbox.OutboxEvent", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=30, choices=EmailKind.choices)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="customer_emails")
    to = models.EmailField(blank=True)
    subject = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=10, choices=EmailState.choices, default=EmailState.PENDING)
    skip_reason = models.CharField(max_length=200, blank=True)
    tries = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    kicked_at = models.DateTimeField(null=True, blank=True)  # last send task enqueued (lost kicks re-kicked)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "kind"], name="customer_email_once_per_event"),
            models.CheckConstraint(condition=Q(state__in=EmailState.values), name="customer_email_state_valid"),
            models.CheckConstraint(condition=Q(kind__in=EmailKind.values), name="customer_email_kind_valid"),
            models.CheckConstraint(
                condition=Q(state=EmailState.SENT, sent_at__isnull=False)
                | (~Q(state=EmailState.SENT) & Q(sent_at=None)),
                name="customer_email_sent_iff_sent_at",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(state=EmailState.PENDING), name="customer_email_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for order #{self.order_id} ({self.state})"

    @property
    def message_id(self) -> str:
        """Stable per row: a resend after a crash carries the same Message-ID, which lets
        the receiving side recognise the duplicate."""
        return f"<{self.kind}.{self.event_id}@customer-emails>"


class EmailDispatchCursor(models.Model):
    """How far the dispatcher has read the outbox: events created before
    `position - EMAIL_DISPATCH_OVERLAP_S` are done. Created by the migration at deploy
    time, so installing the app never e-mails the past."""

    name = models.CharField(max_length=40, primary_key=True)
    position = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.position:%Y-%m-%d %H:%M:%S}"
