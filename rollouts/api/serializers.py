"""Shapes of the rollouts management API (input is validated again by the services)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from flags.models import Environment, Flag
from rollouts import strategies
from rollouts.models import Phase, Release, Rollout, RolloutEvent
from rollouts.services import allowed_actions, rollout_exposure

# --------------------------------------------------------------------------------------------
# Releases


class ReleaseOutputSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    flags = serializers.SlugRelatedField(slug_field="key", many=True, read_only=True)

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
    label = serializers.ChoiceField(choices=Release.Label.choices, required=False)
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


class PhaseOutputSerializer(serializers.ModelSerializer):
    index = serializers.IntegerField(source="order", read_only=True)
    segment_name = serializers.CharField(source="segment.name", read_only=True, default=None)
    soak_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Phase
        fields = (
            "index", "name", "percentage", "segment", "segment_name", "start_rule", "start_at",
            "soak", "soak_seconds", "gate", "notes", "applied_at",
        )  # fmt: skip
        read_only_fields = fields

    def get_soak_seconds(self, phase: Phase) -> float | None:
        return phase.soak.total_seconds() if phase.soak is not None else None


class RolloutOutputSerializer(serializers.ModelSerializer):
    release = serializers.PrimaryKeyRelatedField(read_only=True)
    release_name = serializers.CharField(source="release.__str__", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="key", read_only=True)
    flag = serializers.SlugRelatedField(slug_field="key", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    exposure = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()
    phases = PhaseOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Rollout
        fields = (
            "key", "release", "release_name", "environment", "strategy", "flag", "timezone",
            "owner", "state", "current_phase_index", "exposure", "phase_started_at",
            "next_due_at", "started_at", "finished_at", "allow_decreasing", "alert_policy",
            "version", "allowed_actions", "phases", "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_exposure(self, rollout: Rollout) -> int | None:
        return rollout_exposure(rollout)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_allowed_actions(self, rollout: Rollout) -> list[str]:
        return sorted(allowed_actions(rollout))


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
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)
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
