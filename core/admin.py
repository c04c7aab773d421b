from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.models import Heartbeat


class ReadOnlyAdminMixin:
    """For models that have services: the admin shows them, the services change them (they
    validate, lock rows, log and notify, which a plain admin save would skip). Admin actions
    that call a service declare `permissions=["manage"]`, granted to whoever may change the
    model."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_manage_permission(self, request: HttpRequest) -> bool:
        opts = self.opts  # type: ignore[attr-defined]
        return bool(request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"))


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "last_seen", "hostname")
