"""Serializers of the flags management API.

Names are unique so that the OpenAPI components do not collide; views refer to them as their
nested `InputSerializer` / `OutputSerializer`. Shapes follow Unleash's JSON (rules are
activation strategies); `flags.services` does the semantic validation, so that the API, the UI
and imports accept exactly the same things.
"""

from __future__ import annotations

from rest_framework import serializers

from flags.models import Flag
from flags.services import OPERATORS, PAYLOAD_TYPES, STRATEGIES, TOTAL_WEIGHT


class ConstraintSerializer(serializers.Serializer):
    contextName = serializers.CharField(
        help_text="userId, sessionId, remoteAddress, or any property."
    )
    operator = serializers.ChoiceField(choices=sorted(OPERATORS))
    values = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text="For IN, NOT_IN, STR_* and IN_CIDR.",
    )
    value = serializers.CharField(
        required=False, allow_blank=True, help_text="For NUM_*, DATE_*, SEMVER_* and REGEX."
    )
    inverted = serializers.BooleanField(required=False, default=False)
    caseInsensitive = serializers.BooleanField(required=False, default=False)


class PayloadSerializer(serializers.Serializer):
    # A CharField (checked by the services) keeps the OpenAPI enum of flag `type` unambiguous.
    type = serializers.CharField(help_text=f"One of {', '.join(sorted(PAYLOAD_TYPES))}.")
    value = serializers.CharField(allow_blank=True)


class OverrideSerializer(serializers.Serializer):
    contextName = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())


class VariantSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    weight = serializers.IntegerField(
        min_value=0,
        max_value=TOTAL_WEIGHT,
        required=False,
        allow_null=True,
        help_text="In thousandths (1000 = 100%). Omit on `variable` variants to share the rest.",
    )
    weightType = serializers.ChoiceField(choices=["fix", "variable"], required=False)
    stickiness = serializers.CharField(required=False, default="default")
    payload = PayloadSerializer(required=False, allow_null=True)
    overrides = OverrideSerializer(many=True, required=False)


class RuleSerializer(serializers.Serializer):
    """An Unleash activation strategy; the flag is on when any rule matches."""

    name = serializers.ChoiceField(choices=sorted(STRATEGIES), default="flexibleRollout")
    title = serializers.CharField(required=False, allow_blank=True)
    parameters = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text='flexibleRollout: {"rollout": "0-100", "stickiness": "default", "groupId": key}.',
    )
    constraints = ConstraintSerializer(many=True, required=False)
    segments = serializers.ListField(child=serializers.IntegerField(), required=False)
    variants = serializers.ListField(child=serializers.DictField(), required=False)
    disabled = serializers.BooleanField(required=False)


# --------------------------------------------------------------------------------------------
# Flags


class FlagStateOutputSerializer(serializers.Serializer):
    environment = serializers.CharField(source="environment.key")
    environment_name = serializers.CharField(source="environment.name")
    is_production = serializers.BooleanField(source="environment.is_production")
    enabled = serializers.BooleanField()
    rules = RuleSerializer(many=True)
    version = serializers.IntegerField(help_text="Send it back to change the state.")
    updated_at = serializers.DateTimeField()


class FlagOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    type = serializers.ChoiceField(choices=Flag.Type.choices)
    variants = VariantSerializer(many=True)
    tags = serializers.ListField(child=serializers.CharField())
    lifecycle = serializers.ChoiceField(choices=Flag.Lifecycle.choices)
    owner = serializers.CharField(source="owner.username", allow_null=True, read_only=True)
    version = serializers.IntegerField(help_text="Send it back to change the flag.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    environments = FlagStateOutputSerializer(source="states.all", many=True, read_only=True)


class FlagPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = FlagOutputSerializer(many=True)


class FlagCreateInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=100, help_text="Immutable; letters, digits, . _ -")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    type = serializers.ChoiceField(choices=Flag.Type.choices, default=Flag.Type.BOOLEAN)
    variants = VariantSerializer(many=True, required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    lifecycle = serializers.ChoiceField(
        choices=Flag.Lifecycle.choices, default=Flag.Lifecycle.ACTIVE
    )


class FlagUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True)
    type = serializers.ChoiceField(choices=Flag.Type.choices)
    variants = VariantSerializer(many=True)
    tags = serializers.ListField(child=serializers.CharField())
    lifecycle = serializers.ChoiceField(choices=Flag.Lifecycle.choices)
    version = serializers.IntegerField(
        help_text="The version you read; a stale one answers 409 Conflict."
    )


class FlagArchiveInputSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, help_text="Optional concurrency check.")


class FlagStateInputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    rules = RuleSerializer(many=True, required=False)
    version = serializers.IntegerField(
        help_text="The state's version you read; a stale one answers 409 Conflict."
    )


class FlagToggleInputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


# --------------------------------------------------------------------------------------------
# Segments


class SegmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    constraints = ConstraintSerializer(many=True)
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SegmentInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    constraints = ConstraintSerializer(many=True, required=False, default=list)
    version = serializers.IntegerField(
        required=False, help_text="On updates: the version you read (409 when stale)."
    )


# --------------------------------------------------------------------------------------------
# Environments and SDK keys


class EnvironmentOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    order = serializers.IntegerField()
    is_production = serializers.BooleanField()
    config_version = serializers.IntegerField()


class EnvironmentCreateInputSerializer(serializers.Serializer):
    key = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=100)
    is_production = serializers.BooleanField(required=False, default=False)
    order = serializers.IntegerField(required=False, min_value=0)


class EnvironmentUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    is_production = serializers.BooleanField(required=False)
    order = serializers.IntegerField(required=False, min_value=0)


class SdkKeyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    environment = serializers.CharField(source="environment.key")
    name = serializers.CharField()
    kind = serializers.CharField(help_text="server or frontend (evaluated answers only).")
    masked = serializers.CharField(
        help_text="The first characters only; the key is never shown again."
    )
    active = serializers.BooleanField(source="is_active")
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(
        source="created_by.username", allow_null=True, read_only=True
    )
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class SdkKeyCreatedOutputSerializer(SdkKeyOutputSerializer):
    key = serializers.CharField(help_text="The raw key: shown in this answer only. Store it now.")


class SdkKeyCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(
        choices=["server", "frontend"],
        default="server",
        help_text=(
            "server: reads the rules (Unleash client API) and evaluates (OFREP); frontend: "
            "evaluated answers only (Unleash frontend API, OFREP), safe in a browser."
        ),
    )
