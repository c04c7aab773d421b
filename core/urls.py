from django.contrib.auth import views as auth_views
from django.urls import path

from core import metrics, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("accounts/home/", views.home, name="home"),
    path("accounts/settings/", views.user_settings, name="user-settings"),
    path("failures/", views.failures, name="failures"),
    path("failures/<str:source>/<str:key>/retry", views.failure_retry, name="failure-retry"),
    path("failures/<str:source>/<str:key>/discard", views.failure_discard, name="failure-discard"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
