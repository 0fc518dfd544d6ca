"""The "staff" role: a group with permissions on orders, invoices, payments and stock.

Permissions are normally created after `migrate` (post_migrate); they are created here
first so a fresh database gets a complete group. common.roles.staff_group_sync runs again
after every migrate, so models added later are covered too."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_staff_group(apps, schema_editor):
    from common.roles import STAFF_PERMISSIONS, staff_group_sync

    for label in STAFF_PERMISSIONS:
        try:
            app_config = apps.get_app_config(label)
        except LookupError:  # an app added later (its own migration grants its permissions)
            continue
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    staff_group_sync(apps=apps)


def remove_staff_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="staff").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("common", "0002_auditlogentry"),
        ("orders", "0002_draft_orders"),
        ("invoicing", "0002_invoice_documents"),
        ("payments", "0001_initial"),
        ("inventory", "0002_initial"),
        ("outbox", "0002_outboxevent_metadata"),
    ]

    operations = [migrations.RunPython(create_staff_group, remove_staff_group)]
