from django.db import migrations

from core.roles import sync_roles
from core.schedules import ensure_periodic_task, remove_periodic_task


def forwards(apps, schema_editor):
    # Permissions of models created later are added by the post_migrate sync (core.apps).
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    sync_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))
    ensure_periodic_task(apps, name="Scheduler heartbeat", task="core.heartbeat", every_seconds=30)


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Release managers", "Support", "Admins"]
    ).delete()
    remove_periodic_task(apps, name="Scheduler heartbeat")


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_heartbeat"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
