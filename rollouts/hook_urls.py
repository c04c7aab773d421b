"""Incoming webhooks (Alertmanager) at /hooks/ (no trailing slash, CSRF-exempt)."""

from django.urls import path

from rollouts import hook_views

urlpatterns = [
    path("alertmanager", hook_views.alertmanager, name="alertmanager-hook"),
    path("alertmanager/<str:secret>", hook_views.alertmanager, name="alertmanager-hook-secret"),
]
