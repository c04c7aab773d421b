"""Admin: releases and rollouts are read here and changed only through the pages and services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ReadOnlyAdminMixin
from core.exceptions import ApplicationError
from rollouts import services
from rollouts.models import (
    Approval,
    ApprovalPolicy,
    FreezeWindow,
    Hold,
    Phase,
    Release,
    Rollout,
    RolloutEvent,
)

ADMIN = RolloutEvent.Source.UI


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "version", "label", "is_public", "owner", "created_at")
    list_filter = ("label", "is_public")
    search_fields = ("name", "version", "summary")
    filter_horizontal = ("flags",)


class PhaseInline(admin.TabularInline):
    model = Phase
    extra = 0
    can_delete = False
    fields = (
        "order", "name", "percentage", "segment", "start_rule", "start_at", "soak", "gate",
        "applied_at",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _run(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, name: str, call: Any
) -> None:
    done = 0
    for rollout in queryset:
        try:
            call(rollout, request)
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{name}: {done} rollout(s).", messages.SUCCESS)


@admin.action(description="Pause selected rollouts", permissions=["manage"])
def pause(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _run(
        modeladmin, request, queryset, "Paused",
        lambda r, q: services.rollout_pause(
            rollout=r, actor=q.user, source=ADMIN, reason="Paused in the admin."
        ),
    )  # fmt: skip


@admin.action(description="Resume selected rollouts", permissions=["manage"])
def resume(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _run(
        modeladmin, request, queryset, "Resumed",
        lambda r, q: services.rollout_resume(rollout=r, actor=q.user, source=ADMIN),
    )  # fmt: skip


@admin.action(description="Roll back selected rollouts", permissions=["manage"])
def rollback(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _run(
        modeladmin, request, queryset, "Rolled back",
        lambda r, q: services.rollout_rollback(
            rollout=r, actor=q.user, source=ADMIN, reason="Rolled back in the admin."
        ),
    )  # fmt: skip


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = (
        "key", "release", "environment", "strategy", "state", "current_phase_index",
        "next_due_at",
    )  # fmt: skip
    list_filter = ("state", "strategy", "environment")
    search_fields = ("key", "release__name", "flag__key")
    list_select_related = ("release", "environment")
    inlines = (PhaseInline,)
    actions = (pause, resume, rollback)
    readonly_fields = (
        "key", "release", "environment", "strategy", "flag", "state", "current_phase_index",
        "phase_started_at", "next_due_at", "captured_state", "started_at", "finished_at",
        "paused_at", "paused_for", "version", "alert_matchers",
        "alert_auto_resume", "rollback_mode", "held_from",
    )  # fmt: skip
    # The alert hook secret is never shown after creation (it authenticates Alertmanager).
    exclude = ("alert_secret",)


@admin.register(RolloutEvent)
class RolloutEventAdmin(admin.ModelAdmin):
    list_display = ("rollout", "kind", "source", "actor", "at", "due_at", "to_percentage")
    list_filter = ("kind", "source")
    search_fields = ("rollout__key", "reason")
    list_select_related = ("rollout", "actor")
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --------------------------------------------------------------------------------------------
# Rollout safety: read here, changed through the pages and the API (the services move the due
# times of live rollouts when windows or policies change, which a plain admin save would not).


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FreezeWindow)
class FreezeWindowAdmin(_ReadOnlyAdmin):
    list_display = ("name", "kind", "environment", "timezone", "cron", "starts_at", "is_active")
    list_filter = ("kind", "environment", "is_active")
    search_fields = ("name", "reason")


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(_ReadOnlyAdmin):
    list_display = (
        "environment", "min_percentage", "approvals_required", "allow_self_approval",
        "requires_completed_in",
    )  # fmt: skip


@admin.register(Approval)
class ApprovalAdmin(_ReadOnlyAdmin):
    list_display = ("rollout", "phase", "state", "required", "requested_by", "requested_at")
    list_filter = ("state",)
    search_fields = ("rollout__key",)
    list_select_related = ("rollout", "phase", "requested_by")


@admin.register(Hold)
class HoldAdmin(_ReadOnlyAdmin):
    list_display = ("rollout", "kind", "reason", "held_at", "cleared_at", "alert_fingerprint")
    list_filter = ("kind",)
    search_fields = ("rollout__key", "reason", "alert_fingerprint")
    list_select_related = ("rollout",)
