from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.serializers import Serializer
from invoicing.models import CreditNote, Invoice
from invoicing.selectors import (
    CreditNoteRef,
    invoice_amount_due,
    invoice_amount_paid,
    invoice_amount_refunded,
    invoice_credit_notes,
    invoice_events,
    invoice_is_overdue,
    invoice_payment_status,
)
from orders.serializers import InvoiceLineOutput, TaxRowOutput


class OrderInvoiceOutput(Serializer):
    id = serializers.IntegerField()
    invoice_number = serializers.IntegerField(source="number", allow_null=True)
    series = serializers.CharField()
    display_number = serializers.CharField(
        source="number_display", allow_null=True, help_text='"INV-3" once numbered, null while pending.'
    )
    order_id = serializers.IntegerField()
    status = serializers.CharField()
    issued_at = serializers.DateTimeField(allow_null=True)


class OrderInvoiceEnvelope(Serializer):
    invoice = OrderInvoiceOutput()


class InvoiceCreditNoteOutput(Serializer):
    """One of an invoice's credit notes, in short."""

    id = serializers.IntegerField()
    credit_note_number = serializers.IntegerField(source="number", allow_null=True)
    series = serializers.CharField()
    display_number = serializers.CharField(
        source="number_display", allow_null=True, help_text='"CN-3" once numbered, null while pending.'
    )
    status = serializers.ChoiceField(choices=["pending", "issued"])
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    issued_at = serializers.DateTimeField(allow_null=True)
    pdf_url = serializers.SerializerMethodField()

    def get_pdf_url(self, note: CreditNoteRef) -> str | None:
        return reverse("api-credit-note-pdf", args=[note.id]) if note.number is not None else None


class InvoiceOutput(Serializer):
    id = serializers.IntegerField()
    invoice_number = serializers.IntegerField(source="number", allow_null=True)
    series = serializers.CharField()
    display_number = serializers.CharField(
        source="number_display", allow_null=True, help_text='"INV-3" once numbered, null while pending.'
    )
    status = serializers.CharField()
    order_id = serializers.IntegerField()
    currency = serializers.CharField()
    lines = InvoiceLineOutput(many=True)
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2)
    discount = serializers.DecimalField(max_digits=12, decimal_places=2)
    shipping = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    amount_paid = serializers.SerializerMethodField()
    amount_due = serializers.SerializerMethodField()
    payment_status = serializers.SerializerMethodField()
    issue_date = serializers.SerializerMethodField()
    due_date = serializers.SerializerMethodField()
    issued_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    overdue = serializers.SerializerMethodField()
    overdue_since = serializers.DateTimeField(source="overdue_at", allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True)
    void_reason = serializers.CharField()
    due_days = serializers.IntegerField()
    allow_partial = serializers.BooleanField()
    notes = serializers.CharField()
    tax_breakdown = TaxRowOutput(many=True, source="tax_rows")
    seller = serializers.DictField(source="seller_details", child=serializers.CharField())
    buyer = serializers.DictField(source="billing_details", child=serializers.CharField())
    pdf_url = serializers.SerializerMethodField()
    amount_refunded = serializers.SerializerMethodField(
        help_text="What the invoice's credit notes give back (refunds that succeeded)."
    )
    credit_notes = serializers.SerializerMethodField()

    def get_amount_refunded(self, invoice: Invoice) -> str:
        return str(invoice_amount_refunded(invoice=invoice))

    @extend_schema_field(InvoiceCreditNoteOutput(many=True))
    def get_credit_notes(self, invoice: Invoice) -> list[dict[str, Any]]:
        return list(InvoiceCreditNoteOutput(invoice_credit_notes(invoice=invoice), many=True).data)

    def get_amount_paid(self, invoice: Invoice) -> str:
        return str(invoice_amount_paid(invoice=invoice))

    def get_amount_due(self, invoice: Invoice) -> str:
        return str(invoice_amount_due(invoice=invoice))

    def get_payment_status(self, invoice: Invoice) -> str:
        return invoice_payment_status(invoice=invoice)

    def get_issue_date(self, invoice: Invoice) -> str | None:
        return invoice.issue_date.isoformat() if invoice.issue_date else None

    def get_due_date(self, invoice: Invoice) -> str | None:
        # Issue date + payment terms (0 days for storefront orders: paid before issue).
        return invoice.due_date.isoformat() if invoice.due_date else None

    def get_overdue(self, invoice: Invoice) -> bool:
        return invoice_is_overdue(invoice=invoice)

    def get_pdf_url(self, invoice: Invoice) -> str | None:
        return reverse("api-invoice-pdf", args=[invoice.pk]) if invoice.number is not None else None


class InvoiceEventOutput(Serializer):
    id = serializers.UUIDField()
    event_type = serializers.CharField()
    payload = serializers.JSONField()
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)


class InvoiceDetailOutput(InvoiceOutput):
    payment_attempts = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    def get_payment_attempts(self, invoice: Invoice) -> list[dict[str, Any]]:
        from payments.selectors import payment_attempts_for_order
        from payments.serializers import PaymentAttemptOutput

        return list(PaymentAttemptOutput(payment_attempts_for_order(order_id=invoice.order_id), many=True).data)

    def get_events(self, invoice: Invoice) -> list[dict[str, Any]]:
        return list(InvoiceEventOutput(invoice_events(invoice=invoice), many=True).data)


class InvoiceVoidInput(Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class PaymentLinkOutput(Serializer):
    url = serializers.URLField()
    expires_at = serializers.DateTimeField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    invoice_id = serializers.IntegerField()


class CreditNoteLineOutput(Serializer):
    sku = serializers.CharField()
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="Net, as on the invoice.")
    tax_rate = serializers.DecimalField(max_digits=5, decimal_places=4)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="Net credited.")
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="Gross credited, tax included.")


class CreditNoteOutput(Serializer):
    id = serializers.IntegerField()
    credit_note_number = serializers.IntegerField(source="number", allow_null=True)
    series = serializers.CharField()
    display_number = serializers.CharField(
        source="number_display", allow_null=True, help_text='"CN-3" once numbered, null while pending.'
    )
    status = serializers.ChoiceField(choices=["pending", "issued"])
    invoice_id = serializers.IntegerField()
    invoice_display_number = serializers.CharField(source="invoice.number_display", allow_null=True)
    order_id = serializers.IntegerField()
    refund_id = serializers.IntegerField()
    currency = serializers.CharField()
    lines = CreditNoteLineOutput(many=True)
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="Net credited.")
    tax = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="The refund's amount.")
    tax_breakdown = TaxRowOutput(many=True, source="tax_rows")
    reason = serializers.CharField()
    seller = serializers.DictField(source="seller_details", child=serializers.CharField())
    buyer = serializers.DictField(source="billing_details", child=serializers.CharField())
    issue_date = serializers.SerializerMethodField()
    issued_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    pdf_url = serializers.SerializerMethodField()

    def get_issue_date(self, note: CreditNote) -> str | None:
        return note.issue_date.isoformat() if note.issue_date else None

    def get_pdf_url(self, note: CreditNote) -> str | None:
        return reverse("api-credit-note-pdf", args=[note.pk]) if note.number is not None else None
