"""Hand-offs: the ``handle_chat_sessions`` permission (take a session over, reply as staff, hand
it back), granted to a new "Agent" group (with ``view_chat_sessions``, to read what they answer)
and to "Supervisor". Viewers get neither."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

HANDLE = ("sessions_app", "auditlog", "handle_chat_sessions")
VIEW = ("sessions_app", "auditlog", "view_chat_sessions")
GRANTS = {"Agent": [VIEW, HANDLE], "Supervisor": [HANDLE]}


def _permission(Permission, app_label, model, codename):
    return Permission.objects.get(content_type__app_label=app_label, content_type__model=model, codename=codename)


def grant(apps, schema_editor):
    # post_migrate creates permissions only after every migration: make the new one exist now
    # (from the model state AlterModelOptions just declared; idempotent).
    app_config = apps.get_app_config("sessions_app")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*[_permission(Permission, *perm) for perm in perms])


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Group.objects.filter(name="Agent").delete()
    handle = Permission.objects.filter(content_type__app_label=HANDLE[0], codename=HANDLE[2])
    for group in Group.objects.filter(name="Supervisor"):
        group.permissions.remove(*handle)
    handle.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0004_supervisor_unlocks_logins"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="auditlog",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("view_chat_sessions", "Can view chat sessions in the console"),
                    ("operate_chat_sessions", "Can act on chat sessions (close, summarise, export, delete)"),
                    ("handle_chat_sessions", "Can take chat sessions over, reply as staff and hand them back"),
                ],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
