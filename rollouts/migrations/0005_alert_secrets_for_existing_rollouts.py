import secrets

from django.db import migrations


def forwards(apps, schema_editor):
    """Rollouts made before rollout safety get their Alertmanager webhook secret."""
    Rollout = apps.get_model("rollouts", "Rollout")
    for rollout in Rollout.objects.filter(alert_secret="").only("id"):
        Rollout.objects.filter(pk=rollout.pk).update(alert_secret=secrets.token_urlsafe(32))


class Migration(migrations.Migration):
    dependencies = [("rollouts", "0004_safety_gates_holds_windows")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
