from django.contrib import admin
from django.utils.html import format_html

from inventory.models import Reservation
from orders.models import Order, OrderLine, OrderStatusChange
from outbox.models import OutboxEvent
from payments.models import PaymentAttempt


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("sku", "name", "quantity", "unit_price", "tax_rate", "line_total")
    readonly_fields = fields


class ReservationInline(ReadOnlyInline):
    model = Reservation
    fk_name = "order_line"
    fields = ("product", "quantity", "status", "expires_at")
    readonly_fields = fields


class PaymentAttemptInline(ReadOnlyInline):
    model = PaymentAttempt
    fields = ("provider_reference", "amount", "currency", "payment_method", "status", "failure_reason",
              "refund_required", "refund_reason", "created_at", "completed_at")  # fmt: skip
    readonly_fields = fields
    show_change_link = True


class StatusChangeInline(ReadOnlyInline):
    model = OrderStatusChange
    fields = ("created_at", "from_status", "to_status", "reason", "actor")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "status", "total", "currency", "invoice_number", "created_at")
    list_filter = ("status", "currency", "created_at")
    search_fields = ("id", "user__username", "user__email", "lines__sku")
    date_hierarchy = "created_at"
    list_select_related = ("user", "invoice")
    inlines = [OrderLineInline, PaymentAttemptInline, StatusChangeInline]
    readonly_fields = (
        "user", "status", "currency", "subtotal", "discount", "shipping", "tax", "total", "coupon_code",
        "shipping_address", "reservation_expires_at", "placed_at", "created_at", "updated_at",
        "reservations", "outbox_events",
    )  # fmt: skip

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="invoice")
    def invoice_number(self, obj: Order) -> str:
        invoice = getattr(obj, "invoice", None)
        return invoice.display_number if invoice is not None else "—"

    @admin.display(description="reservations")
    def reservations(self, obj: Order) -> str:
        rows = Reservation.objects.filter(order_line__order=obj).select_related("product")
        if not rows:
            return "—"
        return format_html(
            "<br>".join(["{} × {} — {} (expires {})"] * len(rows)),
            *[v for r in rows for v in (r.quantity, r.product.sku, r.status, r.expires_at)],
        )

    @admin.display(description="outbox events")
    def outbox_events(self, obj: Order) -> str:
        events = OutboxEvent.objects.filter(aggregate_type="orders.order", aggregate_id=str(obj.pk))
        if not events:
            return "—"
        return format_html(
            "<br>".join(["{} at {} (published {})"] * len(events)),
            *[v for e in events for v in (e.event_type, e.created_at, e.published_at or "not yet")],
        )
