from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from common.models import TimeStampedModel


class Category(models.Model):
    """A shelf of the storefront; `position` orders the category links."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(TimeStampedModel):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    # The uploaded picture and the catalog-sized copy generated from it (inventory.images).
    image = models.ImageField(upload_to="products/", blank=True)
    thumbnail = models.ImageField(upload_to="products/thumbs/", blank=True, editable=False)
    image_alt = models.CharField(max_length=200, blank=True, help_text="Describe the picture for screen readers.")
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    currency = models.CharField(max_length=3, default="EUR")
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.2000"))
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_non_negative"),
            models.CheckConstraint(condition=Q(tax_rate__gte=0) & Q(tax_rate__lt=1), name="product_tax_rate_range"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="product_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Stock(models.Model):
    """Units on hand and units held by active reservations. Available = on_hand - reserved."""

    product = models.OneToOneField(Product, on_delete=models.CASCADE, primary_key=True, related_name="stock")
    on_hand = models.PositiveIntegerField(default=0)
    reserved = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "stock"
        constraints = [
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_non_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_non_negative"),
            models.CheckConstraint(condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_le_on_hand"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.on_hand} on hand, {self.reserved} reserved"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class ReservationStatus(models.TextChoices):
    ACTIVE = "active"
    COMMITTED = "committed"
    RELEASED = "released"


class Reservation(TimeStampedModel):
    order_line = models.ForeignKey("orders.OrderLine", on_delete=models.PROTECT, related_name="reservations")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ReservationStatus.choices, default=ReservationStatus.ACTIVE)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["product_id"]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status="active"), name="reservation_active_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="reservation_quantity_positive"),
            models.UniqueConstraint(fields=["order_line"], name="reservation_one_per_order_line"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id} ({self.status})"
