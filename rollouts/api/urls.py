"""Rollouts management API, mounted at /api/v1/ (no trailing slashes, like the contract)."""

from django.urls import path

from rollouts.api import views

urlpatterns = [
    path("releases", views.ReleaseListCreateApi.as_view(), name="api-release-list"),
    path("releases/<int:pk>", views.ReleaseDetailApi.as_view(), name="api-release-detail"),
    path("rollouts", views.RolloutListCreateApi.as_view(), name="api-rollout-list"),
    path("rollouts/templates", views.TemplatesApi.as_view(), name="api-rollout-templates"),
    path("rollouts/<slug:key>", views.RolloutDetailApi.as_view(), name="api-rollout-detail"),
    path("rollouts/<slug:key>/plan", views.RolloutPlanApi.as_view(), name="api-rollout-plan"),
    path("rollouts/<slug:key>/events", views.RolloutEventsApi.as_view(), name="api-rollout-events"),
    *[
        path(f"rollouts/<slug:key>/{action}", view.as_view(), name=f"api-rollout-{action}")
        for action, view in views.ACTION_VIEWS.items()
    ],
]
