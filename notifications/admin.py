from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from notifications.models import CustomerEmail, EmailDispatchCursor
from notifications.services import customer_email_retry


class CustomerEmailInline(admin.TabularInline):
    """On the order page (flows/admin.py adds it): what the customer was sent, and when."""

    model = CustomerEmail
    fk_name = "order"
    fields = ("kind", "to", "state", "tries", "sent_at", "last_error", "skip_reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("id",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(CustomerEmail)
class CustomerEmailAdmin(admin.ModelAdmin):
    """Every customer e-mail: what it is, to whom, its state, tries and last error. Records:
    never added or deleted by hand; the one change is "send again" (audited)."""

    list_display = ("id", "kind", "order_link", "to", "state", "tries", "next_attempt_at", "sent_at", "error_short")
    list_filter = ("state", "kind")
    search_fields = ("to", "order__id", "subject")
    list_select_related = ("order",)
    date_hierarchy = "created_at"
    actions = ["send_again"]
    readonly_fields = (
        "event", "kind", "order", "to", "subject", "state", "skip_reason", "tries", "next_attempt_at", "kicked_at",
        "last_attempt_at", "last_error", "sent_at", "created_at", "updated_at",
    )  # fmt: skip

    @admin.display(description="order", ordering="order_id")
    def order_link(self, email: CustomerEmail) -> str:
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:orders_order_change", args=[email.order_id]), email.order_id
        )

    @admin.display(description="last error")
    def error_short(self, email: CustomerEmail) -> str:
        return email.last_error[:80]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CustomerEmail | None = None) -> bool:
        return False

    @admin.action(description="Send again now (failed or pending e-mails; never a sent one)", permissions=["change"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[CustomerEmail]) -> None:
        done = sum(
            customer_email_retry(email_id=pk, actor=request.user) for pk in queryset.values_list("pk", flat=True)
        )
        skipped = queryset.count() - done
        self.message_user(
            request,
            f"{done} e-mail(s) queued to be sent again; {skipped} sent or skipped left as they are.",
            messages.SUCCESS if done else messages.WARNING,
        )


@admin.register(EmailDispatchCursor)
class EmailDispatchCursorAdmin(admin.ModelAdmin):
    list_display = ("name", "position", "updated_at")
    readonly_fields = ("name", "position", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EmailDispatchCursor | None = None) -> bool:
        return False
