from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from payments.models import PaymentAttempt, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Payments are written by services and provider events only; staff read them."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class WebhookEventInline(admin.TabularInline):
    model = WebhookEvent
    extra = 0
    can_delete = False
    fields = ("received_at", "webhook_id", "event_type", "signature_valid", "changed_state", "outcome")
    readonly_fields = fields
    ordering = ("received_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _order_link(order_id: int) -> str:
    return format_html('<a href="{}">#{}</a>', reverse("admin:orders_order_change", args=[order_id]), order_id)


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "order_link", "provider_reference", "amount", "currency", "status", "provider", "payment_method",
        "failure_reason", "refund_required", "created_at", "completed_at",
    )  # fmt: skip
    list_filter = ("status", "provider", "refund_required", "failure_code", "created_at")
    search_fields = ("=id", "=order__id", "provider_reference", "order__user__username")
    date_hierarchy = "created_at"
    inlines = [WebhookEventInline]
    fields = (
        "order_link", "amount", "currency", "provider", "provider_reference", "payment_method", "status",
        "failure_code", "failure_reason", "refund_required", "refund_reason", "redirect_url",
        "charge_requested_at", "completed_at", "created_at", "updated_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="order", ordering="order_id")
    def order_link(self, obj: PaymentAttempt) -> str:
        return _order_link(obj.order_id)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at", "webhook_id", "event_type", "provider_reference", "attempt_link",
        "signature_valid", "changed_state", "outcome",
    )  # fmt: skip
    list_filter = ("event_type", "changed_state", "signature_valid", "provider", "received_at")
    search_fields = ("webhook_id", "provider_reference")
    date_hierarchy = "received_at"
    list_select_related = ("attempt",)
    fields = (
        "webhook_id", "event_type", "provider", "provider_reference", "attempt_link", "signature_valid",
        "changed_state", "outcome", "event_created_at", "received_at", "payload",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="attempt", ordering="attempt_id")
    def attempt_link(self, obj: WebhookEvent) -> str:
        if obj.attempt_id is None:
            return "—"
        url = reverse("admin:payments_paymentattempt_change", args=[obj.attempt_id])
        return format_html('<a href="{}">{}</a>', url, obj.attempt_id)
