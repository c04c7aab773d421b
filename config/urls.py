from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated

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
    # The API description is for people who use the API: signed-in users (session or token).
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]),
        name="api-schema",
    ),
    # Split view: the Swagger UI start-up script is a file, not inline (CSP); its page keeps
    # one inline <style> block from drf-spectacular.
    path(
        "api/docs/",
        login_required(
            csp_update({"style-src": [UNSAFE_INLINE]})(
                SpectacularSwaggerSplitView.as_view(url_name="api-schema")
            )
        ),
        name="api-docs",
    ),
]
