from typing import Any

from django.conf import settings
from rest_framework import serializers

from orders.models import Order
from orders.selectors import order_payment_status


class AddressInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", help_text="ISO 3166-1 alpha-2 code.")

    def validate_country(self, value: str) -> str:
        return value.upper()


class CartItemInput(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=settings.CART_MAX_QUANTITY)


class CartQuantityInput(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1, max_value=settings.CART_MAX_QUANTITY)


class CartLineOutput(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField(source="product.sku")
    name = serializers.CharField(source="product.name")
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(source="product.price", max_digits=12, decimal_places=2)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)
    available = serializers.SerializerMethodField()

    def get_available(self, line: Any) -> int:
        stock = line.product.stock
        return int(stock.on_hand - stock.reserved)


class CartOutput(serializers.Serializer):
    id = serializers.IntegerField()
    currency = serializers.CharField()
    lines = CartLineOutput(many=True)
    item_count = serializers.IntegerField()
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2)
    discount = serializers.DecimalField(max_digits=12, decimal_places=2)
    shipping = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)


class CheckoutInput(serializers.Serializer):
    shipping_address = AddressInput()
    coupon = serializers.CharField(required=False, allow_blank=True, max_length=40, default="")


class OrderLineOutput(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = serializers.DecimalField(max_digits=5, decimal_places=4)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)


class InvoiceSummaryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    invoice_number = serializers.IntegerField(source="number", allow_null=True)
    series = serializers.CharField()
    status = serializers.CharField()


class OrderOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    currency = serializers.CharField()
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2)
    discount = serializers.DecimalField(max_digits=12, decimal_places=2)
    shipping = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    coupon = serializers.CharField(source="coupon_code")
    shipping_address = serializers.DictField(child=serializers.CharField())
    lines = OrderLineOutput(many=True)
    reservation_expires_at = serializers.DateTimeField(allow_null=True)
    payment_status = serializers.SerializerMethodField()
    invoice = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    placed_at = serializers.DateTimeField(allow_null=True)

    def get_payment_status(self, order: Order) -> str:
        return order_payment_status(order=order)

    def get_invoice(self, order: Order) -> dict[str, Any] | None:
        invoice = getattr(order, "invoice", None)
        return InvoiceSummaryOutput(invoice).data if invoice is not None else None
