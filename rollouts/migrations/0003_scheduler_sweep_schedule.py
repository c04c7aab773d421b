from django.db import migrations

from core.schedules import ensure_periodic_task, remove_periodic_task

SWEEP = "Rollout scheduler sweep"


def forwards(apps, schema_editor):
    ensure_periodic_task(apps, name=SWEEP, task="rollouts.sweep", every_seconds=30)


def backwards(apps, schema_editor):
    remove_periodic_task(apps, name=SWEEP)


class Migration(migrations.Migration):
    dependencies = [
        ("rollouts", "0002_pause_clock_and_one_live_rollout_per_flag"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
