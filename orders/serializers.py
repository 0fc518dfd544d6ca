from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.serializers import Serializer
from orders.models import Order
from orders.selectors import order_payment_status


# Lines and tax rows as invoices and draft orders show them (invoicing reuses these).
class InvoiceLineOutput(Serializer):
    sku = serializers.CharField()
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = serializers.DecimalField(max_digits=5, decimal_places=4)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)


class TaxRowOutput(Serializer):
    rate = serializers.DecimalField(max_digits=5, decimal_places=4)
    net = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax = serializers.DecimalField(max_digits=12, decimal_places=2)


class AddressInput(Serializer):
    name = serializers.CharField(max_length=120)
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", help_text="ISO 3166-1 alpha-2 code.")

    def validate_country(self, value: str) -> str:
        return value.upper()


class CartItemInput(Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=settings.CART_MAX_QUANTITY)


class CartQuantityInput(Serializer):
    quantity = serializers.IntegerField(min_value=1, max_value=settings.CART_MAX_QUANTITY)


class CartLineOutput(Serializer):
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


class CartOutput(Serializer):
    id = serializers.IntegerField()
    currency = serializers.CharField()
    lines = CartLineOutput(many=True)
    item_count = serializers.IntegerField()
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2)
    discount = serializers.DecimalField(max_digits=12, decimal_places=2)
    shipping = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)


class CheckoutInput(Serializer):
    shipping_address = AddressInput()
    coupon = serializers.CharField(required=False, allow_blank=True, max_length=40, default="")
    email = serializers.EmailField(
        required=False,
        allow_blank=True,
        max_length=254,
        default="",
        help_text="Where the order's e-mails go; the account's address when omitted.",
    )


class OrderLineOutput(Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = serializers.DecimalField(max_digits=5, decimal_places=4)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)


class InvoiceSummaryOutput(Serializer):
    id = serializers.IntegerField()
    invoice_number = serializers.IntegerField(source="number", allow_null=True)
    series = serializers.CharField()
    display_number = serializers.CharField(
        source="number_display", allow_null=True, help_text='"INV-3" once numbered, null while pending.'
    )
    status = serializers.CharField()


class ShipmentOutput(Serializer):
    carrier = serializers.CharField(source="shipping_carrier")
    tracking_number = serializers.CharField()
    tracking_url = serializers.CharField(allow_blank=True)
    shipped_at = serializers.DateTimeField()


class ShipInput(Serializer):
    carrier = serializers.CharField(max_length=100)
    tracking_number = serializers.CharField(max_length=100)
    tracking_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")


class CancelInput(Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class OrderOutput(Serializer):
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
    email = serializers.CharField(help_text="Where the order's e-mails go.")
    lines = OrderLineOutput(many=True)
    reservation_expires_at = serializers.DateTimeField(allow_null=True)
    payment_status = serializers.SerializerMethodField()
    invoice = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    placed_at = serializers.DateTimeField(allow_null=True)
    shipment = serializers.SerializerMethodField()
    delivered_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(ShipmentOutput(allow_null=True))
    def get_shipment(self, order: Order) -> dict[str, Any] | None:
        return ShipmentOutput(order).data if order.shipped_at is not None else None

    def get_payment_status(self, order: Order) -> str:
        return order_payment_status(order=order)

    def get_invoice(self, order: Order) -> dict[str, Any] | None:
        invoice = getattr(order, "invoice", None)
        return InvoiceSummaryOutput(invoice).data if invoice is not None else None


# --- Draft orders (staff billing) --------------------------------------------------------------


class DraftLineInput(Serializer):
    """A catalog line `{"sku", "quantity"}` (optionally overriding unit_price, tax_rate or
    description) or a free text line `{"description", "quantity", "unit_price", "tax_rate"}`."""

    sku = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    description = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0"), required=False)
    tax_rate = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        min_value=Decimal("0"),
        max_value=Decimal("0.9999"),
        required=False,
        help_text="A fraction: 0.20 is 20%.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("sku"):
            missing = {
                name: ["Required for a line without a SKU."]
                for name in ("description", "unit_price", "tax_rate")
                if attrs.get(name) in (None, "")
            }
            if missing:
                raise serializers.ValidationError(missing)
        return attrs


class DraftOrderInput(Serializer):
    customer = serializers.CharField(max_length=150, help_text="The customer's username.")
    lines = DraftLineInput(many=True, allow_empty=False)
    due_days = serializers.IntegerField(
        min_value=0, max_value=3650, required=False, allow_null=True, default=None,
        help_text="Payment terms in days; default: the customer's billing profile, else INVOICE_PAYMENT_TERMS_DAYS.",
    )  # fmt: skip
    allow_partial = serializers.BooleanField(required=False, default=False)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    shipping = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0"), required=False, default=Decimal("0.00")
    )
    coupon = serializers.CharField(required=False, allow_blank=True, max_length=40, default="")
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, default="", allow_blank=True)

    def validate_customer(self, value: str) -> User:
        customer = User.objects.filter(username=value, is_active=True).first()
        if customer is None:
            raise serializers.ValidationError(f"No active customer with username {value!r}.")
        return customer


class DraftOrderLineOutput(InvoiceLineOutput):
    """A draft's line: an invoice line with its id (to edit it)."""

    id = serializers.IntegerField()


class DraftOrderOutput(Serializer):
    id = serializers.IntegerField(source="draft.id")
    status = serializers.CharField(source="draft.status")
    customer = serializers.CharField(source="draft.customer.username")
    currency = serializers.CharField(source="draft.currency")
    lines = DraftOrderLineOutput(many=True, source="draft.lines.all")
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2, source="totals.subtotal")
    discount = serializers.DecimalField(max_digits=12, decimal_places=2, source="totals.discount")
    shipping = serializers.DecimalField(max_digits=12, decimal_places=2, source="totals.shipping")
    tax = serializers.DecimalField(max_digits=12, decimal_places=2, source="totals.tax")
    tax_by_rate = TaxRowOutput(many=True)
    total = serializers.DecimalField(max_digits=12, decimal_places=2, source="totals.total")
    coupon = serializers.CharField(source="draft.coupon_code")
    due_days = serializers.IntegerField(source="draft.due_days", allow_null=True)
    allow_partial = serializers.BooleanField(source="draft.allow_partial")
    notes = serializers.CharField(source="draft.notes")
    order_id = serializers.IntegerField(source="draft.order_id", allow_null=True)
    invoice = InvoiceSummaryOutput(allow_null=True)
    created_at = serializers.DateTimeField(source="draft.created_at")
    finalized_at = serializers.DateTimeField(source="draft.finalized_at", allow_null=True)
