from django.urls import path

from flags.api import importexport, views

urlpatterns: list = [
    path("flags/", views.FlagListCreateApi.as_view(), name="api-flags"),
    path("flags/<str:key>/", views.FlagDetailApi.as_view(), name="api-flag"),
    path("flags/<str:key>/archive/", views.FlagArchiveApi.as_view(), name="api-flag-archive"),
    path(
        "flags/<str:key>/environments/",
        views.FlagStateListApi.as_view(),
        name="api-flag-states",
    ),
    path(
        "flags/<str:key>/environments/<slug:env>/",
        views.FlagStateApi.as_view(),
        name="api-flag-state",
    ),
    path(
        "flags/<str:key>/environments/<slug:env>/toggle/",
        views.FlagToggleApi.as_view(),
        name="api-flag-toggle",
    ),
    path("segments/", views.SegmentListCreateApi.as_view(), name="api-segments"),
    path("segments/<int:pk>/", views.SegmentDetailApi.as_view(), name="api-segment"),
    path("environments/", views.EnvironmentListCreateApi.as_view(), name="api-environments"),
    path("environments/<slug:key>/", views.EnvironmentDetailApi.as_view(), name="api-environment"),
    path(
        "environments/<slug:key>/sdk-keys/",
        views.SdkKeyListCreateApi.as_view(),
        name="api-sdk-keys",
    ),
    path("sdk-keys/<int:pk>/revoke/", views.SdkKeyRevokeApi.as_view(), name="api-sdk-key-revoke"),
    path(
        "environments/<slug:key>/import",
        importexport.ImportApi.as_view(),
        name="api-environment-import",
    ),
    path(
        "environments/<slug:key>/export",
        importexport.ExportApi.as_view(),
        name="api-environment-export",
    ),
]
