from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value

from common.models import TimeStampedModel


class Cart(TimeStampedModel):
    """A signed-in shopper's cart (user) or an anonymous one (session key); never both."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="cart"
    )
    session_key = models.CharField(max_length=40, null=True, blank=True, unique=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(session_key__isnull=True))
                | (Q(user__isnull=True) & Q(session_key__isnull=False)),
                name="cart_owned_by_user_xor_session",
            )
        ]

    def __str__(self) -> str:
        return f"cart {self.pk}"


class CartLine(TimeStampedModel):
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey("inventory.Product", on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["cart", "product"], name="cart_line_unique_product"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="cart_line_quantity_positive"),
        ]

    @property
    def line_total(self) -> Decimal:
        return self.product.price * self.quantity


_HALF_CENT = Value(Decimal("0.001"))
_TOTAL = F("subtotal") - F("discount") + F("shipping") + F("tax")
_LINE = F("unit_price") * F("quantity")


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", "Pending payment"
    PAID = "paid", "Paid"
    PROCESSING = "processing", "Processing"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


# The order state machine: every allowed move. Anything else is an IllegalTransition.
# Refunds: a partial refund may follow any paid state and repeat (partially_refunded ->
# partially_refunded records each one); the last refund makes it refunded. A paid order
# cancelled by staff is refunded in full and ends cancelled (paid|processing -> cancelled).
# Paid and not (partly) given back.
PAID_STATES = frozenset({OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED})
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    OrderStatus.PENDING_PAYMENT: {OrderStatus.PAID, OrderStatus.CANCELLED},
    OrderStatus.PAID: {
        OrderStatus.PROCESSING,
        OrderStatus.SHIPPED,
        OrderStatus.CANCELLED,
        OrderStatus.PARTIALLY_REFUNDED,
        OrderStatus.REFUNDED,
    },
    OrderStatus.PROCESSING: {
        OrderStatus.SHIPPED,
        OrderStatus.CANCELLED,
        OrderStatus.PARTIALLY_REFUNDED,
        OrderStatus.REFUNDED,
    },
    OrderStatus.SHIPPED: {OrderStatus.DELIVERED, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED},
    OrderStatus.DELIVERED: {OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED},
    # A partial refund before shipping (one item out of stock) does not stop the rest shipping.
    OrderStatus.PARTIALLY_REFUNDED: {
        OrderStatus.PROCESSING,
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
        OrderStatus.PARTIALLY_REFUNDED,
        OrderStatus.REFUNDED,
        OrderStatus.CANCELLED,
    },
    OrderStatus.CANCELLED: set(),
    OrderStatus.REFUNDED: set(),
}
# States in which money was taken and (part of it) may still be given back.
REFUNDABLE_STATES = frozenset({*PAID_STATES, OrderStatus.PARTIALLY_REFUNDED})


class Order(TimeStampedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT)
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    discount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    shipping = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    tax = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    coupon_code = models.CharField(max_length=40, blank=True)
    shipping_address = models.JSONField(default=dict)
    # Where this order's e-mails go (given at checkout; the account's address by default).
    email = models.EmailField(blank=True)
    reservation_expires_at = models.DateTimeField(null=True, blank=True)
    placed_at = models.DateTimeField(null=True, blank=True)
    shipping_carrier = models.CharField(max_length=100, blank=True)
    tracking_number = models.CharField(max_length=100, blank=True)
    tracking_url = models.URLField(max_length=500, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "reservation_expires_at"], name="order_status_expiry_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="order_status_valid"),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0) & Q(discount__gte=0) & Q(shipping__gte=0) & Q(tax__gte=0),
                name="order_amounts_non_negative",
            ),
            models.CheckConstraint(condition=Q(discount__lte=F("subtotal")), name="order_discount_le_subtotal"),
            # Within half a minor unit: exact on PostgreSQL's numeric, robust to SQLite's floats.
            models.CheckConstraint(
                condition=Q(total__range=(_TOTAL - _HALF_CENT, _TOTAL + _HALF_CENT)),
                name="order_total_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey("inventory.Product", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_line_quantity_positive"),
            models.CheckConstraint(
                condition=Q(line_total__range=(_LINE - _HALF_CENT, _LINE + _HALF_CENT)), name="order_line_total"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku or self.name}"


class OrderStatusChange(models.Model):
    """The recorded history of the state machine: one row per transition."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    reason = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"


# --- Draft orders (staff billing) --------------------------------------------------------------


class DraftOrderStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"


class DraftOrder(TimeStampedModel):
    """An order staff are preparing for a customer (B2B, net terms). Editable until
    finalized; finalizing reserves stock and places a real Order with its invoice."""

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="draft_orders")
    status = models.CharField(max_length=10, choices=DraftOrderStatus.choices, default=DraftOrderStatus.DRAFT)
    currency = models.CharField(max_length=3, default="EUR")
    shipping = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    coupon_code = models.CharField(max_length=40, blank=True)
    # Payment terms in days; null: the customer's billing profile, else INVOICE_PAYMENT_TERMS_DAYS.
    due_days = models.PositiveSmallIntegerField(null=True, blank=True)
    allow_partial = models.BooleanField(default=False, help_text="The customer may pay the invoice in parts.")
    notes = models.TextField(blank=True, help_text="Printed on the invoice.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    order = models.OneToOneField(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="draft")
    finalized_at = models.DateTimeField(null=True, blank=True)
    finalized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=DraftOrderStatus.values), name="draft_order_status_valid"),
            models.CheckConstraint(
                condition=(Q(status="draft") & Q(order__isnull=True) & Q(finalized_at__isnull=True))
                | (Q(status="finalized") & Q(order__isnull=False) & Q(finalized_at__isnull=False)),
                name="draft_order_finalized_iff_order",
            ),
            models.CheckConstraint(condition=Q(shipping__gte=0), name="draft_order_shipping_non_negative"),
            models.CheckConstraint(
                condition=Q(due_days__isnull=True) | Q(due_days__lte=3650), name="draft_order_due_days_range"
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="draft_order_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"Draft order #{self.pk}"


class DraftOrderLine(models.Model):
    """A catalog line (product set; SKU, name, price and rate copied when added) or a free
    text line (no product)."""

    draft = models.ForeignKey(DraftOrder, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey("inventory.Product", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="draft_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="draft_line_price_non_negative"),
            models.CheckConstraint(condition=Q(tax_rate__gte=0) & Q(tax_rate__lt=1), name="draft_line_tax_rate_range"),
            models.CheckConstraint(condition=~Q(description=""), name="draft_line_has_description"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku or self.description}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity
