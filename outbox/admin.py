from django.contrib import admin

from outbox.models import OutboxEvent


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "event_type", "aggregate_type", "aggregate_id", "created_at", "published_at")
    list_filter = ("event_type", "aggregate_type", ("published_at", admin.EmptyFieldListFilter))
    search_fields = ("aggregate_id", "event_type", "id")
    readonly_fields = (
        "id", "aggregate_type", "aggregate_id", "event_type", "payload", "metadata", "created_at", "published_at",
    )  # fmt: skip
    date_hierarchy = "created_at"
