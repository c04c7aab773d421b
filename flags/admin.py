"""Django admin for flags: for inspection and history. Changes go through the Rollcall pages and
`flags.services` (they validate rules and bump config versions), so these admins are read-only;
the one action (archive) calls the service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from flags import services
from flags.models import Environment, Flag, FlagState, SdkKey, Segment


class ReadOnlyAdmin(SimpleHistoryAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Environment)
class EnvironmentAdmin(ReadOnlyAdmin):
    list_display = ("name", "key", "order", "is_production", "config_version")
    ordering = ("order", "key")


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    list_display = ("key", "name", "type", "lifecycle", "version", "updated_at")
    list_filter = ("type", "lifecycle")
    search_fields = ("key", "name", "description")
    list_select_related = ("owner",)
    actions = ("archive",)

    @admin.action(description="Archive selected flags (off everywhere)", permissions=["archive"])
    def archive(self, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        for flag in queryset:
            services.flag_archive(flag=flag, actor=request.user)
        messages.success(request, f"Archived {queryset.count()} flag(s).")

    def has_archive_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("flags.change_flag")


@admin.register(FlagState)
class FlagStateAdmin(ReadOnlyAdmin):
    list_display = ("flag", "environment", "enabled", "version", "updated_at")
    list_filter = ("environment", "enabled")
    search_fields = ("flag__key",)
    list_select_related = ("flag", "environment")


@admin.register(Segment)
class SegmentAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "updated_at")
    search_fields = ("name",)


@admin.register(SdkKey)
class SdkKeyAdmin(ReadOnlyAdmin):
    list_display = ("name", "environment", "masked", "revoked_at", "last_used_at", "created_at")
    list_filter = ("environment",)
    list_select_related = ("environment",)
    exclude = ("key_hash",)
