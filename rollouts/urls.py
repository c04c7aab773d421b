from django.urls import path

from rollouts.views import calendar, checks, plans, policies, releases, rollouts, safety, windows

app_name = "rollouts"
urlpatterns = [
    path("", rollouts.rollout_list, name="list"),
    path("new/", rollouts.rollout_create, name="new"),
    path("releases/", releases.release_list, name="releases"),
    path("releases/new/", releases.release_create, name="release_new"),
    path("releases/<int:pk>/", releases.release_detail, name="release_detail"),
    path("releases/<int:pk>/edit/", releases.release_edit, name="release_edit"),
    # Rollout safety: these fixed paths come before "<key>/" (the keys are reserved).
    path("calendar/", calendar.calendar, name="calendar"),
    path("calendar/feed-token", calendar.calendar_feed_token, name="calendar_feed_token"),
    path("calendar/<str:token>.ics", calendar.calendar_feed, name="calendar_feed"),
    path("approvals/", safety.approvals, name="approvals"),
    path(
        "approvals/<int:approval_id>/<slug:decision>/",
        safety.approval_decide,
        name="approval_decide",
    ),
    path("windows/", windows.windows, name="windows"),
    path("windows/<int:window_id>/delete/", windows.window_delete, name="window_delete"),
    path("windows/<int:window_id>/hold/", windows.window_hold, name="window_hold"),
    path("policies/", policies.policies, name="policies"),
    path("<slug:key>/", rollouts.rollout_detail, name="detail"),
    path("<slug:key>/plan/", plans.rollout_plan, name="plan"),
    path("<slug:key>/plan/preview/", plans.rollout_plan_preview, name="plan_preview"),
    path("<slug:key>/actions/<slug:action>/", rollouts.rollout_action, name="action"),
    path("<slug:key>/holds/<int:hold_id>/clear/", safety.hold_clear, name="hold_clear"),
    path("<slug:key>/approval/request/", safety.approval_request, name="approval_request"),
    path("<slug:key>/checklist/<int:item_id>/", safety.checklist_tick, name="checklist_tick"),
    path("<slug:key>/alerts/", safety.alert_settings, name="alert_settings"),
    # Guarded phases: metric checks
    path("<slug:key>/checks/", checks.rollout_checks, name="checks"),
    path("<slug:key>/checks/add/", checks.check_add, name="check_add"),
    path("<slug:key>/checks/test/", checks.check_test, name="check_test"),
    path("<slug:key>/checks/prometheus/", checks.prometheus_source_set, name="prometheus_set"),
    path("<slug:key>/checks/<int:check_id>/delete/", checks.check_delete, name="check_delete"),
]
