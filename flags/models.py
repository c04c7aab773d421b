"""Flags: environments, SDK keys, flags with per-environment rules, and segments.

Rules are stored in Unleash's client API format (activation strategies), so the same JSON
is served to SDKs, imported, exported and compiled by `flags.engine`.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

from core.models import BaseModel

# Unleash's rules: any UTF-8 text without spaces; URLs percent-encode it. Rollcall also keeps
# out the characters that cannot sit in one URL path segment ('/', '\\', '?', '#', '%') and a
# leading '.', '_' or '-'. The same pattern works in Python and PostgreSQL (the check below).
FLAG_KEY_PATTERN = r"^[^\s/\\?#%._-][^\s/\\?#%]*$"
flag_key_validator = RegexValidator(
    FLAG_KEY_PATTERN,
    "Use letters, digits and symbols such as '.', '_' or '-' (any language), starting with a "
    "letter or digit; no spaces, '/', '\\', '?', '#' or '%%'.",
)


class Environment(BaseModel):
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    order = models.PositiveIntegerField(default=0)
    is_production = models.BooleanField(
        default=False, help_text="Production asks for confirmation before a flag is switched."
    )
    # Bumped on every change that affects evaluation; snapshots are rebuilt when it moves.
    config_version = models.PositiveBigIntegerField(default=1)
    history = HistoricalRecords(excluded_fields=["config_version", "updated_at"])

    class Meta:
        ordering = ("order", "key")

    def __str__(self) -> str:
        return self.name


class SdkKey(BaseModel):
    """A secret that lets a service evaluate flags of one environment. Stored hashed."""

    class Kind(models.TextChoices):
        SERVER = "server", "Server (evaluate only)"
        FRONTEND = "frontend", "Frontend (browser and mobile: evaluated toggles only)"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="sdk_keys")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SERVER)
    # The key's public id (not secret): rc_<environment>_<public id>_<32 secret characters>.
    prefix = models.CharField(max_length=16, help_text="Public id, shown to identify the key.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["last_used_at", "updated_at"])

    class Meta:
        ordering = ("environment__order", "-created_at")
        verbose_name = "SDK key"

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    PUBLIC_ID_LENGTH = 4

    @property
    def masked(self) -> str:
        """`rc_production_k7Qx_…`: the environment and the public id, no secret character.
        Keys made before public ids existed show the environment only."""
        if not self.prefix or self.prefix.startswith("rc_"):
            return f"rc_{self.environment.key}_…"
        return f"rc_{self.environment.key}_{self.prefix}_…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()


class Flag(BaseModel):
    class Type(models.TextChoices):
        BOOLEAN = "boolean", "Boolean"
        STRING = "string", "String"
        NUMBER = "number", "Number"
        OBJECT = "object", "Object (JSON)"

    class Lifecycle(models.TextChoices):
        ACTIVE = "active", "Active"
        PERMANENT = "permanent", "Permanent"
        STALE = "stale", "Stale"
        ARCHIVED = "archived", "Archived"

    key = models.CharField(max_length=100, unique=True, validators=[flag_key_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.BOOLEAN)
    # Unleash feature variants: [{"name", "weight", "weightType", "stickiness",
    # "payload": {"type", "value"}, "overrides": [{"contextName", "values"}]}]
    variants = models.JSONField(default=list, blank=True)
    # Unleash dependencies: [{"feature": key, "enabled": bool, "variants": [...]}]
    dependencies = models.JSONField(default=list, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tags = models.JSONField(default=list, blank=True)
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.ACTIVE)
    impression_data = models.BooleanField(default=False)
    # Optimistic concurrency: an edit must name the version it started from.
    version = models.PositiveIntegerField(default=1)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("key",)
        constraints = [
            models.CheckConstraint(
                condition=models.Q(key__regex=FLAG_KEY_PATTERN), name="flag_key_url_safe"
            )
        ]

    def __str__(self) -> str:
        return self.key


class FlagState(BaseModel):
    """A flag in one environment: the kill switch and the ordered rules (OR)."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="states")
    enabled = models.BooleanField(default=False)
    # Unleash activation strategies, in order: [{"name", "parameters", "constraints",
    # "segments": [segment ids], "variants": [...], "title", "disabled"}]
    rules = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("environment__order",)
        constraints = [
            models.UniqueConstraint(fields=["flag", "environment"], name="one_state_per_env")
        ]

    def __str__(self) -> str:
        return f"{self.flag.key} in {self.environment.key}"


class Segment(BaseModel):
    """Reusable named constraints, e.g. "Beta testers" (a user-id list)."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # Unleash constraints: [{"contextName", "operator", "values"|"value", "inverted",
    # "caseInsensitive"}]
    constraints = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


# --------------------------------------------------------------------------------------------
# Usage reported by SDKs: Unleash client metrics and registrations, OFREP evaluations counted
# in process and flushed in aggregate (never a write per evaluation).


class ClientApplication(BaseModel):
    """An SDK instance that registered or sent metrics (Unleash `register` / `metrics`)."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="client_applications"
    )
    app_name = models.CharField(max_length=200)
    instance_id = models.CharField(max_length=200, blank=True)
    sdk_version = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=16, default="unleash")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ("app_name", "instance_id")
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "app_name", "instance_id"], name="one_client_instance"
            )
        ]

    def __str__(self) -> str:
        return f"{self.app_name} ({self.instance_id})"


class FlagUsage(models.Model):
    """Evaluations of one flag in one environment by one app instance in one minute."""

    class Source(models.TextChoices):
        UNLEASH = "unleash", "Unleash SDK"
        FRONTEND = "frontend", "Frontend SDK"
        OFREP = "ofrep", "OFREP"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    flag_key = models.CharField(max_length=200, db_index=True)
    app_name = models.CharField(max_length=200, blank=True)
    instance_id = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    bucket = models.DateTimeField(help_text="Start of the minute the counts are for.")
    yes = models.PositiveBigIntegerField(default=0)
    no = models.PositiveBigIntegerField(default=0)
    variants = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("bucket", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "flag_key", "app_name", "instance_id", "source", "bucket"],
                name="one_usage_row_per_minute",
            )
        ]
        indexes = [models.Index(fields=["flag_key", "bucket"], name="usage_flag_bucket")]

    def __str__(self) -> str:
        return f"{self.flag_key} {self.bucket:%Y-%m-%d %H:%M} {self.yes}/{self.no}"
