"""Exposure of one rollout, in words support staff can repeat: who has the change now
(percentage and what it means for the strategy), since when, and why it is held or rolled
back; and the timeline of its phases (applied, current, projected).

Derived from the rollout's stored state, its applied phases and the event that put it in that
state (annotated by `_state_event_subqueries`), never a query per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from rollouts.models import Phase, Rollout
from support.selectors._common import format_when

# What a phase's percentage means for each strategy, in words support staff can repeat.
_AUDIENCE_WORDS: dict[str, str] = {
    Rollout.Strategy.FEATURE_FLAG: "of users",
    Rollout.Strategy.CANARY: "of traffic to the canary",
    Rollout.Strategy.BLUE_GREEN: "of traffic on the new slot",
    Rollout.Strategy.ROLLING: "of hosts on the new version",
    Rollout.Strategy.SHADOW: "of requests mirrored (users unaffected)",
}


def phase_audience(rollout: Rollout, phase: Phase | None) -> str:
    """Who a phase exposes, as `rollouts.strategies.exposure_rules` applies it.

    Percentage and segment are ORed: "Beta testers and 5% of users". Blue/green is binary:
    0 keeps blue live (a segment previews green), 100 switches everyone to green.
    """
    if phase is None:
        return "nobody yet"
    segment = phase.segment.name if phase.segment_id and phase.segment else None
    pct = phase.percentage or 0
    if rollout.strategy == Rollout.Strategy.BLUE_GREEN:
        if pct >= 100:
            return "everyone on green (the new version)"
        if segment:
            return f"{segment} preview green; everyone else stays on blue"
        return "everyone on blue (the old version)"
    words = _AUDIENCE_WORDS.get(rollout.strategy, "of users")
    if segment and pct >= 100:
        segment = None
    if segment and pct > 0:
        return f"{segment} and {pct}% {words}"
    if segment:
        return f"everyone in {segment}"
    return f"{pct}% {words}"


# State -> (pill class, icon): colour is never the only signal, the icon and words go along.
_STATE_STYLE = {
    "draft": ("", "✎"),
    "scheduled": ("", "…"),
    "running": ("pill-ok", "▶"),
    "paused": ("pill-warn", "‖"),
    "held": ("pill-warn", "⚠"),
    "completed": ("pill-ok", "✓"),
    "rolled_back": ("pill-bad", "↩"),
    "cancelled": ("", "✕"),
}


@dataclass(frozen=True)
class Exposure:
    """What one rollout means for customers right now, derived from its stored facts."""

    state: str
    state_label: str
    text: str  # one sentence support staff can read out
    percentage: int | None  # share exposed now (progress bar), None when unknown/not applicable
    audience: str  # e.g. "25% of users", "Beta testers"
    phase_name: str
    phase_number: int | None  # 1-based, None before the first phase
    phase_count: int
    since: datetime | None
    reason: str
    next_at: datetime | None
    is_live: bool  # some customers have the new behaviour now
    is_problem: bool  # held or rolled back: support should know before the call

    @property
    def pill_class(self) -> str:
        return _STATE_STYLE.get(self.state, ("", ""))[0]

    @property
    def icon(self) -> str:
        return _STATE_STYLE.get(self.state, ("", "•"))[1]


def rollout_exposure(
    rollout: Rollout,
    phases: Sequence[Phase],
    *,
    state_event_at: datetime | None = None,
    state_event_reason: str = "",
    now: datetime | None = None,
) -> Exposure:
    """Exposure of a rollout in every state.

    `state_event_at` / `state_event_reason` come from the latest event whose kind is the
    rollout's state (held, paused, rolled back, ...): "held since 10:42 (error rate)".
    """
    now = now or timezone.now()
    count = len(phases)
    index = rollout.current_phase_index
    current = phases[index] if 0 <= index < count else None
    number = index + 1 if current is not None else None
    name = current.name if current is not None else ""
    audience = phase_audience(rollout, current)
    pct = _effective_percentage(current)
    state = rollout.state
    label = rollout.get_state_display()
    reason = state_event_reason or ""
    because = f" ({reason})" if reason else ""
    phase_words = f"phase {number} of {count} ({name})" if current is not None else ""
    S = Rollout.State

    def when(at: datetime | None) -> str:
        return format_when(at, now=now)

    if state == S.DRAFT:
        return Exposure(
            state, label, "Planned, not scheduled yet: nobody has it.", 0, "nobody yet",
            "", None, count, None, "", None, False, False,
        )  # fmt: skip
    if state == S.SCHEDULED:
        start = rollout.next_due_at or (phases[0].start_at if phases else None)
        text = (
            f"Scheduled for {when(start)}: nobody has it yet."
            if start
            else "Scheduled; starts when a release manager starts it. Nobody has it yet."
        )
        return Exposure(
            state, label, text, 0, "nobody yet", "", None, count,
            state_event_at, reason, start, False, False,
        )  # fmt: skip
    if state == S.RUNNING:
        since = rollout.phase_started_at or rollout.started_at
        text = f"Live to {audience}, {phase_words}, since {when(since)}."
        if rollout.next_due_at:
            text += f" Next phase {when(rollout.next_due_at)}."
        elif current is not None and index + 1 < count:
            text += " The next phase waits for a person."
        return Exposure(
            state, label, text, pct, audience, name, number, count,
            since, "", rollout.next_due_at, _live(current), False,
        )  # fmt: skip
    if state in (S.PAUSED, S.HELD):
        verb = "Held" if state == S.HELD else "Paused"
        since = state_event_at or getattr(rollout, "paused_at", None) or rollout.phase_started_at
        text = f"{verb} since {when(since)}{because}. Exposure stays at {audience}"
        text += f", {phase_words}." if phase_words else "."
        return Exposure(
            state, label, text, pct, audience, name, number, count,
            since, reason, None, _live(current), state == S.HELD,
        )  # fmt: skip
    if state == S.COMPLETED:
        at = rollout.finished_at or state_event_at
        text = f"Completed at {when(at)}: {audience}."
        return Exposure(
            state, label, text, pct, audience, name, number, count,
            at, reason, None, _live(current), False,
        )  # fmt: skip
    if state == S.ROLLED_BACK:
        at = state_event_at or rollout.finished_at
        text = (
            f"Rolled back at {when(at)}{because}. The flag is back to its state before the "
            "rollout: nobody new has it."
        )
        return Exposure(
            state, label, text, 0, "nobody (rolled back)", name, number, count,
            at, reason, None, False, True,
        )  # fmt: skip
    # Cancelled: the plan stopped; a rollout cancelled while live leaves the flag's exposure
    # as it was (rollouts.services.rollout_cancel), so customers may still have it.
    at = state_event_at or rollout.finished_at
    if current is None:
        text = f"Cancelled at {when(at)}{because} before it started: nobody has it."
        return Exposure(
            state, label, text, 0, "nobody", "", None, count,
            at, reason, None, False, False,
        )  # fmt: skip
    text = f"Cancelled at {when(at)}{because}. The flag stays at {audience} ({phase_words})."
    return Exposure(
        state, label, text, pct, audience, name, number, count,
        at, reason, None, _live(current), False,
    )  # fmt: skip


def _effective_percentage(phase: Phase | None) -> int | None:
    """The share of everyone exposed (progress bar); a segment adds an unknown share."""
    if phase is None:
        return 0
    return phase.percentage or 0


def _live(phase: Phase | None) -> bool:
    if phase is None:
        return False
    return bool(phase.percentage) or bool(phase.segment_id)


# --------------------------------------------------------------------------------------------
# Timeline of phases


@dataclass(frozen=True)
class TimelineRow:
    name: str
    audience: str
    start: datetime | None  # actual start when applied, else the projected/planned start
    end: datetime | None
    state: str  # done | current | upcoming
    waits_for_person: bool
    start_text: str


def rollout_timeline(
    rollout: Rollout, phases: Sequence[Phase], *, now: datetime
) -> list[TimelineRow]:
    """Past and upcoming phases; projections come from rollouts.scheduling."""
    from rollouts.scheduling import projected_timeline

    rows: list[TimelineRow] = []
    projected: list[Any] = []
    if phases:
        try:
            projected = list(projected_timeline(rollout, list(phases), now))
        except Exception:  # noqa: BLE001 - a projection problem must not break the changelog
            projected = []
    if projected:
        for item in projected:
            phase = item.phase
            start = item.actual_start or item.planned_start
            waits = (
                item.actual_start is None
                and item.planned_start is None
                and phase.gate == Phase.Gate.MANUAL
            )
            rows.append(
                TimelineRow(
                    name=phase.name,
                    audience=phase_audience(rollout, phase),
                    start=start,
                    end=item.end,
                    state=item.state,
                    waits_for_person=waits,
                    start_text=_start_text(
                        rollout, item.actual_start, item.planned_start, waits, now
                    ),
                )
            )
        return _final_states(rollout, rows)
    index = rollout.current_phase_index
    for i, phase in enumerate(phases):
        if phase.applied_at is not None and i < index:
            state = "done"
        elif i == index and rollout.state not in Rollout.FINAL_STATES:
            state = "current"
        elif phase.applied_at is not None:
            state = "done"
        else:
            state = "upcoming"
        planned = phase.start_at if phase.start_rule == Phase.StartRule.AT else None
        if i == index + 1 and rollout.next_due_at and not rollout.is_final:
            planned = rollout.next_due_at
        waits = phase.applied_at is None and planned is None and phase.gate == Phase.Gate.MANUAL
        next_applied = phases[i + 1].applied_at if i + 1 < len(phases) else None
        rows.append(
            TimelineRow(
                name=phase.name,
                audience=phase_audience(rollout, phase),
                start=phase.applied_at or planned,
                end=next_applied,
                state=state,
                waits_for_person=waits,
                start_text=_start_text(rollout, phase.applied_at, planned, waits, now),
            )
        )
    return _final_states(rollout, rows)


def _start_text(
    rollout: Rollout, actual: datetime | None, planned: datetime | None, waits: bool, now: datetime
) -> str:
    if actual is not None:
        return f"started {format_when(actual, now=now)}"
    if planned is not None:
        return f"planned {format_when(planned, now=now)}"
    if waits:
        return "waits for a person"
    return "after the previous phase's soak"


def _final_states(rollout: Rollout, rows: list[TimelineRow]) -> list[TimelineRow]:
    """A finished rollout has no current or upcoming phase: the rest will never run."""
    if rollout.state == Rollout.State.DRAFT:
        # Projections of a draft are "if started now": not a date to tell a customer.
        return [
            TimelineRow(r.name, r.audience, None, None, "upcoming", False, "not scheduled yet")
            for r in rows
        ]
    if not rollout.is_final:
        return rows
    out = []
    for row in rows:
        if row.state in {"current", "upcoming"} and not row.start_text.startswith("started"):
            row = TimelineRow(row.name, row.audience, None, None, "skipped", False, "will not run")
        elif row.state == "current":
            row = TimelineRow(
                row.name, row.audience, row.start, row.end, "done", False, row.start_text
            )
        out.append(row)
    return out
