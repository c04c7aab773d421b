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

    class RollbackMode(models.TextChoices):
        RESTORE = "restore", "Restore the rules from before the rollout"
        FREEZE = "freeze", "Freeze at the current exposure"

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
    # The flag state's version right after this rollout last changed it (or a person accepted
    # a hand edit by resuming): another version before the next phase means a hand edit.
    applied_flag_version = models.PositiveIntegerField(null=True, blank=True)
    allow_decreasing = models.BooleanField(
        default=False, help_text="Allow a phase with less exposure than the one before."
    )
    alert_policy = models.CharField(
        max_length=16, choices=AlertPolicy.choices, default=AlertPolicy.HOLD
    )
    alert_secret = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="Secret of the Alertmanager webhook."
    )
    # Alertmanager matchers, one a line (`service="checkout"`, `severity=~"critical|page"`):
    # a firing alert whose labels match them all (or whose `rollout` label is the key) counts.
    alert_matchers = models.TextField(blank=True)
    alert_auto_resume = models.BooleanField(
        default=False,
        help_text="Resume on its own once every alert that held it is resolved.",
    )
    # How it was rolled back: the pre-rollout rules restored, or frozen at the exposure it had.
    rollback_mode = models.CharField(max_length=16, choices=RollbackMode.choices, blank=True)
    # The state a held rollout returns to once its last hold is cleared (running, paused or
    # scheduled); blank when not held.
    held_from = models.CharField(max_length=16, blank=True)
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
        permissions = [
            ("approve_rollout", "Can approve or decline gated rollout phases"),
            ("override_freeze", "Can advance a rollout inside a freeze window (with a reason)"),
        ]
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
    requires_approval = models.BooleanField(
        default=False, help_text="Someone other than the requester approves before it starts."
    )
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
        CHECKLIST_TICKED = "checklist_ticked", "Checklist item ticked"
        CHECKLIST_UNTICKED = "checklist_unticked", "Checklist item unticked"
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


# --------------------------------------------------------------------------------------------
# Safety: testing-protocol checklists, approvals, holds, freeze windows, environment policies


class ChecklistItem(BaseModel):
    """One step of a phase's testing protocol ("staging sign-off"), ticked by a person."""

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="checklist")
    position = models.PositiveSmallIntegerField(default=0)
    label = models.CharField(max_length=200)
    ticked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ticked_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ("phase", "position", "id")
        indexes = [models.Index(fields=["phase", "ticked_at"], name="checklist_open")]

    def __str__(self) -> str:
        return self.label

    @property
    def is_ticked(self) -> bool:
        return self.ticked_at is not None


class Approval(BaseModel):
    """A request that people other than the requester approve a phase before it starts."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        CANCELLED = "cancelled", "Cancelled"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="approvals")
    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="approvals")
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    required = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    allow_self_approval = models.BooleanField(default=False)
    why = models.CharField(max_length=300, blank=True, help_text="Which rule asks for it.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-requested_at", "-id")
        constraints = [
            # At most one open (or granted) request per phase: a retry never asks twice.
            models.UniqueConstraint(
                fields=["phase"],
                condition=models.Q(state__in=["pending", "approved"]),
                name="one_live_approval_per_phase",
            ),
            models.CheckConstraint(
                condition=models.Q(required__gte=1, required__lte=10), name="approval_required_1_10"
            ),
        ]

    def __str__(self) -> str:
        return f"approval of {self.phase} ({self.state})"


class ApprovalDecision(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        DECLINE = "decline", "Declined"

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="decisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ("at", "id")
        constraints = [
            models.UniqueConstraint(fields=["approval", "user"], name="one_decision_per_person")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.decision} {self.approval_id}"


class Hold(BaseModel):
    """Why a rollout is held: while any hold is active the clock stops and exposure stays."""

    class Kind(models.TextChoices):
        MANUAL = "manual", "Held by a person"
        ALERT = "alert", "Alert firing"
        FREEZE = "freeze", "Freeze window"
        DECLINED = "declined", "Approval declined"
        CHECK = "check", "Metric check failed or inconclusive"
        FAILING = "failing", "Scheduled step keeps failing"
        FLAG_EDITED = "flag_edited", "Flag edited by hand"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="holds")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=RolloutEvent.Source.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    held_at = models.DateTimeField()
    # Alerts: `fingerprint@startsAt` identifies one firing of one alert (re-sends are no-ops).
    alert_key = models.CharField(max_length=200, blank=True)
    alert_fingerprint = models.CharField(max_length=128, blank=True, db_index=True)
    alert_name = models.CharField(max_length=200, blank=True)
    alert_labels = models.JSONField(default=dict, blank=True)
    approval = models.ForeignKey(
        Approval, null=True, blank=True, on_delete=models.SET_NULL, related_name="holds"
    )
    window = models.ForeignKey(
        "FreezeWindow", null=True, blank=True, on_delete=models.SET_NULL, related_name="holds"
    )
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cleared_source = models.CharField(max_length=16, blank=True)
    clear_reason = models.TextField(blank=True)

    class Meta:
        ordering = ("held_at", "id")
        indexes = [models.Index(fields=["rollout", "cleared_at"], name="hold_active")]
        constraints = [
            models.UniqueConstraint(
                fields=["rollout", "alert_key"],
                condition=models.Q(kind="alert"),
                name="one_hold_per_alert_firing",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.rollout_id}"

    @property
    def is_active(self) -> bool:
        return self.cleared_at is None


class FreezeWindow(BaseModel):
    """A deny window (no changes) or an allow window (changes only then), in a time zone.

    One-off (`starts_at` .. `ends_at`) or recurring (`cron` in the window's time zone, each
    occurrence lasting `duration` of wall-clock time). Deny beats allow. No environment means
    every environment.
    """

    class Kind(models.TextChoices):
        DENY = "deny", "Freeze (no changes)"
        ALLOW = "allow", "Allowed hours (changes only then)"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DENY)
    environment = models.ForeignKey(
        "flags.Environment",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="freeze_windows",
        help_text="Empty: every environment.",
    )
    timezone = models.CharField(max_length=64, default="UTC")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    cron = models.CharField(max_length=100, blank=True, help_text="e.g. 0 9 * * 1-5")
    duration = models.DurationField(null=True, blank=True)
    reason = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("kind", "name", "id")
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(cron="", starts_at__isnull=False, ends_at__isnull=False)
                    | (~models.Q(cron="") & models.Q(duration__isnull=False))
                ),
                name="window_one_off_or_recurring",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ApprovalPolicy(BaseModel):
    """An environment's gates, set by admins: which phases need approval, by how many people,
    and which environment a release must have completed first (promotion)."""

    environment = models.OneToOneField(
        "flags.Environment", on_delete=models.CASCADE, related_name="approval_policy"
    )
    min_percentage = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Phases reaching at least this exposure need approval (0: every phase; "
        "empty: only phases marked in the plan).",
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    allow_self_approval = models.BooleanField(
        default=False, help_text="The requester may approve their own request."
    )
    requires_completed_in = models.ForeignKey(
        "flags.Environment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="A rollout here starts only once the same release completed there.",
    )
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(approvals_required__gte=1, approvals_required__lte=10),
                name="policy_approvals_1_10",
            )
        ]

    def __str__(self) -> str:
        return f"gates of {self.environment}"


class AdvanceFailure(BaseModel):
    """The scheduler could not move a rollout to its next phase: the error, how often, and
    when to try again. The sweep skips the rollout until `retry_at`, so it never holds up the
    others; after the retry budget the rollout is held (a "failing" hold with the error)."""

    rollout = models.OneToOneField(
        Rollout, on_delete=models.CASCADE, related_name="advance_failure"
    )
    phase_index = models.IntegerField(help_text="The phase it was moving from.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    failed_at = models.DateTimeField()
    retry_at = models.DateTimeField(null=True, blank=True, db_index=True)
    hold = models.ForeignKey(
        Hold, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("-failed_at", "-id")

    def __str__(self) -> str:
        return f"rollout {self.rollout_id}: {self.attempts} failed attempts"


# --------------------------------------------------------------------------------------------
# Guarded phases: metric checks against Prometheus, evaluated by the scheduler during a soak


class PrometheusSource(BaseModel):
    """Where an environment's metrics are: the Prometheus server its phase checks ask."""

    environment = models.OneToOneField(
        "flags.Environment", on_delete=models.CASCADE, related_name="prometheus_source"
    )
    url = models.URLField(max_length=500, help_text="e.g. http://prometheus:9090")
    bearer_token = models.CharField(
        max_length=500, blank=True, help_text="Sent as `Authorization: Bearer` when set."
    )

    def __str__(self) -> str:
        return f"Prometheus of {self.environment_id}"


class PhaseCheck(BaseModel):
    """A PromQL query whose value must compare to a threshold while the phase soaks.

    The query may use {flag}, {environment} and {phase} (the phase's 1-based number). The
    phase advances only once every check passed in this soak; `failures_to_trip` consecutive
    failing (or inconclusive) evaluations hold the rollout, or roll it back by its policy.
    """

    class Comparison(models.TextChoices):
        LT = "<", "less than"
        LTE = "<=", "at most"
        GT = ">", "greater than"
        GTE = ">=", "at least"

    class Status(models.TextChoices):
        PASS = "pass", "Pass"
        FAIL = "fail", "Fail"
        INCONCLUSIVE = "inconclusive", "Inconclusive"

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=100)
    query = models.TextField(help_text="PromQL; {flag}, {environment}, {phase} are filled in.")
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.LT)
    threshold = models.FloatField()
    failures_to_trip = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    # The latest evaluation (the scheduler's gate reads these: one indexed query).
    last_status = models.CharField(max_length=16, choices=Status.choices, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ("phase", "id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(failures_to_trip__gte=1, failures_to_trip__lte=20),
                name="check_failures_to_trip_1_20",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.query} {self.comparison} {self.threshold:g}"


class CheckResult(models.Model):
    """One evaluation of a check (kept for the rollout page's chart and the audit trail)."""

    check_ref = models.ForeignKey(
        PhaseCheck, on_delete=models.CASCADE, related_name="results", db_column="check_id"
    )
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="check_results")
    phase_index = models.IntegerField()
    at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=PhaseCheck.Status.choices)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField()
    comparison = models.CharField(max_length=2)
    query = models.TextField(help_text="The query as sent, placeholders filled in.")
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ("at", "id")
        indexes = [models.Index(fields=["rollout", "at"], name="checkresult_rollout_at")]

    def __str__(self) -> str:
        return f"{self.check_ref_id} {self.status} at {self.at.isoformat()}"
