from django.contrib import admin

from inventory.models import Product, Reservation, Stock


class StockInline(admin.StackedInline):
    model = Stock
    can_delete = False
    fields = ("on_hand", "reserved")
    readonly_fields = ("reserved",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price", "currency", "on_hand", "reserved", "available", "is_active")
    list_filter = ("is_active", "currency")
    search_fields = ("sku", "name")
    inlines = [StockInline]
    list_select_related = ("stock",)

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
