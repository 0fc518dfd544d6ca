from datetime import date, timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from common.admin_display import party_block, rate_percent
from common.audit import audit_record
from common.errors import ApplicationError
from invoicing.charts import revenue_bar_chart
from invoicing.exports import invoices_csv_response
from invoicing.models import (
    BillingProfile,
    CreditNote,
    CreditNoteLine,
    CreditNoteStatus,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    InvoiceStatus,
    InvoiceStatusChange,
    SalesReport,
)
from invoicing.selectors import (
    document_kind_of_series,
    invoice_amount_due,
    invoice_amount_paid,
    invoice_amount_refunded,
    invoice_credit_notes,
    invoice_gap_audit,
    invoice_is_overdue,
    invoice_payment_status,
    invoices_with_amounts,
    sales_report_build,
    sales_revenue_by_day,
)
from invoicing.services import (
    credit_note_retry_now,
    invoice_payment_link_create,
    invoice_retry_now,
    invoice_send_email,
    invoice_void,
    sales_report_send,
)


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ("sku", "description", "quantity", "unit_price", "rate", "line_total")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="tax rate")
    def rate(self, obj: InvoiceLine) -> str:
        return rate_percent(obj.tax_rate)


class InvoiceStatusChangeInline(admin.TabularInline):
    model = InvoiceStatusChange
    extra = 0
    can_delete = False
    fields = ("created_at", "from_state", "to_state", "reason", "actor")
    readonly_fields = fields
    verbose_name_plural = "status changes (after issue)"

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


def short_error_cell(error: str, limit: int = 60) -> str:
    """A list cell: the error cut at `limit` characters, the whole text as its title (and on
    the change page, read-only "last error")."""
    if len(error) <= limit:
        return error
    return format_html('<span title="{}">{}…</span>', error, error[:limit].rstrip())


class DocumentAdminMixin:
    """What invoices and credit notes share in the admin: a document's page is view-only
    (no Save: it is never edited; staff act through its buttons, each a service), the
    parties as address blocks, and "Retry numbering now" for a pending one (a POST with
    CSRF, the model's change permission, audited: the list action's service)."""

    retry_action = ""  # the audit action
    retry_label = ""  # "invoice", "credit note"

    def retry_service(self, document_id: int) -> None:
        raise NotImplementedError

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        if obj is not None:
            return False  # the document's page: view-only
        return super().has_change_permission(request)  # type: ignore[misc]  # list actions, buttons

    @admin.display(description="seller")
    def seller(self, obj: Invoice | CreditNote) -> str:
        return party_block(obj.seller_details)

    @admin.display(description="billed to")
    def billed_to(self, obj: Invoice | CreditNote) -> str:
        return party_block(obj.billing_details)

    @admin.display(description="total", ordering="total")
    def total_display(self, obj: Invoice | CreditNote) -> str:
        return f"{obj.total} {obj.currency}"

    def retry_numbering_view(self, request: HttpRequest, document_id: int) -> HttpResponse:
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        model = self.model  # type: ignore[attr-defined]
        document = model.objects.filter(pk=document_id).first()
        opts = model._meta
        if document is None:
            raise Http404
        if document.status != "pending":
            self.message_user(  # type: ignore[attr-defined]
                request,
                f"{self.retry_label.capitalize()} {document.display_number} already has its number: nothing to retry.",
                messages.WARNING,
            )
        else:
            self.retry_service(document.pk)
            audit_record(actor=request.user, action=self.retry_action, target=document, details={"from": "page"})
            self.message_user(  # type: ignore[attr-defined]
                request,
                f"Numbering of this {self.retry_label} enqueued now: the worker gives it the next number "
                "in its series within seconds (reload to see it).",
                messages.SUCCESS,
            )
        return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", document.pk)

    def retry_url(self) -> Any:
        opts = self.model._meta  # type: ignore[attr-defined]
        return path(
            "<int:document_id>/retry-numbering/",
            self.admin_site.admin_view(self.retry_numbering_view),  # type: ignore[attr-defined]
            name=f"{opts.app_label}_{opts.model_name}_retry_numbering",
        )


@admin.register(Invoice)
class InvoiceAdmin(DocumentAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "number_display", "order_link", "status", "total_display", "payment_display", "due_date_display",
        "attempts", "short_error", "last_attempt_at", "age",
    )  # fmt: skip
    list_filter = ("status", "series", "created_at")
    search_fields = ("=number", "=order__id", "order__user__username")
    list_select_related = ("order",)
    date_hierarchy = "created_at"
    actions = ["retry_now", "export_csv"]
    inlines = [InvoiceLineInline, InvoiceStatusChangeInline]
    readonly_fields = (
        "order", "series", "number", "status", "issued_at", "attempts", "last_error", "last_attempt_at",
        "next_attempt_at", "enqueued_at", "currency", "subtotal", "discount", "shipping", "tax", "total",
        "created_at", "updated_at",
        # Invoices as documents: all read-only too (an issued invoice is never edited).
        "document_links", "payment_summary", "due_date_display", "tax_breakdown_display", "seller",
        "billed_to", "due_days", "allow_partial", "notes", "overdue_at", "reminder_sent_at", "voided_at",
        "void_reason", "sent_at", "tax_breakdown", "credit_notes_display",
    )  # fmt: skip
    change_list_template = "admin/invoicing/invoice/change_list.html"
    change_form_template = "admin/invoicing/invoice/change_form.html"
    retry_action = "invoice.retry_now"
    retry_label = "invoice"

    def retry_service(self, document_id: int) -> None:
        invoice_retry_now(invoice_id=document_id)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invoice]:
        return invoices_with_amounts(super().get_queryset(request))

    def get_fieldsets(self, request: HttpRequest, obj: Invoice | None = None) -> Any:
        """The page in the order staff read it; `tax_breakdown` is shown as tax_breakdown_display."""
        return [
            (None, {"fields": ("order", "series", "number", "status", "issued_at", "document_links",
                               "payment_summary", "due_date_display", "credit_notes_display")}),
            ("Numbering", {"fields": ("attempts", "last_error", "last_attempt_at", "next_attempt_at", "enqueued_at")}),
            ("Parties", {"fields": ("seller", "billed_to")}),
            ("Amounts", {"fields": ("currency", "subtotal", "discount", "shipping", "tax", "total",
                                    "tax_breakdown_display")}),
            ("Terms", {"fields": ("due_days", "allow_partial", "notes")}),
            ("History", {"fields": ("sent_at", "overdue_at", "reminder_sent_at", "voided_at", "void_reason",
                                    "created_at", "updated_at")}),
        ]  # fmt: skip

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
        return short_error_cell(obj.last_error)

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

    @admin.action(description="Export selected invoices to CSV (accounting)")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponseBase:
        """The same RFC 4180 CSV as GET /api/v1/invoices/export.csv, for the selection."""
        return invoices_csv_response(invoices=queryset.order_by("series", "number", "created_at", "id"))

    def get_urls(self):  # type: ignore[no-untyped-def]
        custom = [
            path("gap-audit/", self.admin_site.admin_view(self.gap_audit_view), name="invoicing_invoice_gap_audit"),
            path("<int:invoice_id>/send/", self.admin_site.admin_view(self.send_view), name="invoicing_invoice_send"),
            path(
                "<int:invoice_id>/payment-link/",
                self.admin_site.admin_view(self.payment_link_view),
                name="invoicing_invoice_payment_link",
            ),
            path("<int:invoice_id>/void/", self.admin_site.admin_view(self.void_view), name="invoicing_invoice_void"),
            path(
                "<int:invoice_id>/correct/",
                self.admin_site.admin_view(self.correct_view),
                name="invoicing_invoice_correct",
            ),
            self.retry_url(),
        ]
        return custom + super().get_urls()

    # --- Invoices as documents: display

    @admin.display(description="payment")
    def payment_display(self, obj: Invoice) -> str:
        if obj.status == InvoiceStatus.VOID:
            return "VOID"
        label = invoice_payment_status(invoice=obj).replace("_", " ")
        return f"{label} (overdue)" if invoice_is_overdue(invoice=obj) else label

    @admin.display(description="due date")
    def due_date_display(self, obj: Invoice) -> str:
        return obj.due_date.isoformat() if obj.due_date else "—"

    @admin.display(description="paid / due")
    def payment_summary(self, obj: Invoice) -> str:
        return format_html(
            '<span data-testid="admin-payment-status">{}</span>: paid {} {}, due {} {}, refunded '
            '<span data-testid="admin-amount-refunded">{}</span> {}',
            self.payment_display(obj),
            invoice_amount_paid(invoice=obj),
            obj.currency,
            invoice_amount_due(invoice=obj),
            obj.currency,
            invoice_amount_refunded(invoice=obj),
            obj.currency,
        )

    @admin.display(description="credit notes")
    def credit_notes_display(self, obj: Invoice) -> str:
        notes = invoice_credit_notes(invoice=obj)
        if not notes:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}" data-testid="admin-credit-note">{}</a>: {} {} ({})',
            (
                (
                    reverse("admin:invoicing_creditnote_change", args=[n.id]),
                    n.display_number,
                    n.total,
                    obj.currency,
                    n.status,
                )
                for n in notes
            ),
        )

    @admin.display(description="tax by rate")
    def tax_breakdown_display(self, obj: Invoice) -> str:
        if not obj.tax_rows:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "VAT {} on {} {}: {} {}",
            ((rate_percent(r["rate"]), r["net"], obj.currency, r["tax"], obj.currency) for r in obj.tax_rows),
        )

    @admin.display(description="document")
    def document_links(self, obj: Invoice) -> str:
        if obj.number is None:
            return "No PDF while pending: it is rendered once the invoice is issued."
        return format_html(
            '<a href="{}" data-testid="admin-invoice-pdf">Download PDF</a>',
            reverse("api-invoice-pdf", args=[obj.pk]),
        )

    # --- Invoices as documents: staff actions (each a service call)

    def _post_only(self, request: HttpRequest, invoice_id: int) -> Invoice:
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        return Invoice.objects.get(pk=invoice_id)

    def send_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        invoice = self._post_only(request, invoice_id)
        actor = request.user if isinstance(request.user, User) else None
        try:
            invoice_send_email(invoice_id=invoice.pk, actor=actor)
        except ApplicationError as exc:
            self.message_user(request, f"Not sent: {exc.message}", messages.ERROR)
        else:
            audit_record(actor=request.user, action="invoice.send", target=invoice, details={})
            self.message_user(request, f"Invoice {invoice.display_number} sent with its PDF.", messages.SUCCESS)
        return redirect("admin:invoicing_invoice_change", invoice.pk)

    def payment_link_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        invoice = self._post_only(request, invoice_id)
        actor = request.user if isinstance(request.user, User) else None
        try:
            link = invoice_payment_link_create(invoice_id=invoice.pk, actor=actor)
        except ApplicationError as exc:
            self.message_user(request, f"No payment link: {exc.message}", messages.ERROR)
            return redirect("admin:invoicing_invoice_change", invoice.pk)
        audit_record(
            actor=request.user, action="invoice.payment_link", target=invoice, details={"amount": str(link.amount)}
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Payment link for invoice {invoice.display_number}",
            "opts": self.model._meta,
            "original": invoice,
            "link": link,
            "url": request.build_absolute_uri(link.path),
        }
        return TemplateResponse(request, "admin/invoicing/invoice/payment_link.html", context)

    def void_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        invoice = self._post_only(request, invoice_id)
        actor = request.user if isinstance(request.user, User) else None
        reason = request.POST.get("reason", "")[:200]
        try:
            invoice_void(invoice_id=invoice.pk, actor=actor, reason=reason)
        except ApplicationError as exc:
            self.message_user(request, f"Not voided: {exc.message}", messages.ERROR)
        else:
            audit_record(actor=request.user, action="invoice.void", target=invoice, details={"reason": reason})
            self.message_user(request, f"Invoice {invoice.display_number} is void; its order was cancelled.")
        return redirect("admin:invoicing_invoice_change", invoice.pk)

    def correct_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        """A new draft order with this invoice's lines: the correction path after a void."""
        from orders.services import draft_order_create_from_order

        invoice = self._post_only(request, invoice_id)
        actor = request.user if isinstance(request.user, User) else None
        try:
            draft = draft_order_create_from_order(order_id=invoice.order_id, actor=actor)
        except ApplicationError as exc:
            self.message_user(request, f"No draft created: {exc.message}", messages.ERROR)
            return redirect("admin:invoicing_invoice_change", invoice.pk)
        self.message_user(request, f"Draft order #{draft.pk} created from invoice {invoice.display_number}.")
        return redirect("admin:orders_draftorder_change", draft.pk)

    def gap_audit_view(self, request: HttpRequest) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Invoice and credit note number gap audit",
            "opts": self.model._meta,
            "report": [{**row, "document": document_kind_of_series(str(row["series"]))} for row in invoice_gap_audit()],
            "pending_count": Invoice.objects.filter(status=InvoiceStatus.PENDING).count(),
            "pending_credit_notes": CreditNote.objects.filter(status=CreditNoteStatus.PENDING).count(),
        }
        return TemplateResponse(request, "admin/invoicing/gap_audit.html", context)


class CreditNoteLineInline(admin.TabularInline):
    model = CreditNoteLine
    extra = 0
    can_delete = False
    fields = ("sku", "description", "quantity", "unit_price", "rate", "line_total", "amount")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="tax rate")
    def rate(self, obj: CreditNoteLine) -> str:
        return rate_percent(obj.tax_rate)


@admin.register(CreditNote)
class CreditNoteAdmin(DocumentAdminMixin, admin.ModelAdmin):
    """A credit note is a legal document: read-only, never deleted. Retry-now and the gap
    audit (both series) as for invoices."""

    list_display = (
        "id", "number_display", "invoice_link", "order_link", "status", "total_display", "attempts",
        "short_error", "issued_at", "created_at",
    )  # fmt: skip
    list_filter = ("status", "series", "currency", "created_at")
    search_fields = ("=number", "=order__id", "=invoice__number", "order__user__username", "reason")
    list_select_related = ("invoice", "order")
    date_hierarchy = "created_at"
    actions = ["retry_now"]
    inlines = [CreditNoteLineInline]
    readonly_fields = (
        "refund", "invoice", "order", "series", "number", "status", "issued_at", "document_links", "currency",
        "subtotal", "tax", "total", "tax_breakdown_display", "reason", "seller", "billed_to",
        "attempts", "last_error", "last_attempt_at", "next_attempt_at", "enqueued_at", "created_at", "updated_at",
    )  # fmt: skip
    fieldsets = [
        (None, {"fields": ("refund", "invoice", "order", "series", "number", "status", "issued_at",
                           "document_links", "reason")}),
        ("Numbering", {"fields": ("attempts", "last_error", "last_attempt_at", "next_attempt_at", "enqueued_at")}),
        ("Parties", {"fields": ("seller", "billed_to")}),
        ("Amounts", {"fields": ("currency", "subtotal", "tax", "total", "tax_breakdown_display")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    ]  # fmt: skip
    change_list_template = "admin/invoicing/creditnote/change_list.html"
    change_form_template = "admin/invoicing/creditnote/change_form.html"
    retry_action = "credit_note.retry_now"
    retry_label = "credit note"

    def retry_service(self, document_id: int) -> None:
        credit_note_retry_now(credit_note_id=document_id)

    def get_urls(self):  # type: ignore[no-untyped-def]
        return [self.retry_url(), *super().get_urls()]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="number", ordering="number")
    def number_display(self, obj: CreditNote) -> str:
        return obj.display_number

    @admin.display(description="invoice", ordering="invoice_id")
    def invoice_link(self, obj: CreditNote) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:invoicing_invoice_change", args=[obj.invoice_id]),
            obj.invoice.display_number,
        )

    @admin.display(description="order", ordering="order_id")
    def order_link(self, obj: CreditNote) -> str:
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:orders_order_change", args=[obj.order_id]), obj.order_id
        )

    @admin.display(description="last error")
    def short_error(self, obj: CreditNote) -> str:
        return short_error_cell(obj.last_error)

    @admin.display(description="tax by rate")
    def tax_breakdown_display(self, obj: CreditNote) -> str:
        if not obj.tax_rows:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "VAT {} on {} {}: {} {}",
            ((rate_percent(r["rate"]), r["net"], obj.currency, r["tax"], obj.currency) for r in obj.tax_rows),
        )

    @admin.display(description="document")
    def document_links(self, obj: CreditNote) -> str:
        if obj.number is None:
            return "No PDF while pending: it is rendered once the credit note is issued."
        return format_html(
            '<a href="{}" data-testid="admin-credit-note-pdf">Download PDF</a>',
            reverse("api-credit-note-pdf", args=[obj.pk]),
        )

    @admin.action(description="Retry numbering now (pending credit notes)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[CreditNote]) -> None:
        pending = list(queryset.filter(status=CreditNoteStatus.PENDING))
        for note in pending:
            credit_note_retry_now(credit_note_id=note.pk)
            audit_record(actor=request.user, action="credit_note.retry_now", target=note, details={})
        skipped = queryset.count() - len(pending)
        self.message_user(
            request,
            f"Enqueued {len(pending)} pending credit note(s); skipped {skipped} already numbered.",
            messages.SUCCESS if pending else messages.WARNING,
        )


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


@admin.register(BillingProfile)
class BillingProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "company", "email", "country", "payment_terms_days")
    search_fields = ("user__username", "user__email", "company", "email", "vat_id")
    autocomplete_fields = ("user",)


@admin.register(SalesReport)
class SalesReportAdmin(admin.ModelAdmin):
    """Reports e-mailed so far (one per day), and the report of any day, computed live,
    with the last 30 days' revenue as a server-rendered SVG chart."""

    list_display = ("date", "orders", "revenue", "sent_at", "recipients_display")
    date_hierarchy = "date"
    readonly_fields = ("date", "data", "generated_at", "sent_at", "recipients")
    change_list_template = "admin/invoicing/salesreport/change_list.html"

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="orders")
    def orders(self, obj: SalesReport) -> int:
        return int(obj.data.get("orders", {}).get("count", 0))

    @admin.display(description="revenue")
    def revenue(self, obj: SalesReport) -> str:
        return ", ".join(f"{amount} {currency}" for currency, amount in obj.data.get("revenue", {}).items()) or "—"

    @admin.display(description="sent to")
    def recipients_display(self, obj: SalesReport) -> str:
        return ", ".join(obj.recipients)

    def get_urls(self):  # type: ignore[no-untyped-def]
        custom = [path("day/", self.admin_site.admin_view(self.day_view), name="invoicing_salesreport_day")]
        return custom + super().get_urls()

    def day_view(self, request: HttpRequest) -> HttpResponse:
        today = timezone.now().date()  # today's orders show at once (a new install is not all zeros)
        try:
            day = date.fromisoformat(request.GET.get("date", "")) if request.GET.get("date") else today
        except ValueError:
            day = today
        if request.method == "POST":
            if not self.has_view_permission(request):
                raise PermissionDenied
            report = sales_report_send(day=day)
            self.message_user(request, f"Report for {day} sent to {', '.join(report.recipients)} (once per day).")
            return redirect(f"{reverse('admin:invoicing_salesreport_day')}?date={day.isoformat()}")
        stored = SalesReport.objects.filter(date=day).first()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Sales report for {day.isoformat()}",
            "opts": self.model._meta,
            "day": day,
            "today": today,
            "previous_day": day - timedelta(days=1),
            "next_day": day + timedelta(days=1) if day < timezone.now().date() else None,
            "report": sales_report_build(day=day),
            "stored": stored,
            "charts": [
                revenue_bar_chart(currency=currency, series=series)
                for currency, series in sales_revenue_by_day(last_day=day, days=30).items()
            ],
        }
        return TemplateResponse(request, "admin/invoicing/salesreport/day.html", context)
