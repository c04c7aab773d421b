import pytest
from django_celery_beat.models import PeriodicTask


@pytest.mark.django_db
def test_migrations__store_heartbeat_schedule_in_database():
    task = PeriodicTask.objects.get(task="core.heartbeat")
    assert task.enabled
    assert task.interval.every == 30
    assert task.interval.period == "seconds"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "task",
    ["core.heartbeat", "rollouts.sweep", "support.check_doc_links"],
)
def test_migrations__store_every_periodic_sweep(task):
    assert PeriodicTask.objects.filter(task=task, enabled=True).exists()
