"""Releases, rollouts with phased plans, and the rollout event log."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from core.models import BaseModel


class Release(BaseModel):
    class Label(models.TextChoices):
        NEW = "new", "New"
        IMPROVEMENT = "improvement", "Improvement"
        FIX = "fix", "Fix"
        DEPRECATION = "deprecation", "Deprecation"

    name = models.CharField(max_length=200)
    version = models.CharField(max_length=50, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    changelog = models.TextField(blank=True, help_text="Markdown; rendered and sanitized.")
    label = models.CharField(max_length=16, choices=Label.choices, default=Label.NEW)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    known_issues = models.TextField(blank=True, help_text="Markdown; shown to support staff.")
    flags = models.ManyToManyField("flags.Flag", blank=True, related_name="releases")
    is_public = models.BooleanField(
        default=False, help_text="Shown on the public release notes page and feed."
    )
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()


class Rollout(BaseModel):
    class Strategy(models.TextChoices):
        FEATURE_FLAG = "feature_flag", "Feature flag"
        CANARY = "canary", "Canary"
        BLUE_GREEN = "blue_green", "Blue/green"
        ROLLING = "rolling", "Rolling"
        SHADOW = "shadow", "Shadow"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        HELD = "held", "Held"
        COMPLETED = "completed", "Completed"
        ROLLED_BACK = "rolled_back", "Rolled back"
        CANCELLED = "cancelled", "Cancelled"

    FINAL_STATES = (State.COMPLETED, State.ROLLED_BACK, State.CANCELLED)
    ACTIVE_STATES = (State.SCHEDULED, State.RUNNING, State.PAUSED, State.HELD)

    class AlertPolicy(models.TextChoices):
        HOLD = "hold", "Hold the rollout"
        ROLLBACK = "rollback", "Roll back"

    key = models.SlugField(
        max_length=100, unique=True, help_text="Stable id, e.g. for Alertmanager's `rollout` label."
    )
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="rollouts")
    environment = models.ForeignKey(
        "flags.Environment", on_delete=models.PROTECT, related_name="rollouts"
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices)
    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="rollouts")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA time zone name.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.DRAFT, db_index=True
    )
    # Index of the phase whose exposure is applied; -1 before the first phase.
    current_phase_index = models.IntegerField(default=-1)
    # When the current phase was applied: the start of its soak.
    phase_started_at = models.DateTimeField(null=True, blank=True)
    # When the next phase is due (derived from stored facts on every transition, kept as a
    # column so the scheduler sweep is one indexed query).
    next_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The flag state in this environment before the rollout touched it: {"enabled", "rules"}.
    captured_state = models.JSONField(null=True, blank=True)
    allow_decreasing = models.BooleanField(
        default=False, help_text="Allow a phase with less exposure than the one before."
    )
    alert_policy = models.CharField(
        max_length=16, choices=AlertPolicy.choices, default=AlertPolicy.HOLD
    )
    alert_secret = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The soak clock stops while a rollout is paused or held: when the pause began, and how
    # long the current phase has been stopped in total (reset when the next phase applies).
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_for = models.DurationField(default=timedelta(0))
    version = models.PositiveIntegerField(default=1)
    history = HistoricalRecords(excluded_fields=["updated_at", "next_due_at"])

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.CheckConstraint(
                condition=models.Q(current_phase_index__gte=-1), name="phase_index_valid"
            ),
            # One flag in one environment is driven by at most one live rollout.
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=models.Q(state__in=["scheduled", "running", "paused", "held"]),
                name="one_active_rollout_per_flag_env",
            ),
        ]
        indexes = [
            # The scheduler sweep: due rollouts that the clock may move.
            models.Index(
                fields=["next_due_at"],
                condition=models.Q(state__in=["scheduled", "running"]),
                name="rollout_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.release} in {self.environment}"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class Phase(BaseModel):
    class StartRule(models.TextChoices):
        AT = "at", "At a date and time"
        AFTER_SOAK = "after_soak", "After a soak following the previous phase"

    class Gate(models.TextChoices):
        AUTOMATIC = "automatic", "Automatic"
        MANUAL = "manual", "Wait for a person to continue"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="phases")
    order = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    percentage = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    segment = models.ForeignKey(
        "flags.Segment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    start_rule = models.CharField(
        max_length=16, choices=StartRule.choices, default=StartRule.AFTER_SOAK
    )
    start_at = models.DateTimeField(null=True, blank=True)
    soak = models.DurationField(null=True, blank=True)
    gate = models.CharField(max_length=16, choices=Gate.choices, default=Gate.AUTOMATIC)
    notes = models.TextField(blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("rollout", "order")
        constraints = [
            models.UniqueConstraint(fields=["rollout", "order"], name="phase_order_unique"),
            models.CheckConstraint(
                condition=models.Q(percentage__isnull=True)
                | models.Q(percentage__gte=0, percentage__lte=100),
                name="phase_percentage_0_100",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RolloutEvent(models.Model):
    """One transition of a rollout, written in the same transaction as the change."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        PLAN_CHANGED = "plan_changed", "Plan changed"
        SCHEDULED = "scheduled", "Scheduled"
        STARTED = "started", "Started"
        ADVANCED = "advanced", "Phase started"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        HELD = "held", "Held"
        HOLD_CLEARED = "hold_cleared", "Hold cleared"
        COMPLETED = "completed", "Completed"
        ROLLED_BACK = "rolled_back", "Rolled back"
        CANCELLED = "cancelled", "Cancelled"
        APPROVAL_REQUESTED = "approval_requested", "Approval requested"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        OVERRIDE = "override", "Override"
        NOTE = "note", "Note"

    class Source(models.TextChoices):
        UI = "ui", "UI"
        API = "api", "API"
        SCHEDULER = "scheduler", "Scheduler"
        ALERT = "alert", "Alert"
        SYSTEM = "system", "System"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(db_index=True)
    # When the transition was due (scheduler): lateness = at - due_at.
    due_at = models.DateTimeField(null=True, blank=True)
    from_phase_index = models.IntegerField(null=True, blank=True)
    to_phase_index = models.IntegerField(null=True, blank=True)
    from_percentage = models.PositiveSmallIntegerField(null=True, blank=True)
    to_percentage = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    # Set once downstream consumers (notices) have handled the event; a sweep picks up the
    # rest, so no event is ever lost when a worker was down.
    dispatched_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ("at", "id")
        indexes = [models.Index(fields=["rollout", "at"], name="event_rollout_at")]

    def __str__(self) -> str:
        return f"{self.rollout_id} {self.kind} at {self.at.isoformat()}"
