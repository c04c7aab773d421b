"""Every write of the communication side: audiences, channels, templates, plans, notices and
their deliveries (the outbox).

How a notice travels:
1. A rollout transition writes a RolloutEvent (rollouts.services). `event_dispatch` turns it
   into notices per the rollout's communication plan, once (the event row is locked and
   marked `dispatched_at` in the same transaction; notices have a unique `dedupe_key`). It
   runs from the fast path (rollouts' `events_committed` signal -> Celery task) and from a
   beat sweep over undispatched events, so no event is lost when a worker was down.
2. A notice that is due is rendered once (frozen, so retries send the same bytes) and its
   deliveries, one per channel and recipient, are queued in the same transaction; Celery
   tasks are published after commit.
3. `delivery_send` marks the delivery "sending" (attempt + 1) under a row lock and commits
   before the network call; a delivery is sent only from "queued" or "retrying". If a worker
   dies mid-send, the sweep re-queues it after COMMS_DELIVERY_STALE_SECONDS and it is sent
   again with the same idempotency id, which receivers de-duplicate (X-Rollcall-Delivery,
   Message-ID).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone

from comms import channels as senders
from comms import selectors, templating
from comms.models import (
    Audience,
    Channel,
    CommunicationPlan,
    Delivery,
    DocLink,
    Notice,
    NoticeEvent,
    NoticeTemplate,
    PlanRule,
    http_url_validator,
)
from core.exceptions import ApplicationError
from rollouts.models import Phase, Release, Rollout, RolloutEvent
from rollouts.scheduling import projected_timeline

logger = logging.getLogger(__name__)

State = Notice.State
DState = Delivery.State
Kind = RolloutEvent.Kind

# Which rollout events make which notices. STARTED is followed by ADVANCED (phase 1) in the
# same transaction, so the phase notice comes from that one.
EVENT_NOTICES: dict[str, str] = {
    Kind.SCHEDULED: NoticeEvent.SCHEDULED,
    Kind.ADVANCED: NoticeEvent.PHASE_STARTED,
    Kind.PAUSED: NoticeEvent.HELD,
    Kind.HELD: NoticeEvent.HELD,
    Kind.RESUMED: NoticeEvent.RESUMED,
    Kind.HOLD_CLEARED: NoticeEvent.RESUMED,
    Kind.ROLLED_BACK: NoticeEvent.ROLLED_BACK,
    Kind.COMPLETED: NoticeEvent.COMPLETED,
}
FINAL_ROLLOUT_KINDS = (Kind.ROLLED_BACK, Kind.CANCELLED)
MAX_LEAD_TIME = timedelta(days=30)
DEFAULT_MAX_ATTEMPTS = 7
# Celery's retry_backoff: factor * 2 ** retries, capped (mirrored for "next attempt by").
RETRY_BACKOFF = 2
RETRY_BACKOFF_MAX = 300
MAX_ERROR = 2000


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def _user(actor: AbstractBaseUser | None) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def stale_after() -> timedelta:
    """A delivery "sending" for longer than this was interrupted (its worker died)."""
    return timedelta(seconds=getattr(settings, "COMMS_DELIVERY_STALE_SECONDS", 120))


def requeue_after() -> timedelta:
    """A queued delivery whose task has not run for this long lost its message."""
    return timedelta(seconds=getattr(settings, "COMMS_DELIVERY_REQUEUE_SECONDS", 600))


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_BACKOFF_MAX, RETRY_BACKOFF * 2 ** max(attempts - 1, 0)))


# --------------------------------------------------------------------------------------------
# Audiences and channels (admins)


def _clean_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = (name or "").strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApplicationError(
            f"Unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC.",
            field="timezone",
        ) from exc
    return name


def _clean_email(value: str, *, field: str, where: str) -> str:
    value = value.strip()
    try:
        validate_email(value)
    except ValidationError as exc:
        raise ApplicationError(f"{where}: {value!r} is not an email address.", field=field) from exc
    return value.lower()


def parse_contacts(value: str | Iterable[Any]) -> list[dict[str, str]]:
    """Contacts from text ("Name <email>" per line) or a list of {"name", "email"} / strings."""
    items: list[Any] = value.splitlines() if isinstance(value, str) else list(value or [])
    contacts: list[dict[str, str]] = []
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            name, email = str(item.get("name", "")), str(item.get("email", ""))
        else:
            line = str(item).strip()
            if not line:
                continue
            name, email = parseaddr(line)
            email = email or line
        email = _clean_email(email, field="contacts", where=f"Contact {number}")
        if email in seen:
            continue
        seen.add(email)
        contacts.append({"name": name.strip(), "email": email})
    return contacts


def parse_recipients(value: str | Iterable[str]) -> list[str]:
    return [c["email"] for c in parse_contacts(value)] if value else []


def _clean_name(name: str, *, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError(f"Give the {what} a name.", field="name")
    return name[:100]


@transaction.atomic
def audience_create(
    *,
    name: str,
    kind: str = Audience.Kind.CUSTOM,
    timezone: str = "UTC",
    contacts: str | Iterable[Any] = (),
    description: str = "",
    actor: AbstractBaseUser | None = None,
) -> Audience:
    name = _clean_name(name, what="audience")
    if kind not in Audience.Kind.values:
        raise ApplicationError(f"Unknown audience kind {kind!r}.", field="kind")
    if Audience.objects.filter(name__iexact=name).exists():
        raise ApplicationError(f"An audience called {name!r} exists already.", field="name")
    audience = Audience(
        name=name,
        kind=kind,
        timezone=_clean_timezone(timezone),
        contacts=parse_contacts(contacts),
        description=description or "",
    )
    audience._history_user = _user(actor)  # type: ignore[attr-defined]
    audience.save()
    logger.info("audience.created audience_id=%s kind=%s", audience.id, kind)
    return audience


@transaction.atomic
def audience_update(
    *, audience: Audience, actor: AbstractBaseUser | None, **fields: Any
) -> Audience:
    allowed = {"name", "kind", "timezone", "contacts", "description"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))} of an audience.")
    audience = Audience.objects.select_for_update().get(pk=audience.pk)
    if "name" in fields:
        name = _clean_name(fields["name"], what="audience")
        if Audience.objects.filter(name__iexact=name).exclude(pk=audience.pk).exists():
            raise ApplicationError(f"An audience called {name!r} exists already.", field="name")
        audience.name = name
    if "kind" in fields:
        if fields["kind"] not in Audience.Kind.values:
            raise ApplicationError(f"Unknown audience kind {fields['kind']!r}.", field="kind")
        audience.kind = fields["kind"]
    if "timezone" in fields:
        audience.timezone = _clean_timezone(fields["timezone"])
    if "contacts" in fields:
        audience.contacts = parse_contacts(fields["contacts"])
    if "description" in fields:
        audience.description = fields["description"] or ""
    audience._history_user = _user(actor)  # type: ignore[attr-defined]
    audience.save()
    logger.info("audience.updated audience_id=%s", audience.id)
    return audience


@transaction.atomic
def audience_delete(*, audience: Audience, actor: AbstractBaseUser | None) -> None:
    if Notice.objects.filter(audience=audience).exists():
        raise ApplicationError(
            f"{audience.name} has notices; audiences with a history cannot be deleted. "
            "Disable its channels instead."
        )
    logger.info("audience.deleted audience_id=%s", audience.id)
    audience.delete()


def _clean_webhook_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise ApplicationError("Enter the webhook address.", field="url")
    try:
        http_url_validator(url)
    except ValidationError as exc:
        raise ApplicationError(
            "Enter an http:// or https:// address, e.g. https://hooks.slack.com/services/...",
            field="url",
        ) from exc
    return url


@transaction.atomic
def channel_create(
    *,
    audience: Audience,
    kind: str,
    name: str,
    url: str = "",
    recipients: str | Iterable[str] = (),
    is_enabled: bool = True,
    actor: AbstractBaseUser | None = None,
) -> Channel:
    if kind not in Channel.Kind.values:
        raise ApplicationError(f"Unknown channel kind {kind!r}.", field="kind")
    name = _clean_name(name, what="channel")
    if Channel.objects.filter(audience=audience, name__iexact=name).exists():
        raise ApplicationError(f"{audience.name} already has a channel {name!r}.", field="name")
    channel = Channel(audience=audience, kind=kind, name=name, is_enabled=is_enabled)
    if kind == Channel.Kind.EMAIL:
        channel.recipients = parse_recipients(recipients)
        if not channel.recipients and not audience.contact_emails:
            raise ApplicationError(
                f"List the recipients, or add contacts to {audience.name} first.",
                field="recipients",
            )
    else:
        channel.url = _clean_webhook_url(url)
    if kind == Channel.Kind.WEBHOOK:
        channel.signing_secret = secrets.token_hex(32)
    channel.save()
    logger.info(
        "channel.created channel_id=%s audience_id=%s kind=%s", channel.id, audience.id, kind
    )
    return channel


@transaction.atomic
def channel_update(
    *,
    channel: Channel,
    actor: AbstractBaseUser | None,
    name: str | None = None,
    url: str | None = None,
    recipients: str | Iterable[str] | None = None,
    is_enabled: bool | None = None,
) -> Channel:
    """Blank `url` keeps the stored one: forms never show (or resend) the secret."""
    channel = Channel.objects.select_for_update().select_related("audience").get(pk=channel.pk)
    if name is not None:
        name = _clean_name(name, what="channel")
        clash = Channel.objects.filter(audience=channel.audience, name__iexact=name).exclude(
            pk=channel.pk
        )
        if clash.exists():
            raise ApplicationError(f"{channel.audience.name} has a channel {name!r}.", field="name")
        channel.name = name
    if url and channel.kind != Channel.Kind.EMAIL:
        channel.url = _clean_webhook_url(url)
    if recipients is not None and channel.kind == Channel.Kind.EMAIL:
        channel.recipients = parse_recipients(recipients)
    if is_enabled is not None:
        channel.is_enabled = is_enabled
    channel.save()
    logger.info("channel.updated channel_id=%s", channel.id)
    return channel


@transaction.atomic
def channel_rotate_secret(*, channel: Channel, actor: AbstractBaseUser | None) -> str:
    """A new signing secret (generic webhooks); returned once so the admin can copy it."""
    channel = Channel.objects.select_for_update().get(pk=channel.pk)
    if channel.kind != Channel.Kind.WEBHOOK:
        raise ApplicationError("Only generic webhooks are signed.", field="kind")
    channel.signing_secret = secrets.token_hex(32)
    channel.save(update_fields=["signing_secret", "updated_at"])
    logger.info("channel.secret_rotated channel_id=%s", channel.id)
    return channel.signing_secret


@transaction.atomic
def channel_delete(*, channel: Channel, actor: AbstractBaseUser | None) -> None:
    logger.info("channel.deleted channel_id=%s", channel.id)
    channel.delete()


# --------------------------------------------------------------------------------------------
# Templates (release managers)


def _clean_event(event: str, *, field: str = "event") -> str:
    if event not in NoticeEvent.values:
        raise ApplicationError(
            f"Unknown event {event!r}; use one of {', '.join(NoticeEvent.values)}.", field=field
        )
    return event


@transaction.atomic
def template_create(
    *,
    name: str,
    event: str,
    subject: str,
    body: str,
    is_default: bool = False,
    actor: AbstractBaseUser | None = None,
) -> NoticeTemplate:
    name = _clean_name(name, what="template")
    _clean_event(event)
    templating.validate_template(subject=subject, body=body)
    if NoticeTemplate.objects.filter(name__iexact=name).exists():
        raise ApplicationError(f"A template called {name!r} exists already.", field="name")
    if is_default:
        NoticeTemplate.objects.filter(event=event, is_default=True).update(is_default=False)
    template = NoticeTemplate(
        name=name, event=event, subject=subject.strip(), body=body, is_default=is_default
    )
    template._history_user = _user(actor)  # type: ignore[attr-defined]
    template.save()
    logger.info("template.created template_id=%s event=%s", template.id, event)
    return template


@transaction.atomic
def template_update(
    *, template: NoticeTemplate, actor: AbstractBaseUser | None, **fields: Any
) -> NoticeTemplate:
    allowed = {"name", "event", "subject", "body", "is_default"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))} of a template.")
    template = NoticeTemplate.objects.select_for_update().get(pk=template.pk)
    if "name" in fields:
        name = _clean_name(fields["name"], what="template")
        if NoticeTemplate.objects.filter(name__iexact=name).exclude(pk=template.pk).exists():
            raise ApplicationError(f"A template called {name!r} exists already.", field="name")
        template.name = name
    if "event" in fields:
        template.event = _clean_event(fields["event"])
    subject = fields.get("subject", template.subject)
    body = fields.get("body", template.body)
    templating.validate_template(subject=subject, body=body)
    template.subject, template.body = subject.strip(), body
    if fields.get("is_default"):
        NoticeTemplate.objects.filter(event=template.event, is_default=True).exclude(
            pk=template.pk
        ).update(is_default=False)
    if "is_default" in fields:
        template.is_default = bool(fields["is_default"])
    template._history_user = _user(actor)  # type: ignore[attr-defined]
    template.save()
    logger.info("template.updated template_id=%s", template.id)
    return template


@transaction.atomic
def template_delete(*, template: NoticeTemplate, actor: AbstractBaseUser | None) -> None:
    logger.info("template.deleted template_id=%s", template.id)
    template.delete()


# --------------------------------------------------------------------------------------------
# Communication plans


def _plan_locked(rollout: Rollout) -> CommunicationPlan:
    """The rollout's plan, created with the defaults if missing, row-locked: event handling
    and plan edits of one rollout run one at a time."""
    plan = CommunicationPlan.objects.select_for_update().filter(rollout=rollout).first()
    if plan is not None:
        return plan
    try:
        with transaction.atomic():
            plan = CommunicationPlan.objects.create(rollout=rollout)
            rules = selectors.default_rules(rollout, Audience.objects.order_by("name"))
            for rule in rules:
                rule.plan = plan
            PlanRule.objects.bulk_create(rules)
            logger.info("plan.created rollout_id=%s rules=%s", rollout.id, len(rules))
    except IntegrityError:
        pass  # created by a concurrent transaction: take theirs
    return CommunicationPlan.objects.select_for_update().get(rollout=rollout)


@transaction.atomic
def plan_ensure(*, rollout: Rollout) -> CommunicationPlan:
    """The rollout's communication plan (created from the strategy's defaults)."""
    return _plan_locked(rollout)


def _clean_rule(
    *,
    audience: Audience,
    event: str,
    lead_time: timedelta | None,
    phases: str,
    template: NoticeTemplate | None,
) -> dict[str, Any]:
    _clean_event(event)
    if event == NoticeEvent.CUSTOM:
        raise ApplicationError(
            "Free-form notices are written in the composer, not planned.", field="event"
        )
    if phases not in PlanRule.Phases.values:
        raise ApplicationError(f"Unknown phase choice {phases!r}.", field="phases")
    if event == NoticeEvent.PHASE_UPCOMING:
        if lead_time is None or lead_time <= timedelta(0):
            raise ApplicationError(
                "Say how long before the phase the notice goes out, e.g. 24 hours.",
                field="lead_time",
            )
        if lead_time > MAX_LEAD_TIME:
            raise ApplicationError("Lead times are at most 30 days.", field="lead_time")
    else:
        lead_time = None
    if template is not None and template.event not in (event, NoticeEvent.CUSTOM):
        raise ApplicationError(
            f"The template {template.name!r} is written for "
            f"{NoticeEvent(template.event).label.lower()}; choose one for "
            f"{NoticeEvent(event).label.lower()}.",
            field="template",
        )
    return {
        "audience": audience,
        "event": event,
        "lead_time": lead_time,
        "phases": phases if event in PlanRule.PHASE_EVENTS else PlanRule.Phases.ALL,
        "template": template,
    }


@transaction.atomic
def plan_rule_create(
    *,
    rollout: Rollout,
    audience: Audience,
    event: str,
    actor: AbstractBaseUser | None,
    lead_time: timedelta | None = None,
    phases: str = PlanRule.Phases.ALL,
    template: NoticeTemplate | None = None,
    is_enabled: bool = True,
    now: datetime | None = None,
) -> PlanRule:
    plan = _plan_locked(rollout)
    clean = _clean_rule(
        audience=audience, event=event, lead_time=lead_time, phases=phases, template=template
    )
    rule = PlanRule.objects.create(plan=plan, is_enabled=is_enabled, **clean)
    rollout_notices_sync(rollout=rollout, now=now)
    logger.info("plan.rule_created rollout_id=%s rule_id=%s event=%s", rollout.id, rule.id, event)
    return rule


@transaction.atomic
def plan_rule_update(
    *, rule: PlanRule, actor: AbstractBaseUser | None, now: datetime | None = None, **fields: Any
) -> PlanRule:
    allowed = {"audience", "event", "lead_time", "phases", "template", "is_enabled"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))} of a plan rule.")
    rule = PlanRule.objects.select_related("plan__rollout", "audience", "template").get(pk=rule.pk)
    rollout = rule.plan.rollout
    _plan_locked(rollout)
    clean = _clean_rule(
        audience=fields.get("audience", rule.audience),
        event=fields.get("event", rule.event),
        lead_time=fields.get("lead_time", rule.lead_time),
        phases=fields.get("phases", rule.phases),
        template=fields.get("template", rule.template),
    )
    for name, value in clean.items():
        setattr(rule, name, value)
    if "is_enabled" in fields:
        rule.is_enabled = bool(fields["is_enabled"])
    rule.save()
    if {"audience", "event", "phases"} & set(fields):
        # Scheduled notices of the old rule no longer say what the plan says.
        _cancel_notices(
            Notice.objects.filter(plan_rule=rule, state__in=Notice.EDITABLE_STATES),
            note="Cancelled: the plan rule changed.",
        )
    rollout_notices_sync(rollout=rollout, now=now)
    logger.info("plan.rule_updated rollout_id=%s rule_id=%s", rollout.id, rule.id)
    return rule


@transaction.atomic
def plan_rule_delete(
    *, rule: PlanRule, actor: AbstractBaseUser | None, now: datetime | None = None
) -> None:
    rollout = Rollout.objects.get(pk=rule.plan.rollout_id)
    _plan_locked(rollout)
    _cancel_notices(
        Notice.objects.filter(plan_rule=rule, state__in=Notice.EDITABLE_STATES),
        note="Cancelled: its plan rule was removed.",
    )
    logger.info("plan.rule_deleted rollout_id=%s rule_id=%s", rollout.id, rule.id)
    rule.delete()


@transaction.atomic
def plan_rules_replace(
    *,
    rollout: Rollout,
    rules: Sequence[dict[str, Any]],
    actor: AbstractBaseUser | None,
    now: datetime | None = None,
) -> CommunicationPlan:
    """Replace every rule of the plan (the API's PUT). Each dict: audience, event, lead_time,
    phases, template, is_enabled. Errors name the rule: field="rules.<index>.<field>"."""
    plan = _plan_locked(rollout)
    cleaned = []
    for index, item in enumerate(rules):
        try:
            clean = _clean_rule(
                audience=item["audience"],
                event=item.get("event", ""),
                lead_time=item.get("lead_time"),
                phases=item.get("phases") or PlanRule.Phases.ALL,
                template=item.get("template"),
            )
        except ApplicationError as exc:
            raise ApplicationError(
                f"Rule {index + 1}: {exc.message}", field=f"rules.{index}.{exc.field or 'event'}"
            ) from exc
        cleaned.append(PlanRule(plan=plan, is_enabled=item.get("is_enabled", True), **clean))
    old = list(plan.rules.values_list("id", flat=True))
    _cancel_notices(
        Notice.objects.filter(plan_rule_id__in=old, state__in=Notice.EDITABLE_STATES),
        note="Cancelled: the communication plan was replaced.",
    )
    plan.rules.all().delete()
    PlanRule.objects.bulk_create(cleaned)
    rollout_notices_sync(rollout=rollout, now=now)
    logger.info("plan.replaced rollout_id=%s rules=%s", rollout.id, len(cleaned))
    return plan


@transaction.atomic
def plan_reset(
    *, rollout: Rollout, actor: AbstractBaseUser | None, now: datetime | None = None
) -> CommunicationPlan:
    """Back to the strategy's defaults."""
    defaults = selectors.default_rules(rollout, Audience.objects.order_by("name"))
    return plan_rules_replace(
        rollout=rollout,
        rules=[
            {"audience": r.audience, "event": r.event, "lead_time": r.lead_time, "phases": r.phases}
            for r in defaults
        ],
        actor=actor,
        now=now,
    )


# --------------------------------------------------------------------------------------------
# Notices: create, edit, schedule, cancel


def _channel_targets(channels: Iterable[Channel]) -> list[tuple[Channel, str]]:
    targets: list[tuple[Channel, str]] = []
    for channel in channels:
        if channel.kind == Channel.Kind.EMAIL:
            targets.extend((channel, address) for address in channel.email_recipients)
        else:
            targets.append((channel, ""))
    return targets


def _sync_deliveries(notice: Notice) -> None:
    """Make the notice's unsent deliveries match its audience's enabled channels now."""
    channels = list(
        Channel.objects.filter(audience_id=notice.audience_id, is_enabled=True).select_related(
            "audience"
        )
    )
    wanted = {(c.id, r): (c, r) for c, r in _channel_targets(channels)}
    existing = {(d.channel_id, d.recipient): d for d in notice.deliveries.all()}
    stale = [
        d.id
        for key, d in existing.items()
        if key not in wanted and d.state in (DState.PENDING, DState.QUEUED)
    ]
    if stale:
        Delivery.objects.filter(id__in=stale).update(
            state=DState.CANCELLED,
            last_error="The channel was disabled or removed before sending.",
            updated_at=timezone.now(),
        )
    Delivery.objects.bulk_create(
        [
            Delivery(
                notice=notice,
                channel=channel,
                channel_kind=channel.kind,
                channel_name=channel.name,
                recipient=recipient,
            )
            for key, (channel, recipient) in wanted.items()
            if key not in existing
        ]
    )


def _render_check(subject: str, body: str) -> None:
    templating.validate_template(subject=subject, body=body)


def _clean_send_at(send_at: datetime | None, now: datetime) -> datetime | None:
    if send_at is None:
        return None
    if timezone.is_naive(send_at):
        raise ApplicationError("Give the time with its time zone.", field="send_at")
    if send_at < now - timedelta(minutes=1):
        raise ApplicationError(
            "That time has passed; choose a time in the future, or send now.", field="send_at"
        )
    return send_at


@transaction.atomic
def notice_create(
    *,
    audience: Audience,
    subject: str,
    body: str,
    actor: AbstractBaseUser | None,
    rollout: Rollout | None = None,
    release: Release | None = None,
    phase: Phase | None = None,
    event: str = NoticeEvent.CUSTOM,
    template: NoticeTemplate | None = None,
    send_at: datetime | None = None,
    send_now: bool = False,
    now: datetime | None = None,
) -> Notice:
    """A notice written by a person: a draft, scheduled at `send_at`, or sent now."""
    now = _now(now)
    _clean_event(event)
    _render_check(subject, body)
    if rollout is not None and release is None:
        release = rollout.release
    if rollout is not None and release is not None and rollout.release_id != release.id:
        raise ApplicationError("The release is not the rollout's release.", field="release")
    if phase is not None and (rollout is None or phase.rollout_id != rollout.id):
        raise ApplicationError("The phase is not part of the rollout.", field="phase")
    send_at = now if send_now else _clean_send_at(send_at, now)
    notice = Notice(
        audience=audience,
        event=event,
        origin=Notice.Origin.MANUAL,
        rollout=rollout,
        release=release,
        phase=phase,
        template=template,
        subject=subject.strip(),
        body=body,
        send_at=send_at,
        time_is_fixed=True,
        state=State.SCHEDULED if send_at else State.DRAFT,
        created_by=_user(actor),
    )
    notice._history_user = _user(actor)  # type: ignore[attr-defined]
    notice.save()
    if notice.state == State.SCHEDULED:
        _sync_deliveries(notice)
    logger.info(
        "notice.created notice_id=%s audience_id=%s state=%s send_at=%s",
        notice.id, audience.id, notice.state, send_at.isoformat() if send_at else "-",
    )  # fmt: skip
    if send_now:
        _dispatch(notice, now=now)
    return notice


def _lock_notice(notice: Notice) -> Notice:
    return Notice.objects.select_for_update().get(pk=notice.pk)


def _editable(notice: Notice, doing: str) -> None:
    if notice.state not in Notice.EDITABLE_STATES:
        raise ApplicationError(
            f"This notice is {notice.get_state_display().lower()}; only drafts and scheduled "
            f"notices can be {doing}.",
            field="state",
        )


_UNSET: Any = object()


@transaction.atomic
def notice_update(
    *,
    notice: Notice,
    actor: AbstractBaseUser | None,
    subject: str | None = None,
    body: str | None = None,
    audience: Audience | None = None,
    send_at: datetime | None = _UNSET,
    now: datetime | None = None,
) -> Notice:
    """Edit a draft or scheduled notice. A new `send_at` fixes the time (the plan stops
    moving it); `send_at=None` makes it a draft again."""
    now = _now(now)
    notice = _lock_notice(notice)
    _editable(notice, "edited")
    new_subject = notice.subject if subject is None else subject
    new_body = notice.body if body is None else body
    _render_check(new_subject, new_body)
    notice.subject, notice.body = new_subject.strip(), new_body
    audience_changed = audience is not None and audience.pk != notice.audience_id
    if audience is not None:
        notice.audience = audience
    if send_at is not _UNSET:
        notice.send_at = _clean_send_at(send_at, now)
        notice.time_is_fixed = True
        notice.state = State.SCHEDULED if notice.send_at else State.DRAFT
        notice.state_note = ""
    notice._history_user = _user(actor)  # type: ignore[attr-defined]
    notice.save()
    if audience_changed:
        notice.deliveries.filter(state=DState.PENDING).delete()
    if notice.state == State.SCHEDULED:
        _sync_deliveries(notice)
    else:
        notice.deliveries.filter(state=DState.PENDING).delete()
    logger.info("notice.updated notice_id=%s state=%s", notice.id, notice.state)
    return notice


@transaction.atomic
def notice_schedule(
    *,
    notice: Notice,
    send_at: datetime,
    actor: AbstractBaseUser | None,
    now: datetime | None = None,
) -> Notice:
    if send_at is None:
        raise ApplicationError("Choose when to send it.", field="send_at")
    return notice_update(notice=notice, actor=actor, send_at=send_at, now=now)


@transaction.atomic
def notice_send_now(
    *, notice: Notice, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Notice:
    now = _now(now)
    notice = _lock_notice(notice)
    _editable(notice, "sent")
    notice.send_at = now
    notice.time_is_fixed = True
    notice.state = State.SCHEDULED
    notice._history_user = _user(actor)  # type: ignore[attr-defined]
    notice.save(update_fields=["send_at", "time_is_fixed", "state", "updated_at"])
    _sync_deliveries(notice)
    _dispatch(notice, now=now)
    return notice


def _cancel_notices(qs: Any, *, note: str) -> int:
    ids = list(qs.filter(state__in=Notice.EDITABLE_STATES).values_list("id", flat=True))
    if not ids:
        return 0
    stamp = timezone.now()
    Notice.objects.filter(id__in=ids).update(
        state=State.CANCELLED, state_note=note[:500], updated_at=stamp
    )
    Delivery.objects.filter(notice_id__in=ids, state=DState.PENDING).update(
        state=DState.CANCELLED, updated_at=stamp
    )
    logger.info("notice.cancelled count=%s note=%s", len(ids), note)
    return len(ids)


@transaction.atomic
def notice_cancel(
    *, notice: Notice, actor: AbstractBaseUser | None, reason: str = "", now: datetime | None = None
) -> Notice:
    notice = _lock_notice(notice)
    _editable(notice, "cancelled")
    who = getattr(_user(actor), "username", "") or "the system"
    note = f"Cancelled by {who}" + (f": {reason}" if reason else ".")
    _cancel_notices(Notice.objects.filter(pk=notice.pk), note=note)
    notice.refresh_from_db()
    return notice


# --------------------------------------------------------------------------------------------
# Sending: render once, queue the outbox rows, publish after commit


def _publish(delivery_ids: list[int]) -> None:
    from comms.tasks import send_delivery

    try:
        with send_delivery.app.producer_or_acquire() as producer:
            for delivery_id in delivery_ids:
                send_delivery.apply_async((delivery_id,), producer=producer)
    except Exception:
        logger.exception(
            "delivery.enqueue_failed count=%s (the sweep re-queues them)", len(delivery_ids)
        )


def enqueue_on_commit(delivery_ids: Sequence[int]) -> None:
    ids = list(delivery_ids)
    if ids:
        transaction.on_commit(lambda: _publish(ids))


def _doc_links(release: Release | None, audience: Audience) -> list[DocLink]:
    if release is None:
        return []
    qs = DocLink.objects.filter(release=release).order_by("kind", "title")
    if audience.kind in (Audience.Kind.CUSTOMERS, Audience.Kind.BETA_TESTERS):
        qs = qs.filter(visibility=DocLink.Visibility.PUBLIC)
    return list(qs)


@dataclass(frozen=True)
class _Facts:
    rollout: Rollout | None
    release: Release | None
    phase: Phase | None
    phases: list[Phase]
    phase_start: datetime | None


def _facts(notice: Notice, now: datetime) -> _Facts:
    rollout = None
    if notice.rollout_id:
        rollout = Rollout.objects.select_related(
            "environment", "owner", "release", "release__owner"
        ).get(pk=notice.rollout_id)
    release = notice.release if notice.release_id else (rollout.release if rollout else None)
    phases = list(rollout.phases.select_related("segment").order_by("order")) if rollout else []
    phase = next((p for p in phases if p.id == notice.phase_id), None)
    if phase is None and rollout is not None and notice.origin == Notice.Origin.MANUAL and phases:
        # A person writing about a rollout means its next phase (or the last one applied).
        index = min(rollout.current_phase_index + 1, len(phases) - 1)
        if rollout.is_final:
            index = max(rollout.current_phase_index, 0)
        phase = phases[index]
    phase_start = None
    if phase is not None and rollout is not None:
        if phase.applied_at is not None:
            phase_start = phase.applied_at
        else:
            times = projected_timeline(rollout, phases, now)[phase.order]
            phase_start = times.planned_start
    return _Facts(rollout, release, phase, phases, phase_start)


def notice_context(notice: Notice, *, now: datetime) -> tuple[dict[str, Any], _Facts]:
    facts = _facts(notice, now)
    event = notice.rollout_event
    context = templating.build_context(
        audience=notice.audience,
        now=now,
        release=facts.release,
        rollout=facts.rollout,
        phase=facts.phase,
        phase_count=len(facts.phases) or None,
        phase_start=facts.phase_start,
        previous_percentage=event.from_percentage if event is not None else None,
        reason=notice.reason,
        event_label=NoticeEvent(notice.event).label,
        doc_links=_doc_links(facts.release, notice.audience),
        rollout_url=selectors.rollout_url(facts.rollout) if facts.rollout else "",
    )
    return context, facts


def _payload(notice: Notice, facts: _Facts, now: datetime) -> dict[str, Any]:
    """The structured part of the generic webhook body (schema rollcall.notice/v1)."""
    audience = notice.audience
    release, rollout, phase = facts.release, facts.rollout, facts.phase
    return {
        "notice": {
            "id": notice.id,
            "event": notice.event,
            "origin": notice.origin,
            "is_correction": notice.corrects_id is not None,
            "corrects": notice.corrects_id,
            "dispatched_at": now.isoformat(),
        },
        "audience": {
            "id": audience.id,
            "name": audience.name,
            "kind": audience.kind,
            "timezone": audience.timezone,
        },
        "release": (
            {
                "id": release.id,
                "name": release.name,
                "version": release.version,
                "summary": release.summary,
                "label": release.label,
            }
            if release
            else None
        ),
        "rollout": (
            {
                "key": rollout.key,
                "environment": rollout.environment.key,
                "strategy": rollout.strategy,
                "state": rollout.state,
                "url": selectors.rollout_url(rollout),
            }
            if rollout
            else None
        ),
        "phase": (
            {
                "index": phase.order,
                "name": phase.name,
                "percentage": phase.percentage,
                "starts_at": facts.phase_start.isoformat() if facts.phase_start else None,
            }
            if phase
            else None
        ),
        "reason": notice.reason,
    }


def _lead_notice_check(notice: Notice, now: datetime) -> bool:
    """A "phase starting soon" notice is checked against the plan when it falls due:
    returns False (and cancels or moves it) when it should not go out now."""
    if not (
        notice.origin == Notice.Origin.PLAN
        and notice.event == NoticeEvent.PHASE_UPCOMING
        and notice.rollout_id
    ):
        return True
    rollout = Rollout.objects.get(pk=notice.rollout_id)
    phases = list(rollout.phases.select_related("segment").order_by("order"))
    phase = next((p for p in phases if p.id == notice.phase_id), None)
    if phase is None or phase.applied_at is not None or rollout.is_final:
        what = "the rollout ended" if rollout.is_final else "the phase started"
        _cancel_notices(
            Notice.objects.filter(pk=notice.pk),
            note=f"Cancelled: {what} before the notice was due.",
        )
        return False
    if notice.time_is_fixed:
        return True
    lead = notice.plan_rule.lead_time if notice.plan_rule_id and notice.plan_rule else None
    times = projected_timeline(rollout, phases, now)[phase.order]
    send_at = selectors.lead_send_at(rollout, times, lead)
    if send_at is None or send_at > now + timedelta(seconds=1):
        _move_lead_notice(notice, rollout, send_at)
        return False
    return True


def _move_lead_notice(notice: Notice, rollout: Rollout, send_at: datetime | None) -> None:
    if send_at is None:
        why = {
            "paused": "the rollout is paused",
            "held": "the rollout is held",
        }.get(rollout.state, "the phase waits for a person")
        note = f"Waiting: {why}; the time follows the plan when it continues."
    else:
        note = "Moved with the plan." if notice.send_at else "Scheduled from the plan."
    Notice.objects.filter(pk=notice.pk).update(
        send_at=send_at, state_note=note, updated_at=timezone.now()
    )
    logger.info(
        "notice.rescheduled notice_id=%s send_at=%s",
        notice.id, send_at.isoformat() if send_at else "-",
    )  # fmt: skip


def _dispatch(notice: Notice, *, now: datetime) -> bool:
    """Render a due notice, queue its deliveries. Caller holds the notice's row lock."""
    if notice.state != State.SCHEDULED or notice.send_at is None or notice.send_at > now:
        return False
    if not _lead_notice_check(notice, now):
        return False
    context, facts = notice_context(notice, now=now)
    rendered = templating.render(subject=notice.subject, body=notice.body, context=context)
    notice.rendered_subject = rendered.subject
    notice.rendered_text = rendered.text
    notice.rendered_markdown = rendered.markdown
    notice.rendered_html = rendered.html
    notice.rendered_slack = rendered.slack
    notice.context_data = _payload(notice, facts, now)
    notice.dispatched_at = now
    notice.state = State.SENDING
    notice.state_note = ""
    _sync_deliveries(notice)
    pending = list(notice.deliveries.filter(state=DState.PENDING).values_list("id", flat=True))
    if not pending:
        notice.state = State.FAILED
        notice.finished_at = now
        notice.state_note = (
            f"{notice.audience.name} has no enabled channel; an admin can add one under "
            "Communications -> Audiences, then the notice can be written again."
        )
    notice.save()
    Delivery.objects.filter(id__in=pending).update(
        state=DState.QUEUED, enqueued_at=now, updated_at=now
    )
    enqueue_on_commit(pending)
    logger.info(
        "notice.dispatched notice_id=%s audience_id=%s deliveries=%s",
        notice.id, notice.audience_id, len(pending),
    )  # fmt: skip
    return True


def notice_dispatch(*, notice_id: int, now: datetime | None = None) -> bool:
    """Send a due scheduled notice (idempotent: a locked or already sent notice is skipped)."""
    now = _now(now)
    with transaction.atomic():
        notice = (
            Notice.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("audience", "plan_rule", "rollout_event")
            .filter(pk=notice_id)
            .first()
        )
        if notice is None:
            return False
        return _dispatch(notice, now=now)


def notices_send_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """The sweep: dispatch every scheduled notice whose time has come."""
    now = _now(now)
    ids = list(
        Notice.objects.filter(state=State.SCHEDULED, send_at__lte=now)
        .order_by("send_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    return sum(1 for notice_id in ids if notice_dispatch(notice_id=notice_id, now=now))


# --------------------------------------------------------------------------------------------
# Deliveries


def _finish_delivery(
    delivery_id: int,
    attempt: int,
    *,
    state: str,
    error: str = "",
    status: int | None = None,
    next_attempt_at: datetime | None = None,
    now: datetime,
) -> bool:
    """Record an attempt's outcome, only if this attempt still owns the delivery."""
    fields: dict[str, Any] = {
        "state": state,
        "response_code": status,
        "next_attempt_at": next_attempt_at,
        "updated_at": now,
    }
    if error:
        fields["last_error"] = error[:MAX_ERROR]
    if state == DState.SENT:
        fields["sent_at"] = now
    updated = Delivery.objects.filter(
        pk=delivery_id, state=DState.SENDING, attempts=attempt
    ).update(**fields)
    return bool(updated)


def _attempt_failed(
    delivery: Delivery,
    attempt: int,
    *,
    error: str,
    status: int | None,
    cause: Exception,
    max_attempts: int,
    now: datetime | None,
) -> str:
    last = attempt >= max_attempts
    when = _now(now)
    _finish_delivery(
        delivery.id,
        attempt,
        state=DState.FAILED if last else DState.RETRYING,
        error=f"Gave up after {attempt} attempts: {error}" if last else error,
        status=status,
        next_attempt_at=None if last else when + retry_delay(attempt),
        now=when,
    )
    if last:
        logger.warning("delivery.failed delivery_id=%s attempts=%s", delivery.id, attempt)
        notice_finish(notice_id=delivery.notice_id, now=now)
        return DState.FAILED
    logger.info("delivery.retrying delivery_id=%s attempt=%s error=%s", delivery.id, attempt, error)
    raise senders.TransientDeliveryError(error, status=status) from cause


def delivery_send(
    *,
    delivery_id: int,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> str:
    """Send one delivery once. Returns its state afterwards.

    Raises TransientDeliveryError when the attempt failed and another one is allowed (the
    Celery task retries with backoff); permanent failures and the last attempt end "failed".
    """
    started = _now(now)
    delivery = (
        Delivery.objects.select_related("notice", "notice__audience", "channel")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return "missing"
    if delivery.state not in Delivery.SENDABLE_STATES:
        # Sent, failed, cancelled, or another attempt is in flight: nothing to do.
        return delivery.state
    channel = delivery.channel
    if channel is None or not channel.is_enabled:
        cancelled = Delivery.objects.filter(
            pk=delivery_id, state__in=Delivery.SENDABLE_STATES
        ).update(
            state=DState.CANCELLED,
            last_error="The channel was disabled or removed before sending.",
            updated_at=started,
        )
        if cancelled:
            notice_finish(notice_id=delivery.notice_id, now=now)
        return DState.CANCELLED
    # Claim the attempt: one conditional UPDATE takes the row lock, checks the state and
    # counts the attempt atomically; whoever updates no row lost the race and sends nothing.
    claimed = Delivery.objects.filter(
        pk=delivery_id, state=delivery.state, attempts=delivery.attempts
    ).update(
        state=DState.SENDING, attempts=F("attempts") + 1, started_at=started, updated_at=started
    )
    if not claimed:
        return Delivery.objects.values_list("state", flat=True).get(pk=delivery_id)
    delivery.attempts += 1
    message = senders.message_for(delivery=delivery, notice=delivery.notice, channel=channel)
    attempt = delivery.attempts
    # The row is committed as "sending" before anything leaves: a worker that dies from here
    # on leaves a trace the sweep finds, and the resend carries the same idempotency id.
    try:
        result = senders.send(message)
    except senders.PermanentDeliveryError as exc:
        _finish_delivery(
            delivery_id, attempt, state=DState.FAILED, error=exc.message, status=exc.status,
            now=_now(now),
        )  # fmt: skip
        logger.warning("delivery.failed delivery_id=%s error=%s", delivery_id, exc.message)
        notice_finish(notice_id=delivery.notice_id, now=now)
        return DState.FAILED
    except senders.TransientDeliveryError as exc:
        return _attempt_failed(
            delivery, attempt, error=exc.message, status=exc.status, cause=exc,
            max_attempts=max_attempts, now=now,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any other error is worth another try
        return _attempt_failed(
            delivery, attempt, error=f"{type(exc).__name__}: {exc}", status=None, cause=exc,
            max_attempts=max_attempts, now=now,
        )  # fmt: skip
    _finish_delivery(delivery_id, attempt, state=DState.SENT, status=result.status, now=_now(now))
    logger.info(
        "delivery.sent delivery_id=%s notice_id=%s attempt=%s",
        delivery_id, delivery.notice_id, attempt,
    )  # fmt: skip
    notice_finish(notice_id=delivery.notice_id, now=now)
    return DState.SENT


def notice_finish(*, notice_id: int, now: datetime | None = None) -> str | None:
    """Once no delivery is unfinished, the notice is sent, partially failed or failed.

    Checked after each delivery's outcome is committed, so the last one to finish always
    sees all the others (and the sweep repeats it for safety)."""
    if Delivery.objects.filter(notice_id=notice_id, state__in=Delivery.UNFINISHED_STATES).exists():
        return None
    now = _now(now)
    with transaction.atomic():
        notice = Notice.objects.select_for_update().filter(pk=notice_id).first()
        if notice is None or notice.state != State.SENDING:
            return None
        counts = dict(
            notice.deliveries.values("state").annotate(n=Count("id")).values_list("state", "n")
        )
        sent, failed = counts.get(DState.SENT, 0), counts.get(DState.FAILED, 0)
        if sent and not failed:
            notice.state = State.SENT
            notice.state_note = ""
        elif sent:
            notice.state = State.PARTIALLY_FAILED
            notice.state_note = f"{failed} of {sent + failed} deliveries failed; retry them below."
        else:
            notice.state = State.FAILED
            notice.state_note = "No delivery succeeded; see the errors and retry."
        notice.finished_at = now
        notice.save(update_fields=["state", "state_note", "finished_at", "updated_at"])
    logger.info("notice.%s notice_id=%s sent=%s failed=%s", notice.state, notice_id, sent, failed)
    return notice.state


def _retry(deliveries: Any, *, now: datetime) -> list[int]:
    ids = list(deliveries.filter(state=DState.FAILED).values_list("id", flat=True))
    if ids:
        Delivery.objects.filter(id__in=ids).update(
            state=DState.QUEUED, attempts=0, next_attempt_at=None, enqueued_at=now, updated_at=now
        )
    return ids


def _reopen(notice: Notice, now: datetime) -> None:
    notice.state = State.SENDING
    notice.state_note = ""
    notice.finished_at = None
    notice.save(update_fields=["state", "state_note", "finished_at", "updated_at"])


@transaction.atomic
def delivery_retry(
    *, delivery: Delivery, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Delivery:
    """Try a failed delivery again (same idempotency id: a receiver that got it already
    ignores the copy)."""
    now = _now(now)
    notice = _lock_notice(delivery.notice)
    delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.state != DState.FAILED:
        raise ApplicationError(
            f"Only failed deliveries can be retried; this one is "
            f"{delivery.get_state_display().lower()}.",
            field="state",
        )
    ids = _retry(Delivery.objects.filter(pk=delivery.pk), now=now)
    _reopen(notice, now)
    enqueue_on_commit(ids)
    logger.info("delivery.retried delivery_id=%s actor=%s", delivery.id, getattr(actor, "pk", None))
    delivery.refresh_from_db()
    return delivery


@transaction.atomic
def notice_retry(
    *, notice: Notice, actor: AbstractBaseUser | None, now: datetime | None = None
) -> int:
    """Retry every failed delivery of a notice; returns how many."""
    now = _now(now)
    notice = _lock_notice(notice)
    if notice.state not in (State.FAILED, State.PARTIALLY_FAILED):
        raise ApplicationError("Only notices with failed deliveries can be retried.", field="state")
    ids = _retry(notice.deliveries.all(), now=now)
    if not ids:
        raise ApplicationError(
            "This notice has no delivery to retry (its audience had no channel); write a new "
            "notice once a channel is set up.",
            field="state",
        )
    _reopen(notice, now)
    enqueue_on_commit(ids)
    logger.info("notice.retried notice_id=%s deliveries=%s", notice.id, len(ids))
    return len(ids)


@dataclass(frozen=True)
class SweepResult:
    notices_sent: int
    requeued: int
    finished: int


def deliveries_requeue_stuck(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Queue again what a dead worker or a lost message left behind:
    "sending" past the stale limit (interrupted mid-send), "queued" past the re-queue limit
    (message lost), "retrying" well past its next attempt (retry message lost)."""
    now = _now(now)
    grace = requeue_after()
    with transaction.atomic():
        interrupted = list(
            Delivery.objects.filter(state=DState.SENDING, started_at__lt=now - stale_after())
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        lost = list(
            Delivery.objects.filter(state=DState.QUEUED, enqueued_at__lt=now - grace)
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        late = list(
            Delivery.objects.filter(state=DState.RETRYING, next_attempt_at__lt=now - grace)
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if interrupted:
            Delivery.objects.filter(id__in=interrupted).update(
                state=DState.QUEUED,
                enqueued_at=now,
                updated_at=now,
                last_error=(
                    "An attempt was interrupted (its worker stopped while sending); sent again "
                    "with the same delivery id, which receivers de-duplicate."
                ),
            )
        if lost or late:
            Delivery.objects.filter(id__in=lost + late).update(
                state=DState.QUEUED, enqueued_at=now, updated_at=now
            )
        ids = interrupted + lost + late
        enqueue_on_commit(ids)
    if ids:
        logger.warning(
            "delivery.requeued interrupted=%s lost=%s late=%s",
            len(interrupted), len(lost), len(late),
        )  # fmt: skip
    return len(ids)


def notices_finish_stale(*, now: datetime | None = None, limit: int = 200) -> int:
    """Notices left "sending" although every delivery finished (belt and braces)."""
    ids = list(
        Notice.objects.filter(state=State.SENDING)
        .exclude(deliveries__state__in=Delivery.UNFINISHED_STATES)
        .values_list("id", flat=True)[:limit]
    )
    return sum(1 for notice_id in ids if notice_finish(notice_id=notice_id, now=now))


def notices_sweep(*, now: datetime | None = None) -> SweepResult:
    """The beat sweep of notices: due notices, stuck deliveries, unfinished notices."""
    now = _now(now)
    return SweepResult(
        notices_sent=notices_send_due(now=now),
        requeued=deliveries_requeue_stuck(now=now),
        finished=notices_finish_stale(now=now),
    )


# --------------------------------------------------------------------------------------------
# Rollout events -> notices


def _new_plan_notice(
    *,
    rollout: Rollout,
    audience: Audience,
    event: str,
    rule: PlanRule | None,
    dedupe_key: str,
    send_at: datetime | None,
    phase: Phase | None = None,
    rollout_event: RolloutEvent | None = None,
    reason: str = "",
    corrects: Notice | None = None,
    state_note: str = "",
) -> Notice | None:
    """Create a plan notice once (None when its dedupe key exists already)."""
    if Notice.objects.filter(dedupe_key=dedupe_key).exists():
        return None
    template, subject, body = selectors.template_for(rule, event)
    try:
        with transaction.atomic():
            notice = Notice.objects.create(
                audience=audience,
                event=event,
                origin=Notice.Origin.PLAN,
                rollout=rollout,
                release_id=rollout.release_id,
                phase=phase,
                plan_rule=rule if rule is not None and rule.pk else None,
                rollout_event=rollout_event,
                template=template,
                corrects=corrects,
                dedupe_key=dedupe_key,
                subject=subject,
                body=body,
                reason=reason,
                send_at=send_at,
                state=State.SCHEDULED,
                state_note=state_note,
            )
            _sync_deliveries(notice)
    except IntegrityError:
        return None
    return notice


def _event_phase(event: RolloutEvent, rollout: Rollout, phases: list[Phase]) -> Phase | None:
    if event.kind == Kind.ADVANCED:
        index = event.to_phase_index
    elif event.kind == Kind.SCHEDULED:
        index = 0
    elif event.kind == Kind.ROLLED_BACK:
        index = event.from_phase_index
    elif event.to_phase_index is not None:
        index = event.to_phase_index
    else:
        index = rollout.current_phase_index
    if index is None or not 0 <= index < len(phases):
        return None
    return phases[index]


def _event_notices(
    event: RolloutEvent,
    rollout: Rollout,
    plan: CommunicationPlan,
    phases: list[Phase],
    now: datetime,
) -> list[Notice]:
    kind = EVENT_NOTICES.get(event.kind)
    if kind is None:
        return []
    if event.kind == Kind.HOLD_CLEARED and (event.data or {}).get("to_state", "running") != (
        Rollout.State.RUNNING
    ):
        # The hold is gone but the rollout stays paused for a person: nothing resumed yet.
        return []
    phase = _event_phase(event, rollout, phases)
    rules = [
        r
        for r in plan.rules.select_related("audience", "template").order_by("id")
        if r.is_enabled and r.event == kind and selectors.rule_matches_phase(r, phase)
    ]
    chosen: dict[int, tuple[Audience, PlanRule | None, Notice | None]] = {}
    for rule in rules:
        chosen.setdefault(rule.audience_id, (rule.audience, rule, None))
    if kind == NoticeEvent.ROLLED_BACK:
        # Everyone who heard about this rollout gets a correction, planned or not.
        heard = (
            Notice.objects.filter(
                rollout=rollout,
                state__in=(State.SENT, State.PARTIALLY_FAILED, State.SENDING),
            )
            .exclude(event=NoticeEvent.ROLLED_BACK)
            .select_related("audience")
            .order_by("created_at", "id")
        )
        for notice in heard:
            audience, rule, _ = chosen.get(notice.audience_id, (notice.audience, None, None))
            chosen[notice.audience_id] = (audience, rule, notice)
    created = []
    for audience, rule, corrects in chosen.values():
        notice = _new_plan_notice(
            rollout=rollout,
            audience=audience,
            event=kind,
            rule=rule,
            dedupe_key=f"event:{event.id}:{audience.id}",
            send_at=now,
            phase=phase,
            rollout_event=event,
            reason=event.reason,
            corrects=corrects,
        )
        if notice is not None:
            created.append(notice)
    return created


def rollout_notices_sync(*, rollout: Rollout, now: datetime | None = None) -> int:
    """Keep the rollout's "phase starting soon" notices in step with the projected timeline:
    create missing ones, move their time when phases move (delay, pause, hold), cancel those
    whose phase started or left the plan. Returns how many were created or changed.
    Caller holds the plan lock (`_plan_locked`)."""
    now = _now(now)
    rollout = Rollout.objects.get(pk=rollout.pk)
    existing = {
        n.dedupe_key: n
        for n in Notice.objects.filter(
            rollout=rollout, origin=Notice.Origin.PLAN, event=NoticeEvent.PHASE_UPCOMING
        )
    }
    if rollout.is_final:
        what = rollout.get_state_display().lower()
        return _cancel_notices(
            Notice.objects.filter(id__in=[n.id for n in existing.values()]),
            note=f"Cancelled: the rollout was {what}.",
        )
    desired: dict[str, tuple[PlanRule, Any]] = {}
    if rollout.state != Rollout.State.DRAFT:
        phases = list(rollout.phases.select_related("segment").order_by("order"))
        timeline = projected_timeline(rollout, phases, now) if phases else []
        rules = [
            r
            for r in PlanRule.objects.filter(
                plan__rollout=rollout, event=NoticeEvent.PHASE_UPCOMING, is_enabled=True
            ).select_related("audience", "template")
        ]
        for times in timeline:
            if times.state != "upcoming":
                continue
            for rule in rules:
                if selectors.rule_matches_phase(rule, times.phase):
                    desired[f"lead:{rule.id}:{times.phase.id}"] = (rule, times)
    changed = _cancel_notices(
        Notice.objects.filter(id__in=[n.id for key, n in existing.items() if key not in desired]),
        note="Cancelled: the phase started, or it is no longer in the plan.",
    )
    for key, (rule, times) in desired.items():
        send_at = selectors.lead_send_at(rollout, times, rule.lead_time)
        notice = existing.get(key)
        if notice is None:
            created = _new_plan_notice(
                rollout=rollout,
                audience=rule.audience,
                event=NoticeEvent.PHASE_UPCOMING,
                rule=rule,
                dedupe_key=key,
                send_at=send_at,
                phase=times.phase,
                state_note="" if send_at else "Waiting: the phase has no start time yet.",
            )
            changed += created is not None
        elif (
            notice.state == State.SCHEDULED
            and not notice.time_is_fixed
            and notice.send_at != send_at
        ):
            _move_lead_notice(notice, rollout, send_at)
            changed += 1
    return changed


def _event_handle(event: RolloutEvent, now: datetime) -> list[Notice]:
    rollout = Rollout.objects.select_related("release").get(pk=event.rollout_id)
    plan = _plan_locked(rollout)
    phases = list(rollout.phases.select_related("segment").order_by("order"))
    if event.kind in FINAL_ROLLOUT_KINDS:
        what = "rolled back" if event.kind == Kind.ROLLED_BACK else "cancelled"
        _cancel_notices(
            Notice.objects.filter(rollout=rollout, state__in=Notice.EDITABLE_STATES),
            note=f"Cancelled: the rollout was {what}.",
        )
    created = _event_notices(event, rollout, plan, phases, now)
    for notice in created:
        _dispatch(notice, now=now)
    rollout_notices_sync(rollout=rollout, now=now)
    return created


def event_dispatch(*, event_id: int, now: datetime | None = None) -> bool:
    """Turn one rollout event into notices, once. False when it was handled already or is
    being handled by someone else right now (its row is locked)."""
    now = _now(now)
    with transaction.atomic():
        event = (
            RolloutEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=event_id, dispatched_at__isnull=True)
            .first()
        )
        if event is None:
            return False
        created = _event_handle(event, now)
        event.dispatched_at = now
        event.save(update_fields=["dispatched_at"])
    logger.info(
        "event.dispatched event_id=%s rollout_id=%s kind=%s notices=%s",
        event.id, event.rollout_id, event.kind, len(created),
    )  # fmt: skip
    return True


def events_dispatch_pending(*, now: datetime | None = None, limit: int = 500) -> int:
    """The sweep: every event not dispatched yet, oldest first. Returns how many."""
    ids = list(
        RolloutEvent.objects.filter(dispatched_at__isnull=True)
        .order_by("at", "id")
        .values_list("id", flat=True)[:limit]
    )
    return sum(1 for event_id in ids if event_dispatch(event_id=event_id, now=now))
