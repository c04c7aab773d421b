from django.db import migrations

from core.schedules import ensure_periodic_task, remove_periodic_task


def forwards(apps, schema_editor):
    ensure_periodic_task(
        apps, name="Check doc links", task="support.check_doc_links", every_seconds=3600
    )


def backwards(apps, schema_editor):
    remove_periodic_task(apps, name="Check doc links")


class Migration(migrations.Migration):
    dependencies = [
        ("comms", "0003_notice_sweep_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
