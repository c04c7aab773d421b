"""Notices: write, edit, schedule, send now and cancel; and their dispatch.

Dispatch renders a due notice once (frozen, so retries send the same bytes), builds the
structured webhook payload (schema rollcall.notice/v1), re-checks "phase starting soon"
notices against the plan when they fall due, and queues one delivery per channel and
recipient in the same transaction; the send tasks are published after commit (`outbox`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from comms import selectors, templating
from comms.models import (
    Audience,
    Channel,
    Delivery,
    DocLink,
    Notice,
    NoticeEvent,
    NoticeTemplate,
)
from comms.services._common import _clean_event, _lock_notice, _now, _user
from comms.services.outbox import deliveries_enqueue_on_commit
from core.exceptions import ApplicationError
from core.failures import describe_error
from rollouts.models import Phase, Release, Rollout
from rollouts.scheduling import projected_timeline

logger = logging.getLogger(__name__)

State = Notice.State
DState = Delivery.State


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
    deliveries_enqueue_on_commit(pending)
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
    sent = 0
    for notice_id in ids:
        try:
            sent += notice_dispatch(notice_id=notice_id, now=now)
        except Exception as exc:  # noqa: BLE001 - one bad notice must not stop the others
            _notice_prepare_failed(notice_id, describe_error(exc), now)
    return sent


def _notice_prepare_failed(notice_id: int, error: str, now: datetime) -> None:
    """A due notice that cannot be prepared (e.g. a template broken in the admin) fails with
    the reason, instead of being tried again on every sweep ahead of the others."""
    Notice.objects.filter(pk=notice_id, state=State.SCHEDULED).update(
        state=State.FAILED,
        finished_at=now,
        updated_at=now,
        state_note=f"Could not prepare this notice: {error}"[:500],
    )
    logger.warning("notice.prepare_failed notice_id=%s error=%s", notice_id, error)
