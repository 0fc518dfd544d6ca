"""Staff may create refunds (payments.add_refund; common.roles.STAFF_EXTRA_PERMISSIONS).
The permission is created here first so a fresh database gets a complete group."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    from common.roles import staff_group_sync

    app_config = apps.get_app_config("payments")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    staff_group_sync(apps=apps)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="staff").first()
    if group is not None:
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="payments", codename="add_refund"))


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0004_refunds"),
        ("common", "0003_staff_group"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
