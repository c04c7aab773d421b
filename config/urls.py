from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"

urlpatterns = [
    path("", include("core.urls")),
    path("", include("flags.machine_urls")),
    path("hooks/", include("rollouts.hook_urls")),
    path("flags/", include("flags.urls")),
    path("rollouts/", include("rollouts.urls")),
    path("comms/", include("comms.urls")),
    path("", include("support.urls")),
    path("api/v1/", include("flags.api.urls")),
    path("api/v1/", include("rollouts.api.urls")),
    path("api/v1/", include("comms.api.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
