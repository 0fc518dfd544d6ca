from collections.abc import Callable
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
from django.utils.html import format_html, format_html_join

from common.admin_display import PercentRateField, party_block, rate_percent
from common.audit import audit_record
from common.errors import ApplicationError
from inventory.models import Reservation
from orders.models import DraftOrder, DraftOrderLine, DraftOrderStatus, Order, OrderLine, OrderStatusChange
from orders.selectors import draft_order_view
from orders.services import (
    DraftLineSpec,
    draft_order_create,
    draft_order_delete,
    draft_order_set_lines,
    draft_order_update,
    order_deliver,
    order_ship,
    order_start_processing,
)
from outbox.models import OutboxEvent


class ShipForm(forms.Form):
    carrier = forms.CharField(max_length=100)
    tracking_number = forms.CharField(max_length=100)
    tracking_url = forms.URLField(max_length=500, required=False, assume_scheme="https")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("sku", "name", "quantity", "unit_price", "rate", "line_total")
    readonly_fields = fields

    @admin.display(description="tax rate")
    def rate(self, obj: OrderLine) -> str:
        return rate_percent(obj.tax_rate)


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
    # payments/admin.py registers this admin again with the order's payment attempts inline.
    inlines = [OrderLineInline, StatusChangeInline]
    readonly_fields = (
        "user", "status", "lifecycle", "currency", "subtotal", "discount", "shipping", "tax", "total",
        "coupon_code", "email", "ship_to", "reservation_expires_at", "placed_at", "shipping_carrier",
        "tracking_number", "tracking_url", "shipped_at", "delivered_at", "created_at", "updated_at",
        "reservations", "outbox_events",
    )  # fmt: skip
    exclude = ("shipping_address",)  # shown as ship_to (read-only), never a form field
    actions = ["mark_processing", "mark_delivered", "cancel_selected"]
    # The cancel flow (flows.order_cancel.order_cancel_by): flows/admin.py registers this
    # admin again with it (a paid order is cancelled by refunding it, payments' work).
    cancel_order: Callable[..., Order] | None = None
    # Links shown under "lifecycle": (label, admin URL name) added by the apps above.
    extra_order_links: tuple[tuple[str, str], ...] = ()

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        # Nothing on the order page is a form field (status moves through the actions and
        # the Ship / Refund pages), so it offers no Save buttons.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    @admin.display(description="shipping address")
    def ship_to(self, obj: Order) -> str:
        return party_block(obj.shipping_address)  # an address block, not the stored JSON

    def get_urls(self):  # type: ignore[no-untyped-def]
        return [
            path(
                "<int:order_id>/ship/",
                self.admin_site.admin_view(self.ship_view),
                name="orders_order_ship",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="lifecycle")
    def lifecycle(self, obj: Order) -> str:
        links = [("Ship…", reverse("admin:orders_order_ship", args=[obj.pk]))]
        links += [(label, reverse(name, args=[obj.pk])) for label, name in self.extra_order_links]
        return format_html_join(" · ", '<a class="button" href="{}">{}</a>', [(url, label) for label, url in links])

    def ship_view(self, request: HttpRequest, order_id: int) -> HttpResponse:
        """Staff: record a shipment (carrier, tracking) and move the order to shipped."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            return redirect("admin:orders_order_changelist")
        form = ShipForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            assert isinstance(request.user, User)
            try:
                order_ship(order_id=order.pk, actor=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                self.message_user(request, f"Not shipped: {exc.message}", messages.ERROR)
            else:
                audit_record(actor=request.user, action="order.ship", target=order, details=form.cleaned_data)
                self.message_user(request, f"Order #{order.pk} shipped.", messages.SUCCESS)
                return redirect("admin:orders_order_change", order.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "order": order,
            "form": form,
            "title": f"Ship order #{order.pk}",
        }
        return TemplateResponse(request, "admin/orders/order/ship.html", context)

    def _transition_selected(
        self, request: HttpRequest, queryset: QuerySet[Order], *, service: Callable[..., Order], label: str
    ) -> None:
        assert isinstance(request.user, User)
        done, refused = [], []
        for order in queryset.order_by("id"):
            try:
                moved = service(order_id=order.pk, actor=request.user)
            except ApplicationError as exc:
                refused.append(f"#{order.pk}: {exc.message}")
                continue
            audit_record(
                actor=request.user,
                action=f"order.{label}",
                target=order,
                details={"from": order.status, "to": moved.status},
            )
            done.append(f"#{order.pk}")
        if done:
            self.message_user(request, f"{label.capitalize()}: {', '.join(done)}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused), messages.ERROR)

    @admin.action(description="Mark processing (paid orders)", permissions=["change"])
    def mark_processing(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        self._transition_selected(request, queryset, service=order_start_processing, label="processing")

    @admin.action(description="Mark delivered (shipped orders)", permissions=["change"])
    def mark_delivered(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        self._transition_selected(request, queryset, service=order_deliver, label="delivered")

    @admin.action(description="Cancel (unpaid; paid orders are refunded in full)", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        cancel = self.cancel_order
        assert cancel is not None, "flows/admin.py registers this admin with cancel_order"

        def service(*, order_id: int, actor: User) -> Order:
            return cancel(
                order_id=order_id,
                actor=actor,
                staff=True,
                reason="cancelled by staff (admin)",
                may_refund=actor.has_perm("payments.add_refund"),
            )

        self._transition_selected(request, queryset, service=service, label="cancelled")

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


# --- Draft orders (staff billing) --------------------------------------------------------------


class DraftOrderLineForm(forms.ModelForm):
    """A catalog line (product + quantity; name, price and tax rate from the catalog unless
    given) or a free text line (description, unit price, tax rate)."""

    tax_rate = PercentRateField(required=False, label="Tax rate (%)", help_text="20 for 20 %")

    class Meta:
        model = DraftOrderLine
        fields = ("product", "description", "quantity", "unit_price", "tax_rate")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("description", "unit_price", "tax_rate"):
            self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("product") and not data.get("DELETE"):
            for name in ("description", "unit_price", "tax_rate"):
                if data.get(name) in (None, ""):
                    self.add_error(name, "Required for a line without a product.")
        return data


class DraftOrderLineInline(admin.TabularInline):
    model = DraftOrderLine
    form = DraftOrderLineForm
    extra = 1
    autocomplete_fields = ("product",)


class DraftOrderForm(forms.ModelForm):
    class Meta:
        model = DraftOrder
        fields = ("customer", "currency", "due_days", "allow_partial", "shipping", "coupon_code", "notes")


@admin.register(DraftOrder)
class DraftOrderAdmin(admin.ModelAdmin):
    """Staff billing: create a draft for a customer, add lines, review the totals, finalize.
    Every write goes through orders.services (draft_order_*), not the ORM; finalizing is the
    cross-app flow flows.draft_finalize, handed in by flows/admin.py."""

    finalize_draft: Callable[..., DraftOrder] | None = None

    form = DraftOrderForm
    list_display = (
        "id",
        "customer",
        "status",
        "line_count",
        "total_display",
        "order_link",
        "invoice_link",
        "created_at",
    )
    list_filter = ("status", "currency", "created_at")
    search_fields = ("=id", "customer__username", "customer__email", "lines__sku")
    list_select_related = ("customer", "order__invoice")
    autocomplete_fields = ("customer",)
    inlines = [DraftOrderLineInline]
    actions = ["finalize_selected"]
    change_form_template = "admin/orders/draftorder/change_form.html"
    readonly_fields = ("totals", "order_link", "invoice_link", "finalized_at", "finalized_by", "created_by")

    def get_queryset(self, request: HttpRequest) -> QuerySet[DraftOrder]:
        return super().get_queryset(request).prefetch_related("lines")

    def get_fieldsets(self, request: HttpRequest, obj: DraftOrder | None = None) -> Any:
        main = ("customer", "currency", "due_days", "allow_partial", "shipping", "coupon_code", "notes")
        if obj is None:
            return [(None, {"fields": main})]
        return [
            (None, {"fields": main}),
            ("Totals", {"fields": ("totals",)}),
            ("Placed", {"fields": ("order_link", "invoice_link", "finalized_at", "finalized_by", "created_by")}),
        ]

    def has_change_permission(self, request: HttpRequest, obj: DraftOrder | None = None) -> bool:
        if obj is not None and obj.status != DraftOrderStatus.DRAFT:
            return False  # finalized: the order and its invoice are the record now
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: DraftOrder | None = None) -> bool:
        if obj is not None and obj.status != DraftOrderStatus.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    # --- writes through the services

    def save_model(self, request: HttpRequest, obj: DraftOrder, form: Any, change: bool) -> None:
        values = {name: form.cleaned_data[name] for name in DraftOrderForm.Meta.fields}
        actor = request.user if isinstance(request.user, User) else None
        if change:
            draft_order_update(draft_id=obj.pk, actor=actor, **values)
            return
        coupon = values.pop("coupon_code")
        created = draft_order_create(lines=[], actor=actor, coupon=coupon, **values)
        obj.pk = created.pk
        obj.created_at = created.created_at

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        specs = []
        for line_form in formset.forms:
            data = getattr(line_form, "cleaned_data", None)
            if not data or data.get("DELETE"):
                continue
            product = data.get("product")
            specs.append(
                DraftLineSpec(
                    quantity=data["quantity"],
                    sku=product.sku if product else "",
                    description=data.get("description") or "",
                    unit_price=data.get("unit_price"),
                    tax_rate=data.get("tax_rate"),
                )
            )
        # What the admin's change message reads (formset.save() would set them; the service writes instead).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        try:
            draft_order_set_lines(draft_id=form.instance.pk, lines=specs)
        except ApplicationError as exc:
            self.message_user(request, f"Lines not saved: {exc.message} {exc.details}", messages.ERROR)

    def delete_model(self, request: HttpRequest, obj: DraftOrder) -> None:
        draft_order_delete(draft_id=obj.pk)

    # --- finalize

    def get_urls(self):  # type: ignore[no-untyped-def]
        custom = [
            path(
                "<int:draft_id>/finalize/",
                self.admin_site.admin_view(self.finalize_view),
                name="orders_draftorder_finalize",
            )
        ]
        return custom + super().get_urls()

    def finalize_view(self, request: HttpRequest, draft_id: int) -> HttpResponse:
        if request.method != "POST":
            return redirect("admin:orders_draftorder_change", draft_id)
        if not self.has_change_permission(request):
            raise PermissionDenied
        self._finalize(request, draft_id)
        return redirect("admin:orders_draftorder_change", draft_id)

    def _finalize(self, request: HttpRequest, draft_id: int) -> bool:
        actor = request.user if isinstance(request.user, User) else None
        try:
            assert self.finalize_draft is not None, "flows/admin.py registers this admin with finalize_draft"
            draft = self.finalize_draft(draft_id=draft_id, actor=actor)
        except ApplicationError as exc:
            self.message_user(request, f"Draft order #{draft_id} not finalized: {exc.message}", messages.ERROR)
            return False
        self.message_user(
            request,
            format_html(
                "Draft order #{} finalized: order <a href='{}'>#{}</a> placed, its invoice is being issued.",
                draft.pk,
                reverse("admin:orders_order_change", args=[draft.order_id]),
                draft.order_id,
            ),
            messages.SUCCESS,
        )
        return True

    @admin.action(description="Finalize selected draft orders (reserve stock, place, invoice)")
    def finalize_selected(self, request: HttpRequest, queryset: QuerySet[DraftOrder]) -> None:
        for draft_id in queryset.filter(status=DraftOrderStatus.DRAFT).values_list("pk", flat=True):
            self._finalize(request, draft_id)

    # --- display

    @admin.display(description="lines")
    def line_count(self, obj: DraftOrder) -> int:
        return len(obj.lines.all())

    @admin.display(description="total")
    def total_display(self, obj: DraftOrder) -> str:
        try:
            return f"{draft_order_view(draft=obj).totals.total} {obj.currency}"
        except ApplicationError:
            return "—"

    @admin.display(description="totals")
    def totals(self, obj: DraftOrder) -> str:
        if obj.pk is None:
            return "—"
        try:
            view = draft_order_view(draft=obj)
        except ApplicationError as exc:
            return exc.message
        t, cur = view.totals, obj.currency
        rows = [("Subtotal", t.subtotal), ("Discount", -t.discount), ("Shipping", t.shipping)]
        rows += [(f"VAT {rate_percent(row['rate'])} on {row['net']}", row["tax"]) for row in view.tax_by_rate]
        rows += [("Total", t.total)]
        return format_html(
            '<table class="draft-totals" data-testid="draft-totals">{}</table>',
            format_html_join(
                "",
                '<tr><th>{}</th><td class="amount" data-label="{}">{} {}</td></tr>',
                ((label, label, amount, cur) for label, amount in rows),
            ),
        )

    @admin.display(description="order")
    def order_link(self, obj: DraftOrder) -> str:
        if obj.order_id is None:
            return "—"
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:orders_order_change", args=[obj.order_id]), obj.order_id
        )

    @admin.display(description="invoice")
    def invoice_link(self, obj: DraftOrder) -> str:
        invoice = getattr(obj.order, "invoice", None) if obj.order_id else None
        if invoice is None:
            return "—"
        return format_html(
            '<a href="{}" data-testid="draft-invoice-link">{}</a> ({})',
            reverse("admin:invoicing_invoice_change", args=[invoice.pk]),
            invoice.display_number,
            invoice.get_status_display(),
        )
