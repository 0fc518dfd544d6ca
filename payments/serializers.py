from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.serializers import Serializer
from payments.models import PaymentAttempt, Refund


class PaymentAttemptOutput(Serializer):
    """The design's payment attempt: {"id", "order_id", "amount", "currency", "status",
    "provider", "provider_reference", "failure_reason", "redirect_url"} and a few more."""

    id = serializers.IntegerField()
    order_id = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.CharField()
    provider = serializers.CharField()
    provider_reference = serializers.CharField()
    payment_method = serializers.CharField()
    failure_reason = serializers.SerializerMethodField()
    redirect_url = serializers.SerializerMethodField()
    refund_required = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)

    def get_failure_reason(self, attempt: PaymentAttempt) -> str | None:
        return attempt.failure_reason or None

    def get_redirect_url(self, attempt: PaymentAttempt) -> str | None:
        """The hosted payment page while it waits for the shopper; else null."""
        if not attempt.awaiting_customer or not attempt.redirect_url:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(attempt.redirect_url) if request is not None else attempt.redirect_url


class PaymentCreateInput(Serializer):
    payment_method = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        help_text="A test method of the simulated provider (pm_card_success, pm_card_declined, pm_card_slow, "
        "pm_card_flaky) to charge at once; omit it to get a redirect_url to the hosted payment page.",
    )


class RefundCreditNoteOutput(Serializer):
    id = serializers.IntegerField()
    credit_note_number = serializers.IntegerField(source="number", allow_null=True)
    status = serializers.CharField()


class RefundLineOutput(Serializer):
    sku = serializers.CharField(source="order_line.sku")
    name = serializers.CharField(source="order_line.name")
    quantity = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)


class RefundOutput(Serializer):
    """The design's refund: {"id", "order_id", "amount", "currency", "status", "reason",
    "restock", "provider_reference", "credit_note", "created_at"} and a few more."""

    id = serializers.IntegerField()
    order_id = serializers.IntegerField()
    attempt_id = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "succeeded", "failed"])
    reason = serializers.CharField()
    restock = serializers.BooleanField()
    provider_reference = serializers.CharField()
    failure_reason = serializers.CharField(allow_blank=True)
    cancels_order = serializers.BooleanField()
    lines = RefundLineOutput(many=True)
    credit_note = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    succeeded_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(RefundCreditNoteOutput(allow_null=True))
    def get_credit_note(self, refund: Refund) -> dict[str, Any] | None:
        # The credit note is invoicing's (above payments): read through the reverse relation.
        note = getattr(refund, "credit_note", None)
        return RefundCreditNoteOutput(note).data if note is not None else None


class RefundLineInput(Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)


class RefundCreateInput(Serializer):
    amount = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        required=False,
        min_value=Decimal("0.01"),
        coerce_to_string=True,
        help_text="Decimal string. Omit for the lines' total, or (no lines either) everything still refundable.",
    )
    lines = serializers.ListField(child=RefundLineInput(), required=False, allow_empty=False, max_length=200)
    reason = serializers.CharField(max_length=200)
    restock = serializers.BooleanField(default=False)
