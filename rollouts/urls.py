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
    path("<slug:key>/", views.rollout_detail, name="detail"),
    path("<slug:key>/plan/", views.rollout_plan, name="plan"),
    path("<slug:key>/plan/preview/", views.rollout_plan_preview, name="plan_preview"),
    path("<slug:key>/actions/<slug:action>/", views.rollout_action, name="action"),
]
