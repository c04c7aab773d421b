from django.urls import path

from flags import usage_views
from flags.views import flag_list, flag_page, rules, segments, settings

app_name = "flags"
urlpatterns = [
    path("", flag_list.flag_list, name="list"),
    path("new/", flag_list.flag_create, name="create"),
    path("segments/", segments.segment_list, name="segments"),
    path("segments/new/", segments.segment_create, name="segment_create"),
    path("segments/<int:pk>/", segments.segment_detail, name="segment"),
    path("segments/<int:pk>/delete/", segments.segment_delete, name="segment_delete"),
    path("stale/", usage_views.stale_flags, name="stale"),
    path("settings/", settings.settings_page, name="settings"),
    path("settings/environments/", settings.environment_create, name="environment_create"),
    path(
        "settings/environments/<slug:env>/", settings.environment_update, name="environment_update"
    ),
    path(
        "settings/environments/<slug:env>/move/",
        settings.environment_move,
        name="environment_move",
    ),
    path("settings/environments/<slug:env>/keys/", settings.sdk_key_create, name="sdk_key_create"),
    path("settings/keys/<int:pk>/revoke/", settings.sdk_key_revoke, name="sdk_key_revoke"),
    path("<str:key>/", flag_page.flag_detail, name="detail"),
    path("<str:key>/details/", flag_page.flag_update, name="update"),
    path("<str:key>/variants/", flag_page.flag_variants, name="variants"),
    path("<str:key>/archive/", flag_page.flag_archive, name="archive"),
    path("<str:key>/history/", flag_page.flag_history, name="history"),
    path("<str:key>/evaluate/", flag_page.flag_evaluate, name="evaluate"),
    path("<str:key>/environments/<slug:env>/toggle/", flag_list.flag_toggle, name="toggle"),
    path("<str:key>/environments/<slug:env>/rules/", rules.rule_add, name="rule_add"),
    path(
        "<str:key>/environments/<slug:env>/rules/<int:number>/",
        rules.rule_update,
        name="rule_update",
    ),
    path(
        "<str:key>/environments/<slug:env>/rules/<int:number>/delete/",
        rules.rule_delete,
        name="rule_delete",
    ),
    path(
        "<str:key>/environments/<slug:env>/rules/<int:number>/move/",
        rules.rule_move,
        name="rule_move",
    ),
]
