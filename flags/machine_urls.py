"""Machine endpoints at the root: OFREP (/ofrep/v1/...), the Unleash client and frontend APIs.

No trailing slashes (SDKs build these paths themselves); SDK-key auth, CSRF-exempt, CORS.
"""

from django.urls import path, re_path

from flags import frontend, ofrep, unleash

urlpatterns = [
    path("ofrep/v1/evaluate/flags", ofrep.evaluate_flags, name="ofrep-evaluate-flags"),
    re_path(
        r"^ofrep/v1/evaluate/flags/(?P<key>[^/]+)$",
        ofrep.evaluate_flag,
        name="ofrep-evaluate-flag",
    ),
    path("api/client/features", unleash.client_features, name="unleash-client-features"),
    path("api/client/register", unleash.client_register, name="unleash-client-register"),
    path("api/client/metrics", unleash.client_metrics, name="unleash-client-metrics"),
    path("api/frontend", frontend.frontend_features, name="unleash-frontend"),
    path("api/frontend/client/metrics", frontend.frontend_metrics, name="unleash-frontend-metrics"),
    path(
        "api/frontend/client/register",
        frontend.frontend_register,
        name="unleash-frontend-register",
    ),
    re_path(
        r"^api/frontend/features/(?P<name>[^/]+)$",
        frontend.frontend_feature,
        name="unleash-frontend-feature",
    ),
]
