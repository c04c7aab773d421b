from django.urls import path

from rollouts import views

app_name = "rollouts"
urlpatterns = [
    path("", views.rollout_list, name="list"),
    path("new/", views.rollout_create, name="new"),
    path("releases/", views.release_list, name="releases"),
    path("releases/new/", views.release_create, name="release_new"),
    path("releases/<int:pk>/", views.release_detail, name="release_detail"),
    path("releases/<int:pk>/edit/", views.release_edit, name="release_edit"),
    # Rollout safety: these fixed paths come before "<key>/" (the keys are reserved).
    path("calendar/", views.calendar, name="calendar"),
    path("calendar/<str:token>.ics", views.calendar_feed, name="calendar_feed"),
    path("approvals/", views.approvals, name="approvals"),
    path(
        "approvals/<int:approval_id>/<slug:decision>/",
        views.approval_decide,
        name="approval_decide",
    ),
    path("windows/", views.windows, name="windows"),
    path("windows/<int:window_id>/delete/", views.window_delete, name="window_delete"),
    path("windows/<int:window_id>/hold/", views.window_hold, name="window_hold"),
    path("policies/", views.policies, name="policies"),
    path("<slug:key>/", views.rollout_detail, name="detail"),
    path("<slug:key>/plan/", views.rollout_plan, name="plan"),
    path("<slug:key>/plan/preview/", views.rollout_plan_preview, name="plan_preview"),
    path("<slug:key>/actions/<slug:action>/", views.rollout_action, name="action"),
    path("<slug:key>/holds/<int:hold_id>/clear/", views.hold_clear, name="hold_clear"),
    path("<slug:key>/approval/request/", views.approval_request, name="approval_request"),
    path("<slug:key>/checklist/<int:item_id>/", views.checklist_tick, name="checklist_tick"),
    path("<slug:key>/alerts/", views.alert_settings, name="alert_settings"),
]
