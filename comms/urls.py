from django.urls import path

from comms import views

app_name = "comms"
urlpatterns = [
    # Notices
    path("", views.notices, name="notices"),
    path("notices/<int:pk>/", views.notice_detail, name="notice"),
    path("notices/<int:pk>/edit/", views.notice_edit, name="notice_edit"),
    path("notices/<int:pk>/send/", views.notice_send, name="notice_send"),
    path("notices/<int:pk>/cancel/", views.notice_cancel, name="notice_cancel"),
    path("notices/<int:pk>/retry/", views.notice_retry, name="notice_retry"),
    path("deliveries/<int:pk>/retry/", views.delivery_retry, name="delivery_retry"),
    path("compose/", views.compose, name="compose"),
    path("compose/preview/", views.compose_preview, name="compose_preview"),
    # Templates
    path("templates/", views.templates, name="templates"),
    path("templates/new/", views.template_create, name="template_create"),
    path("templates/preview/", views.template_preview, name="template_preview"),
    path("templates/<int:pk>/", views.template_edit, name="template_edit"),
    path("templates/<int:pk>/delete/", views.template_delete, name="template_delete"),
    # Audiences and channels
    path("audiences/", views.audiences, name="audiences"),
    path("audiences/new/", views.audience_create, name="audience_create"),
    path("audiences/<int:pk>/", views.audience_detail, name="audience"),
    path("audiences/<int:pk>/edit/", views.audience_edit, name="audience_edit"),
    path("audiences/<int:pk>/delete/", views.audience_delete, name="audience_delete"),
    path("audiences/<int:audience_pk>/channels/new/", views.channel_create, name="channel_create"),
    path("channels/<int:pk>/", views.channel_edit, name="channel_edit"),
    path("channels/<int:pk>/rotate/", views.channel_rotate, name="channel_rotate"),
    path("channels/<int:pk>/delete/", views.channel_delete, name="channel_delete"),
    # Communication plans of rollouts
    path("plans/<slug:key>/", views.plan, name="plan"),
    path("plans/<slug:key>/reset/", views.plan_reset, name="plan_reset"),
    path("plan-rules/<int:pk>/", views.plan_rule_edit, name="plan_rule_edit"),
    path("plan-rules/<int:pk>/delete/", views.plan_rule_delete, name="plan_rule_delete"),
    # Support pages (changelog, customer lookup, feeds) are added below by their owner.
]
