"""Demo data for notices: the four standard audiences with channels, editable default
templates, communication plans for the demo rollouts, and a few notices in each state.
Idempotent: running it twice changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from comms import services
from comms.models import Audience, Channel, Delivery, Notice, NoticeEvent, NoticeTemplate
from comms.templating import BUILTIN_TEMPLATES
from rollouts.models import Rollout, RolloutEvent

AUDIENCES: list[dict[str, Any]] = [
    {
        "name": "Customers",
        "kind": Audience.Kind.CUSTOMERS,
        "timezone": "America/New_York",
        "contacts": "Customer newsletter <customers@example.com>",
        "description": "Everyone who uses the product; hears at general availability.",
        "channels": [("Customer newsletter", Channel.Kind.EMAIL, "", True)],
    },
    {
        "name": "Customer support",
        "kind": Audience.Kind.CUSTOMER_SUPPORT,
        "timezone": "Europe/Berlin",
        "contacts": "Support team <support-team@example.com>\nSam Support <support@example.com>",
        "description": "Answers customers; hears 24 h before each phase.",
        "channels": [
            ("Support mailing list", Channel.Kind.EMAIL, "", True),
            ("#support-rollouts", Channel.Kind.SLACK,
             "https://hooks.slack.com/services/T000/B000/demo-not-a-real-hook", False),
        ],
    },
    {
        "name": "Technical support",
        "kind": Audience.Kind.TECHNICAL_SUPPORT,
        "timezone": "UTC",
        "contacts": "On-call <oncall@example.com>",
        "description": "Operations and on-call engineers.",
        "channels": [
            ("On-call email", Channel.Kind.EMAIL, "", True),
            ("Ops room (Teams)", Channel.Kind.TEAMS,
             "https://example.webhook.office.com/webhookb2/demo-not-a-real-hook", False),
        ],
    },
    {
        "name": "Beta testers",
        "kind": Audience.Kind.BETA_TESTERS,
        "timezone": "Europe/London",
        "contacts": "beta-1@example.com\nbeta-2@example.com\nbeta-3@example.com",
        "description": "Users in the Beta testers segment; hear when the first phase starts.",
        "channels": [
            ("Beta list", Channel.Kind.EMAIL, "", True),
            ("Beta portal webhook", Channel.Kind.WEBHOOK,
             "http://127.0.0.1:8009/rollcall-notices", False),
        ],
    },
]  # fmt: skip

MAINTENANCE = (
    "Planned maintenance",
    "Planned maintenance: {{ release.name }}",
    "We will update **{{ environment }}** at {{ start_time }}. Expect a short interruption.\n\n"
    "Questions: {{ owner }}\n",
)


def _audiences(stdout: Any) -> dict[str, Audience]:
    result = {}
    for spec in AUDIENCES:
        audience = Audience.objects.filter(name=spec["name"]).first()
        if audience is None:
            audience = services.audience_create(
                name=spec["name"], kind=spec["kind"], timezone=spec["timezone"],
                contacts=spec["contacts"], description=spec["description"], actor=None,
            )  # fmt: skip
            stdout.write(f"Created audience {audience.name}.")
        for name, kind, url, enabled in spec["channels"]:
            if not audience.channels.filter(name=name).exists():
                services.channel_create(
                    audience=audience, kind=kind, name=name, url=url, is_enabled=enabled,
                    actor=None,
                )  # fmt: skip
        result[spec["kind"]] = audience
    return result


def _templates() -> None:
    for event, (subject, body) in BUILTIN_TEMPLATES.items():
        if event == NoticeEvent.CUSTOM:
            continue
        name = f"{NoticeEvent(event).label} (standard)"
        if not NoticeTemplate.objects.filter(name=name).exists():
            services.template_create(
                name=name, event=event, subject=subject, body=body, is_default=True, actor=None
            )
    name, subject, body = MAINTENANCE
    if not NoticeTemplate.objects.filter(name=name).exists():
        services.template_create(name=name, event="custom", subject=subject, body=body, actor=None)


def _notices(audiences: dict[str, Audience], owner: User | None) -> None:
    now = timezone.now()
    support = audiences[Audience.Kind.CUSTOMER_SUPPORT]
    tech = audiences[Audience.Kind.TECHNICAL_SUPPORT]
    if not Notice.objects.filter(dedupe_key="demo:scheduled").exists():
        notice = services.notice_create(
            audience=tech, subject="Database maintenance window",
            body="The primary database is upgraded on **Saturday**; expect 5 minutes of "
            "read-only mode.",
            actor=owner, send_at=now + timedelta(days=2),
        )  # fmt: skip
        Notice.objects.filter(pk=notice.pk).update(dedupe_key="demo:scheduled")
    if not Notice.objects.filter(dedupe_key="demo:failed").exists():
        # A notice whose Slack delivery failed for good: shows the error and the Retry button.
        notice = Notice.objects.create(
            audience=support,
            subject="New support macros",
            body="Macros for the new checkout are in the help desk.",
            rendered_subject="New support macros",
            rendered_text="Macros for the new checkout are in the help desk.",
            rendered_markdown="Macros for the new checkout are in the help desk\\.",
            rendered_html="<p>Macros for the new checkout are in the help desk.</p>",
            state=Notice.State.PARTIALLY_FAILED,
            state_note="1 of 2 deliveries failed; retry them below.",
            send_at=now - timedelta(hours=3),
            dispatched_at=now - timedelta(hours=3),
            finished_at=now - timedelta(hours=3),
            dedupe_key="demo:failed",
            created_by=owner,
        )
        for channel in support.channels.all():
            email = channel.kind == Channel.Kind.EMAIL
            Delivery.objects.create(
                notice=notice,
                channel=channel,
                channel_kind=channel.kind,
                channel_name=channel.name,
                recipient=channel.email_recipients[0] if email else "",
                state=Delivery.State.SENT if email else Delivery.State.FAILED,
                attempts=1 if email else 7,
                sent_at=now - timedelta(hours=3) if email else None,
                response_code=250 if email else 404,
                last_error="" if email else "Gave up after 7 attempts: HTTP 404: no_service",
            )


def load(*, stdout: Any) -> None:
    audiences = _audiences(stdout)
    _templates()
    owner = User.objects.filter(username="release").first()
    _notices(audiences, owner)
    for rollout in Rollout.objects.all():
        services.plan_ensure(rollout=rollout)
    # Events of finished demo rollouts happened "in the past": no notices for them now.
    RolloutEvent.objects.filter(
        rollout__state__in=Rollout.FINAL_STATES, dispatched_at__isnull=True
    ).update(dispatched_at=timezone.now())
    handled = services.events_dispatch_pending()
    if handled:
        stdout.write(f"Turned {handled} rollout events into notices.")
