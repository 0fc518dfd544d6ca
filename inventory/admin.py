from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from common.admin_display import PercentRateField
from common.audit import audit_record
from common.errors import ApplicationError
from inventory.images import IMAGE_MAX_BYTES
from inventory.models import Category, Product, Reservation, Stock
from inventory.services import product_image_set, stock_set_on_hand


class ProductAdminForm(forms.ModelForm):
    """Stock on hand is edited here but written by the stock service (a conditional
    UPDATE of `on_hand` only), so a save can never overwrite `reserved` with a stale value."""

    on_hand = forms.IntegerField(min_value=0, initial=0, help_text="Units physically in stock.")
    tax_rate = PercentRateField(label="Tax rate (%)", help_text="VAT in percent: 20 for 20 %.")

    class Meta:
        model = Product
        fields = (
            "sku",
            "name",
            "description",
            "category",
            "price",
            "currency",
            "tax_rate",
            "is_active",
            "image",
            "image_alt",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.image:
            self.initial["image"] = None  # no picture: nothing to show or clear (not an empty file)
        if self.instance.pk:
            stock = Stock.objects.filter(product=self.instance).first()
            self.fields["on_hand"].initial = stock.on_hand if stock else 0
            if stock:
                self.fields["on_hand"].help_text = f"Units physically in stock. Reserved now: {stock.reserved}."

    def clean_image(self) -> Any:
        image = self.cleaned_data.get("image")
        if image and getattr(image, "size", 0) > IMAGE_MAX_BYTES:
            raise forms.ValidationError(f"The picture is larger than {IMAGE_MAX_BYTES // (1024 * 1024)} MB.")
        return image

    def clean_on_hand(self) -> int:
        on_hand: int = self.cleaned_data["on_hand"]
        if self.instance.pk:
            reserved = Stock.objects.filter(product=self.instance).values_list("reserved", flat=True).first() or 0
            if on_hand < reserved:
                raise forms.ValidationError(f"{reserved} units are reserved; on hand cannot go below that.")
        return on_hand


class StockLevelFilter(admin.SimpleListFilter):
    """Low stock: LOW_STOCK_THRESHOLD or fewer units available (on hand - reserved); the
    admin cockpit links here (flows/dashboard.py)."""

    title = "stock"
    parameter_name = "stock"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("low", f"Low ({settings.LOW_STOCK_THRESHOLD} or fewer available)"), ("out", "Out of stock")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Product]) -> QuerySet[Product]:
        free = F("stock__on_hand") - F("stock__reserved")
        if self.value() == "low":
            return queryset.alias(free=free).filter(free__lte=settings.LOW_STOCK_THRESHOLD)
        if self.value() == "out":
            return queryset.alias(free=free).filter(free__lte=0)
        return queryset


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "position")
    list_editable = ("position",)
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = (
        "thumb",
        "sku",
        "name",
        "category",
        "price",
        "currency",
        "on_hand",
        "reserved",
        "available",
        "is_active",
    )
    list_display_links = ("sku",)
    list_filter = ("is_active", StockLevelFilter, "category", "currency")
    search_fields = ("sku", "name")
    list_select_related = ("stock", "category")
    readonly_fields = ("picture_preview",)

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        new_image = form.cleaned_data.get("image") if "image" in form.changed_data else None
        cleared = "image" in form.changed_data and form.cleaned_data.get("image") is False
        if "image" in form.changed_data:  # the image service writes the file and its thumbnail
            obj.image = form.initial.get("image") or None
        super().save_model(request, obj, form, change)
        if cleared:
            product_image_set(product=obj, image=None)
        elif new_image:
            product_image_set(product=obj, image=new_image)
        before = Stock.objects.filter(product_id=obj.pk).values_list("on_hand", flat=True).first()
        try:
            stock = stock_set_on_hand(product_id=obj.pk, on_hand=form.cleaned_data["on_hand"])
        except ApplicationError as exc:  # a checkout reserved more in between: tell staff
            self.message_user(request, f"Stock not changed: {exc.message}", level="error")
            return
        if before != stock.on_hand:
            audit_record(
                actor=request.user, action="stock.edit", target=obj, details={"on_hand": [before, stock.on_hand]}
            )

    @admin.display(description="Catalog thumbnail")
    def picture_preview(self, obj: Product) -> str:
        if not obj.thumbnail:
            return "No picture yet: upload one above; the catalog thumbnail is made from it."
        return format_html(
            '<img src="{}" alt="{}" width="160" height="160" class="admin-preview">',
            obj.thumbnail.url,
            obj.image_alt or obj.name,
        )

    @admin.display(description="Picture")
    def thumb(self, obj: Product) -> str:
        if not obj.thumbnail:
            return "—"
        return format_html('<img src="{}" alt="" width="40" height="40" class="admin-thumb">', obj.thumbnail.url)

    @admin.display(ordering="stock__on_hand")
    def on_hand(self, obj: Product) -> int:
        return obj.stock.on_hand

    @admin.display(ordering="stock__reserved")
    def reserved(self, obj: Product) -> int:
        return obj.stock.reserved

    @admin.display()
    def available(self, obj: Product) -> int:
        return obj.stock.available


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ("id", "product", "quantity", "status", "expires_at", "order_link")
    list_filter = ("status",)
    search_fields = ("product__sku", "order_line__order__id")
    readonly_fields = ("order_line", "product", "quantity", "status", "expires_at", "created_at", "updated_at")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="order")
    def order_link(self, obj: Reservation) -> int:
        return obj.order_line.order_id
