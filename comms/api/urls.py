from django.urls import path

from comms.api import views

urlpatterns = [
    path("audiences/", views.AudienceListCreateApi.as_view(), name="api-audiences"),
    path("audiences/<int:pk>/", views.AudienceDetailApi.as_view(), name="api-audience"),
    path("notice-templates/", views.TemplateListCreateApi.as_view(), name="api-notice-templates"),
    path(
        "notice-templates/<int:pk>/", views.TemplateDetailApi.as_view(), name="api-notice-template"
    ),
    path("notice-plans/<slug:key>/", views.PlanApi.as_view(), name="api-notice-plan"),
    path("notices/", views.NoticeListCreateApi.as_view(), name="api-notices"),
    path("notices/<int:pk>/", views.NoticeDetailApi.as_view(), name="api-notice"),
    path("notices/<int:pk>/send/", views.NoticeSendApi.as_view(), name="api-notice-send"),
    path("notices/<int:pk>/cancel/", views.NoticeCancelApi.as_view(), name="api-notice-cancel"),
    path("notices/<int:pk>/retry/", views.NoticeRetryApi.as_view(), name="api-notice-retry"),
    path("deliveries/<int:pk>/retry/", views.DeliveryRetryApi.as_view(), name="api-delivery-retry"),
]
