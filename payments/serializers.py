from rest_framework import serializers


class PaymentAttemptOutput(serializers.Serializer):
    id = serializers.IntegerField()
    order_id = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.CharField()
    provider = serializers.CharField()
    provider_reference = serializers.CharField()
    payment_method = serializers.CharField()
    failure_reason = serializers.CharField()
    refund_required = serializers.BooleanField()
    redirect_url = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
