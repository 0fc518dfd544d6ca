from django.db import models
from django.db.models import Q

from common.models import TimeStampedModel


class PaymentStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class PaymentAttempt(TimeStampedModel):
    """One logical payment request (one Idempotency-Key) for an order."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payment_attempts")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    provider = models.CharField(max_length=32, default="simulated")
    provider_reference = models.CharField(max_length=100)
    payment_method = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=PaymentStatus.choices, default=PaymentStatus.PROCESSING)
    failure_reason = models.CharField(max_length=200, blank=True)
    # A success that could not be applied (order already paid or cancelled): money to give back.
    refund_required = models.BooleanField(default=False)
    refund_reason = models.CharField(max_length=200, blank=True)
    redirect_url = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_reference"], name="payment_provider_reference_unique"
            ),
            models.UniqueConstraint(
                fields=["order"], condition=Q(status="processing"), name="payment_one_processing_per_order"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.provider_reference} {self.status}"


class WebhookEvent(models.Model):
    """Every verified provider event, once (webhook-id is unique): the dedupe record."""

    webhook_id = models.CharField(max_length=100, unique=True)
    event_type = models.CharField(max_length=40)
    provider_reference = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField()
    signature_valid = models.BooleanField(default=True)
    changed_state = models.BooleanField(default=False)
    outcome = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.webhook_id} {self.event_type}"
