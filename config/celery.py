import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("rollcall")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Support work (doc-link checks) keeps its tasks beside its code.
app.autodiscover_tasks(related_name="support_tasks")
