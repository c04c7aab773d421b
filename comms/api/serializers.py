"""Input and output shapes of the notices API (machines only; people use the pages)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from comms.models import (
    Audience,
    Delivery,
    Notice,
    NoticeEvent,
    NoticeTemplate,
    PlanRule,
)
from rollouts.models import Release, Rollout


class AudienceOutputSerializer(serializers.ModelSerializer):
    channel_count = serializers.SerializerMethodField()

    class Meta:
        model = Audience
        fields = ["id", "name", "kind", "timezone", "contacts", "description", "channel_count"]

    def get_channel_count(self, obj: Audience) -> int:
        return getattr(obj, "channel_count", None) or obj.channels.count()


class AudienceInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Audience.Kind.choices, default=Audience.Kind.CUSTOM)
    timezone = serializers.CharField(max_length=64, default="UTC")
    contacts = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class AudienceUpdateSerializer(AudienceInputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    kind = serializers.ChoiceField(choices=Audience.Kind.choices, required=False)
    timezone = serializers.CharField(max_length=64, required=False)
    contacts = serializers.ListField(child=serializers.JSONField(), required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class NoticeTemplateOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = NoticeTemplate
        fields = ["id", "name", "event", "subject", "body", "is_default", "updated_at"]


class NoticeTemplateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    event = serializers.ChoiceField(choices=NoticeEvent.choices)
    subject = serializers.CharField(max_length=300)
    body = serializers.CharField()
    is_default = serializers.BooleanField(default=False)


class NoticeTemplateUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    event = serializers.ChoiceField(choices=NoticeEvent.choices, required=False)
    subject = serializers.CharField(max_length=300, required=False)
    body = serializers.CharField(required=False)
    is_default = serializers.BooleanField(required=False)


class NoticePlanRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    audience = serializers.PrimaryKeyRelatedField(queryset=Audience.objects.all())
    audience_name = serializers.CharField(source="audience.name", read_only=True)
    event = serializers.ChoiceField(choices=[c for c in NoticeEvent.choices if c[0] != "custom"])
    phases = serializers.ChoiceField(choices=PlanRule.Phases.choices, default="all")
    lead_time = serializers.DurationField(
        required=False, allow_null=True, help_text='e.g. "1 00:00:00" (one day) or "02:00:00".'
    )
    template = serializers.PrimaryKeyRelatedField(
        queryset=NoticeTemplate.objects.all(), required=False, allow_null=True
    )
    is_enabled = serializers.BooleanField(default=True)


class PlannedNoticeSerializer(serializers.Serializer):
    audience = serializers.CharField(source="audience.name")
    event = serializers.CharField()
    phase = serializers.SerializerMethodField()
    at = serializers.DateTimeField(allow_null=True)
    at_local = serializers.CharField()
    status = serializers.CharField()
    description = serializers.CharField()
    notice_id = serializers.SerializerMethodField()

    def get_phase(self, obj: Any) -> int | None:
        return obj.phase.order if obj.phase is not None else None

    def get_notice_id(self, obj: Any) -> int | None:
        return obj.notice.id if obj.notice is not None else None


class NoticePlanOutputSerializer(serializers.Serializer):
    rollout = serializers.CharField()
    is_default = serializers.BooleanField(help_text="True until the plan is first stored.")
    rules = NoticePlanRuleSerializer(many=True)
    planned = PlannedNoticeSerializer(many=True)


class NoticePlanInputSerializer(serializers.Serializer):
    rules = NoticePlanRuleSerializer(many=True)


class DeliveryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id", "channel_kind", "channel_name", "recipient", "idempotency_key", "state",
            "attempts", "last_error", "response_code", "sent_at", "next_attempt_at",
        ]  # fmt: skip


class NoticeOutputSerializer(serializers.ModelSerializer):
    audience_name = serializers.CharField(source="audience.name", read_only=True)
    rollout: serializers.SlugRelatedField[Rollout] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    deliveries = serializers.SerializerMethodField()

    class Meta:
        model = Notice
        fields = [
            "id", "state", "state_note", "event", "origin", "audience", "audience_name",
            "rollout", "release", "phase", "subject", "body", "send_at", "time_is_fixed",
            "rendered_subject", "rendered_text", "rendered_html", "corrects", "created_at",
            "dispatched_at", "finished_at", "deliveries",
        ]  # fmt: skip

    def get_deliveries(self, obj: Notice) -> list[dict[str, Any]]:
        if not self.context.get("with_deliveries"):
            return []
        return list(DeliveryOutputSerializer(obj.deliveries.all(), many=True).data)


class NoticeCreateSerializer(serializers.Serializer):
    audience = serializers.PrimaryKeyRelatedField(queryset=Audience.objects.all())
    subject = serializers.CharField(max_length=300)
    body = serializers.CharField()
    rollout = serializers.SlugRelatedField(
        slug_field="key", queryset=Rollout.objects.all(), required=False, allow_null=True
    )
    release = serializers.PrimaryKeyRelatedField(
        queryset=Release.objects.all(), required=False, allow_null=True
    )
    send_at = serializers.DateTimeField(required=False, allow_null=True)
    send_now = serializers.BooleanField(default=False)


class NoticeUpdateSerializer(serializers.Serializer):
    audience = serializers.PrimaryKeyRelatedField(queryset=Audience.objects.all(), required=False)
    subject = serializers.CharField(max_length=300, required=False)
    body = serializers.CharField(required=False)
    send_at = serializers.DateTimeField(required=False, allow_null=True)


class NoticeCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
