from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from common.audit import audit_record
from invoicing.models import Invoice, InvoiceLine, InvoiceSequence, InvoiceStatus
from invoicing.selectors import invoice_gap_audit
from invoicing.services import invoice_retry_now


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ("sku", "description", "quantity", "unit_price", "tax_rate", "line_total")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = (
        "id", "number_display", "order_link", "status", "total", "currency",
        "attempts", "short_error", "last_attempt_at", "age",
    )  # fmt: skip
    list_filter = ("status", "series", "created_at")
    search_fields = ("=number", "=order__id", "order__user__username")
    list_select_related = ("order",)
    date_hierarchy = "created_at"
    actions = ["retry_now"]
    inlines = [InvoiceLineInline]
    readonly_fields = (
        "order", "series", "number", "status", "issued_at", "attempts", "last_error", "last_attempt_at",
        "enqueued_at", "currency", "subtotal", "discount", "shipping", "tax", "total", "created_at", "updated_at",
    )  # fmt: skip
    change_list_template = "admin/invoicing/invoice/change_list.html"

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # invoices are legal records: never deleted

    @admin.display(description="number", ordering="number")
    def number_display(self, obj: Invoice) -> str:
        return obj.display_number

    @admin.display(description="order", ordering="order_id")
    def order_link(self, obj: Invoice) -> str:
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:orders_order_change", args=[obj.order_id]), obj.order_id
        )

    @admin.display(description="last error")
    def short_error(self, obj: Invoice) -> str:
        return (obj.last_error[:60] + "…") if len(obj.last_error) > 60 else obj.last_error

    @admin.display(description="age", ordering="created_at")
    def age(self, obj: Invoice) -> str:
        return timesince(obj.created_at, timezone.now())

    @admin.action(description="Retry numbering now (pending invoices)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        pending = list(queryset.filter(status=InvoiceStatus.PENDING))
        for invoice in pending:
            invoice_retry_now(invoice_id=invoice.pk)
            audit_record(actor=request.user, action="invoice.retry_now", target=invoice, details={})
        skipped = queryset.count() - len(pending)
        self.message_user(
            request,
            f"Enqueued {len(pending)} pending invoice(s); skipped {skipped} already numbered.",
            messages.SUCCESS if pending else messages.WARNING,
        )

    def get_urls(self):  # type: ignore[no-untyped-def]
        custom = [
            path("gap-audit/", self.admin_site.admin_view(self.gap_audit_view), name="invoicing_invoice_gap_audit")
        ]
        return custom + super().get_urls()

    def gap_audit_view(self, request: HttpRequest) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Invoice number gap audit",
            "opts": self.model._meta,
            "report": invoice_gap_audit(),
            "pending_count": Invoice.objects.filter(status=InvoiceStatus.PENDING).count(),
        }
        return TemplateResponse(request, "admin/invoicing/gap_audit.html", context)


@admin.register(InvoiceSequence)
class InvoiceSequenceAdmin(admin.ModelAdmin):
    list_display = ("series", "next_value")
    readonly_fields = ("series", "next_value")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
