from rest_framework import serializers

from payments.models import PaymentAttempt


class PaymentAttemptOutput(serializers.Serializer):
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


class PaymentCreateInput(serializers.Serializer):
    payment_method = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        help_text="A test method of the simulated provider (pm_card_success, pm_card_declined, pm_card_slow, "
        "pm_card_flaky) to charge at once; omit it to get a redirect_url to the hosted payment page.",
    )
