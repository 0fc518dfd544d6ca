from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from common.audit import audit_record
from common.errors import ApplicationError
from common.forms import IdempotentFormMixin
from common.idempotency import idempotent_page
from orders.admin import OrderAdmin, OrderLineInline, StatusChangeInline
from orders.models import Order
from payments.models import DeliveryStatus, PaymentAttempt, Refund, RefundLine, SimulatedDelivery, WebhookEvent
from payments.providers.stripe import NAME as STRIPE
from payments.providers.stripe import stripe_dashboard_url, stripe_references
from payments.refunds import (
    RefundLineSpec,
    order_refundable_amount,
    refund_create,
    refund_create_for_flagged_attempt,
)


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


class OrderRefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = ("provider_reference", "amount", "currency", "status", "reason", "restock", "cancels_order",
              "failure_reason", "requested_by", "created_at", "succeeded_at", "failed_at")  # fmt: skip
    readonly_fields = fields
    show_change_link = True
    ordering = ("created_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RefundForm(IdempotentFormMixin):
    """One quantity field per order line with a SKU (`line_<id>`), or an amount only."""

    amount = forms.DecimalField(
        max_digits=12, decimal_places=2, required=False, help_text="Amount-only refund (leave the lines at 0)."
    )
    reason = forms.CharField(max_length=200)
    restock = forms.BooleanField(required=False, initial=True, help_text="Put refunded units back in stock.")

    def __init__(self, *args: Any, order: Order, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order_lines = [line for line in order.lines.all() if line.sku]
        for line in self.order_lines:
            self.fields[f"line_{line.pk}"] = forms.IntegerField(
                min_value=0, max_value=line.quantity, required=False, initial=0,
                label=f"{line.sku}: {line.name} (bought {line.quantity})",
            )  # fmt: skip

    def refund_lines(self) -> list[RefundLineSpec]:
        return [
            RefundLineSpec(sku=line.sku, quantity=self.cleaned_data[f"line_{line.pk}"])
            for line in self.order_lines
            if self.cleaned_data.get(f"line_{line.pk}")
        ]


# The order admin is the orders app's; payments adds the order's attempts and refunds, and
# the refund page (orders never imports payments).
admin.site.unregister(Order)


@admin.register(Order)
class OrderWithPaymentsAdmin(OrderAdmin):
    inlines = [OrderLineInline, OrderPaymentAttemptInline, OrderRefundInline, StatusChangeInline]
    extra_order_links = (("Refund…", "admin:orders_order_refund"),)

    def get_urls(self):  # type: ignore[no-untyped-def]
        return [
            path(
                "<int:order_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="orders_order_refund",
            ),
            *super().get_urls(),
        ]

    def refund_view(self, request: HttpRequest, order_id: int) -> HttpResponse:
        """Staff: refund units or an amount of a paid order through the provider."""
        if not request.user.has_perm("payments.add_refund"):
            raise PermissionDenied
        order = Order.objects.filter(pk=order_id).prefetch_related("lines").first()
        if order is None:
            return redirect("admin:orders_order_changelist")
        if request.method != "POST":
            form = RefundForm(order=order, initial={"idempotency_key": RefundForm.new_key()})
        else:
            form = RefundForm(request.POST, order=order)
            if form.is_valid():
                done = self._refund(request, order=order, form=form)
                if done:
                    return redirect("admin:orders_order_change", order.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "order": order,
            "form": form,
            "refundable": order_refundable_amount(order_id=order.pk),
            "title": f"Refund order #{order.pk}",
        }
        return TemplateResponse(request, "admin/orders/order/refund.html", context)

    def _refund(self, request: HttpRequest, *, order: Order, form: RefundForm) -> bool:
        data = form.cleaned_data
        payload = {k: str(v) for k, v in data.items() if k != "idempotency_key"}
        key = data["idempotency_key"]
        with idempotent_page(request=request, scope="admin-refund", key=key, payload=payload) as page:
            if page.in_progress or page.replay is not None:
                self.message_user(request, "This refund was already sent.", messages.INFO)
                return True
            if page.refusal:
                self.message_user(request, page.refusal, messages.ERROR)
                return False
            assert isinstance(request.user, User)
            try:
                refund = refund_create(
                    order_id=order.pk,
                    reason=data["reason"],
                    restock=data["restock"],
                    amount=data["amount"],
                    lines=form.refund_lines() or None,
                    actor=request.user,
                )
            except ApplicationError as exc:
                self.message_user(request, f"Not refunded: {exc.message}", messages.ERROR)
                return False
            audit_record(
                actor=request.user,
                action="refund.create",
                target=refund,
                details={"order_id": order.pk, "amount": str(refund.amount), "restock": refund.restock},
            )
            page.complete(body={"refund_id": refund.pk})
        self.message_user(
            request, f"Refund of {refund.amount} {refund.currency} requested; pending until the provider confirms."
        )
        return True


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
    actions = ["refund_now"]

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.add_refund")

    @admin.action(description="Refund now (payments flagged refund required)", permissions=["refund"])
    def refund_now(self, request: HttpRequest, queryset: QuerySet[PaymentAttempt]) -> None:
        """The money a late or wrong-amount success took goes back through the provider."""
        assert isinstance(request.user, User)
        done, refused = [], []
        for attempt in queryset.order_by("id"):
            try:
                refund = refund_create_for_flagged_attempt(attempt_id=attempt.pk, actor=request.user)
            except ApplicationError as exc:
                refused.append(f"{attempt.provider_reference}: {exc.message}")
                continue
            audit_record(
                actor=request.user,
                action="refund.create",
                target=refund,
                details={"attempt_id": attempt.pk, "amount": str(refund.amount), "refund_required": True},
            )
            done.append(attempt.provider_reference)
        if done:
            self.message_user(request, f"Refund requested: {', '.join(done)}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not refunded: " + "; ".join(refused), messages.ERROR)

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


class RefundLineInline(admin.TabularInline):
    model = RefundLine
    extra = 0
    can_delete = False
    fields = ("order_line", "quantity", "amount")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RefundWebhookEventInline(WebhookEventInline):
    fk_name = "refund"


class RefundDeliveryInline(SimulatedDeliveryInline):
    fk_name = "refund"


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    """Refunds are created from the order (Refund…, API) or a flagged payment (Refund now)."""

    # Fits 1280 px: the amount with its currency, the status with when it was reached, restock and
    # cancel as one "effects" column (each has its filter on the right).
    list_display = (
        "id", "order_link", "provider_reference", "amount_display", "status_display", "effects", "reason",
        "requested_by", "created_at",
    )  # fmt: skip
    list_filter = ("status", "provider", "restock", "cancels_order", "created_at")
    search_fields = ("=id", "=order__id", "provider_reference", "provider_refund_id", "order__user__username")
    date_hierarchy = "created_at"
    list_select_related = ("requested_by",)
    inlines = [RefundLineInline, RefundDeliveryInline, RefundWebhookEventInline]
    fields = (
        "order_link", "attempt", "amount", "currency", "status", "reason", "restock", "cancels_order",
        "provider", "provider_reference", "provider_refund_id", "failure_reason", "requested_by",
        "created_at", "submitted_at", "succeeded_at", "failed_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="order", ordering="order_id")
    def order_link(self, obj: Refund) -> str:
        return _order_link(obj.order_id)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return f"{obj.amount} {obj.currency}"

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Refund) -> str:
        at = obj.succeeded_at or obj.failed_at or obj.submitted_at
        when = f"{timezone.localtime(at):%Y-%m-%d %H:%M}" if at else "not submitted yet"
        return format_html("{}<br>{}", obj.get_status_display(), when)

    @admin.display(description="effects")
    def effects(self, obj: Refund) -> str:
        done = [label for label, on in (("restock", obj.restock), ("cancels order", obj.cancels_order)) if on]
        return ", ".join(done) or "—"
