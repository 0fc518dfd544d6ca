from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.models import TimeStampedModel


class InvoiceSequence(models.Model):
    """The gapless counter of one series. `next_value` is taken inside the numbering
    transaction, so a rolled-back attempt gives its number back."""

    series = models.CharField(max_length=32, primary_key=True)
    next_value = models.PositiveBigIntegerField(default=1)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(next_value__gte=1), name="sequence_next_value_positive")]

    def __str__(self) -> str:
        return f"{self.series} (next {self.next_value})"


class InvoiceStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ISSUED = "issued", "Issued"
    VOID = "void", "Void"


class Invoice(TimeStampedModel):
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="invoice")
    series = models.CharField(max_length=32)
    number = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.PENDING)
    issued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # When numbering was last enqueued (creation, retry-now, sweeper): the sweeper's clock.
    enqueued_at = models.DateTimeField(default=timezone.now)
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    discount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    shipping = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    tax = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "last_attempt_at"], name="invoice_status_attempt_idx")]
        constraints = [
            models.UniqueConstraint(fields=["series", "number"], name="invoice_number_unique_in_series"),
            # A number exactly when issued (or voided after issue): never a pending number.
            models.CheckConstraint(
                condition=(Q(status="pending") & Q(number__isnull=True) & Q(issued_at__isnull=True))
                | (Q(status__in=["issued", "void"]) & Q(number__isnull=False) & Q(issued_at__isnull=False)),
                name="invoice_number_iff_issued",
            ),
            models.CheckConstraint(condition=Q(number__isnull=True) | Q(number__gte=1), name="invoice_number_positive"),
        ]

    def __str__(self) -> str:
        return self.display_number

    @property
    def display_number(self) -> str:
        return f"{self.series}-{self.number}" if self.number is not None else "Pending"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.description}"
