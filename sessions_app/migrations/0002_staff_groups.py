"""Create the console's two staff groups: Viewer (read) and Supervisor (read + actions)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    "Viewer": [("sessions_app", "auditlog", "view_chat_sessions")],
    "Supervisor": [
        ("sessions_app", "auditlog", "view_chat_sessions"),
        ("sessions_app", "auditlog", "operate_chat_sessions"),
        ("sessions_app", "auditlog", "view_auditlog"),
    ],
}


def groups_create(apps, schema_editor):
    # Permissions are normally created by post_migrate, i.e. after every migration has run; on a
    # fresh database they would not exist yet, so create them now (idempotent).
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, model, codename in perms:
            group.permissions.add(Permission.objects.get(
                content_type__app_label=app_label, content_type__model=model, codename=codename))


def groups_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(groups_create, groups_delete)]
