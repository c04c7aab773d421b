"""Reads of releases and rollouts for pages, with a constant number of queries.

Each selector owns its `select_related` / `prefetch_related`; what a template shows is
computed here (current phase, exposure, the next change in words), never by a query in a
template loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Window
from django.utils import timezone

from flags.models import Environment, Flag
from rollouts import scheduling, services
from rollouts import windows as windows_mod
from rollouts.models import (
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ChecklistItem,
    FreezeWindow,
    Hold,
    Phase,
    Release,
    Rollout,
    RolloutEvent,
)

State = Rollout.State

# How each state looks: an icon and a word, never colour alone.
STATE_DISPLAY: dict[str, tuple[str, str]] = {
    State.DRAFT: ("✎", "pill"),
    State.SCHEDULED: ("◷", "pill"),
    State.RUNNING: ("▶", "pill-ok"),
    State.PAUSED: ("‖", "pill-warn"),
    State.HELD: ("⚠", "pill-warn"),
    State.COMPLETED: ("✓", "pill-ok"),
    State.ROLLED_BACK: ("↶", "pill-bad"),
    State.CANCELLED: ("✕", "pill-bad"),
}
LIST_FILTERS = ("state", "strategy", "environment")
EVENT_LOG_LIMIT = 200


# ---------------------------------------------------------------------------------------------
# Words for time


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def duration_in_words(delta: timedelta) -> str:
    """A short, rounded duration: "3 hours", "2 days", "45 minutes", "less than a minute"."""
    seconds = abs(delta.total_seconds())
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return _plural(minutes, "minute")
    hours = round(seconds / 3600)
    if hours < 48:
        return _plural(hours, "hour")
    return _plural(round(seconds / 86400), "day")


def relative_in_words(at: datetime, now: datetime) -> str:
    """ "in 3 hours", "2 days ago", "now"."""
    delta = at - now
    if abs(delta.total_seconds()) < 60:
        return "now" if delta.total_seconds() >= -60 else "just now"
    if delta > timedelta(0):
        return f"in {duration_in_words(delta)}"
    return f"{duration_in_words(delta)} ago"


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class NextChange:
    """What happens next to a rollout, in words, and when (if the clock decides)."""

    kind: str  # "time" | "overdue" | "person" | "paused" | "held" | "draft" | "final"
    words: str
    at: datetime | None = None
    phase: Phase | None = None


@dataclass
class RolloutRow:
    rollout: Rollout
    phases: list[Phase]
    current_phase: Phase | None
    exposure: int  # 0-100, what the flag serves now (segment-only phases count as 0)
    exposure_words: str  # "25%", "Beta testers + 5%", "0%"
    next_change: NextChange
    icon: str = ""
    pill: str = "pill"

    @property
    def phase_position(self) -> str:
        """ "2 of 5" (or "not started, 5 phases")."""
        total = len(self.phases)
        index = self.rollout.current_phase_index
        if index < 0:
            return f"not started · {_plural(total, 'phase')}" if total else "no phases yet"
        return f"{index + 1} of {total}"

    @property
    def is_held(self) -> bool:
        return self.rollout.state in (State.PAUSED, State.HELD)


def current_exposure(rollout: Rollout, phases: list[Phase]) -> tuple[int, str, Phase | None]:
    """(percentage, words, current phase) of what the flag serves now."""
    index = rollout.current_phase_index
    phase = phases[index] if 0 <= index < len(phases) else None
    frozen = rollout.rollback_mode == Rollout.RollbackMode.FREEZE
    if phase is None or (rollout.state == State.ROLLED_BACK and not frozen):
        return 0, "0%", phase
    pct = phase.percentage or 0
    words = []
    if phase.segment_id is not None:
        words.append(phase.segment.name if phase.segment else "a segment")
    if phase.percentage is not None or not words:
        words.append(f"{pct}%")
    return pct, " + ".join(words), phase


def next_change(rollout: Rollout, phases: list[Phase], now: datetime) -> NextChange:
    """What happens next, in words: "in 3 hours", "waits for a person", ..."""
    state = rollout.state
    index = rollout.current_phase_index
    upcoming = phases[index + 1] if 0 <= index + 1 < len(phases) else None
    due = rollout.next_due_at
    if state in Rollout.FINAL_STATES:
        done = rollout.get_state_display().lower()
        when = rollout.finished_at
        return NextChange("final", f"{done} {relative_in_words(when, now)}" if when else done, when)
    if state == State.DRAFT:
        return NextChange("draft", "not scheduled yet", None, upcoming)
    if state == State.PAUSED:
        return NextChange("paused", "paused: waits for a person to resume", None, upcoming)
    if state == State.HELD:
        return NextChange("held", "held: waits for a person", None, upcoming)
    if state == State.RUNNING and upcoming is None:
        return NextChange("person", "last phase: waits for a person to complete", None)
    if upcoming is not None and upcoming.gate == Phase.Gate.MANUAL:
        if due is not None and due > now:
            # The soak still runs; after it a person decides.
            words = f"soak ends {relative_in_words(due, now)}, then waits for a person"
            return NextChange("person", words, due, upcoming)
        return NextChange("person", "waits for a person", due, upcoming)
    if due is None:
        words = "waits for a person to start" if state == State.SCHEDULED else "waits for a person"
        return NextChange("person", words, None, upcoming)
    if getattr(rollout, "gate_pending", False):
        when = "due" if due <= now else f"due {relative_in_words(due, now)}"
        return NextChange("gated", f"{when}; waits for an approval or a checklist", due, upcoming)
    if due <= now:
        return NextChange("overdue", "due now (next scheduler tick)", due, upcoming)
    words = relative_in_words(due, now)
    return NextChange(
        "time", f"starts {words}" if state == State.SCHEDULED else words, due, upcoming
    )


def rollout_row(rollout: Rollout, phases: list[Phase], now: datetime) -> RolloutRow:
    exposure, words, current = current_exposure(rollout, phases)
    icon, pill = STATE_DISPLAY.get(rollout.state, ("•", "pill"))
    return RolloutRow(
        rollout=rollout,
        phases=phases,
        current_phase=current,
        exposure=exposure,
        exposure_words=words,
        next_change=next_change(rollout, phases, now),
        icon=icon,
        pill=pill,
    )


def _phases_prefetch() -> Prefetch:
    return Prefetch("phases", queryset=Phase.objects.select_related("segment").order_by("order"))


def _rollouts() -> QuerySet[Rollout]:
    next_order = OuterRef("current_phase_index") + 1
    return (
        Rollout.objects.select_related("release", "environment", "flag")
        .prefetch_related(_phases_prefetch())
        .annotate(
            # The next phase waits for an approval or its checklist (no extra query).
            gate_pending=Exists(
                Approval.objects.filter(
                    rollout=OuterRef("pk"), phase__order=next_order, state=Approval.State.PENDING
                )
            )
            | Exists(
                ChecklistItem.objects.filter(
                    phase__rollout=OuterRef("pk"), phase__order=next_order, ticked_at__isnull=True
                )
            )
        )
    )


# ---------------------------------------------------------------------------------------------
# List


@dataclass(frozen=True)
class RolloutFilters:
    state: str = ""
    strategy: str = ""
    environment: str = ""
    release: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RolloutFilters:
        state = data.get("state") or ""
        strategy = data.get("strategy") or ""
        release = data.get("release") or None
        return cls(
            state=state if state in {*State.values, "active", "final"} else "",
            strategy=strategy if strategy in Rollout.Strategy.values else "",
            environment=str(data.get("environment") or ""),
            release=int(release) if release and str(release).isdigit() else None,
        )


def _filtered_rollouts(filters: RolloutFilters) -> QuerySet[Rollout]:
    qs = _rollouts()
    if filters.state == "active":
        qs = qs.filter(state__in=Rollout.ACTIVE_STATES)
    elif filters.state == "final":
        qs = qs.filter(state__in=Rollout.FINAL_STATES)
    elif filters.state:
        qs = qs.filter(state=filters.state)
    if filters.strategy:
        qs = qs.filter(strategy=filters.strategy)
    if filters.environment:
        qs = qs.filter(environment__key=filters.environment)
    if filters.release:
        qs = qs.filter(release_id=filters.release)
    return qs


def rollout_list(
    *, filters: RolloutFilters | Mapping[str, Any] | None = None, now: datetime | None = None
) -> list[RolloutRow]:
    """Rollouts for the list page (2 queries whatever the number of rollouts)."""
    now = now or timezone.now()
    if not isinstance(filters, RolloutFilters):
        filters = RolloutFilters.from_mapping(filters or {})
    return [rollout_row(r, list(r.phases.all()), now) for r in _filtered_rollouts(filters)]


ROLLOUTS_PER_PAGE = 50


def rollout_list_page(
    *,
    filters: RolloutFilters | Mapping[str, Any] | None = None,
    page: object = 1,
    per_page: int = ROLLOUTS_PER_PAGE,
    now: datetime | None = None,
) -> tuple[list[RolloutRow], Page[Rollout]]:
    """One page of the list (a count + 2 queries whatever the number of rollouts); a page
    number out of range gives the last page."""
    now = now or timezone.now()
    if not isinstance(filters, RolloutFilters):
        filters = RolloutFilters.from_mapping(filters or {})
    page_obj = Paginator(_filtered_rollouts(filters), per_page).get_page(page)
    return [rollout_row(r, list(r.phases.all()), now) for r in page_obj.object_list], page_obj


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    """Options of the list filters (1 query)."""
    return {
        "state": [
            ("active", "Active (scheduled, running, paused, held)"),
            ("final", "Finished"),
            *State.choices,
        ],
        "strategy": list(Rollout.Strategy.choices),
        "environment": list(Environment.objects.values_list("key", "name")),
    }


# ---------------------------------------------------------------------------------------------
# Detail


@dataclass
class RolloutDetail:
    row: RolloutRow
    events: list[RolloutEvent]  # newest first, at most EVENT_LOG_LIMIT
    event_count: int
    timeline: list[scheduling.PhaseTimes]
    projected_end: datetime | None
    steps: scheduling.ExposureSteps
    now: datetime
    event_percentages: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)
    safety: SafetyView | None = None

    @property
    def rollout(self) -> Rollout:
        return self.row.rollout

    @property
    def phases(self) -> list[Phase]:
        return self.row.phases


# Event kinds that move exposure or stop/start the clock: all the exposure chart needs.
_CHART_KINDS = (
    RolloutEvent.Kind.ADVANCED,
    RolloutEvent.Kind.ROLLED_BACK,
    RolloutEvent.Kind.PAUSED,
    RolloutEvent.Kind.HELD,
    RolloutEvent.Kind.RESUMED,
    RolloutEvent.Kind.HOLD_CLEARED,
    RolloutEvent.Kind.COMPLETED,
    RolloutEvent.Kind.CANCELLED,
)


def rollout_detail(*, key: str, now: datetime | None = None) -> RolloutDetail:
    """Everything the rollout page shows, in a constant number of queries whatever the number
    of events, holds or windows: rollout (+release, environment, flag, owner), phases, the
    chart's events (only the kinds that change exposure or the clock, few columns), the latest
    EVENT_LOG_LIMIT events for the log (with the total count), and its safety facts (holds,
    the next phase's approval with decisions, checklists, windows, the environment's policy).

    Raises Rollout.DoesNotExist for an unknown key.
    """
    now = now or timezone.now()
    rollout = (
        Rollout.objects.select_related("release", "environment", "flag", "owner")
        .prefetch_related(_phases_prefetch())
        .get(key=key)
    )
    phases = list(rollout.phases.all())
    chart_events = list(
        RolloutEvent.objects.filter(rollout=rollout, kind__in=_CHART_KINDS)
        .only("id", "kind", "at", "to_percentage", "data")
        .order_by("at", "id")
    )
    log = list(
        RolloutEvent.objects.filter(rollout=rollout)
        .select_related("actor")
        # The window counts every event of the rollout before LIMIT applies.
        .annotate(total=Window(Count("id")))
        .order_by("-at", "-id")[:EVENT_LOG_LIMIT]
    )
    count = log[0].total if log else 0
    safety = _safety(rollout, phases, now)
    specs = [n.spec for n in safety.windows]
    row = rollout_row(rollout, phases, now)
    row.next_change = gated_next_change(row, safety, now)
    return RolloutDetail(
        row=row,
        events=log,
        event_count=count,
        timeline=scheduling.projected_timeline(rollout, phases, now, windows=specs),
        projected_end=scheduling.projected_end(rollout, phases, now, windows=specs),
        steps=scheduling.exposure_steps(rollout, phases, chart_events),
        now=now,
        safety=safety,
    )


# ---------------------------------------------------------------------------------------------
# Releases


@dataclass
class ReleaseRow:
    release: Release
    rollouts: list[RolloutRow]


def release_list(*, now: datetime | None = None) -> list[ReleaseRow]:
    """Releases with their rollouts per environment (3 queries)."""
    now = now or timezone.now()
    releases = Release.objects.select_related("owner").prefetch_related(
        Prefetch(
            "rollouts",
            queryset=Rollout.objects.select_related("environment", "flag")
            .prefetch_related(_phases_prefetch())
            .order_by("environment__order", "-created_at"),
        )
    )
    return [
        ReleaseRow(r, [rollout_row(x, list(x.phases.all()), now) for x in r.rollouts.all()])
        for r in releases
    ]


def release_detail(*, pk: int, now: datetime | None = None) -> ReleaseRow:
    """One release with its flags and its rollouts per environment (4 queries).

    Raises Release.DoesNotExist for an unknown id.
    """
    now = now or timezone.now()
    release = (
        Release.objects.select_related("owner")
        .prefetch_related(
            Prefetch("flags", queryset=Flag.objects.order_by("key")),
            Prefetch(
                "rollouts",
                queryset=Rollout.objects.select_related("environment", "flag")
                .prefetch_related(_phases_prefetch())
                .order_by("environment__order", "-created_at"),
            ),
        )
        .get(pk=pk)
    )
    return ReleaseRow(
        release, [rollout_row(x, list(x.phases.all()), now) for x in release.rollouts.all()]
    )


# ---------------------------------------------------------------------------------------------
# Dashboard


@dataclass
class UpcomingChange:
    row: RolloutRow
    at: datetime
    phase: Phase | None
    words: str


def active_rollouts(
    *, now: datetime | None = None, limit: int = 12
) -> tuple[list[RolloutRow], int]:
    """Running, paused and held rollouts (most recently started first) and how many in all."""
    now = now or timezone.now()
    live = (State.RUNNING, State.PAUSED, State.HELD)
    total = Rollout.objects.filter(state__in=live).aggregate(n=Count("id"))["n"]
    qs = _rollouts().filter(state__in=live).order_by("-started_at", "-created_at")[:limit]
    return [rollout_row(r, list(r.phases.all()), now) for r in qs], total


def upcoming_changes(*, now: datetime | None = None, limit: int = 10) -> list[UpcomingChange]:
    """The next phase changes the scheduler will make, soonest first."""
    now = now or timezone.now()
    qs = (
        _rollouts()
        .filter(
            Q(state=State.SCHEDULED) | Q(state=State.RUNNING),
            next_due_at__isnull=False,
        )
        .order_by("next_due_at")[:limit]
    )
    changes = []
    for rollout in qs:
        row = rollout_row(rollout, list(rollout.phases.all()), now)
        at = rollout.next_due_at
        assert at is not None  # filtered above
        phase = row.next_change.phase
        if rollout.state == State.SCHEDULED and row.phases:
            phase = row.phases[0]
        words = relative_in_words(at, now) if at > now else "due now"
        if phase is not None and phase.gate == Phase.Gate.MANUAL:
            words += ", then waits for a person"
        changes.append(UpcomingChange(row=row, at=at, phase=phase, words=words))
    return changes


# ---------------------------------------------------------------------------------------------
# Safety: holds, gates, windows and alerts of one rollout (for its page)


@dataclass
class WindowNote:
    """A window shown next to a rollout or in the calendar, with words for when."""

    window: FreezeWindow
    spec: windows_mod.WindowSpec
    active_until: datetime | None = None  # set when it covers "now"

    @property
    def schedule_words(self) -> str:
        w = self.window
        if w.cron:
            length = duration_in_words(w.duration or timedelta(0))
            return f"cron “{w.cron}” for {length} ({w.timezone})"
        return "one-off"


@dataclass
class SafetyView:
    holds: list[Hold]  # active first, then the latest cleared ones
    approval: Approval | None  # the next phase's live (or last decided) request
    approvals_given: int
    gate: services.GateStatus | None
    checklists: dict[int, list[ChecklistItem]]  # phase id -> its steps
    windows: list[WindowNote]
    block_now: windows_mod.Block | None
    raw_due: datetime | None  # the due time before windows moved it
    policy: ApprovalPolicy | None

    @property
    def active_holds(self) -> list[Hold]:
        return [h for h in self.holds if h.is_active]

    @property
    def cleared_holds(self) -> list[Hold]:
        return [h for h in self.holds if not h.is_active]


HOLD_HISTORY = 10


def _safety(rollout: Rollout, phases: list[Phase], now: datetime) -> SafetyView:
    """Safety facts of one rollout in a constant number of queries (holds, approvals with
    their decisions, checklists, windows, the policy; one more for promotion)."""
    holds = list(
        Hold.objects.filter(rollout=rollout)
        .select_related("created_by", "cleared_by")
        .order_by(F("cleared_at").desc(nulls_first=True), "-held_at", "-id")[: HOLD_HISTORY + 20]
    )
    active = [h for h in holds if h.is_active]
    holds = active + [h for h in holds if not h.is_active][:HOLD_HISTORY]
    index = rollout.current_phase_index + 1
    upcoming = (
        phases[index]
        if rollout.state not in Rollout.FINAL_STATES and 0 <= index < len(phases)
        else None
    )
    items = list(
        ChecklistItem.objects.filter(phase__rollout=rollout)
        .select_related("ticked_by")
        .order_by("phase__order", "position", "id")
    )
    checklists: dict[int, list[ChecklistItem]] = {}
    for item in items:
        checklists.setdefault(item.phase_id, []).append(item)
    policy = services.environment_policy(rollout.environment_id)
    approval: Approval | None = None
    given = 0
    gate = None
    if upcoming is not None:
        approval = (
            Approval.objects.filter(phase=upcoming)
            .exclude(state=Approval.State.CANCELLED)
            .select_related("requested_by")
            .prefetch_related(
                Prefetch("decisions", queryset=ApprovalDecision.objects.select_related("user"))
            )
            .order_by("-requested_at", "-id")
            .first()
        )
        if approval is not None:
            given = sum(1 for d in approval.decisions.all() if d.decision == "approve")
        rule = services.approval_rule(upcoming, policy)
        live = (
            approval if approval is not None and approval.state in ("pending", "approved") else None
        )
        open_items = [i for i in checklists.get(upcoming.id, []) if not i.is_ticked]
        promotion = services.promotion_blocker(rollout, policy) if upcoming.order == 0 else None
        gate = services.GateStatus(
            upcoming,
            rule,
            live,
            given if live is None or live.state == "pending" else live.required,
            open_items,
            promotion,
        )
    windows = list(
        FreezeWindow.objects.filter(is_active=True)
        .filter(Q(environment_id=rollout.environment_id) | Q(environment__isnull=True))
        .select_related("environment")
        .order_by("kind", "name", "id")
    )
    notes = [WindowNote(w, services.window_spec(w)) for w in windows]
    specs = [n.spec for n in notes]
    for note in notes:
        occ = windows_mod.occurrence_at(note.spec, now)
        if occ is not None:
            note.active_until = occ[1]
    raw_due = scheduling.next_due_at(rollout, phases)
    return SafetyView(
        holds=holds,
        approval=approval,
        approvals_given=given,
        gate=gate,
        checklists=checklists,
        windows=notes,
        block_now=windows_mod.blocking(now, specs),
        raw_due=raw_due,
        policy=policy,
    )


def gated_next_change(row: RolloutRow, safety: SafetyView, now: datetime) -> NextChange:
    """The next change in words, saying what it waits for: holds, approvals, checklists,
    the release elsewhere, or the next allowed moment of a window."""
    change = row.next_change
    rollout = row.rollout
    if rollout.state == State.HELD and safety.active_holds:
        n = len(safety.active_holds)
        words = f"held by {_plural(n, 'active hold')}: waits for a person to clear or resume"
        return NextChange("held", words, None, change.phase)
    if rollout.state not in (State.RUNNING, State.SCHEDULED) or safety.gate is None:
        return change
    waits = []
    gate = safety.gate
    if gate.promotion:
        waits.append(gate.promotion)
    if not gate.approved and gate.rule is not None:
        if gate.approval is None:
            waits.append("needs approval (not requested yet)")
        else:
            waits.append(f"waits for approval ({gate.approvals_given} of {gate.approval.required})")
    if gate.open_items:
        waits.append(f"waits for {_plural(len(gate.open_items), 'checklist step')}")
    words = change.words
    due = rollout.next_due_at
    if due is not None and safety.raw_due is not None and due > safety.raw_due and due > now:
        blocker = windows_mod.blocking(safety.raw_due, [n.spec for n in safety.windows])
        why = blocker.words if blocker else "a window"
        words = f"{relative_in_words(due, now)}, the next allowed moment ({why})"
    if waits:
        words = f"{words}; " + "; ".join(waits)
        return NextChange("gated", words, due, change.phase)
    return NextChange(change.kind, words, change.at, change.phase)


def approval_queue(*, user: Any, limit: int = 100) -> list[Approval]:
    """Pending approvals this person may decide: not their own request (unless the policy
    allows it), not decided by them yet. Constant queries."""
    if not user.has_perm("rollouts.approve_rollout"):
        return []
    qs = (
        Approval.objects.filter(
            state=Approval.State.PENDING, rollout__state__in=(*Rollout.ACTIVE_STATES, State.DRAFT)
        )
        .select_related(
            "rollout__release",
            "rollout__environment",
            "rollout__flag",
            "phase__segment",
            "requested_by",
        )
        .prefetch_related(
            Prefetch("decisions", queryset=ApprovalDecision.objects.select_related("user")),
            Prefetch("phase__checklist", queryset=ChecklistItem.objects.order_by("position", "id")),
        )
        .order_by("requested_at", "id")
    )
    result = []
    for approval in qs[: limit * 2]:
        decided = {d.user_id for d in approval.decisions.all()}
        if user.pk in decided:
            continue
        if approval.requested_by_id == user.pk and not approval.allow_self_approval:
            continue
        approval.given = sum(1 for d in approval.decisions.all() if d.decision == "approve")  # type: ignore[attr-defined]
        result.append(approval)
        if len(result) >= limit:
            break
    return result


# ---------------------------------------------------------------------------------------------
# Releases: the pipeline across environments


@dataclass
class PipelineStep:
    environment: Environment
    rows: list[RolloutRow]
    requires: Environment | None  # must have completed there first
    requirement_met: bool
    policy: ApprovalPolicy | None

    @property
    def completed(self) -> bool:
        return any(r.rollout.state == State.COMPLETED for r in self.rows)


def release_pipeline(row: ReleaseRow) -> list[PipelineStep]:
    """The release's path through environments (ordered), with each environment's rollouts
    and the promotion it requires (2 queries)."""
    policies = {
        p.environment_id: p for p in ApprovalPolicy.objects.select_related("requires_completed_in")
    }
    by_env: dict[int, list[RolloutRow]] = {}
    for r in row.rollouts:
        by_env.setdefault(r.rollout.environment_id, []).append(r)
    environments = list(Environment.objects.order_by("order", "key"))
    completed = {
        env_id
        for env_id, rows in by_env.items()
        if any(r.rollout.state == State.COMPLETED for r in rows)
    }
    steps = []
    for env in environments:
        policy = policies.get(env.id)
        requires = policy.requires_completed_in if policy else None
        if env.id not in by_env and requires is None:
            continue
        steps.append(
            PipelineStep(
                environment=env,
                rows=by_env.get(env.id, []),
                requires=requires,
                requirement_met=requires is None or requires.id in completed,
                policy=policy,
            )
        )
    return steps


# ---------------------------------------------------------------------------------------------
# Calendar


@dataclass
class CalendarEntry:
    kind: str  # "planned" | "freeze" | "allow" | "done"
    start: datetime
    end: datetime | None
    title: str
    rollout: Rollout | None = None
    phase: Phase | None = None
    window: FreezeWindow | None = None
    event: RolloutEvent | None = None
    note: str = ""

    @property
    def uid(self) -> str:
        if self.kind == "planned" and self.rollout and self.phase:
            return f"rollout-{self.rollout.id}-phase-{self.phase.order}@rollcall"
        if self.kind == "done" and self.event:
            return f"event-{self.event.id}@rollcall"
        if self.window:
            return f"window-{self.window.id}-{int(self.start.timestamp())}@rollcall"
        return f"entry-{int(self.start.timestamp())}@rollcall"


CALENDAR_EVENT_KINDS = (
    RolloutEvent.Kind.ADVANCED,
    RolloutEvent.Kind.ROLLED_BACK,
    RolloutEvent.Kind.COMPLETED,
)
CALENDAR_LIMIT = 1000


def calendar_entries(
    *,
    start: datetime,
    end: datetime,
    environment: str = "",
    now: datetime | None = None,
    include_allow: bool = False,
) -> list[CalendarEntry]:
    """Upcoming phase changes (projected from the plans, waiting for windows), freeze
    windows and the changes made, in [start, end), oldest first. 6 queries whatever the data.
    """
    now = now or timezone.now()
    windows = list(FreezeWindow.objects.filter(is_active=True).select_related("environment"))
    env_id: int | None = None
    if environment:
        env_id = Environment.objects.filter(key=environment).values_list("id", flat=True).first()
        if env_id is None:
            return []
        windows = [w for w in windows if w.environment_id in (None, env_id)]
    specs = {w.id: services.window_spec(w) for w in windows}

    def env_specs(environment_id: int) -> list[windows_mod.WindowSpec]:
        return [specs[w.id] for w in windows if w.environment_id in (None, environment_id)]

    entries: list[CalendarEntry] = []
    policies = {p.environment_id: p for p in ApprovalPolicy.objects.all()}
    # Planned: live rollouts driven by the clock.
    live = _rollouts().filter(state__in=(State.SCHEDULED, State.RUNNING))
    if env_id is not None:
        live = live.filter(environment_id=env_id)
    if end > now:
        cache: dict[int, list[windows_mod.WindowSpec]] = {}
        for rollout in live:
            phases = list(rollout.phases.all())
            ws = cache.setdefault(rollout.environment_id, env_specs(rollout.environment_id))
            for t in scheduling.projected_timeline(rollout, phases, now, windows=ws):
                at = t.planned_start
                if (
                    t.state != "upcoming"
                    or at is None
                    or not (start <= at < end)
                    or at < now - timedelta(minutes=1)
                ):
                    continue
                pct = t.phase.percentage
                exposure = (
                    f"{pct}%"
                    if pct is not None
                    else (t.phase.segment.name if t.phase.segment else "")
                )
                entries.append(
                    CalendarEntry(
                        kind="planned",
                        start=at,
                        end=None,
                        title=f"{rollout.release} → {t.phase.name}"
                        + (f" ({exposure})" if exposure and exposure not in t.phase.name else ""),
                        rollout=rollout,
                        phase=t.phase,
                        note=rollout.environment.name
                        + (
                            ", needs approval"
                            if services.approval_rule(t.phase, policies.get(rollout.environment_id))
                            else ""
                        ),
                    )
                )
    # Windows.
    for w in windows:
        if w.kind == FreezeWindow.Kind.ALLOW and not include_allow:
            continue
        for s, e in windows_mod.occurrences(specs[w.id], start, end, limit=200):
            where = w.environment.name if w.environment else "all environments"
            entries.append(
                CalendarEntry(
                    kind="freeze" if w.kind == FreezeWindow.Kind.DENY else "allow",
                    start=s,
                    end=e,
                    title=w.name,
                    window=w,
                    note=where,
                )
            )
    # Done: what actually changed.
    done = (
        RolloutEvent.objects.filter(kind__in=CALENDAR_EVENT_KINDS, at__gte=start, at__lt=end)
        .select_related("rollout__release", "rollout__environment")
        .order_by("at", "id")
    )
    if env_id is not None:
        done = done.filter(rollout__environment_id=env_id)
    for event in done[:CALENDAR_LIMIT]:
        what = event.get_kind_display()
        if event.kind == RolloutEvent.Kind.ADVANCED and event.to_percentage is not None:
            what = f"phase {(event.to_phase_index or 0) + 1} at {event.to_percentage}%"
        entries.append(
            CalendarEntry(
                kind="done",
                start=event.at,
                end=None,
                title=f"{event.rollout.release}: {what}",
                rollout=event.rollout,
                event=event,
                note=event.rollout.environment.name,
            )
        )
    entries.sort(key=lambda e: (e.start, e.kind))
    return entries


# ---------------------------------------------------------------------------------------------
# Settings pages (admins)


def window_list() -> list[WindowNote]:
    now = timezone.now()
    notes = []
    for w in FreezeWindow.objects.select_related("environment").order_by("kind", "name", "id"):
        note = WindowNote(w, services.window_spec(w))
        occ = windows_mod.occurrence_at(note.spec, now)
        note.active_until = occ[1] if occ else None
        notes.append(note)
    return notes


@dataclass
class PolicyRow:
    environment: Environment
    policy: ApprovalPolicy | None


def policy_rows() -> list[PolicyRow]:
    policies = {
        p.environment_id: p for p in ApprovalPolicy.objects.select_related("requires_completed_in")
    }
    return [PolicyRow(e, policies.get(e.id)) for e in Environment.objects.order_by("order", "key")]
