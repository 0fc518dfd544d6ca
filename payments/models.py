from django.conf import settings
from django.db import models
from django.db.models import Q

from common.models import TimeStampedModel


class PaymentStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# The attempt state machine: it only moves forward. Anything else is ignored (webhooks)
# or refused (services); `failed` and `succeeded` are final.
PAYMENT_ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    PaymentStatus.PROCESSING: {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED},
    PaymentStatus.SUCCEEDED: set(),
    PaymentStatus.FAILED: set(),
}


class FailureCode(models.TextChoices):
    """Why an attempt failed: the provider said so, or the shop gave up waiting."""

    PROVIDER = "provider", "Reported by the provider"
    TIMEOUT = "timeout", "No result from the provider in time"
    MISMATCH = "mismatch", "Provider reported a different amount or currency"


class PaymentAttempt(TimeStampedModel):
    """One logical payment request (one Idempotency-Key) for an order."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payment_attempts")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    provider = models.CharField(max_length=32, default="simulated")
    provider_reference = models.CharField(max_length=100)
    # Empty while the shopper has not yet chosen a method on the provider's hosted page.
    payment_method = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=PaymentStatus.choices, default=PaymentStatus.PROCESSING)
    failure_code = models.CharField(max_length=12, choices=FailureCode.choices, blank=True)
    failure_reason = models.CharField(max_length=200, blank=True)
    # A success that could not be applied (order already paid or cancelled, or the shop had
    # already given up on the attempt): money the provider took and staff must give back.
    refund_required = models.BooleanField(default=False)
    refund_reason = models.CharField(max_length=200, blank=True)
    redirect_url = models.CharField(max_length=500, blank=True)
    charge_requested_at = models.DateTimeField(null=True, blank=True)
    # The provider accepted the charge (or cancel) request. Requested but not submitted after
    # PAYMENT_CHARGE_RESUBMIT_S: the after-commit call was lost; beat submits it again.
    charge_submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="payment_status_created_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_reference"], name="payment_provider_reference_unique"
            ),
            models.UniqueConstraint(
                fields=["order"], condition=Q(status="processing"), name="payment_one_processing_per_order"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=PaymentStatus.values), name="payment_status_valid"),
            # Final exactly when completed; a failure always says why.
            models.CheckConstraint(
                condition=(Q(status="processing") & Q(completed_at__isnull=True))
                | (Q(status="succeeded") & Q(completed_at__isnull=False) & Q(failure_code=""))
                | (Q(status="failed") & Q(completed_at__isnull=False) & ~Q(failure_code="")),
                name="payment_final_iff_completed",
            ),
            models.CheckConstraint(
                condition=Q(refund_required=False) | ~Q(refund_reason=""), name="payment_refund_has_reason"
            ),
            models.CheckConstraint(
                condition=Q(charge_submitted_at__isnull=True) | Q(charge_requested_at__isnull=False),
                name="payment_submitted_only_if_requested",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_reference} {self.status}"

    @property
    def is_final(self) -> bool:
        return self.status != PaymentStatus.PROCESSING

    @property
    def awaiting_customer(self) -> bool:
        """Processing, but the shopper has not chosen a method on the hosted page yet."""
        return self.status == PaymentStatus.PROCESSING and self.charge_requested_at is None


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# Forward only: a refund's outcome arrives once; anything after a final state is ignored.
REFUND_ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    RefundStatus.PENDING: {RefundStatus.SUCCEEDED, RefundStatus.FAILED},
    RefundStatus.SUCCEEDED: set(),
    RefundStatus.FAILED: set(),
}


class Refund(TimeStampedModel):
    """Money given back through the provider, against one succeeded payment attempt.

    Pending until the provider's webhook says succeeded or failed. The provider call is
    durable: `submitted_at` is null until the provider accepted the request, and beat
    resubmits pending refunds whose after-commit call was lost (like charge requests).
    A refund without lines is an amount-only refund.
    """

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="refunds")
    attempt = models.ForeignKey(PaymentAttempt, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=200)
    restock = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    provider = models.CharField(max_length=32, default="simulated")
    provider_reference = models.CharField(max_length=64, unique=True)
    # The provider's own id for the refund when it assigns one (Stripe's re_...).
    provider_refund_id = models.CharField(max_length=100, blank=True)
    failure_reason = models.CharField(max_length=200, blank=True)
    # Staff cancelled a paid order: on success the order ends cancelled, not refunded.
    cancels_order = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "submitted_at"], name="refund_status_submitted_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=RefundStatus.values), name="refund_status_valid"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="refund_currency_iso"),
            models.CheckConstraint(condition=~Q(reason=""), name="refund_has_reason"),
            models.CheckConstraint(
                condition=(Q(status="pending") & Q(succeeded_at__isnull=True) & Q(failed_at__isnull=True))
                | (Q(status="succeeded") & Q(succeeded_at__isnull=False) & Q(failed_at__isnull=True))
                | (Q(status="failed") & Q(succeeded_at__isnull=True) & Q(failed_at__isnull=False)),
                name="refund_final_iff_completed",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund {self.provider_reference} {self.amount} {self.currency} {self.status}"


class RefundLine(models.Model):
    """Units of one order line given back (gross amount, tax included)."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey("orders.OrderLine", on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="refund_line_quantity_positive"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="refund_line_amount_non_negative"),
            models.UniqueConstraint(fields=["refund", "order_line"], name="refund_line_unique_order_line"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x line {self.order_line_id}"


class WebhookEvent(models.Model):
    """Every verified provider event, once (webhook-id is unique): the dedupe record.

    Deliveries whose signature does not verify are refused before anything is stored
    (they are logged), so `signature_valid` is true for every row: it records the check
    that admitted the event. `changed_state` says whether applying it changed anything.
    """

    webhook_id = models.CharField(max_length=100, unique=True)
    event_type = models.CharField(max_length=40)
    provider = models.CharField(max_length=32, default="simulated")
    provider_reference = models.CharField(max_length=100, db_index=True)
    attempt = models.ForeignKey(
        PaymentAttempt, null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events"
    )
    refund = models.ForeignKey(
        "payments.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events"
    )
    payload = models.JSONField()
    signature_valid = models.BooleanField(default=True)
    changed_state = models.BooleanField(default=False)
    outcome = models.CharField(max_length=200, blank=True)
    event_created_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.webhook_id} {self.event_type}"


class DeliveryStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    DELIVERED = "delivered", "Delivered"
    ABANDONED = "abandoned", "Abandoned (retries exhausted)"


class SimulatedDelivery(models.Model):
    """The simulated provider's own storage: one webhook it owes the shop.

    Like an outside provider's, it survives anything that happens to the shop's workers or
    broker: the Celery message that sends it is only a kick, and beat re-kicks scheduled
    deliveries whose time has passed. The steps of an attempt's script are delivered in
    order: step k+1 is stored when step k was delivered. Staff read tries and the last error
    in the admin (a webhook URL that nothing answers shows up here first).
    """

    attempt = models.ForeignKey(PaymentAttempt, on_delete=models.PROTECT, related_name="simulated_deliveries")
    # Set for a refund's script (the attempt is then the refunded payment's).
    refund = models.ForeignKey(
        Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="simulated_deliveries"
    )
    script = models.CharField(max_length=32)
    step = models.PositiveSmallIntegerField()
    event_id = models.CharField(max_length=120)
    event_type = models.CharField(max_length=40)
    url = models.CharField(max_length=500)
    started_at = models.DateTimeField()  # the script's start: event timestamps derive from it
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.SCHEDULED)
    tries = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_tried_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["attempt_id", "step"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="simdelivery_due_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "step"], condition=Q(refund__isnull=True), name="simdelivery_attempt_step_unique"
            ),
            models.UniqueConstraint(
                fields=["refund", "step"], condition=Q(refund__isnull=False), name="simdelivery_refund_step_unique"
            ),
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values), name="simdelivery_status_valid"),
            models.CheckConstraint(
                condition=Q(status="delivered", delivered_at__isnull=False)
                | (~Q(status="delivered") & Q(delivered_at__isnull=True)),
                name="simdelivery_delivered_iff_delivered_at",
            ),
        ]
        verbose_name = "simulated provider delivery"
        verbose_name_plural = "simulated provider deliveries"

    def __str__(self) -> str:
        return f"{self.event_id} {self.status}"
