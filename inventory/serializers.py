from rest_framework import serializers

from common.serializers import Serializer


class ProductOutput(Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    tax_rate = serializers.DecimalField(max_digits=5, decimal_places=4)
    available = serializers.IntegerField(help_text="Units on hand minus units reserved.")
