"""Django admin for notices: read-only; changes go through the pages and the services (they
validate templates, URLs and recipients). Channel URLs and signing secrets are never shown."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from simple_history.admin import SimpleHistoryAdmin

from comms import services
from comms.models import (
    Audience,
    Channel,
    CommunicationPlan,
    Delivery,
    Notice,
    NoticeTemplate,
    PlanRule,
)
from core.admin import ReadOnlyAdminMixin
from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest


class ChannelInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Channel
    extra = 0
    fields = ("name", "kind", "is_enabled", "masked_url", "masked_secret")
    readonly_fields = ("masked_url", "masked_secret")
    show_change_link = True


@admin.register(Audience)
class AudienceAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "kind", "timezone")
    list_filter = ("kind",)
    search_fields = ("name",)
    inlines = [ChannelInline]


@admin.register(Channel)
class ChannelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "audience", "kind", "is_enabled", "masked_url")
    list_filter = ("kind", "is_enabled")
    list_select_related = ("audience",)
    # The webhook URL (Slack/Teams: the credential) and the signing secret stay hidden.
    fields = ("audience", "kind", "name", "is_enabled", "masked_url", "masked_secret", "recipients")
    readonly_fields = fields


@admin.register(NoticeTemplate)
class NoticeTemplateAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "event", "is_default", "updated_at")
    list_filter = ("event", "is_default")


class PlanRuleInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PlanRule
    extra = 0


@admin.register(CommunicationPlan)
class CommunicationPlanAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("rollout", "created_at")
    list_select_related = ("rollout", "rollout__release", "rollout__environment")
    inlines = [PlanRuleInline]


class DeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = ("channel_name", "recipient", "state", "attempts", "last_error", "sent_at")
    readonly_fields = fields


@admin.register(Notice)
class NoticeAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ("id", "title", "audience", "event", "state", "send_at", "finished_at")
    list_filter = ("state", "event", "origin", "audience")
    list_select_related = ("audience", "release", "phase")
    readonly_fields = (
        "rendered_subject", "rendered_text", "rendered_html", "context_data", "dispatched_at",
        "finished_at", "dedupe_key",
    )  # fmt: skip
    inlines = [DeliveryInline]
    actions = ["retry_failed", "cancel"]

    @admin.action(description="Retry failed deliveries", permissions=["manage"])
    def retry_failed(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Notice]) -> None:
        count = 0
        for notice in queryset:
            try:
                count += services.notice_retry(notice=notice, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{notice}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Retrying {count} deliveries.")

    @admin.action(description="Cancel (drafts and scheduled only)", permissions=["manage"])
    def cancel(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Notice]) -> None:
        for notice in queryset:
            try:
                services.notice_cancel(notice=notice, actor=request.user, reason="admin")
            except ApplicationError as exc:
                self.message_user(request, f"{notice}: {exc.message}", messages.WARNING)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "notice", "channel_name", "recipient", "state", "attempts", "sent_at")
    list_filter = ("state", "channel_kind")
    list_select_related = ("notice",)
    readonly_fields = ("idempotency_key",)
