"""Support pages (namespace "support"): changelog, customer lookup, feeds, release notes."""

from django.urls import path  # noqa: F401

app_name = "support"
urlpatterns: list = []
