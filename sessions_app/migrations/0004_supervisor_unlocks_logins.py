"""Supervisors may unlock a locked-out login: view and delete django-axes' AccessAttempt rows in
the admin (superusers can anyway). Axes' own tables come from axes' migrations."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSIONS = [("axes", "accessattempt", "view_accessattempt"), ("axes", "accessattempt", "delete_accessattempt")]


def grant(apps, schema_editor):
    # post_migrate creates permissions only after every migration: make axes' exist now.
    app_config = apps.get_app_config("axes")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Supervisor")
    for app_label, model, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(
            content_type__app_label=app_label, content_type__model=model, codename=codename))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name="Supervisor"):
        group.permissions.remove(*Permission.objects.filter(
            content_type__app_label="axes", codename__in=[codename for _, _, codename in PERMISSIONS]))


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0003_audit_session_id_length"),
        ("sessions_app", "0002_staff_groups"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
