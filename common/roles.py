"""The "staff" role: a Django group with permissions on orders, invoices, payments and
stock. Created by the data migration common/0003_staff_group and kept complete by
`staff_group_sync` after every `migrate` (models added later get their permissions too).
Staff users also need `is_staff` to enter the admin; admins are superusers."""

from typing import Any

from django.apps import apps as global_apps

STAFF_GROUP = "staff"

# app label -> permission actions the staff group gets on every model of the app.
# No "delete": orders, invoices, payments and their events are records, never deleted.
STAFF_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "orders": ("view", "add", "change"),
    "invoicing": ("view", "add", "change"),
    "payments": ("view", "change"),
    "inventory": ("view", "add", "change"),
    "outbox": ("view",),
    "notifications": ("view", "change"),  # customer e-mails: "change" is the audited "send again"
    "common": ("view",),
}


# Single permissions beyond the app-wide actions above: (app label, codename).
STAFF_EXTRA_PERMISSIONS: tuple[tuple[str, str], ...] = (("payments", "add_refund"),)


def staff_group_sync(*, apps: Any = global_apps) -> Any:
    """Create the staff group if missing and give it STAFF_PERMISSIONS (idempotent).
    `apps` is the historical registry inside a migration, the real one otherwise."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    wanted = []
    for app_label, actions in STAFF_PERMISSIONS.items():
        for permission in Permission.objects.filter(content_type__app_label=app_label):
            if permission.codename.split("_", 1)[0] in actions:
                wanted.append(permission)
    for app_label, codename in STAFF_EXTRA_PERMISSIONS:
        wanted.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    group.permissions.add(*wanted)
    return group


def staff_group_sync_after_migrate(**kwargs: Any) -> None:
    """post_migrate receiver (common/apps.py), after the permissions of new models exist."""
    staff_group_sync()
