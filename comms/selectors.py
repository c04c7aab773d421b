"""Reads of the communication side, each with a constant number of queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, reverse

from comms.models import (
    Audience,
    Channel,
    CommunicationPlan,
    Delivery,
    Notice,
    NoticeEvent,
    NoticeTemplate,
    PlanRule,
)
from comms.templating import BUILTIN_TEMPLATES, format_duration, format_time, zone
from core.when import format_datetime
from rollouts.models import Phase, Rollout
from rollouts.scheduling import PhaseTimes, projected_end, projected_timeline

DEFAULT_LEAD_TIME = timedelta(hours=24)
FINAL_ROLLOUT_STATES = ("completed", "rolled_back", "cancelled")
STOPPED_ROLLOUT_STATES = ("paused", "held")
# Strategies whose phases change nothing users see: customers are not told about them.
INVISIBLE_TO_USERS = {"shadow"}

# Default plan, per audience kind: (event, which phases, lead time).
K = Audience.Kind
E = NoticeEvent
ALL, FIRST, FULL = PlanRule.Phases.ALL, PlanRule.Phases.FIRST, PlanRule.Phases.FULL
DEFAULT_RULES: dict[str, list[tuple[str, str, timedelta | None]]] = {
    K.CUSTOMER_SUPPORT: [
        (E.PHASE_UPCOMING, ALL, DEFAULT_LEAD_TIME),
        (E.PHASE_STARTED, ALL, None),
        (E.HELD, ALL, None),
        (E.RESUMED, ALL, None),
        (E.ROLLED_BACK, ALL, None),
    ],
    K.TECHNICAL_SUPPORT: [
        (E.SCHEDULED, ALL, None),
        (E.PHASE_UPCOMING, ALL, DEFAULT_LEAD_TIME),
        (E.HELD, ALL, None),
        (E.RESUMED, ALL, None),
        (E.ROLLED_BACK, ALL, None),
        (E.COMPLETED, ALL, None),
    ],
    # Customers hear at general availability; a rollback corrects what they heard.
    K.CUSTOMERS: [(E.PHASE_STARTED, FULL, None)],
    K.BETA_TESTERS: [(E.PHASE_STARTED, FIRST, None)],
    K.CUSTOM: [],
}


def default_rules(rollout: Rollout, audiences: Iterable[Audience]) -> list[PlanRule]:
    """The strategy's default rules for these audiences (unsaved PlanRule objects)."""
    rules = []
    for audience in audiences:
        for event, phases, lead in DEFAULT_RULES.get(audience.kind, []):
            if audience.kind in (K.CUSTOMERS, K.BETA_TESTERS) and (
                rollout.strategy in INVISIBLE_TO_USERS
            ):
                continue
            if audience.kind == K.BETA_TESTERS and rollout.strategy != "feature_flag":
                continue
            rules.append(PlanRule(audience=audience, event=event, phases=phases, lead_time=lead))
    return rules


def rule_matches_phase(rule: PlanRule, phase: Phase | None) -> bool:
    if rule.event not in PlanRule.PHASE_EVENTS:
        return True
    if phase is None:
        return False
    if rule.phases == PlanRule.Phases.FIRST:
        return phase.order == 0
    if rule.phases == PlanRule.Phases.FULL:
        return phase.percentage == 100 and phase.segment_id is None
    return True


def template_for(rule: PlanRule | None, event: str) -> tuple[NoticeTemplate | None, str, str]:
    """(template, subject, body) for a rule: its own, the event's default, or the built-in."""
    template = rule.template if rule is not None and rule.template_id else None
    if template is None:
        template = NoticeTemplate.objects.filter(event=event, is_default=True).first()
    if template is not None:
        return template, template.subject, template.body
    subject, body = BUILTIN_TEMPLATES.get(event, BUILTIN_TEMPLATES["custom"])
    return None, subject, body


def rollout_url(rollout: Rollout) -> str:
    try:
        path = reverse("rollouts:detail", args=[rollout.key])
    except NoReverseMatch:
        path = f"/rollouts/{rollout.key}/"
    site_url: str = settings.SITE_URL
    return site_url.rstrip("/") + path


def lead_send_at(rollout: Rollout, times: PhaseTimes, lead: timedelta | None) -> datetime | None:
    """When a "phase starting soon" notice goes out: lead time before the projected start.
    None while the rollout is stopped or the phase waits for a person."""
    if rollout.state in STOPPED_ROLLOUT_STATES or rollout.state in FINAL_ROLLOUT_STATES:
        return None
    if rollout.state == "draft" or times.planned_start is None:
        return None
    return times.planned_start - (lead or timedelta(0))


# --------------------------------------------------------------------------------------------
# The plan of one rollout, as people read it


@dataclass(frozen=True)
class PlannedNotice:
    audience: Audience
    event: str
    phase: Phase | None
    at: datetime | None
    lead_time: timedelta | None
    status: str  # sent | sending | scheduled | planned | waiting | conditional | failed | ...
    description: str
    notice: Notice | None = None

    @property
    def event_label(self) -> str:
        return NoticeEvent(self.event).label

    @property
    def at_local(self) -> str:
        return format_time(self.at, self.audience.timezone)


def _phase_label(phase: Phase | None) -> str:
    return f"Phase {phase.order + 1} ({phase.name})" if phase is not None else "the rollout"


def _when(at: datetime | None, audience: Audience) -> str:
    # Read on a page: in the viewer's zone (core/when.py), like every other time there.
    return f"at {format_datetime(at)}" if at else ""


def _describe(
    audience: Audience, event: str, phase: Phase | None, at: datetime | None, lead: Any
) -> str:
    who = f"Notice to {audience.name}"
    when = _when(at, audience)
    if event == NoticeEvent.PHASE_UPCOMING:
        lead_text = format_duration(lead)
        return f"{who} {when or '(time not known yet)'}, {lead_text} before {_phase_label(phase)}"
    if event == NoticeEvent.PHASE_STARTED:
        return f"{who} when {_phase_label(phase)} starts" + (f", {when}" if when else "")
    if event == NoticeEvent.COMPLETED:
        return f"{who} when the rollout completes" + (f", {when}" if when else "")
    if event == NoticeEvent.SCHEDULED:
        return f"{who} when the rollout is scheduled" + (f", {when}" if when else "")
    conditional = {
        NoticeEvent.HELD: "if the rollout is held or paused",
        NoticeEvent.RESUMED: "when it continues after a hold",
        NoticeEvent.ROLLED_BACK: "if the rollout is rolled back (a correction)",
    }
    return f"{who} {conditional.get(NoticeEvent(event), NoticeEvent(event).label.lower())}" + (
        f", {when}" if when else ""
    )


def plan_rules(rollout: Rollout) -> tuple[CommunicationPlan | None, list[PlanRule]]:
    """The stored plan and its rules, or None and the defaults it would get (2-3 queries)."""
    plan = (
        CommunicationPlan.objects.filter(rollout=rollout)
        .prefetch_related(
            Prefetch(
                "rules",
                queryset=PlanRule.objects.select_related("audience", "template").order_by(
                    "audience__name", "event", "id"
                ),
            )
        )
        .first()
    )
    if plan is not None:
        return plan, list(plan.rules.all())
    return None, default_rules(rollout, Audience.objects.order_by("name"))


def planned_notices(rollout: Rollout, now: datetime) -> list[PlannedNotice]:
    """Every notice of a rollout, past and to come, in time order.

    Past and scheduled ones come from stored notices; the rest is projected from the plan
    and `rollouts.scheduling.projected_timeline`, e.g. "Notice to Customer support at
    Tue 3 Dec 2024, 09:00 CET, 24 h before Phase 3 (25%)". Notices that depend on something
    happening (a hold, a rollback) come last with status "conditional". Constant queries.
    """
    _, rules = plan_rules(rollout)
    rules = [r for r in rules if r.is_enabled]
    phases = list(rollout.phases.select_related("segment").order_by("order"))
    timeline = projected_timeline(rollout, phases, now) if phases else []
    notices = list(
        Notice.objects.filter(rollout=rollout)
        .exclude(state=Notice.State.CANCELLED)
        .select_related("audience", "phase", "plan_rule")
        .order_by("created_at", "id")
    )
    items: list[PlannedNotice] = []
    seen: set[tuple[int, str, int | None]] = set()
    for notice in notices:
        at = notice.finished_at or notice.dispatched_at or notice.send_at
        status = notice.state
        if notice.state == Notice.State.SCHEDULED and notice.send_at is None:
            status = "waiting"
        seen.add((notice.audience_id, notice.event, notice.phase_id))
        lead = notice.plan_rule.lead_time if notice.plan_rule is not None else None
        items.append(
            PlannedNotice(
                audience=notice.audience,
                event=notice.event,
                phase=notice.phase,
                at=at,
                lead_time=lead,
                status=status,
                description=_describe(notice.audience, notice.event, notice.phase, at, lead),
                notice=notice,
            )
        )
    final = rollout.state in FINAL_ROLLOUT_STATES
    conditional: list[PlannedNotice] = []
    if not final:
        for rule in rules:
            audience = rule.audience
            if rule.event in PlanRule.PHASE_EVENTS:
                for times in timeline:
                    if times.state != "upcoming" or not rule_matches_phase(rule, times.phase):
                        continue
                    if (audience.id, rule.event, times.phase.id) in seen:
                        continue
                    if rule.event == NoticeEvent.PHASE_UPCOMING:
                        at = lead_send_at(rollout, times, rule.lead_time)
                        if at is None and rollout.state == "draft" and times.planned_start:
                            at = times.planned_start - (rule.lead_time or timedelta(0))
                    else:
                        at = times.planned_start
                    status = "planned" if at else "waiting"
                    description = _describe(audience, rule.event, times.phase, at, rule.lead_time)
                    if at is not None and at < now:
                        # Never "planned" at a past time: it would go out late, when it starts.
                        status = "late"
                        description += (
                            ": too late if it starts now (schedule the start later)"
                            if rollout.state == "draft"
                            else ": goes out late, as soon as the plan gets there"
                        )
                    items.append(
                        PlannedNotice(
                            audience=audience,
                            event=rule.event,
                            phase=times.phase,
                            at=at,
                            lead_time=rule.lead_time,
                            status=status,
                            description=description,
                        )
                    )
            elif rule.event == NoticeEvent.COMPLETED:
                if (audience.id, rule.event, None) in seen or any(
                    n.audience_id == audience.id and n.event == rule.event for n in notices
                ):
                    continue
                at = projected_end(rollout, phases, now) if phases else None
                items.append(
                    PlannedNotice(
                        audience=audience,
                        event=rule.event,
                        phase=None,
                        at=at,
                        lead_time=None,
                        status="planned" if at else "waiting",
                        description=_describe(audience, rule.event, None, at, None),
                    )
                )
            elif rule.event == NoticeEvent.SCHEDULED:
                if rollout.state == "draft":
                    conditional.append(
                        PlannedNotice(
                            audience=audience,
                            event=rule.event,
                            phase=None,
                            at=None,
                            lead_time=None,
                            status="conditional",
                            description=_describe(audience, rule.event, None, None, None),
                        )
                    )
            else:
                conditional.append(
                    PlannedNotice(
                        audience=audience,
                        event=rule.event,
                        phase=None,
                        at=None,
                        lead_time=None,
                        status="conditional",
                        description=_describe(audience, rule.event, None, None, None),
                    )
                )
    far = datetime.max.replace(tzinfo=zone("UTC"))
    items.sort(key=lambda p: (p.at or far, p.audience.name))
    return items + conditional


# --------------------------------------------------------------------------------------------
# Lists and details


NOTICES_PER_PAGE = 50


def _delivery_count(**where: Any) -> Coalesce:
    """How many deliveries of the row's notice (matching `where`): a subquery, which the
    database evaluates for the rows returned only, after ORDER BY and LIMIT."""
    return Coalesce(
        Subquery(
            Delivery.objects.filter(notice=OuterRef("pk"), **where)
            .order_by()
            .values("notice")
            .annotate(n=Count("id"))
            .values("n")
        ),
        0,
    )


def _notices(
    *, state: str | None = None, audience_id: int | None = None, rollout_id: int | None = None
) -> QuerySet[Notice]:
    """Filtered notices, newest first, with every relation the list prints and their delivery
    counts per state."""
    qs: QuerySet[Notice] = Notice.objects.select_related(
        "audience",
        "rollout",
        "rollout__release",
        "rollout__environment",
        "release",
        "phase",
        "created_by",
    ).annotate(
        delivery_count=_delivery_count(),
        delivered_count=_delivery_count(state=Delivery.State.SENT),
        failed_count=_delivery_count(state=Delivery.State.FAILED),
    )
    if state:
        qs = qs.filter(state=state)
    if audience_id:
        qs = qs.filter(audience_id=audience_id)
    if rollout_id:
        qs = qs.filter(rollout_id=rollout_id)
    return qs.order_by("-created_at", "-id")


def notice_list(
    *,
    state: str | None = None,
    audience_id: int | None = None,
    rollout_id: int | None = None,
    limit: int = 100,
) -> list[Notice]:
    """Newest first, with delivery counts per state (one query, whatever the data: only the
    notices taken have their deliveries counted)."""
    return list(_notices(state=state, audience_id=audience_id, rollout_id=rollout_id)[:limit])


#: Large columns the notice list never prints (the detail page shows them).
NOTICE_LIST_DEFERRED = (
    "rendered_markdown",
    "rendered_html",
    "rendered_slack",
    "context_data",
    "rollout__captured_state",
    "rollout__alert_matchers",
    "rollout__release__changelog",
    "rollout__release__known_issues",
    "release__changelog",
    "release__known_issues",
)


def notice_page(
    *,
    state: str | None = None,
    audience_id: int | None = None,
    rollout_id: int | None = None,
    page: int | str | None = 1,
    per_page: int = NOTICES_PER_PAGE,
) -> Page[Notice]:
    """One page of the notice list with delivery counts (a count + 1 query whatever the
    data); a page number out of range gives the last page."""
    qs = _notices(state=state, audience_id=audience_id, rollout_id=rollout_id).defer(
        *NOTICE_LIST_DEFERRED
    )
    return Paginator(qs, per_page).get_page(page)


def notice_detail(*, notice_id: int) -> Notice:
    return (
        Notice.objects.select_related(
            "audience",
            "rollout",
            "rollout__environment",
            "release",
            "phase",
            "plan_rule",
            "template",
            "created_by",
            "corrects",
        )
        .prefetch_related(
            Prefetch("deliveries", queryset=Delivery.objects.order_by("channel_name", "recipient"))
        )
        .get(pk=notice_id)
    )


def failed_deliveries(*, limit: int = 50) -> list[Delivery]:
    """Permanent failures to show on the Communications page, newest first."""
    return list(
        Delivery.objects.filter(state=Delivery.State.FAILED)
        .select_related("notice", "notice__audience", "notice__release", "notice__phase")
        .order_by("-updated_at", "-id")[:limit]
    )


def dashboard_notices(*, now: datetime, limit: int = 5) -> dict[str, list[Notice]]:
    base = Notice.objects.select_related("audience", "rollout", "release", "phase")
    upcoming = list(
        base.filter(state=Notice.State.SCHEDULED).order_by("send_at", "id")[: limit * 2]
    )
    upcoming.sort(key=lambda n: (n.send_at is None, n.send_at or now))
    recent = list(
        base.filter(state__in=(*Notice.FINAL_STATES, Notice.State.SENDING))
        .exclude(state=Notice.State.CANCELLED)
        .order_by("-updated_at", "-id")[:limit]
    )
    return {"upcoming": upcoming[:limit], "recent": recent}


def audience_list() -> list[Audience]:
    return list(
        Audience.objects.annotate(
            channel_count=Count("channels", distinct=True),
            enabled_channel_count=Count(
                "channels", filter=Q(channels__is_enabled=True), distinct=True
            ),
        ).order_by("name")
    )


def audience_detail(*, audience_id: int) -> Audience:
    return Audience.objects.prefetch_related(
        Prefetch("channels", queryset=Channel.objects.order_by("name"))
    ).get(pk=audience_id)


def template_list() -> list[NoticeTemplate]:
    return list(NoticeTemplate.objects.order_by("event", "name"))


def delivery_targets(audiences: Sequence[Audience]) -> dict[int, list[Channel]]:
    """Enabled channels per audience id (one query)."""
    result: dict[int, list[Channel]] = {a.id: [] for a in audiences}
    for channel in Channel.objects.filter(audience__in=audiences, is_enabled=True).select_related(
        "audience"
    ):
        result[channel.audience_id].append(channel)
    return result


def start_warnings(*, rollout: Rollout, now: datetime) -> list[dict[str, Any]]:
    """What starting a draft now would break: its "N h before phase X" notices whose send time
    is already past. Each: {"message": words, "short_by": how much later the start must be}."""
    if rollout.state != "draft":
        return []
    return [
        {
            "message": f"{item.audience.name} would not get the notice "
            f"{format_duration(item.lead_time)} before {_phase_label(item.phase)} in time.",
            "short_by": now - item.at,
        }
        for item in planned_notices(rollout, now)
        if item.status == "late" and item.at is not None and item.notice is None
    ]
