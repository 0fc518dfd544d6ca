from typing import Any

from rest_framework import serializers

from invoicing.models import Invoice
from invoicing.selectors import invoice_amount_paid, invoice_events, invoice_payment_status


class InvoiceLineOutput(serializers.Serializer):
    sku = serializers.CharField()
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = serializers.DecimalField(max_digits=5, decimal_places=4)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)


class OrderInvoiceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    invoice_number = serializers.IntegerField(source="number", allow_null=True)
    series = serializers.CharField()
    order_id = serializers.IntegerField()
    status = serializers.CharField()
    issued_at = serializers.DateTimeField(allow_null=True)


class OrderInvoiceEnvelope(serializers.Serializer):
    invoice = OrderInvoiceOutput()


class InvoiceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    invoice_number = serializers.IntegerField(source="number", allow_null=True)
    series = serializers.CharField()
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

    def get_amount_paid(self, invoice: Invoice) -> str:
        return str(invoice_amount_paid(invoice=invoice))

    def get_amount_due(self, invoice: Invoice) -> str:
        return str(invoice.total - invoice_amount_paid(invoice=invoice))

    def get_payment_status(self, invoice: Invoice) -> str:
        return invoice_payment_status(invoice=invoice)

    def get_issue_date(self, invoice: Invoice) -> str | None:
        return invoice.issued_at.date().isoformat() if invoice.issued_at else None

    def get_due_date(self, invoice: Invoice) -> str | None:
        # Storefront orders are paid before they are invoiced: due on issue.
        return invoice.issued_at.date().isoformat() if invoice.issued_at else None


class InvoiceEventOutput(serializers.Serializer):
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
