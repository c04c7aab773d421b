"""Communication: doc links, feeds (support), and notices (audiences, channels, deliveries)."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from simple_history.models import HistoricalRecords

from core.models import BaseModel

http_url_validator = URLValidator(
    schemes=["http", "https"], message="Enter an http:// or https:// address."
)


class DocLink(BaseModel):
    """A link to user documentation on a release or a flag, checked periodically."""

    class Kind(models.TextChoices):
        USER_GUIDE = "user_guide", "User guide"
        RELEASE_NOTES = "release_notes", "Release notes"
        FAQ = "faq", "FAQ"
        RUNBOOK = "runbook", "Runbook"
        API_DOCS = "api_docs", "API docs"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        INTERNAL = "internal", "Internal"

    class Status(models.TextChoices):
        UNCHECKED = "unchecked", "Not checked yet"
        OK = "ok", "OK"
        BROKEN = "broken", "Broken"

    release = models.ForeignKey(
        "rollouts.Release",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="doc_links",
    )
    flag = models.ForeignKey(
        "flags.Flag", null=True, blank=True, on_delete=models.CASCADE, related_name="doc_links"
    )
    title = models.CharField(max_length=200)
    url = models.URLField(max_length=1000, validators=[http_url_validator])
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.USER_GUIDE)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.INTERNAL
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNCHECKED)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("kind", "title")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(release__isnull=False) | models.Q(flag__isnull=False),
                name="doclink_has_owner",
            )
        ]

    def __str__(self) -> str:
        return self.title


def _new_token() -> str:
    return secrets.token_urlsafe(24)


# --------------------------------------------------------------------------------------------
# Notices: audiences and their channels, templates, communication plans, notices, deliveries.


def _new_signing_secret() -> str:
    return secrets.token_hex(32)


def mask_secret(value: str, *, keep: int = 4) -> str:
    """`••••abcd`: enough to recognise a secret, never enough to use it."""
    if not value:
        return ""
    return "••••" + value[-keep:] if len(value) > keep * 3 else "••••"


def mask_url(url: str) -> str:
    """`https://hooks.slack.com/…wxyz`: the host tells which service, the rest stays secret."""
    if not url:
        return ""
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0] if sep else ""
    return f"{scheme}://{host}/…{url[-4:]}" if host else mask_secret(url)


class NoticeEvent(models.TextChoices):
    """What a notice is about; templates and plan rules are chosen by it."""

    SCHEDULED = "scheduled", "Rollout scheduled"
    PHASE_UPCOMING = "phase_upcoming", "Phase starting soon"
    PHASE_STARTED = "phase_started", "Phase started"
    HELD = "held", "Rollout held or paused"
    RESUMED = "resumed", "Rollout resumed"
    ROLLED_BACK = "rolled_back", "Rolled back (correction)"
    COMPLETED = "completed", "Rollout completed"
    CUSTOM = "custom", "Free-form"


class Audience(BaseModel):
    """A group of people who hear about rollouts, e.g. customers or customer support."""

    class Kind(models.TextChoices):
        CUSTOMERS = "customers", "Customers"
        CUSTOMER_SUPPORT = "customer_support", "Customer support"
        TECHNICAL_SUPPORT = "technical_support", "Technical support"
        BETA_TESTERS = "beta_testers", "Beta testers"
        CUSTOM = "custom", "Custom"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.CUSTOM)
    description = models.TextField(blank=True)
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA time zone; times in notices use it."
    )
    # People to reach: [{"name": "...", "email": "..."}]; email channels without their own
    # recipient list send to these.
    contacts = models.JSONField(default=list, blank=True)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def contact_emails(self) -> list[str]:
        return [c["email"] for c in self.contacts if c.get("email")]


class Channel(BaseModel):
    """Where an audience is reached. URLs and signing keys are secrets (admins only)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack incoming webhook"
        TEAMS = "teams", "Microsoft Teams webhook"
        WEBHOOK = "webhook", "Generic webhook (signed JSON)"

    WEBHOOK_KINDS = (Kind.SLACK, Kind.TEAMS, Kind.WEBHOOK)

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="channels")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100)
    is_enabled = models.BooleanField(default=True)
    url = models.CharField(max_length=1000, blank=True, help_text="Webhook address (secret).")
    signing_secret = models.CharField(
        max_length=128, blank=True, help_text="Key of X-Rollcall-Signature (generic webhooks)."
    )
    # Email only: addresses; empty means the audience's contacts.
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ("audience__name", "name")
        constraints = [
            models.UniqueConstraint(fields=["audience", "name"], name="channel_name_per_audience")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def masked_secret(self) -> str:
        return mask_secret(self.signing_secret)

    @property
    def email_recipients(self) -> list[str]:
        return list(self.recipients) or self.audience.contact_emails


class NoticeTemplate(BaseModel):
    """Markdown with `{{ variables }}`, checked when saved; one default per event."""

    name = models.CharField(max_length=100, unique=True)
    event = models.CharField(max_length=24, choices=NoticeEvent.choices)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    is_default = models.BooleanField(
        default=False, help_text="Used by plan rules that do not name a template."
    )
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("event", "name")
        constraints = [
            models.UniqueConstraint(
                fields=["event"],
                condition=models.Q(is_default=True),
                name="one_default_template_per_event",
            )
        ]

    def __str__(self) -> str:
        return self.name


class CommunicationPlan(BaseModel):
    """Who hears about which event of one rollout. Filled from the strategy's defaults."""

    rollout = models.OneToOneField(
        "rollouts.Rollout", on_delete=models.CASCADE, related_name="comms_plan"
    )

    def __str__(self) -> str:
        return f"communication plan of rollout {self.rollout_id}"


class PlanRule(BaseModel):
    class Phases(models.TextChoices):
        ALL = "all", "Every phase"
        FIRST = "first", "The first phase"
        FULL = "full", "Phases that reach 100%"

    # Events whose rule names phases (the others are about the whole rollout).
    PHASE_EVENTS = (NoticeEvent.PHASE_UPCOMING, NoticeEvent.PHASE_STARTED)

    plan = models.ForeignKey(CommunicationPlan, on_delete=models.CASCADE, related_name="rules")
    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="plan_rules")
    event = models.CharField(max_length=24, choices=NoticeEvent.choices)
    lead_time = models.DurationField(
        null=True, blank=True, help_text="How long before the phase starts (phase starting soon)."
    )
    phases = models.CharField(max_length=8, choices=Phases.choices, default=Phases.ALL)
    template = models.ForeignKey(
        NoticeTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ("plan", "audience__name", "event", "id")
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(event="phase_upcoming", lead_time__isnull=False)
                    | (~models.Q(event="phase_upcoming") & models.Q(lead_time__isnull=True))
                ),
                name="planrule_lead_time_only_for_upcoming",
            ),
            models.CheckConstraint(
                condition=~models.Q(event="custom"), name="planrule_not_free_form"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.audience} hears {self.get_event_display()}"


class Notice(BaseModel):
    """A message to one audience. Its deliveries (one per channel and recipient) are the
    outbox: created in the same transaction, sent by Celery."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        PARTIALLY_FAILED = "partially_failed", "Partially failed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    EDITABLE_STATES = (State.DRAFT, State.SCHEDULED)
    FINAL_STATES = (State.SENT, State.PARTIALLY_FAILED, State.FAILED, State.CANCELLED)

    class Origin(models.TextChoices):
        PLAN = "plan", "Communication plan"
        MANUAL = "manual", "Written by a person"

    audience = models.ForeignKey(Audience, on_delete=models.PROTECT, related_name="notices")
    event = models.CharField(max_length=24, choices=NoticeEvent.choices, default=NoticeEvent.CUSTOM)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.MANUAL)
    rollout = models.ForeignKey(
        "rollouts.Rollout", null=True, blank=True, on_delete=models.CASCADE, related_name="notices"
    )
    release = models.ForeignKey(
        "rollouts.Release", null=True, blank=True, on_delete=models.CASCADE, related_name="notices"
    )
    phase = models.ForeignKey(
        "rollouts.Phase", null=True, blank=True, on_delete=models.SET_NULL, related_name="notices"
    )
    plan_rule = models.ForeignKey(
        PlanRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="notices"
    )
    rollout_event = models.ForeignKey(
        "rollouts.RolloutEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notices",
    )
    template = models.ForeignKey(
        NoticeTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="notices"
    )
    corrects = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="corrections"
    )
    # Plan notices are created once per (event, audience) or (rule, phase): the sweep and the
    # fast path may both see an event, the unique key makes the second one a no-op.
    dedupe_key = models.CharField(max_length=100, null=True, blank=True, unique=True)
    subject = models.CharField(max_length=300, help_text="Template: {{ variables }} allowed.")
    body = models.TextField(help_text="Markdown template: {{ variables }} allowed.")
    reason = models.TextField(blank=True, help_text="Why (e.g. the reason of a hold).")
    send_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set when a person picks the time of a plan notice: the plan no longer moves it.
    time_is_fixed = models.BooleanField(default=False)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    state_note = models.CharField(max_length=500, blank=True)
    # Frozen when sending starts, so retries send exactly the same content.
    rendered_subject = models.CharField(max_length=500, blank=True)
    rendered_text = models.TextField(blank=True)
    rendered_markdown = models.TextField(blank=True)
    rendered_html = models.TextField(blank=True)
    rendered_slack = models.TextField(blank=True)
    context_data = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(
        excluded_fields=[
            "updated_at",
            "rendered_subject",
            "rendered_text",
            "rendered_markdown",
            "rendered_html",
            "rendered_slack",
            "context_data",
        ]
    )

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["state", "send_at"], name="notice_state_send_at"),
            models.Index(fields=["rollout", "state"], name="notice_rollout_state"),
        ]

    def __str__(self) -> str:
        return self.rendered_subject or self.subject

    @property
    def is_editable(self) -> bool:
        return self.state in self.EDITABLE_STATES

    @property
    def title(self) -> str:
        """The subject as sent, or a readable stand-in before the template is filled in
        (select_related release and phase when listing)."""
        if self.rendered_subject:
            return self.rendered_subject
        if "{{" not in self.subject:
            return self.subject
        parts = [NoticeEvent(self.event).label]
        if self.release_id:
            parts.append(str(self.release))
        if self.phase is not None:
            parts.append(self.phase.name)
        return " · ".join(parts)


class Delivery(BaseModel):
    """One message to one channel (and one recipient for email), sent at most once per
    idempotency key: receivers de-duplicate on X-Rollcall-Delivery / Message-ID."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the notice's time"
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Will retry"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    UNFINISHED_STATES = (State.PENDING, State.QUEUED, State.SENDING, State.RETRYING)
    SENDABLE_STATES = (State.QUEUED, State.RETRYING)

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    # Kept when the channel is deleted, so the history still says where it went.
    channel_kind = models.CharField(max_length=16, choices=Channel.Kind.choices)
    channel_name = models.CharField(max_length=100)
    recipient = models.CharField(max_length=320, blank=True, help_text="Email address.")
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("notice", "channel_name", "recipient", "id")
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "channel", "recipient"], name="one_delivery_per_recipient"
            )
        ]
        indexes = [models.Index(fields=["state", "enqueued_at"], name="delivery_state_enqueued")]

    def __str__(self) -> str:
        target = f" to {self.recipient}" if self.recipient else ""
        return f"{self.channel_name}{target}: {self.get_state_display()}"


class EventFailure(BaseModel):
    """A rollout event that could not be turned into notices: its error, attempts and backoff.

    The sweeps skip it until `next_attempt_at`, so one poison event never blocks the line;
    after the retry budget it is dead (`dead_at`) and waits on the Failures page for a person
    to retry it (after fixing the cause) or discard it.
    """

    event = models.OneToOneField(
        "rollouts.RolloutEvent", on_delete=models.CASCADE, related_name="comms_failure"
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    failed_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    dead_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ("-failed_at", "-id")

    def __str__(self) -> str:
        return f"event {self.event_id}: {self.attempts} failed attempts"
