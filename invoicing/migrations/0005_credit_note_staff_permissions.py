"""The staff group gets view/add/change on the credit note models (STAFF_PERMISSIONS covers
the whole invoicing app): created here so a fresh database has them before post_migrate."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant_credit_note_permissions(apps, schema_editor):
    from common.roles import staff_group_sync

    app_config = apps.get_app_config("invoicing")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    staff_group_sync(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("common", "0003_staff_group"),
        ("invoicing", "0004_credit_notes"),
    ]

    operations = [migrations.RunPython(grant_credit_note_permissions, migrations.RunPython.noop)]
