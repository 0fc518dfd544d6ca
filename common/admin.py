from django.contrib import admin
from django.http import HttpRequest

from common.models import AuditLogEntry


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log is written by common.audit.audit_record, never edited."""

    list_display = ("created_at", "actor_username", "action", "target_type", "target_id", "target_repr")
    list_filter = ("action", "target_type", "created_at")
    search_fields = ("actor_username", "action", "=target_id", "target_repr", "=request_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at", "actor", "actor_username", "action", "target_type", "target_id", "target_repr",
        "details", "request_id",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditLogEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditLogEntry | None = None) -> bool:
        return False
