"""Rollouts management API, mounted at /api/v1/ (no trailing slashes, like the contract)."""

from django.urls import path

from rollouts.api import checks, views

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
    # Rollout safety
    path("rollouts/<slug:key>/holds", views.RolloutHoldsApi.as_view(), name="api-rollout-holds"),
    path(
        "rollouts/<slug:key>/holds/<int:hold_id>/clear",
        views.HoldClearApi.as_view(),
        name="api-hold-clear",
    ),
    path(
        "rollouts/<slug:key>/checklist",
        views.RolloutChecklistApi.as_view(),
        name="api-rollout-checklist",
    ),
    path(
        "rollouts/<slug:key>/checklist/<int:item_id>",
        views.ChecklistTickApi.as_view(),
        name="api-checklist-tick",
    ),
    path(
        "rollouts/<slug:key>/alert-settings",
        views.RolloutAlertSettingsApi.as_view(),
        name="api-rollout-alert-settings",
    ),
    path("approvals", views.ApprovalListApi.as_view(), name="api-approval-list"),
    path(
        "approvals/<int:approval_id>/approve",
        views.ApprovalApproveApi.as_view(),
        name="api-approval-approve",
    ),
    path(
        "approvals/<int:approval_id>/decline",
        views.ApprovalDeclineApi.as_view(),
        name="api-approval-decline",
    ),
    path("windows", views.WindowListCreateApi.as_view(), name="api-window-list"),
    path("windows/<int:pk>", views.WindowDetailApi.as_view(), name="api-window-detail"),
    path("approval-policies", views.PolicyListApi.as_view(), name="api-policy-list"),
    path(
        "approval-policies/<slug:environment>",
        views.PolicyDetailApi.as_view(),
        name="api-policy-detail",
    ),
    # Guarded phases
    path(
        "rollouts/<slug:key>/checks", checks.RolloutChecksApi.as_view(), name="api-rollout-checks"
    ),
    path(
        "rollouts/<slug:key>/checks/test",
        checks.CheckTestApi.as_view(),
        name="api-rollout-check-test",
    ),
    path(
        "rollouts/<slug:key>/checks/<int:check_id>",
        checks.CheckDetailApi.as_view(),
        name="api-rollout-check-detail",
    ),
    path(
        "rollouts/<slug:key>/check-results",
        checks.CheckResultsApi.as_view(),
        name="api-rollout-check-results",
    ),
    path(
        "prometheus-sources/<slug:environment>",
        checks.PrometheusSourceApi.as_view(),
        name="api-prometheus-source",
    ),
]
