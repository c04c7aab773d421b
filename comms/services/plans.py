"""Communication plans: which audience hears about which event of a rollout, and how long
before a phase the "phase starting soon" notices go out.

Owns the plan rules (create, update, delete, replace, reset to the strategy's defaults), the
creation of plan notices (once per dedupe key) and `rollout_notices_sync`, which keeps the lead
notices in step with the projected timeline as phases move. The plan row lock serialises event
handling and plan edits of one rollout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from comms import selectors
from comms.models import Audience, CommunicationPlan, Notice, NoticeEvent, NoticeTemplate, PlanRule
from comms.services._common import _clean_event, _now
from comms.services.notices import _cancel_notices, _move_lead_notice, _sync_deliveries
from core.exceptions import ApplicationError
from rollouts.models import Phase, Rollout, RolloutEvent
from rollouts.scheduling import projected_timeline

logger = logging.getLogger(__name__)

State = Notice.State
MAX_LEAD_TIME = timedelta(days=30)


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
