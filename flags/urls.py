from django.urls import path

from flags import views

app_name = "flags"
urlpatterns = [
    path("", views.flag_list, name="list"),
    path("new/", views.flag_create, name="create"),
    path("segments/", views.segment_list, name="segments"),
    path("segments/new/", views.segment_create, name="segment_create"),
    path("segments/<int:pk>/", views.segment_detail, name="segment"),
    path("segments/<int:pk>/delete/", views.segment_delete, name="segment_delete"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/environments/", views.environment_create, name="environment_create"),
    path("settings/environments/<slug:env>/", views.environment_update, name="environment_update"),
    path(
        "settings/environments/<slug:env>/move/",
        views.environment_move,
        name="environment_move",
    ),
    path("settings/environments/<slug:env>/keys/", views.sdk_key_create, name="sdk_key_create"),
    path("settings/keys/<int:pk>/revoke/", views.sdk_key_revoke, name="sdk_key_revoke"),
    path("<str:key>/", views.flag_detail, name="detail"),
    path("<str:key>/details/", views.flag_update, name="update"),
    path("<str:key>/variants/", views.flag_variants, name="variants"),
    path("<str:key>/archive/", views.flag_archive, name="archive"),
    path("<str:key>/history/", views.flag_history, name="history"),
    path("<str:key>/evaluate/", views.flag_evaluate, name="evaluate"),
    path("<str:key>/environments/<slug:env>/toggle/", views.flag_toggle, name="toggle"),
    path("<str:key>/environments/<slug:env>/rules/", views.rule_add, name="rule_add"),
    path(
        "<str:key>/environments/<slug:env>/rules/<int:number>/",
        views.rule_update,
        name="rule_update",
    ),
    path(
        "<str:key>/environments/<slug:env>/rules/<int:number>/delete/",
        views.rule_delete,
        name="rule_delete",
    ),
    path(
        "<str:key>/environments/<slug:env>/rules/<int:number>/move/",
        views.rule_move,
        name="rule_move",
    ),
]
