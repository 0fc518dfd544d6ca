from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
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
    # Retry state in the row (group-commit numbering): not due before this (null: due now).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When numbering was last enqueued (creation, retry-now, sweeper): the sweeper's clock.
    enqueued_at = models.DateTimeField(default=timezone.now)
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    discount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    shipping = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    tax = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    # The document (snapshotted when the invoice is created, never edited afterwards).
    seller_details = models.JSONField(default=dict, blank=True)
    billing_details = models.JSONField(default=dict, blank=True)
    # [{"rate": "0.2000", "net": "10.00", "tax": "2.00"}, ...]: decimal strings, exact.
    tax_breakdown = models.JSONField(default=list, blank=True)
    # Payment terms: due `due_days` after the issue date (0: due on issue, the storefront).
    due_days = models.PositiveSmallIntegerField(default=0)
    notes = models.TextField(blank=True)
    allow_partial = models.BooleanField(default=False)
    # Collection: flags set by the overdue task, the void service and the e-mail service.
    overdue_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "last_attempt_at"], name="invoice_status_attempt_idx"),
            models.Index(fields=["created_at", "id"], condition=Q(status="pending"), name="invoice_pending_due_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["series", "number"], name="invoice_number_unique_in_series"),
            # A number exactly when issued (or voided after issue): never a pending number.
            models.CheckConstraint(
                condition=(Q(status="pending") & Q(number__isnull=True) & Q(issued_at__isnull=True))
                | (Q(status__in=["issued", "void"]) & Q(number__isnull=False) & Q(issued_at__isnull=False)),
                name="invoice_number_iff_issued",
            ),
            models.CheckConstraint(condition=Q(number__isnull=True) | Q(number__gte=1), name="invoice_number_positive"),
            models.CheckConstraint(condition=Q(due_days__lte=3650), name="invoice_due_days_range"),
            # Only an issued (numbered) invoice can be overdue or void.
            models.CheckConstraint(
                condition=Q(overdue_at__isnull=True) | ~Q(status="pending"), name="invoice_overdue_only_if_issued"
            ),
        ]

    def __str__(self) -> str:
        return self.display_number

    @property
    def display_number(self) -> str:
        return self.number_display or "Pending"

    @property
    def number_display(self) -> str | None:
        """The one identity of a numbered invoice ("INV-3"): page, list, PDF and API."""
        return f"{self.series}-{self.number}" if self.number is not None else None

    @property
    def issue_date(self) -> date | None:
        return self.issued_at.date() if self.issued_at else None

    @property
    def due_date(self) -> date | None:
        """Derived, not stored: the issue date (set by the numbering worker) plus the terms."""
        return self.issued_at.date() + timedelta(days=self.due_days) if self.issued_at else None

    @property
    def state(self) -> str:
        """The lifecycle state of INVOICE_TRANSITIONS: the status column plus the overdue flag."""
        if self.status == InvoiceStatus.ISSUED and self.overdue_at is not None:
            return InvoiceState.OVERDUE
        return str(self.status)

    @property
    def tax_rows(self) -> list[dict[str, Decimal]]:
        return [{k: Decimal(v) for k, v in row.items()} for row in self.tax_breakdown]


class InvoiceState(models.TextChoices):
    """What people see of an invoice's life. `overdue` is not a status value: it is the
    `overdue_at` flag on an issued invoice (the number constraint only knows pending/issued/void)."""

    PENDING = "pending", "Pending"
    ISSUED = "issued", "Issued"
    OVERDUE = "overdue", "Overdue"
    VOID = "void", "Void"


# The invoice state machine: every allowed move, and who makes it. Anything else is refused
# (IllegalTransition, nothing changed). Guards on top: void only with nothing paid and no
# payment processing; overdue only past the due date with an amount still due.
INVOICE_TRANSITIONS: dict[str, set[str]] = {
    InvoiceState.PENDING: {InvoiceState.ISSUED},  # the numbering worker (invoice_assign_number)
    InvoiceState.ISSUED: {InvoiceState.OVERDUE, InvoiceState.VOID},  # daily overdue task; staff
    InvoiceState.OVERDUE: {InvoiceState.VOID},  # staff
    InvoiceState.VOID: set(),
}


class InvoiceStatusChange(models.Model):
    """The recorded history of INVOICE_TRANSITIONS beyond issue (issue is recorded by the
    numbering transaction's `invoice.issued` event and `issued_at`, keeping the hot path short)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="status_changes")
    from_state = models.CharField(max_length=10, choices=InvoiceState.choices)
    to_state = models.CharField(max_length=10, choices=InvoiceState.choices)
    reason = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.from_state} -> {self.to_state}"


class InvoiceDocument(models.Model):
    """The rendered PDF, stored in the database (web and worker share no disk in the
    compose stack). `fingerprint` names what it shows (status, amount paid): a stale one is
    rendered again on demand."""

    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, primary_key=True, related_name="document")
    pdf = models.BinaryField()
    fingerprint = models.CharField(max_length=100)
    page_count = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    rendered_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"PDF of invoice {self.invoice_id} ({self.size} bytes)"


class BillingProfile(models.Model):
    """A customer's billing details and payment terms (staff billing); optional."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_profile")
    company = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=200, blank=True)
    line1 = models.CharField(max_length=200, blank=True)
    line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True)
    vat_id = models.CharField(max_length=40, blank=True)
    email = models.EmailField(blank=True)
    # Overrides INVOICE_PAYMENT_TERMS_DAYS for this customer's invoices.
    payment_terms_days = models.PositiveSmallIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(payment_terms_days__isnull=True) | Q(payment_terms_days__lte=3650),
                name="billing_profile_terms_range",
            )
        ]

    def __str__(self) -> str:
        return f"billing profile of {self.user_id}"


class SalesReport(models.Model):
    """One day's sales report: built, stored and e-mailed once (`sent_at`)."""

    date = models.DateField(unique=True)
    data = models.JSONField(default=dict)
    generated_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"sales report {self.date}"


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


# --- Credit notes ------------------------------------------------------------------------------


class CreditNoteStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ISSUED = "issued", "Issued"


class CreditNote(TimeStampedModel):
    """The document that corrects an issued invoice for a succeeded refund (an invoice is
    never edited). One per refund; numbered in its own gapless series (CREDIT_NOTE_SERIES,
    "CN") by the same group-commit worker as invoices (invoicing.services.NUMBERED_KINDS).
    Its content is snapshotted at creation and never edited afterwards."""

    refund = models.OneToOneField("payments.Refund", on_delete=models.PROTECT, related_name="credit_note")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="credit_notes")
    series = models.CharField(max_length=32)
    number = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=CreditNoteStatus.choices, default=CreditNoteStatus.PENDING)
    issued_at = models.DateTimeField(null=True, blank=True)
    # Numbering retry state, as on Invoice.
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(default=timezone.now)
    currency = models.CharField(max_length=3)
    # Amounts credited (positive numbers): total = subtotal + tax = the refund's amount.
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    tax = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    reason = models.CharField(max_length=200, blank=True)
    seller_details = models.JSONField(default=dict, blank=True)
    billing_details = models.JSONField(default=dict, blank=True)
    # [{"rate": "0.2000", "net": "10.00", "tax": "2.00"}, ...] as on Invoice.
    tax_breakdown = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at", "id"], condition=Q(status="pending"), name="credit_note_pending_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["series", "number"], name="credit_note_number_unique_in_series"),
            models.CheckConstraint(
                condition=(Q(status="pending") & Q(number__isnull=True) & Q(issued_at__isnull=True))
                | (Q(status="issued") & Q(number__isnull=False) & Q(issued_at__isnull=False)),
                name="credit_note_number_iff_issued",
            ),
            models.CheckConstraint(
                condition=Q(number__isnull=True) | Q(number__gte=1), name="credit_note_number_positive"
            ),
            models.CheckConstraint(condition=Q(total__gt=0), name="credit_note_total_positive"),
            models.CheckConstraint(condition=Q(total=F("subtotal") + F("tax")), name="credit_note_total_adds_up"),
        ]

    def __str__(self) -> str:
        return self.display_number

    @property
    def display_number(self) -> str:
        return self.number_display or "Pending"

    @property
    def number_display(self) -> str | None:
        """ "CN-3" once numbered: page, list, PDF and API."""
        return f"{self.series}-{self.number}" if self.number is not None else None

    @property
    def issue_date(self) -> date | None:
        return self.issued_at.date() if self.issued_at else None

    @property
    def tax_rows(self) -> list[dict[str, Decimal]]:
        return [{k: Decimal(v) for k, v in row.items()} for row in self.tax_breakdown]


class CreditNoteLine(models.Model):
    """A credited line: what was refunded of an order line (quantity, gross amount), or for
    an amount-only refund one line per tax rate of the invoice (quantity 1)."""

    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)  # net, as on the invoice
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)  # net credited
    amount = models.DecimalField(max_digits=12, decimal_places=2)  # gross credited, tax included

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="credit_note_line_quantity_positive"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="credit_note_line_amount_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.description}"


class CreditNoteDocument(models.Model):
    """The rendered PDF of an issued credit note, stored like InvoiceDocument."""

    credit_note = models.OneToOneField(CreditNote, on_delete=models.CASCADE, primary_key=True, related_name="document")
    pdf = models.BinaryField()
    fingerprint = models.CharField(max_length=100)
    page_count = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    rendered_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"PDF of credit note {self.credit_note_id} ({self.size} bytes)"
