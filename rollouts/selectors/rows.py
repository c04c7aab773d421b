"""One rollout as every page shows it: state display, current exposure and the next change in
words (a `RolloutRow`), plus the base queryset the list selectors share.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from rollouts.models import Approval, ChecklistItem, Phase, Rollout

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
        due_words = "due" if due <= now else f"due {relative_in_words(due, now)}"
        return NextChange(
            "gated", f"{due_words}; waits for an approval or a checklist", due, upcoming
        )
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


def phases_prefetch() -> Prefetch[str, QuerySet[Phase], str]:
    return Prefetch("phases", queryset=Phase.objects.select_related("segment").order_by("order"))


def _rollouts() -> QuerySet[Rollout]:
    next_order = OuterRef("current_phase_index") + 1
    return (
        Rollout.objects.select_related("release", "environment", "flag")
        .prefetch_related(phases_prefetch())
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
