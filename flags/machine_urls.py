"""Machine endpoints at the root: OFREP (/ofrep/v1/...) and the Unleash client API."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
