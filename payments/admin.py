from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from orders.admin import OrderAdmin, OrderLineInline, StatusChangeInline
from orders.models import Order
from payments.models import DeliveryStatus, PaymentAttempt, SimulatedDelivery, WebhookEvent
from payments.providers.stripe import NAME as STRIPE
from payments.providers.stripe import stripe_dashboard_url, stripe_references


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


class SimulatedDeliveryInline(admin.TabularInline):
    """What the simulated provider still owes the shop for this attempt, and how it went."""

    model = SimulatedDelivery
    extra = 0
    can_delete = False
    verbose_name_plural = "provider webhook deliveries"
    fields = ("step", "event_type", "status", "tries", "last_tried_at", "next_attempt_at", "last_error", "url")
    readonly_fields = fields
    ordering = ("step",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class OrderPaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    extra = 0
    can_delete = False
    fields = ("provider_reference", "amount", "currency", "payment_method", "status", "failure_reason",
              "refund_required", "refund_reason", "created_at", "completed_at")  # fmt: skip
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# The order admin is the orders app's; payments adds the order's attempts to it (orders
# never imports payments).
admin.site.unregister(Order)


@admin.register(Order)
class OrderWithPaymentsAdmin(OrderAdmin):
    inlines = [OrderLineInline, OrderPaymentAttemptInline, StatusChangeInline]


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
    inlines = [SimulatedDeliveryInline, WebhookEventInline]
    fields = (
        "order_link", "amount", "currency", "provider", "provider_reference", "stripe_links", "payment_method",
        "status", "failure_code", "failure_reason", "refund_required", "refund_reason", "redirect_url",
        "charge_requested_at", "charge_submitted_at", "completed_at", "created_at", "updated_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="order", ordering="order_id")
    def order_link(self, obj: PaymentAttempt) -> str:
        return _order_link(obj.order_id)

    @admin.display(description="Stripe references")
    def stripe_links(self, obj: PaymentAttempt) -> str:
        """Checkout Session, PaymentIntents, refunds and events, linked to the Stripe dashboard."""
        if obj.provider != STRIPE:
            return "—"
        refs = stripe_references(attempt=obj)
        groups = [
            ("Checkout Session", refs.checkout_sessions),
            ("PaymentIntent", refs.payment_intents),
            ("Refund", refs.refunds),
            ("Event", refs.events),
        ]
        rows = [(label, stripe_dashboard_url(i), i) for label, ids in groups for i in ids]
        if not rows:
            return "—"
        return format_html_join(mark_safe("<br>"), '{}: <a href="{}" target="_blank" rel="noopener">{}</a>', rows)


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


class DeliveryStateFilter(admin.SimpleListFilter):
    title = "delivery state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("failing", "Failing (scheduled, tried before)"), *DeliveryStatus.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SimulatedDelivery]) -> QuerySet[SimulatedDelivery]:
        if self.value() == "failing":
            return queryset.filter(status=DeliveryStatus.SCHEDULED, tries__gt=0)
        if self.value() in DeliveryStatus.values:
            return queryset.filter(status=self.value())
        return queryset


@admin.register(SimulatedDelivery)
class SimulatedDeliveryAdmin(ReadOnlyAdmin):
    """The simulated provider's outgoing webhooks: a delivery that keeps failing (the shop's
    webhook URL unreachable or refusing it) shows its tries and last error here."""

    list_display = (
        "id", "attempt_link", "event_type", "status", "tries", "last_status_code", "last_error",
        "next_attempt_at", "delivered_at", "url",
    )  # fmt: skip
    list_filter = (DeliveryStateFilter, "event_type", "created_at")
    search_fields = ("=attempt__id", "event_id", "attempt__provider_reference")
    list_select_related = ("attempt",)
    fields = (
        "attempt_link", "script", "step", "event_id", "event_type", "status", "tries", "last_tried_at",
        "next_attempt_at", "last_status_code", "last_error", "delivered_at", "url", "started_at", "created_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="attempt", ordering="attempt_id")
    def attempt_link(self, obj: SimulatedDelivery) -> str:
        url = reverse("admin:payments_paymentattempt_change", args=[obj.attempt_id])
        return format_html('<a href="{}">{}</a>', url, obj.attempt_id)
