"""Shapes of the rollouts management API (input is validated again by the services)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from flags.models import Environment, Flag
from rollouts import strategies
from rollouts.models import (
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ChecklistItem,
    FreezeWindow,
    Hold,
    Phase,
    Release,
    Rollout,
    RolloutEvent,
)
from rollouts.services import allowed_actions, rollout_exposure

# --------------------------------------------------------------------------------------------
# Releases


class ReleaseOutputSerializer(serializers.ModelSerializer):
    owner: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    flags: serializers.SlugRelatedField[Flag] = serializers.SlugRelatedField(
        slug_field="key", many=True, read_only=True
    )

    class Meta:
        model = Release
        fields = (
            "id", "name", "version", "summary", "changelog", "label", "known_issues", "owner",
            "flags", "is_public", "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = fields


class ReleaseInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    version = serializers.CharField(max_length=50, required=False, allow_blank=True)
    summary = serializers.CharField(max_length=500, required=False, allow_blank=True)
    changelog = serializers.CharField(required=False, allow_blank=True)
    # The stubs type Field.label (a field's display name); a field named "label" shadows it.
    label = serializers.ChoiceField(  # type: ignore[assignment]
        choices=Release.Label.choices, required=False
    )
    known_issues = serializers.CharField(required=False, allow_blank=True)
    is_public = serializers.BooleanField(required=False)
    flags = serializers.SlugRelatedField(
        slug_field="key", queryset=Flag.objects.all(), many=True, required=False
    )


# --------------------------------------------------------------------------------------------
# Phases and rollouts


class PhaseInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    percentage = serializers.IntegerField(
        min_value=0, max_value=100, required=False, allow_null=True
    )
    segment = serializers.IntegerField(
        required=False, allow_null=True, help_text="Audience segment id."
    )
    start_rule = serializers.ChoiceField(choices=Phase.StartRule.choices, required=False)
    start_at = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=(
            "ISO 8601 date-time for start_rule 'at'. Without an offset it is a wall-clock "
            "time in the rollout's time zone."
        ),
    )
    soak = serializers.DurationField(
        required=False,
        allow_null=True,
        help_text="Minimum time after the previous phase started, e.g. '01:00:00' or 'P1D'.",
    )
    gate = serializers.ChoiceField(choices=Phase.Gate.choices, required=False)
    notes = serializers.CharField(required=False, allow_blank=True)
    requires_approval = serializers.BooleanField(required=False, default=False)
    checklist = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=20,
        help_text="Steps a person ticks before the phase starts.",
    )


class PhaseOutputSerializer(serializers.ModelSerializer):
    index = serializers.IntegerField(source="order", read_only=True)
    segment_name = serializers.CharField(source="segment.name", read_only=True, default=None)
    soak_seconds = serializers.SerializerMethodField()
    checklist = serializers.SerializerMethodField()

    class Meta:
        model = Phase
        fields = (
            "index", "name", "percentage", "segment", "segment_name", "start_rule", "start_at",
            "soak", "soak_seconds", "gate", "requires_approval", "checklist", "notes",
            "applied_at",
        )  # fmt: skip
        read_only_fields = fields

    def get_soak_seconds(self, phase: Phase) -> float | None:
        return phase.soak.total_seconds() if phase.soak is not None else None

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_checklist(self, phase: Phase) -> list[str]:
        return [item.label for item in phase.checklist.all()]


class RolloutOutputSerializer(serializers.ModelSerializer):
    release: serializers.PrimaryKeyRelatedField[Release] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    release_name = serializers.CharField(source="release.__str__", read_only=True)
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    flag: serializers.SlugRelatedField[Flag] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    owner: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    exposure = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()
    active_holds = serializers.SerializerMethodField()
    phases = PhaseOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Rollout
        fields = (
            "key", "release", "release_name", "environment", "strategy", "flag", "timezone",
            "owner", "state", "current_phase_index", "exposure", "phase_started_at",
            "next_due_at", "started_at", "finished_at", "allow_decreasing", "alert_policy",
            "alert_matchers", "alert_auto_resume", "rollback_mode", "active_holds",
            "version", "allowed_actions", "phases", "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_exposure(self, rollout: Rollout) -> int | None:
        return rollout_exposure(rollout)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_allowed_actions(self, rollout: Rollout) -> list[str]:
        return sorted(allowed_actions(rollout))

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_active_holds(self, rollout: Rollout) -> list[dict[str, Any]]:
        holds = getattr(rollout, "active_holds_list", None)
        if holds is None:
            holds = list(rollout.holds.filter(cleared_at__isnull=True))
        return [
            {"id": h.id, "kind": h.kind, "reason": h.reason, "held_at": h.held_at} for h in holds
        ]


class RolloutCreateInputSerializer(serializers.Serializer):
    release = serializers.PrimaryKeyRelatedField(queryset=Release.objects.all())
    environment = serializers.SlugRelatedField(slug_field="key", queryset=Environment.objects.all())
    strategy = serializers.ChoiceField(choices=Rollout.Strategy.choices)
    flag = serializers.SlugRelatedField(
        slug_field="key",
        queryset=Flag.objects.all(),
        required=False,
        allow_null=True,
        help_text="An existing flag to drive; omit to create one shaped for the strategy.",
    )
    flag_key = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text="Key of the flag to create."
    )
    key = serializers.CharField(max_length=100, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")
    template = serializers.ChoiceField(
        choices=sorted(strategies.TEMPLATES), required=False, allow_null=True
    )
    phases = PhaseInputSerializer(many=True, required=False)
    allow_decreasing = serializers.BooleanField(required=False, default=False)
    alert_policy = serializers.ChoiceField(
        choices=Rollout.AlertPolicy.choices, required=False, default=Rollout.AlertPolicy.HOLD
    )


class PlanInputSerializer(serializers.Serializer):
    phases = PhaseInputSerializer(many=True)
    expected_version = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="The rollout version you edited (409 if it moved).",
    )
    allow_decreasing = serializers.BooleanField(required=False, allow_null=True, default=None)


class ActionInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class AdvanceInputSerializer(ActionInputSerializer):
    expected_phase_index = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="The current phase index you saw; 409 if the rollout moved meanwhile.",
    )


class EventOutputSerializer(serializers.ModelSerializer):
    actor: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    lateness_seconds = serializers.SerializerMethodField()

    class Meta:
        model = RolloutEvent
        fields = (
            "id", "kind", "source", "actor", "at", "due_at", "lateness_seconds",
            "from_phase_index", "to_phase_index", "from_percentage", "to_percentage", "reason",
            "data",
        )  # fmt: skip
        read_only_fields = fields

    def get_lateness_seconds(self, event: RolloutEvent) -> float | None:
        if event.due_at is None or event.source != RolloutEvent.Source.SCHEDULER:
            return None
        return round((event.at - event.due_at).total_seconds(), 3)


def phases_payload(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated phase input as the services expect it."""
    return [dict(p) for p in phases]


# --------------------------------------------------------------------------------------------
# Rollout safety


class RollbackInputSerializer(ActionInputSerializer):
    mode = serializers.ChoiceField(
        choices=Rollout.RollbackMode.choices,
        required=False,
        default=Rollout.RollbackMode.RESTORE,
        help_text="restore: the rules from before the rollout; freeze: keep the current "
        "exposure (not for canary and blue/green, which always switch back).",
    )


class OverrideInputSerializer(ActionInputSerializer):
    override_window = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Inside a freeze window: override it (needs rollouts.override_freeze and a "
        "reason; recorded as an `override` event). Approvals cannot be overridden.",
    )


class AdvanceOverrideInputSerializer(AdvanceInputSerializer, OverrideInputSerializer):
    pass


class HoldInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class HoldOutputSerializer(serializers.ModelSerializer):
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    cleared_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = Hold
        fields = (
            "id", "kind", "reason", "source", "created_by", "held_at", "active",
            "alert_fingerprint", "alert_name", "alert_labels", "approval", "window",
            "cleared_at", "cleared_by", "cleared_source", "clear_reason",
        )  # fmt: skip
        read_only_fields = fields


class DecisionOutputSerializer(serializers.ModelSerializer):
    user: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = ApprovalDecision
        fields = ("user", "decision", "comment", "at")
        read_only_fields = fields


class ApprovalOutputSerializer(serializers.ModelSerializer):
    rollout: serializers.SlugRelatedField[Rollout] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    phase_index = serializers.IntegerField(source="phase.order", read_only=True)
    phase_name = serializers.CharField(source="phase.name", read_only=True)
    percentage = serializers.IntegerField(source="phase.percentage", read_only=True)
    requested_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    approvals = serializers.SerializerMethodField()
    decisions = DecisionOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Approval
        fields = (
            "id", "rollout", "phase_index", "phase_name", "percentage", "state", "required",
            "approvals", "allow_self_approval", "why", "requested_by", "requested_at",
            "decided_at", "decisions",
        )  # fmt: skip
        read_only_fields = fields

    def get_approvals(self, approval: Approval) -> int:
        return sum(1 for d in approval.decisions.all() if d.decision == "approve")


class DecisionInputSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ChecklistItemOutputSerializer(serializers.ModelSerializer):
    phase_index = serializers.IntegerField(source="phase.order", read_only=True)
    ticked_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = ChecklistItem
        fields = ("id", "phase_index", "position", "label", "ticked_by", "ticked_at", "note")
        read_only_fields = fields


class TickInputSerializer(serializers.Serializer):
    ticked = serializers.BooleanField(required=False, default=True)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class WindowSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(
        slug_field="key",
        queryset=Environment.objects.all(),
        required=False,
        allow_null=True,
        help_text="Environment key; null: every environment.",
    )
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    duration = serializers.DurationField(
        required=False, allow_null=True, help_text="Of each recurring occurrence, e.g. '07:00:00'."
    )

    class Meta:
        model = FreezeWindow
        fields = (
            "id", "name", "kind", "environment", "timezone", "starts_at", "ends_at", "cron",
            "duration", "reason", "is_active", "created_by", "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = ("id", "created_by", "created_at", "updated_at")
        extra_kwargs = {
            "starts_at": {"help_text": "One-off: start, ISO 8601 with an offset."},
            "cron": {"help_text": "Recurring: 5-field cron in `timezone`, e.g. '0 9 * * 1-5'."},
        }

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.validated_data)
        if "timezone" in data:
            data["timezone_name"] = data.pop("timezone")
        return data


class PolicySerializer(serializers.ModelSerializer):
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    requires_completed_in = serializers.SlugRelatedField(
        slug_field="key",
        queryset=Environment.objects.all(),
        required=False,
        allow_null=True,
        help_text="Environment key where the release must have completed first.",
    )

    class Meta:
        model = ApprovalPolicy
        fields = (
            "environment", "min_percentage", "approvals_required", "allow_self_approval",
            "requires_completed_in", "updated_at",
        )  # fmt: skip
        read_only_fields = ("environment", "updated_at")


class AlertSettingsInputSerializer(serializers.Serializer):
    alert_policy = serializers.ChoiceField(choices=Rollout.AlertPolicy.choices, required=False)
    alert_matchers = serializers.CharField(
        required=False, allow_blank=True, help_text="Alertmanager matchers, one a line."
    )
    alert_auto_resume = serializers.BooleanField(required=False)
    rotate_secret = serializers.BooleanField(required=False, default=False)
