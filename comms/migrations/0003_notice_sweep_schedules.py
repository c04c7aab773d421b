from django.db import migrations

from core.schedules import ensure_periodic_task, remove_periodic_task

EVENTS = "Notices: rollout events sweep"
NOTICES = "Notices: due notices and stuck deliveries sweep"


def forwards(apps, schema_editor):
    ensure_periodic_task(apps, name=EVENTS, task="comms.sweep_events", every_seconds=10)
    ensure_periodic_task(apps, name=NOTICES, task="comms.sweep_notices", every_seconds=10)


def backwards(apps, schema_editor):
    remove_periodic_task(apps, name=EVENTS)
    remove_periodic_task(apps, name=NOTICES)


class Migration(migrations.Migration):
    dependencies = [
        ("comms", "0002_audiences_channels_templates_plans_notices"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
