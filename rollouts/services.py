"""Every write to releases and rollouts goes through here (UI, API, admin, scheduler, alerts).

Each transition locks the rollout row, checks the state it expects, changes the flag through
`flags.services` and writes a `RolloutEvent`, all in one transaction. The scheduler path
(`rollout_advance`) additionally skips rows another worker holds and checks the expected
phase, so duplicate ticks, retries and several workers never advance a phase twice.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_duration
from django.utils.text import slugify

from core.exceptions import ApplicationError, ConflictError
from flags.models import Environment, Flag, FlagState, Segment
from flags.services import flag_create, flag_state_update
from rollouts import scheduling, strategies
from rollouts import windows as windows_mod
from rollouts.models import (
    Approval,
    ApprovalPolicy,
    ChecklistItem,
    FreezeWindow,
    Hold,
    Phase,
    Release,
    Rollout,
    RolloutEvent,
)
from rollouts.windows import WindowSpec

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind
Source = RolloutEvent.Source

ACTIONS = frozenset(
    {"edit_plan", "schedule", "start", "pause", "resume", "advance_now", "complete", "cancel",
     "rollback", "hold"}
)  # fmt: skip
LIVE_STATES = (State.SCHEDULED, State.RUNNING, State.PAUSED, State.HELD)
STOPPED_STATES = (State.PAUSED, State.HELD)

# Strategies whose rollback is always an instant switch back (no "freeze at current exposure").
INSTANT_ROLLBACK = (Rollout.Strategy.CANARY, Rollout.Strategy.BLUE_GREEN)
OVERRIDE_PERMISSION = "rollouts.override_freeze"
APPROVE_PERMISSION = "rollouts.approve_rollout"

# Sent on commit with the ids of the events a transaction wrote, so that consumers (notices)
# react at once; they also sweep undispatched events, so nothing is lost if a receiver fails.
events_committed = Signal()

_RELEASE_FIELDS = {
    "name", "version", "summary", "changelog", "label", "known_issues", "owner", "is_public",
}  # fmt: skip


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def _user(actor: AbstractBaseUser | None) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _source(source: str) -> str:
    if source not in Source.values:
        raise ApplicationError(f"Unknown event source {source!r}.", field="source")
    return source


def _record(
    rollout: Rollout,
    *,
    kind: str,
    source: str,
    actor: AbstractBaseUser | None,
    at: datetime,
    reason: str = "",
    due_at: datetime | None = None,
    from_phase: int | None = None,
    to_phase: int | None = None,
    from_percentage: int | None = None,
    to_percentage: int | None = None,
    data: dict[str, Any] | None = None,
) -> RolloutEvent:
    event = RolloutEvent.objects.create(
        rollout=rollout,
        kind=kind,
        source=source,
        actor=_user(actor),
        at=at,
        due_at=due_at,
        from_phase_index=from_phase,
        to_phase_index=to_phase,
        from_percentage=from_percentage,
        to_percentage=to_percentage,
        reason=reason or "",
        data=data or {},
    )
    event_id = event.id
    transaction.on_commit(lambda: _committed(event_id), robust=True)
    return event


_batch = threading.local()


def _committed(event_id: int) -> None:
    ids = getattr(_batch, "ids", None)
    if ids is not None:
        ids.append(event_id)
        return
    events_committed.send(sender=RolloutEvent, event_ids=[event_id])


@contextmanager
def events_batched() -> Iterator[None]:
    """Send `events_committed` once for all events committed inside the block.

    The scheduler advances many rollouts, each in its own transaction; consumers then get one
    signal (one message) per batch instead of one per event.
    """
    if getattr(_batch, "ids", None) is not None:
        yield  # nested: the outer block sends
        return
    _batch.ids = []
    try:
        yield
    finally:
        ids, _batch.ids = _batch.ids, None
        if ids:
            for receiver, result in events_committed.send_robust(
                sender=RolloutEvent, event_ids=ids
            ):
                if isinstance(result, Exception):
                    logger.warning(
                        "rollout.events_signal_failed receiver=%s error=%s", receiver, result
                    )


def _save(rollout: Rollout, actor: AbstractBaseUser | None, fields: Iterable[str]) -> None:
    rollout.version += 1
    user = _user(actor)
    if user is not None:
        rollout._history_user = user  # type: ignore[attr-defined]
    rollout.save(update_fields=[*fields, "version", "updated_at"])


def _phases(rollout: Rollout) -> list[Phase]:
    return list(rollout.phases.select_related("segment").order_by("order"))


def _lock(rollout: Rollout) -> Rollout:
    """Lock the rollout row (only it: never the flag's or environment's rows)."""
    return (
        Rollout.objects.select_for_update(of=("self",))
        .select_related("flag", "environment")
        .get(pk=rollout.pk)
    )


def _percentage(phases: Sequence[Phase], index: int) -> int | None:
    return phases[index].percentage if 0 <= index < len(phases) else None


def _apply_exposure(rollout: Rollout, phase: Phase, actor: AbstractBaseUser | None) -> FlagState:
    rules = strategies.exposure_rules(
        strategy_key=rollout.strategy,
        flag_key=rollout.flag.key,
        percentage=phase.percentage,
        segment_id=phase.segment_id,
        title=f"Rollout {rollout.key}: {phase.name}"[:200],
    )
    return flag_state_update(
        flag=rollout.flag, environment=rollout.environment, actor=actor, enabled=True, rules=rules
    )


def _illegal(rollout: Rollout, doing: str) -> ApplicationError:
    hint = {
        State.DRAFT: "start or schedule it first",
        State.SCHEDULED: "start it now or wait for its start time",
        State.PAUSED: "resume it first",
        State.HELD: "it is held; resume it once the cause is cleared",
        State.COMPLETED: "it has finished",
        State.ROLLED_BACK: "it was rolled back; create a new rollout to try again",
        State.CANCELLED: "it was cancelled; create a new rollout to try again",
    }.get(rollout.state, "")
    state = Rollout.State(rollout.state).label.lower()
    return ApplicationError(
        f"Cannot {doing} rollout {rollout.key}: it is {state}" + (f"; {hint}." if hint else "."),
        field="state",
        code="illegal_transition",
    )


def _check_version(rollout: Rollout, expected_version: int | None) -> None:
    if expected_version is not None and rollout.version != expected_version:
        raise ConflictError(
            f"Rollout {rollout.key} was changed meanwhile (version {rollout.version}, you "
            f"edited {expected_version}). Reload to see the change and try again."
        )


# --------------------------------------------------------------------------------------------
# Safety: freeze windows, gates (approvals, checklists, promotion) and holds
#
# Windows delay the *clock*: `next_due_at` is the next allowed moment, the scheduler never
# moves a rollout inside a deny window, and a person needs `override_freeze` and a reason to
# start, advance or complete inside one (recorded as an `override` event). Gates block every
# move *into* the gated phase, by the clock or by a person, and nobody can override them.


def window_spec(window: FreezeWindow) -> WindowSpec:
    return WindowSpec(
        id=window.id,
        name=window.name,
        kind=window.kind,
        tz=window.timezone,
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        cron=window.cron,
        duration=window.duration,
        environment_id=window.environment_id,
    )


def window_specs(environment_id: int | None) -> list[WindowSpec]:
    """The active windows that apply to an environment (its own and the global ones)."""
    qs = FreezeWindow.objects.filter(is_active=True).filter(
        Q(environment_id=environment_id) | Q(environment__isnull=True)
    )
    return [window_spec(w) for w in qs.order_by("id")]


def _due(
    rollout: Rollout, phases: Sequence[Phase], windows: Sequence[WindowSpec] | None = None
) -> datetime | None:
    """The rollout's next due time, moved to the next allowed moment of its windows."""
    if rollout.state not in (State.SCHEDULED, State.RUNNING):
        return None
    if windows is None:
        windows = window_specs(rollout.environment_id)
    return scheduling.next_due_at(rollout, phases, windows=windows)


def _may(actor: AbstractBaseUser | None, perm: str) -> bool:
    user = _user(actor)
    return bool(user is not None and user.has_perm(perm))


def _local_words(at: datetime | None, tz_name: str) -> str:
    if at is None:
        return "with no allowed moment in the next year"
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local = timezone.localtime(at, tz)
    return f"until {local:%a %b} {local.day}, {local:%H:%M %Z}"


def _check_window(
    rollout: Rollout,
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    doing: str,
    override: bool,
    reason: str,
) -> None:
    """Refuse a person's move inside a deny window (or outside the allowed hours), unless they
    override it with the permission and a reason; the override is recorded."""
    block = windows_mod.blocking(now, window_specs(rollout.environment_id))
    if block is None:
        return
    when = _local_words(block.until, rollout.timezone)
    if not override:
        raise ApplicationError(
            f"Cannot {doing} rollout {rollout.key} now: {block.words} {when}. Wait for it, or "
            "override the window with a reason if you have the permission.",
            field="override",
            code="window_closed",
        )
    if not _may(actor, OVERRIDE_PERMISSION):
        raise ApplicationError(
            f"Overriding {block.words} needs the permission to override freezes "
            "(Release managers or Admins).",
            field="override",
            code="forbidden",
        )
    if not (reason or "").strip():
        raise ApplicationError(
            f"Say why you override {block.words} (it is recorded in the event log).",
            field="reason",
        )
    _record(
        rollout,
        kind=Kind.OVERRIDE,
        source=source,
        actor=actor,
        at=now,
        reason=reason.strip(),
        from_phase=rollout.current_phase_index if rollout.current_phase_index >= 0 else None,
        data={
            "doing": doing,
            "window": block.window.name if block.window else None,
            "window_id": block.window.id if block.window else None,
            "until": block.until.isoformat() if block.until else None,
        },
    )
    logger.info(
        "rollout.window_overridden rollout_id=%s window=%s doing=%s",
        rollout.id, block.window.id if block.window else "allow-hours", doing,
    )  # fmt: skip


@dataclass(frozen=True)
class ApprovalRule:
    """Why a phase needs approval, and how."""

    required: int
    allow_self_approval: bool
    why: str


def environment_policy(environment_id: int) -> ApprovalPolicy | None:
    return (
        ApprovalPolicy.objects.select_related("requires_completed_in", "environment")
        .filter(environment_id=environment_id)
        .first()
    )


def approval_rule(phase: Phase, policy: ApprovalPolicy | None) -> ApprovalRule | None:
    """The approval a phase needs (from the plan and the environment's policy), or None."""
    why: list[str] = []
    if phase.requires_approval:
        why.append("the plan asks for approval of this phase")
    if policy is not None and policy.min_percentage is not None:
        if policy.min_percentage == 0:
            why.append("the environment's policy asks for approval of every phase")
        elif (phase.percentage or 0) >= policy.min_percentage:
            why.append(
                f"the environment's policy asks for approval of phases reaching "
                f"{policy.min_percentage}% or more"
            )
    if not why:
        return None
    return ApprovalRule(
        required=policy.approvals_required if policy is not None else 1,
        allow_self_approval=policy.allow_self_approval if policy is not None else False,
        why="; ".join(why),
    )


def promotion_blocker(rollout: Rollout, policy: ApprovalPolicy | None) -> str | None:
    """Why the rollout may not start yet: the same release must complete elsewhere first."""
    if policy is None or policy.requires_completed_in_id is None:
        return None
    there = policy.requires_completed_in
    others = list(
        Rollout.objects.filter(release_id=rollout.release_id, environment_id=there.id)
        .order_by("-created_at")
        .values_list("key", "state")
    )
    if any(state == State.COMPLETED for _, state in others):
        return None
    release = rollout.release
    if not others:
        return (
            f"{release} must complete in {there.name} before it starts in "
            f"{rollout.environment.name}; it has no rollout there yet."
        )
    key, state = others[0]
    return (
        f"{release} must complete in {there.name} before it starts in "
        f"{rollout.environment.name}; rollout {key} there is {State(state).label.lower()}."
    )


@dataclass
class GateStatus:
    """What a phase still waits for before anyone or anything may start it."""

    phase: Phase
    rule: ApprovalRule | None
    approval: Approval | None  # the live (pending or granted) request
    approvals_given: int
    open_items: list[ChecklistItem]
    promotion: str | None = None

    @property
    def approved(self) -> bool:
        return self.rule is None or (
            self.approval is not None and self.approval.state == Approval.State.APPROVED
        )

    @property
    def satisfied(self) -> bool:
        return self.approved and not self.open_items and self.promotion is None

    @property
    def blockers(self) -> list[str]:
        name = f"Phase {self.phase.order + 1} ({self.phase.name})"
        found: list[str] = []
        if self.promotion:
            found.append(self.promotion)
        if not self.approved:
            assert self.rule is not None
            if self.approval is None:
                found.append(f"{name} needs approval ({self.rule.why}); request it first.")
            else:
                found.append(
                    f"{name} waits for approval: {self.approvals_given} of "
                    f"{self.approval.required} given."
                )
        if self.open_items:
            labels = ", ".join(f"“{i.label}”" for i in self.open_items)
            found.append(f"{name} waits for its checklist: {labels} not ticked yet.")
        return found


def _live_approval(phase: Phase) -> Approval | None:
    return (
        Approval.objects.filter(
            phase=phase, state__in=(Approval.State.PENDING, Approval.State.APPROVED)
        )
        .order_by("-requested_at", "-id")
        .first()
    )


def gate_status(
    rollout: Rollout, phase: Phase, *, policy: ApprovalPolicy | bool | None = False
) -> GateStatus:
    """The gates of `phase` now (a few queries). `policy=False` loads the environment's."""
    if policy is False:
        policy = environment_policy(rollout.environment_id)
    assert policy is None or isinstance(policy, ApprovalPolicy)
    rule = approval_rule(phase, policy)
    approval = _live_approval(phase) if rule is not None else None
    given = (
        approval.decisions.filter(decision="approve").count()
        if approval is not None and approval.state == Approval.State.PENDING
        else (approval.required if approval is not None else 0)
    )
    items = list(phase.checklist.filter(ticked_at__isnull=True).order_by("position", "id"))
    promotion = promotion_blocker(rollout, policy) if phase.order == 0 else None
    return GateStatus(phase, rule, approval, given, items, promotion)


def _requester(rollout: Rollout, actor: AbstractBaseUser | None) -> Any:
    user = _user(actor)
    return user if user is not None else rollout.owner


def _request_approval(
    rollout: Rollout,
    phase: Phase,
    rule: ApprovalRule,
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
) -> Approval:
    approval = Approval.objects.create(
        rollout=rollout,
        phase=phase,
        required=rule.required,
        allow_self_approval=rule.allow_self_approval,
        why=rule.why[:300],
        requested_by=_requester(rollout, actor),
        requested_at=now,
    )
    _record(
        rollout,
        kind=Kind.APPROVAL_REQUESTED,
        source=source,
        actor=actor,
        at=now,
        from_phase=rollout.current_phase_index if rollout.current_phase_index >= 0 else None,
        to_phase=phase.order,
        from_percentage=None,
        to_percentage=phase.percentage,
        reason=rule.why,
        data={
            "approval_id": approval.id,
            "phase": phase.name,
            "required": rule.required,
            "requested_by": approval.requested_by.get_username() if approval.requested_by else None,
        },
    )
    logger.info(
        "approval.requested approval_id=%s rollout_id=%s phase=%s required=%s",
        approval.id, rollout.id, phase.order, rule.required,
    )  # fmt: skip
    return approval


def _refresh_gates(
    rollout: Rollout,
    phases: Sequence[Phase],
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    policy: ApprovalPolicy | bool | None = False,
) -> Approval | None:
    """Keep approval requests in line with the rollout: the next phase of a live rollout has
    one when it needs one; requests of other phases (or of finished rollouts) are withdrawn.
    Returns the next phase's live request, if any. Caller holds the rollout's lock."""
    index = rollout.current_phase_index + 1
    live = rollout.state in LIVE_STATES
    phase = phases[index] if live and 0 <= index < len(phases) else None
    stale = Approval.objects.filter(rollout=rollout, state=Approval.State.PENDING)
    if phase is not None:
        stale = stale.exclude(phase=phase)
    stale.update(state=Approval.State.CANCELLED, decided_at=now, updated_at=now)
    if phase is None or rollout.state == State.HELD:
        # Held: a declined request stays declined until a person resumes; then we ask again.
        return None
    if policy is False:
        policy = environment_policy(rollout.environment_id)
    assert policy is None or isinstance(policy, ApprovalPolicy)
    rule = approval_rule(phase, policy)
    current = _live_approval(phase)
    if rule is None:
        if current is not None and current.state == Approval.State.PENDING:
            current.state = Approval.State.CANCELLED
            current.decided_at = now
            current.save(update_fields=["state", "decided_at", "updated_at"])
        return None
    if current is None:
        current = _request_approval(rollout, phase, rule, now=now, actor=actor, source=source)
    return current


def _check_gates(rollout: Rollout, phase: Phase, doing: str) -> None:
    status = gate_status(rollout, phase)
    if not status.satisfied:
        raise ApplicationError(
            f"Cannot {doing} rollout {rollout.key} yet: " + " ".join(status.blockers),
            field="gates",
            code="promotion" if status.promotion else "gated",
        )


def _active_holds(rollout: Rollout) -> list[Hold]:
    return list(rollout.holds.filter(cleared_at__isnull=True).order_by("held_at", "id"))


def _clear_holds(
    holds: Sequence[Hold],
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str,
) -> list[int]:
    ids = [h.id for h in holds]
    if ids:
        Hold.objects.filter(pk__in=ids).update(
            cleared_at=now,
            cleared_by=_user(actor),
            cleared_source=source,
            clear_reason=reason,
            updated_at=now,
        )
    return ids


def _hold(
    rollout: Rollout,
    *,
    kind: str,
    reason: str,
    source: str,
    actor: AbstractBaseUser | None,
    now: datetime,
    approval: Approval | None = None,
    window: FreezeWindow | None = None,
    alert: dict[str, Any] | None = None,
) -> Hold:
    """Add a hold to a locked rollout: it becomes (or stays) held, its clock stopped."""
    if rollout.state not in (State.SCHEDULED, State.RUNNING, State.PAUSED, State.HELD):
        raise _illegal(rollout, "hold")
    alert = alert or {}
    hold = Hold.objects.create(
        rollout=rollout,
        kind=kind,
        reason=reason,
        source=source,
        created_by=_user(actor),
        held_at=now,
        approval=approval,
        window=window,
        alert_key=str(alert.get("key", ""))[:200],
        alert_fingerprint=str(alert.get("fingerprint", ""))[:128],
        alert_name=str(alert.get("name", ""))[:200],
        alert_labels=alert.get("labels") or {},
    )
    from_state = rollout.state
    if rollout.state != State.HELD:
        rollout.held_from = rollout.state
        if rollout.paused_at is None:
            rollout.paused_at = now
        rollout.state = State.HELD
        rollout.next_due_at = None
        _save(rollout, actor, ["state", "held_from", "paused_at", "next_due_at"])
    pct = _percentage(_phases(rollout), rollout.current_phase_index)
    index = rollout.current_phase_index if rollout.current_phase_index >= 0 else None
    _record(
        rollout,
        kind=Kind.HELD,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=index,
        to_phase=index,
        from_percentage=pct,
        to_percentage=pct,
        data={
            "hold_id": hold.id,
            "hold_kind": kind,
            "from_state": from_state,
            "already_held": from_state == State.HELD,
            **({"alert": alert.get("name"), "fingerprint": alert.get("fingerprint")}
               if alert else {}),
        },
    )  # fmt: skip
    logger.info(
        "rollout.held rollout_id=%s key=%s hold_id=%s kind=%s source=%s",
        rollout.id, rollout.key, hold.id, kind, source,
    )  # fmt: skip
    return hold


# --------------------------------------------------------------------------------------------
# Releases


@transaction.atomic
def release_create(
    *,
    name: str,
    version: str = "",
    summary: str = "",
    changelog: str = "",
    label: str = Release.Label.NEW,
    known_issues: str = "",
    owner: AbstractBaseUser | None = None,
    flags: Iterable[Flag] = (),
    is_public: bool = False,
    actor: AbstractBaseUser | None,
) -> Release:
    if not (name or "").strip():
        raise ApplicationError("Give the release a name.", field="name")
    if label not in Release.Label.values:
        raise ApplicationError(
            f"Unknown label {label!r}; use one of {', '.join(Release.Label.values)}.", field="label"
        )
    release = Release(
        name=name.strip(),
        version=(version or "").strip(),
        summary=summary or "",
        changelog=changelog or "",
        label=label,
        known_issues=known_issues or "",
        owner=owner if owner is not None else _user(actor),
        is_public=is_public,
    )
    user = _user(actor)
    if user is not None:
        release._history_user = user  # type: ignore[attr-defined]
    release.full_clean()
    release.save()
    flag_list = list(flags)
    if flag_list:
        release.flags.set(flag_list)
    logger.info("release.created release_id=%s name=%s", release.id, release.name)
    return release


@transaction.atomic
def release_update(*, release: Release, actor: AbstractBaseUser | None, **fields: Any) -> Release:
    unknown = set(fields) - _RELEASE_FIELDS - {"flags"}
    if unknown:
        raise ApplicationError(
            f"Release has no field(s) {', '.join(sorted(unknown))}.", field=sorted(unknown)[0]
        )
    release = Release.objects.select_for_update().get(pk=release.pk)
    flags = fields.pop("flags", None)
    if "name" in fields and not (fields["name"] or "").strip():
        raise ApplicationError("Give the release a name.", field="name")
    if "label" in fields and fields["label"] not in Release.Label.values:
        raise ApplicationError(f"Unknown label {fields['label']!r}.", field="label")
    for name, value in fields.items():
        setattr(release, name, value.strip() if name in {"name", "version"} else value)
    user = _user(actor)
    if user is not None:
        release._history_user = user  # type: ignore[attr-defined]
    release.full_clean()
    release.save()
    if flags is not None:
        release.flags.set(list(flags))
    logger.info("release.updated release_id=%s fields=%s", release.id, ",".join(sorted(fields)))
    return release


# --------------------------------------------------------------------------------------------
# Plans


def _timezone(name: str) -> ZoneInfo:
    if not name or name not in _valid_timezones():
        raise ApplicationError(
            f"Unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC.",
            field="timezone",
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - guarded above
        raise ApplicationError(f"Unknown time zone {name!r}.", field="timezone") from exc


_TZ_CACHE: set[str] = set()


def _valid_timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(available_timezones())
        _TZ_CACHE.add("UTC")
    return _TZ_CACHE


def _as_duration(value: Any, where: str) -> timedelta | None:
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        duration = timedelta(seconds=value)
    elif isinstance(value, str):
        parsed = parse_duration(value.strip())
        if parsed is None:
            raise ApplicationError(
                "Give the soak as a duration, e.g. 01:30:00 or P1DT2H.", field=where
            )
        duration = parsed
    else:
        raise ApplicationError("Give the soak as a duration.", field=where)
    if duration < timedelta(0):
        raise ApplicationError("The soak cannot be negative.", field=where)
    return duration


def _as_datetime(value: Any, tz: ZoneInfo, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parsed = parse_datetime(value.strip())
        if parsed is None:
            raise ApplicationError("Give a date and time, e.g. 2030-05-01 09:00.", field=where)
        value = parsed
    if not isinstance(value, datetime):
        raise ApplicationError("Give a date and time.", field=where)
    if timezone.is_naive(value):
        # A wall-clock time in the plan's time zone.
        value = value.replace(tzinfo=tz)
    return value


def _clean_phases(
    phases: Any, *, strategy_key: str, tz: ZoneInfo, allow_decreasing: bool
) -> list[dict[str, Any]]:
    """Validate plan phases; errors name the field as "phases.<index>.<field>"."""
    if not isinstance(phases, list | tuple) or not phases:
        raise ApplicationError("A rollout plan needs at least one phase.", field="phases")
    spec = strategies.strategy(strategy_key)
    segment_refs = {
        p.get("segment").pk if isinstance(p.get("segment"), Segment) else p.get("segment")
        for p in phases
        if isinstance(p, dict)
    } - {None}
    bad_refs = [s for s in segment_refs if not isinstance(s, int) or isinstance(s, bool)]
    known = set(
        Segment.objects.filter(pk__in=[s for s in segment_refs if s not in bad_refs]).values_list(
            "pk", flat=True
        )
    )
    clean: list[dict[str, Any]] = []
    previous_pct: int | None = None
    previous_at: datetime | None = None
    for i, raw in enumerate(phases):
        where = f"phases.{i}"
        label = f"Phase {i + 1}"
        if not isinstance(raw, dict):
            raise ApplicationError(f"{label}: must be an object.", field=where)
        name = str(raw.get("name") or "").strip()
        if not name:
            raise ApplicationError(f"{label}: give it a name.", field=f"{where}.name")
        if len(name) > 100:
            raise ApplicationError(
                f"{label}: the name is longer than 100 characters.", field=f"{where}.name"
            )
        pct = raw.get("percentage")
        if pct == "":
            pct = None
        if pct is not None:
            try:
                pct = int(pct)
            except (TypeError, ValueError):
                raise ApplicationError(
                    f"{label}: the percentage must be a whole number.",
                    field=f"{where}.percentage",
                ) from None
            if not 0 <= pct <= 100:
                raise ApplicationError(
                    f"{label}: the percentage must be between 0 and 100.",
                    field=f"{where}.percentage",
                )
        segment = raw.get("segment")
        if isinstance(segment, Segment):
            segment = segment.pk
        if segment == "":
            segment = None
        if segment is not None and segment not in known:
            raise ApplicationError(
                f"{label}: the audience segment does not exist (any more).",
                field=f"{where}.segment",
            )
        if pct is None and segment is None:
            raise ApplicationError(
                f"{label}: set a percentage, an audience segment, or both.",
                field=f"{where}.percentage",
            )
        if spec.binary and pct not in (None, 0, 100):
            raise ApplicationError(
                f"{label}: a blue/green phase is 0 (blue live) or 100 (green live).",
                field=f"{where}.percentage",
            )
        effective = pct or 0
        if previous_pct is not None and effective < previous_pct and not allow_decreasing:
            raise ApplicationError(
                f"{label}: {effective}% is less than the {previous_pct}% of the phase before; "
                "exposure only grows unless the plan allows decreasing.",
                field=f"{where}.percentage",
            )
        previous_pct = effective
        start_rule = raw.get("start_rule") or Phase.StartRule.AFTER_SOAK
        if start_rule not in Phase.StartRule.values:
            raise ApplicationError(
                f"{label}: start it 'at' a date-time or 'after_soak'.",
                field=f"{where}.start_rule",
            )
        start_at = _as_datetime(raw.get("start_at"), tz, f"{where}.start_at")
        if start_rule == Phase.StartRule.AT:
            if start_at is None:
                raise ApplicationError(
                    f"{label}: give the date and time it starts.", field=f"{where}.start_at"
                )
            if previous_at is not None and start_at < previous_at:
                local = timezone.localtime(previous_at, tz).strftime("%Y-%m-%d %H:%M")
                raise ApplicationError(
                    f"{label}: starts before an earlier phase ({local} {tz.key}); "
                    "phases start in order.",
                    field=f"{where}.start_at",
                )
            previous_at = start_at
        else:
            start_at = None
        soak = _as_duration(raw.get("soak"), f"{where}.soak")
        gate = raw.get("gate") or Phase.Gate.AUTOMATIC
        if gate not in Phase.Gate.values:
            raise ApplicationError(
                f"{label}: the gate is 'automatic' or 'manual'.", field=f"{where}.gate"
            )
        clean.append(
            {
                "name": name,
                "percentage": pct,
                "segment": segment,
                "start_rule": start_rule,
                "start_at": start_at,
                "soak": soak,
                "gate": gate,
                "notes": str(raw.get("notes") or ""),
                "requires_approval": _as_bool(raw.get("requires_approval")),
                "checklist": _as_checklist(raw.get("checklist"), f"{where}.checklist", label),
            }
        )
    return clean


MAX_CHECKLIST_ITEMS = 20


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _as_checklist(value: Any, where: str, label: str) -> list[str]:
    """Checklist items from a list of strings or text with one item a line."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        raw_items: list[Any] = value.splitlines()
    elif isinstance(value, list | tuple):
        raw_items = list(value)
    else:
        raise ApplicationError(f"{label}: the checklist is a list of steps.", field=where)
    items: list[str] = []
    for item in raw_items:
        if not isinstance(item, str):
            raise ApplicationError(f"{label}: each checklist step is text.", field=where)
        text = item.strip().lstrip("-*").strip()
        if not text or text in items:
            continue
        if len(text) > 200:
            raise ApplicationError(
                f"{label}: the checklist step “{text[:40]}…” is longer than 200 characters.",
                field=where,
            )
        items.append(text)
    if len(items) > MAX_CHECKLIST_ITEMS:
        raise ApplicationError(
            f"{label}: at most {MAX_CHECKLIST_ITEMS} checklist steps.", field=where
        )
    return items


_EXPOSURE_FIELDS = ("percentage", "segment", "start_rule", "start_at", "soak", "gate")


def _phase_value(phase: Phase, name: str) -> Any:
    return phase.segment_id if name == "segment" else getattr(phase, name)


def _write_phases(
    rollout: Rollout, clean: list[dict[str, Any]], *, existing: list[Phase], applied: int
) -> list[Phase]:
    """Store the plan: applied phases keep their exposure and timing; the rest follow `clean`."""
    for i in range(applied):
        phase = existing[i]
        for name in _EXPOSURE_FIELDS:
            if clean[i][name] != _phase_value(phase, name):
                what = name.replace("_", " ")
                raise ApplicationError(
                    f"Phase {i + 1} ({phase.name}) was already applied; its {what} cannot "
                    "change. Change the phases that have not started.",
                    field=f"phases.{i}.{name}",
                )
    result: list[Phase] = []
    changed_exposure: list[int] = []
    for i, data in enumerate(clean):
        values = {
            "name": data["name"],
            "percentage": data["percentage"],
            "segment_id": data["segment"],
            "start_rule": data["start_rule"],
            "start_at": data["start_at"],
            "soak": data["soak"],
            "gate": data["gate"],
            "notes": data["notes"],
            "requires_approval": data.get("requires_approval", False),
        }
        if i < len(existing):
            phase = existing[i]
            if (phase.percentage, phase.segment_id) != (data["percentage"], data["segment"]):
                changed_exposure.append(phase.id)
            if any(getattr(phase, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(phase, k, v)
                phase.save()
        else:
            phase = Phase.objects.create(rollout=rollout, order=i, **values)
        if i >= applied:
            _write_checklist(phase, data.get("checklist") or [])
        result.append(phase)
    if changed_exposure:
        # An approval is for an exposure: when that changes, it must be given again.
        Approval.objects.filter(
            phase_id__in=changed_exposure,
            state__in=(Approval.State.PENDING, Approval.State.APPROVED),
        ).update(state=Approval.State.CANCELLED, decided_at=timezone.now())
    if len(existing) > len(clean):
        Phase.objects.filter(rollout=rollout, order__gte=len(clean)).delete()
    return result


def _write_checklist(phase: Phase, labels: list[str]) -> None:
    """The phase's checklist follows `labels`; steps that stay keep their ticks."""
    existing = {item.label: item for item in phase.checklist.all()} if phase.pk else {}
    keep = set(labels)
    gone = [item.id for label, item in existing.items() if label not in keep]
    if gone:
        ChecklistItem.objects.filter(pk__in=gone).delete()
    for position, label in enumerate(labels):
        item = existing.get(label)
        if item is None:
            ChecklistItem.objects.create(phase=phase, position=position, label=label)
        elif item.position != position:
            item.position = position
            item.save(update_fields=["position", "updated_at"])


def _plan_summary(phases: Sequence[Phase]) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "percentage": p.percentage,
            "segment": p.segment_id,
            "start_rule": p.start_rule,
            "start_at": p.start_at.isoformat() if p.start_at else None,
            "soak_seconds": p.soak.total_seconds() if p.soak is not None else None,
            "gate": p.gate,
            "requires_approval": p.requires_approval,
        }
        for p in phases
    ]


def _check_schedulable(rollout: Rollout, phases: Sequence[Phase], now: datetime) -> None:
    first = phases[0]
    if first.start_rule != Phase.StartRule.AT or first.start_at is None:
        raise ApplicationError(
            f"To schedule rollout {rollout.key}, give phase 1 ({first.name}) a start date and "
            "time; or start it now.",
            field="phases.0.start_at",
        )
    if first.start_at <= now:
        raise ApplicationError(
            f"Phase 1 ({first.name}) starts in the past; pick a later time or start now.",
            field="phases.0.start_at",
        )


# --------------------------------------------------------------------------------------------
# Rollouts: create and plan


def _unique_slug(base: str, taken: set[str], max_length: int = 100) -> str:
    base = base[:max_length].strip("-") or "rollout"
    candidate, n = base, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate = f"{base[: max_length - len(suffix)]}{suffix}"
        n += 1
    return candidate


# Path segments of /rollouts/ pages and the API that a rollout key must not shadow.
_RESERVED_KEYS = {
    "templates", "new", "create", "releases", "events", "calendar", "approvals", "windows",
    "policies", "holds",
}  # fmt: skip

_FLAG_SUFFIX = {
    "feature_flag": "",
    "canary": "-canary",
    "blue_green": "-slot",
    "rolling": "-rolling",
    "shadow": "-shadow",
}


def _flag_fits(flag: Flag, strategy_key: str) -> str | None:
    """Why `flag` cannot drive this strategy, or None when it can."""
    spec = strategies.strategy(strategy_key)
    if flag.type != spec.flag_type:
        return f"{spec.label} needs a {spec.flag_type} flag; {flag.key} is a {flag.type} flag."
    if spec.binary:
        names = {v.get("name") for v in flag.variants or []}
        if not {strategies.BLUE, strategies.GREEN} <= names:
            return f"{spec.label} needs a flag with the variants blue and green."
    return None


def _flag_for(
    *,
    release: Release,
    strategy_key: str,
    flag: Flag | None,
    flag_key: str | None,
    actor: AbstractBaseUser | None,
) -> Flag:
    spec = strategies.strategy(strategy_key)
    if flag is not None:
        problem = _flag_fits(flag, strategy_key)
        if problem:
            raise ApplicationError(problem, field="flag")
        return flag
    if flag_key:
        existing = Flag.objects.filter(key=flag_key).first()
        if existing is not None:
            problem = _flag_fits(existing, strategy_key)
            if problem:
                raise ApplicationError(problem, field="flag_key")
            return existing
        key = flag_key
    else:
        version = re.sub(r"[^A-Za-z0-9.]+", "-", release.version).strip("-.")
        base = "-".join(p for p in (slugify(release.name), version) if p) or "release"
        base = base[:90] + _FLAG_SUFFIX[strategy_key]
        existing = Flag.objects.filter(key=base).first()
        if existing is not None and _flag_fits(existing, strategy_key) is None:
            # The same release rolled out in another environment drives the same flag.
            return existing
        taken = set(Flag.objects.filter(key__startswith=base).values_list("key", flat=True))
        key = _unique_slug(base, taken)
    return flag_create(
        key=key,
        name=f"{release} ({spec.label.lower()})"[:200],
        actor=actor,
        type=spec.flag_type,
        description=spec.description,
        variants=strategies.flag_variants(strategy_key),
    )


def _check_no_other_live(rollout: Rollout) -> None:
    other = (
        Rollout.objects.filter(
            flag_id=rollout.flag_id, environment_id=rollout.environment_id, state__in=LIVE_STATES
        )
        .exclude(pk=rollout.pk)
        .values_list("key", flat=True)
        .first()
    )
    if other:
        raise ApplicationError(
            f"Rollout {other} already drives {rollout.flag.key} in {rollout.environment.name}; "
            "finish, roll back or cancel it first.",
            field="flag",
        )


@transaction.atomic
def rollout_create(
    *,
    release: Release,
    environment: Environment,
    strategy: str,
    actor: AbstractBaseUser | None,
    source: str,
    flag: Flag | None = None,
    flag_key: str | None = None,
    key: str | None = None,
    timezone: str = "UTC",
    template: str | None = None,
    phases: list[dict[str, Any]] | None = None,
    owner: AbstractBaseUser | None = None,
    allow_decreasing: bool = False,
    alert_policy: str = Rollout.AlertPolicy.HOLD,
    now: datetime | None = None,
    alert_matchers: str = "",
    alert_auto_resume: bool = False,
) -> Rollout:
    """A draft rollout of `release` in `environment`; `phases` or `template` fill the plan."""
    _source(source)
    spec = strategies.strategy(strategy)
    tz = _timezone(timezone)
    if alert_policy not in Rollout.AlertPolicy.values:
        raise ApplicationError(f"Unknown alert policy {alert_policy!r}.", field="alert_policy")
    matchers = normalize_matchers(alert_matchers)
    if phases is None:
        phases, template = _template_plan(spec, template)
    clean = _clean_phases(phases, strategy_key=strategy, tz=tz, allow_decreasing=allow_decreasing)
    if key:
        if key in _RESERVED_KEYS:
            raise ApplicationError(f"{key!r} is reserved; choose another key.", field="key")
        if not re.fullmatch(r"[-a-zA-Z0-9_]+", key):
            raise ApplicationError(
                "The key may use letters, digits, '-' and '_' only.", field="key"
            )
        if Rollout.objects.filter(key=key).exists():
            raise ApplicationError(f"A rollout with the key {key!r} exists.", field="key")
    else:
        words = f"{release.name} {release.version} {environment.key} {strategy}"
        base = slugify(words.replace(".", "-").replace("_", "-"))
        taken = set(
            Rollout.objects.filter(key__startswith=base[:100]).values_list("key", flat=True)
        )
        key = _unique_slug(base, taken)
    flag_obj = _flag_for(
        release=release, strategy_key=strategy, flag=flag, flag_key=flag_key, actor=actor
    )
    rollout = Rollout(
        key=key,
        release=release,
        environment=environment,
        strategy=strategy,
        flag=flag_obj,
        timezone=tz.key,
        owner=owner if owner is not None else _user(actor),
        allow_decreasing=allow_decreasing,
        alert_policy=alert_policy,
        alert_matchers=matchers,
        alert_auto_resume=bool(alert_auto_resume),
        alert_secret=new_alert_secret(),
    )
    user = _user(actor)
    if user is not None:
        rollout._history_user = user  # type: ignore[attr-defined]
    rollout.save()
    stored = _write_phases(rollout, clean, existing=[], applied=0)
    release.flags.add(flag_obj)
    _record(
        rollout,
        kind=Kind.CREATED,
        source=source,
        actor=actor,
        at=_now(now),
        data={"strategy": strategy, "flag": flag_obj.key, "template": template,
              "phases": _plan_summary(stored)},
    )  # fmt: skip
    logger.info(
        "rollout.created rollout_id=%s key=%s strategy=%s flag=%s environment=%s",
        rollout.id, rollout.key, strategy, flag_obj.key, environment.key,
    )  # fmt: skip
    return rollout


def _template_plan(
    spec: strategies.StrategySpec, template: str | None
) -> tuple[list[dict[str, Any]], str]:
    if template is not None:
        return strategies.template_phases(template), template
    # No plan given: the strategy's first template whose segments exist.
    error: ApplicationError | None = None
    for candidate in spec.templates:
        try:
            return strategies.template_phases(candidate.key), candidate.key
        except ApplicationError as exc:
            error = exc
    assert error is not None
    raise error


@transaction.atomic
def rollout_plan_update(
    *,
    rollout: Rollout,
    phases: list[dict[str, Any]],
    actor: AbstractBaseUser | None,
    source: str,
    expected_version: int | None = None,
    allow_decreasing: bool | None = None,
    now: datetime | None = None,
) -> Rollout:
    """Replace the plan's phases; phases already applied keep their exposure and timing."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.is_final:
        raise _illegal(rollout, "change the plan of")
    _check_version(rollout, expected_version)
    if allow_decreasing is not None:
        rollout.allow_decreasing = allow_decreasing
    clean = _clean_phases(
        phases,
        strategy_key=rollout.strategy,
        tz=_timezone(rollout.timezone),
        allow_decreasing=rollout.allow_decreasing,
    )
    existing = _phases(rollout)
    applied = rollout.current_phase_index + 1
    if len(clean) < applied:
        raise ApplicationError(
            f"The first {applied} phase(s) were already applied and cannot be removed.",
            field="phases",
        )
    stored = _write_phases(rollout, clean, existing=existing, applied=applied)
    if rollout.state == State.SCHEDULED:
        _check_schedulable(rollout, stored, now)
    before = rollout.next_due_at
    rollout.next_due_at = _due(rollout, stored)
    _save(rollout, actor, ["allow_decreasing", "next_due_at"])
    _record(
        rollout,
        kind=Kind.PLAN_CHANGED,
        source=source,
        actor=actor,
        at=now,
        data={"phases": _plan_summary(stored),
              "next_due_at": rollout.next_due_at.isoformat() if rollout.next_due_at else None,
              "next_due_at_before": before.isoformat() if before else None},
    )  # fmt: skip
    _refresh_gates(rollout, stored, now=now, actor=actor, source=source)
    logger.info("rollout.plan_changed rollout_id=%s phases=%d", rollout.id, len(stored))
    return rollout


# --------------------------------------------------------------------------------------------
# Rollouts: transitions


@transaction.atomic
def rollout_schedule(
    *, rollout: Rollout, actor: AbstractBaseUser | None, source: str, now: datetime | None = None
) -> Rollout:
    """draft -> scheduled: the scheduler starts it at phase 1's `at` time."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state != State.DRAFT:
        raise _illegal(rollout, "schedule")
    phases = _phases(rollout)
    if not phases:
        raise ApplicationError("A rollout plan needs at least one phase.", field="phases")
    _check_schedulable(rollout, phases, now)
    _check_no_other_live(rollout)
    rollout.state = State.SCHEDULED
    rollout.next_due_at = _due(rollout, phases)
    _save_live(rollout, actor, ["state", "next_due_at"])
    _record(
        rollout,
        kind=Kind.SCHEDULED,
        source=source,
        actor=actor,
        at=now,
        due_at=rollout.next_due_at,
        to_phase=0,
        to_percentage=phases[0].percentage,
    )
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    logger.info(
        "rollout.scheduled rollout_id=%s start=%s",
        rollout.id, rollout.next_due_at.isoformat() if rollout.next_due_at else "-",
    )  # fmt: skip
    return rollout


def _save_live(rollout: Rollout, actor: AbstractBaseUser | None, fields: list[str]) -> None:
    """Save a rollout entering a live state; the database allows one per flag and environment."""
    try:
        with transaction.atomic():
            _save(rollout, actor, fields)
    except IntegrityError:
        _check_no_other_live(rollout)
        raise


def _advance_to(
    rollout: Rollout,
    phases: list[Phase],
    index: int,
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    due_at: datetime | None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    """Apply phase `index`: flag rules, phase and rollout facts, events. Caller holds the lock."""
    previous = rollout.current_phase_index
    phase = phases[index]
    phase.applied_at = now
    phase.save(update_fields=["applied_at", "updated_at"])
    rollout.current_phase_index = index
    rollout.phase_started_at = now
    rollout.paused_for = timedelta(0)
    rollout.paused_at = None
    last = index == len(phases) - 1
    if last:
        rollout.state = State.COMPLETED
        rollout.finished_at = now
    rollout.next_due_at = _due(rollout, phases)
    _save(
        rollout,
        actor,
        ["state", "current_phase_index", "phase_started_at", "paused_for", "paused_at",
         "next_due_at", "finished_at"],
    )  # fmt: skip
    lateness = (now - due_at).total_seconds() if due_at is not None else None
    _record(
        rollout,
        kind=Kind.ADVANCED,
        source=source,
        actor=actor,
        at=now,
        due_at=due_at,
        from_phase=previous if previous >= 0 else None,
        to_phase=index,
        from_percentage=_percentage(phases, previous),
        to_percentage=phase.percentage,
        reason=reason,
        data={"phase": phase.name, "segment": phase.segment_id, **(data or {})},
    )
    if last:
        _record(
            rollout,
            kind=Kind.COMPLETED,
            source=source,
            actor=actor,
            at=now,
            to_phase=index,
            to_percentage=phase.percentage,
        )
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    # Last, so the environment row (bumped by flags) is locked for the shortest time.
    state = _apply_exposure(rollout, phase, actor)
    logger.info(
        "rollout.advanced rollout_id=%s key=%s phase=%s percentage=%s source=%s lateness_s=%s "
        "flag_version=%s",
        rollout.id, rollout.key, index, phase.percentage, source,
        f"{lateness:.3f}" if lateness is not None else "-", state.version,
    )  # fmt: skip
    if last:
        logger.info("rollout.completed rollout_id=%s key=%s", rollout.id, rollout.key)


def _start(
    rollout: Rollout,
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    due_at: datetime | None,
) -> None:
    phases = _phases(rollout)
    if not phases:
        raise ApplicationError("A rollout plan needs at least one phase.", field="phases")
    _check_no_other_live(rollout)
    promotion = promotion_blocker(rollout, environment_policy(rollout.environment_id))
    if promotion is not None:
        raise ApplicationError(promotion, field="state", code="promotion")
    state, _ = FlagState.objects.get_or_create(flag=rollout.flag, environment=rollout.environment)
    rollout.captured_state = {
        "enabled": state.enabled,
        "rules": state.rules,
        "version": state.version,
    }
    from_state = rollout.state
    rollout.state = State.RUNNING
    rollout.started_at = now
    _save_live(rollout, actor, ["state", "started_at", "captured_state"])
    _record(
        rollout,
        kind=Kind.STARTED,
        source=source,
        actor=actor,
        at=now,
        due_at=due_at,
        data={"from_state": from_state, "captured_state": rollout.captured_state},
    )
    logger.info("rollout.started rollout_id=%s key=%s source=%s", rollout.id, rollout.key, source)
    _advance_to(rollout, phases, 0, now=now, actor=actor, source=source, due_at=due_at)


@transaction.atomic
def rollout_start(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
    override_window: bool = False,
    reason: str = "",
) -> Rollout:
    """draft/scheduled -> running: capture the flag's state and apply phase 1 now.

    Phase 1's gates (approval, checklist, the release completed in the environment before)
    must be satisfied; inside a freeze window only a person allowed to override it may start,
    with a reason (`override_window=True`).
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.DRAFT, State.SCHEDULED):
        raise _illegal(rollout, "start")
    phases = _phases(rollout)
    if phases:
        _check_gates(rollout, phases[0], "start")
    _check_window(
        rollout, now=now, actor=actor, source=source, doing="start",
        override=override_window, reason=reason,
    )  # fmt: skip
    _start(rollout, now=now, actor=actor, source=source, due_at=None)
    return rollout


def rollout_advance(
    *,
    rollout_id: int,
    expected_phase_index: int,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
    reason: str = "",
) -> bool:
    """The scheduler's step: apply the next phase if it is due. Idempotent.

    Returns False and changes nothing when another worker holds the row, the phase already
    moved (`expected_phase_index` is not the current one), the rollout is not running (or
    scheduled, for the start), the next phase is not due yet, or it waits for a person.
    """
    _source(source)
    now = _now(now)
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("flag", "environment")
            .filter(pk=rollout_id)
            .first()
        )
        if rollout is None or rollout.current_phase_index != expected_phase_index:
            return False
        starting = rollout.state == State.SCHEDULED and expected_phase_index == -1
        if not starting and rollout.state != State.RUNNING:
            return False
        phases = _phases(rollout)
        index = expected_phase_index + 1
        if index >= len(phases):
            return False
        windows = window_specs(rollout.environment_id)
        due = _due(rollout, phases, windows)
        if due != rollout.next_due_at:
            # Windows (or the plan) changed since it was stored: keep the sweep's column true.
            Rollout.objects.filter(pk=rollout.pk).update(next_due_at=due)
        if due is None or due > now or phases[index].gate == Phase.Gate.MANUAL:
            return False
        block = windows_mod.blocking(now, windows)
        if block is not None:
            # Never inside a deny window, whatever the stored due time said.
            Rollout.objects.filter(pk=rollout.pk).update(next_due_at=block.until)
            logger.info("rollout.window_wait rollout_id=%s until=%s", rollout.id, block.until)
            return False
        status = gate_status(rollout, phases[index])
        if not status.satisfied:
            _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
            logger.info(
                "rollout.gated rollout_id=%s phase=%s blockers=%d",
                rollout.id, index, len(status.blockers),
            )  # fmt: skip
            return False
        if starting:
            _start(rollout, now=now, actor=actor, source=source, due_at=due)
            return True
        _advance_to(
            rollout, phases, index, now=now, actor=actor, source=source, due_at=due, reason=reason
        )
        return True


@transaction.atomic
def rollout_advance_now(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str,
    now: datetime | None = None,
    expected_phase_index: int | None = None,
    override_window: bool = False,
) -> Rollout:
    """A person starts the next phase now: skips the remaining soak or passes a manual gate.

    A reason is required to skip a soak; continuing past a due manual gate needs none.
    `expected_phase_index` (the phase the person saw) makes a double click harmless.
    Approvals and checklists of the next phase must be satisfied (nobody bypasses them);
    inside a freeze window `override_window=True` with the permission and a reason does.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state != State.RUNNING:
        raise _illegal(rollout, "advance")
    if expected_phase_index is not None and rollout.current_phase_index != expected_phase_index:
        raise ConflictError(
            f"Rollout {rollout.key} already moved to phase {rollout.current_phase_index + 1}; "
            "reload to see where it is."
        )
    phases = _phases(rollout)
    index = rollout.current_phase_index + 1
    if index >= len(phases):
        raise ApplicationError(
            f"Rollout {rollout.key} is at its last phase; complete it instead.", field="state"
        )
    _check_gates(rollout, phases[index], "advance")
    due = scheduling.next_due_at(rollout, phases)
    skips_soak = due is None or due > now
    reason = (reason or "").strip()
    if skips_soak and not reason:
        raise ApplicationError(
            "Say why the remaining soak is skipped (it is recorded in the event log).",
            field="reason",
        )
    _check_window(
        rollout, now=now, actor=actor, source=source, doing="advance",
        override=override_window, reason=reason,
    )  # fmt: skip
    _advance_to(
        rollout,
        phases,
        index,
        now=now,
        actor=actor,
        source=source,
        due_at=due,
        reason=reason,
        data={"manual": True, "skipped_soak": skips_soak,
              "gate": phases[index].gate},
    )  # fmt: skip
    return rollout


@transaction.atomic
def rollout_pause(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
) -> Rollout:
    """running -> paused: exposure stays, the soak clock stops until resumed."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state != State.RUNNING:
        raise _illegal(rollout, "pause")
    rollout.state = State.PAUSED
    rollout.paused_at = now
    rollout.next_due_at = None
    _save(rollout, actor, ["state", "paused_at", "next_due_at"])
    pct = _percentage(_phases(rollout), rollout.current_phase_index)
    _record(
        rollout,
        kind=Kind.PAUSED,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=rollout.current_phase_index,
        to_phase=rollout.current_phase_index,
        from_percentage=pct,
        to_percentage=pct,
    )
    logger.info("rollout.paused rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


def _finish(
    rollout: Rollout,
    *,
    state: str,
    now: datetime,
    actor: AbstractBaseUser | None,
    extra_fields: tuple[str, ...] = (),
) -> None:
    """Move a rollout to a final state: the clock stops for good and nothing is due."""
    _close_pause(rollout, now)
    rollout.state = state
    rollout.finished_at = now
    rollout.next_due_at = None
    rollout.held_from = ""
    fields = ["state", "finished_at", "next_due_at", "paused_at", "paused_for", "held_from"]
    _save(rollout, actor, [*fields, *extra_fields])


def _close_pause(rollout: Rollout, now: datetime) -> timedelta:
    stopped = timedelta(0)
    if rollout.paused_at is not None:
        stopped = max(now - rollout.paused_at, timedelta(0))
        rollout.paused_for = (rollout.paused_for or timedelta(0)) + stopped
        rollout.paused_at = None
    return stopped


@transaction.atomic
def rollout_resume(
    *, rollout: Rollout, actor: AbstractBaseUser | None, source: str, now: datetime | None = None
) -> Rollout:
    """paused/held -> running: the soak continues where it stopped.

    A person resuming a held rollout clears every active hold (they are listed on the page
    with their causes); one that was held before it started goes back to scheduled.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in STOPPED_STATES:
        raise _illegal(rollout, "resume")
    from_state = rollout.state
    cleared = _clear_holds(
        _active_holds(rollout), now=now, actor=actor, source=source, reason="resumed"
    )
    stopped = _close_pause(rollout, now)
    rollout.state = State.SCHEDULED if rollout.current_phase_index < 0 else State.RUNNING
    rollout.held_from = ""
    phases = _phases(rollout)
    rollout.next_due_at = _due(rollout, phases)
    _save(rollout, actor, ["state", "held_from", "paused_at", "paused_for", "next_due_at"])
    pct = _percentage(phases, rollout.current_phase_index)
    _record(
        rollout,
        kind=Kind.RESUMED,
        source=source,
        actor=actor,
        at=now,
        due_at=rollout.next_due_at,
        from_phase=rollout.current_phase_index,
        to_phase=rollout.current_phase_index,
        from_percentage=pct,
        to_percentage=pct,
        data={
            "from_state": from_state,
            "to_state": rollout.state,
            "stopped_seconds": stopped.total_seconds(),
            "cleared_holds": cleared,
        },
    )
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    logger.info("rollout.resumed rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


@transaction.atomic
def rollout_complete(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
    override_window: bool = False,
    reason: str = "",
) -> Rollout:
    """running/paused/held -> completed: the last phase's exposure applies now.

    Jumping ahead passes every remaining phase, so all their gates must be satisfied; inside
    a freeze window it needs an override with a reason.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.RUNNING, *STOPPED_STATES) or rollout.current_phase_index < 0:
        raise _illegal(rollout, "complete")
    phases = _phases(rollout)
    last = len(phases) - 1
    if rollout.current_phase_index < last:
        policy = environment_policy(rollout.environment_id)
        for phase in phases[rollout.current_phase_index + 1 :]:
            status = gate_status(rollout, phase, policy=policy)
            if not status.satisfied:
                raise ApplicationError(
                    f"Cannot complete rollout {rollout.key}: "
                    + " ".join(status.blockers)
                    + " Advance through the gated phases instead.",
                    field="gates",
                    code="gated",
                )
        _check_window(
            rollout, now=now, actor=actor, source=source, doing="complete",
            override=override_window, reason=reason,
        )  # fmt: skip
    cleared = _clear_holds(
        _active_holds(rollout), now=now, actor=actor, source=source, reason="completed"
    )
    rollout.held_from = ""
    _close_pause(rollout, now)
    if rollout.current_phase_index < last:
        skipped = list(range(rollout.current_phase_index + 1, last))
        _advance_to(
            rollout, phases, last, now=now, actor=actor, source=source, due_at=None,
            reason=reason, data={"manual": True, "skipped_phases": skipped,
                                 "cleared_holds": cleared},
        )  # fmt: skip
        return rollout
    # Already at the last phase (its plan was shortened): only the state changes.
    _finish(rollout, state=State.COMPLETED, now=now, actor=actor)
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    _record(
        rollout,
        kind=Kind.COMPLETED,
        source=source,
        actor=actor,
        at=now,
        to_phase=rollout.current_phase_index,
        to_percentage=_percentage(phases, rollout.current_phase_index),
    )
    logger.info("rollout.completed rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


@transaction.atomic
def rollout_cancel(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
) -> Rollout:
    """Stop the plan. Before the start nothing changed; a running rollout leaves the flag's
    current exposure as it is (roll back to undo it)."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.DRAFT, *LIVE_STATES):
        raise _illegal(rollout, "cancel")
    from_state = rollout.state
    cleared = _clear_holds(
        _active_holds(rollout), now=now, actor=actor, source=source, reason="cancelled"
    )
    _finish(rollout, state=State.CANCELLED, now=now, actor=actor)
    phases = _phases(rollout)
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    pct = _percentage(phases, rollout.current_phase_index)
    _record(
        rollout,
        kind=Kind.CANCELLED,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=rollout.current_phase_index if rollout.current_phase_index >= 0 else None,
        from_percentage=pct,
        to_percentage=pct,
        data={"from_state": from_state, "cleared_holds": cleared},
    )
    logger.info("rollout.cancelled rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


@transaction.atomic
def rollout_rollback(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
    mode: str = Rollout.RollbackMode.RESTORE,
) -> Rollout:
    """running/paused/held/completed -> rolled back.

    `mode` "restore" (default): the flag's captured state returns at once. "freeze": the plan
    stops and the exposure stays where it is (not for canary and blue/green, which always
    switch back at once, nor for a completed rollout, whose exposure is already full).
    """
    _source(source)
    now = _now(now)
    if mode not in Rollout.RollbackMode.values:
        raise ApplicationError(
            f"Unknown rollback mode {mode!r}; use restore or freeze.", field="mode"
        )
    rollout = _lock(rollout)
    if rollout.state not in (State.RUNNING, *STOPPED_STATES, State.COMPLETED) or (
        rollout.current_phase_index < 0
    ):
        raise _illegal(rollout, "roll back")
    freeze = mode == Rollout.RollbackMode.FREEZE
    if freeze and rollout.strategy in INSTANT_ROLLBACK:
        raise ApplicationError(
            f"A {rollout.get_strategy_display().lower()} rollout rolls back at once to the "
            "previous version; it cannot be frozen at its current exposure.",
            field="mode",
        )
    if freeze and rollout.state == State.COMPLETED:
        raise ApplicationError(
            f"Rollout {rollout.key} is complete: freezing keeps the full exposure. Restore the "
            "rules from before the rollout instead.",
            field="mode",
        )
    captured = rollout.captured_state
    if not freeze and not isinstance(captured, dict):
        raise ApplicationError(
            f"Rollout {rollout.key} has no captured flag state to restore.", field="state"
        )
    from_state = rollout.state
    cleared = _clear_holds(
        _active_holds(rollout), now=now, actor=actor, source=source, reason="rolled back"
    )
    rollout.rollback_mode = mode
    _finish(rollout, state=State.ROLLED_BACK, now=now, actor=actor, extra_fields=("rollback_mode",))
    phases = _phases(rollout)
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    current = _percentage(phases, rollout.current_phase_index)
    data: dict[str, Any] = {"from_state": from_state, "mode": mode, "cleared_holds": cleared}
    if freeze:
        _record(
            rollout,
            kind=Kind.ROLLED_BACK,
            source=source,
            actor=actor,
            at=now,
            reason=reason,
            from_phase=rollout.current_phase_index,
            to_phase=rollout.current_phase_index,
            from_percentage=current,
            to_percentage=current,
            data=data,
        )
        logger.info(
            "rollout.rolled_back rollout_id=%s key=%s source=%s mode=freeze",
            rollout.id, rollout.key, source,
        )  # fmt: skip
        return rollout
    assert isinstance(captured, dict)
    rules, dropped = _restorable_rules(list(captured.get("rules") or []))
    _record(
        rollout,
        kind=Kind.ROLLED_BACK,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=rollout.current_phase_index,
        from_percentage=current,
        to_percentage=0,
        data={**data, "restored": captured, "dropped_rules": dropped},
    )
    flag_state_update(
        flag=rollout.flag,
        environment=rollout.environment,
        actor=actor,
        enabled=bool(captured.get("enabled")),
        rules=rules,
    )
    logger.info(
        "rollout.rolled_back rollout_id=%s key=%s source=%s mode=restore",
        rollout.id, rollout.key, source,
    )  # fmt: skip
    return rollout


# --------------------------------------------------------------------------------------------
# Holds


@transaction.atomic
def rollout_hold(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str,
    now: datetime | None = None,
    kind: str = Hold.Kind.MANUAL,
) -> Rollout:
    """Hold a scheduled, running or paused rollout: the clock stops, exposure stays.

    Several holds can be active at once (each with its reason); the rollout runs again only
    when a person resumes it (which clears them all) or, after its last hold is cleared, when
    its alert policy says auto-resume.
    """
    _source(source)
    now = _now(now)
    if kind not in Hold.Kind.values:
        raise ApplicationError(f"Unknown hold reason {kind!r}.", field="kind")
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(
            "Say why the rollout is held (people see it until the hold is cleared).",
            field="reason",
        )
    rollout = _lock(rollout)
    _hold(rollout, kind=kind, reason=reason, source=source, actor=actor, now=now)
    return rollout


@transaction.atomic
def rollout_hold_clear(
    *,
    hold: Hold,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
    auto_resume: bool = False,
) -> Rollout:
    """Clear one hold (idempotent). When it was the last one the rollout stays stopped
    (paused: a person resumes it), unless `auto_resume` and it was running (or scheduled)
    before it was held."""
    _source(source)
    now = _now(now)
    rollout = _lock(hold.rollout)
    hold = Hold.objects.select_for_update().get(pk=hold.pk)
    if hold.cleared_at is not None:
        return rollout
    hold.cleared_at = now
    hold.cleared_by = _user(actor)
    hold.cleared_source = source
    hold.clear_reason = (reason or "").strip()
    hold.save(
        update_fields=["cleared_at", "cleared_by", "cleared_source", "clear_reason", "updated_at"]
    )
    remaining = rollout.holds.filter(cleared_at__isnull=True).count()
    auto_resumed = False
    fields: list[str] = []
    if rollout.state == State.HELD and not remaining:
        back = rollout.held_from or State.PAUSED
        if auto_resume and back in (State.RUNNING, State.SCHEDULED):
            _close_pause(rollout, now)
            rollout.state = back
            auto_resumed = True
            fields += ["paused_at", "paused_for"]
        else:
            rollout.state = State.PAUSED
        rollout.held_from = ""
        phases = _phases(rollout)
        rollout.next_due_at = _due(rollout, phases)
        _save(rollout, actor, ["state", "held_from", "next_due_at", *fields])
        if auto_resumed:
            _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    pct = _percentage(_phases(rollout), rollout.current_phase_index)
    index = rollout.current_phase_index if rollout.current_phase_index >= 0 else None
    _record(
        rollout,
        kind=Kind.HOLD_CLEARED,
        source=source,
        actor=actor,
        at=now,
        reason=hold.clear_reason,
        due_at=rollout.next_due_at,
        from_phase=index,
        to_phase=index,
        from_percentage=pct,
        to_percentage=pct,
        data={
            "hold_id": hold.id,
            "hold_kind": hold.kind,
            "to_state": rollout.state,
            "remaining_holds": remaining,
            "auto_resumed": auto_resumed,
            **({"fingerprint": hold.alert_fingerprint, "alert": hold.alert_name}
               if hold.kind == Hold.Kind.ALERT else {}),
        },
    )  # fmt: skip
    logger.info(
        "rollout.hold_cleared rollout_id=%s hold_id=%s kind=%s to_state=%s remaining=%d",
        rollout.id, hold.id, hold.kind, rollout.state, remaining,
    )  # fmt: skip
    return rollout


def new_alert_secret() -> str:
    return secrets.token_urlsafe(32)


_MATCHER = re.compile(
    r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$'
)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matchers(text: str) -> list[Matcher]:
    """Alertmanager-style matchers, one a line or comma-separated in braces:
    `service="checkout"`, `severity=~"critical|page"`, `env!="dev"`."""
    lines = [line.strip().removeprefix("{").removesuffix("}") for line in (text or "").splitlines()]
    parts = [p for line in lines for p in _split_matchers(line)]
    matchers: list[Matcher] = []
    for number, part in enumerate(parts, start=1):
        found = _MATCHER.match(part)
        if not found:
            raise ApplicationError(
                f'Matcher {number} ({part.strip()[:60]!r}) is not like name="value" '
                "(operators =, !=, =~, !~).",
                field="alert_matchers",
            )
        name, op, quoted, bare = found.groups()
        value = quoted.replace('\\"', '"').replace("\\\\", "\\") if quoted is not None else bare
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ApplicationError(
                    f"Matcher {number}: {value!r} is not a valid regular expression ({exc}).",
                    field="alert_matchers",
                ) from None
        matchers.append(Matcher(name, op, value))
    if len(matchers) > 20:
        raise ApplicationError("At most 20 matchers.", field="alert_matchers")
    return matchers


def _split_matchers(line: str) -> list[str]:
    """Split on commas outside double quotes."""
    parts, current, quoted, escaped = [], [], False, False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\":
            escaped = True
            current.append(char)
            continue
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def normalize_matchers(text: str) -> str:
    """Validated matchers, one a line, in their canonical form."""
    return "\n".join(str(m) for m in parse_matchers(text))


def _restorable_rules(rules: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The captured rules, minus those naming a segment deleted since the capture.

    Such a rule matches nobody (a missing segment is false), so dropping it restores the same
    behaviour, and the rollback cannot be refused for it. Returns (rules, dropped positions).
    """
    wanted = {s for rule in rules for s in rule.get("segments") or []}
    if not wanted:
        return rules, []
    existing = set(Segment.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    kept, dropped = [], []
    for position, rule in enumerate(rules, start=1):
        if set(rule.get("segments") or []) <= existing:
            kept.append(rule)
        else:
            dropped.append(position)
    return kept, dropped


# --------------------------------------------------------------------------------------------
# Scheduler


def rollouts_due(*, now: datetime | None = None, limit: int | None = None) -> list[tuple[int, int]]:
    """(rollout id, current phase index) of rollouts the clock may move now, oldest due first.

    Running or scheduled, due (`next_due_at` already waits for freeze windows), the next
    phase's gate is automatic, no approval of it is pending, its checklist is ticked, and a
    scheduled start does not wait for the release in another environment. One query.
    """
    now = _now(now)
    next_order = OuterRef("current_phase_index") + 1
    automatic_next = Phase.objects.filter(
        rollout=OuterRef("pk"), order=next_order, gate=Phase.Gate.AUTOMATIC
    )
    pending_approval = Approval.objects.filter(
        rollout=OuterRef("pk"), phase__order=next_order, state=Approval.State.PENDING
    )
    open_checklist = ChecklistItem.objects.filter(
        phase__rollout=OuterRef("pk"), phase__order=next_order, ticked_at__isnull=True
    )
    completed_there = Rollout.objects.filter(
        release=OuterRef(OuterRef("release")),
        environment=OuterRef("requires_completed_in"),
        state=State.COMPLETED,
    )
    promotion_pending = ApprovalPolicy.objects.filter(
        environment=OuterRef("environment"), requires_completed_in__isnull=False
    ).exclude(Exists(completed_there))
    qs = (
        Rollout.objects.filter(state__in=(State.RUNNING, State.SCHEDULED), next_due_at__lte=now)
        .filter(Exists(automatic_next))
        .exclude(Exists(pending_approval))
        .exclude(Exists(open_checklist))
        .exclude(Q(state=State.SCHEDULED) & Q(Exists(promotion_pending)))
        .order_by("next_due_at", "id")
        .values_list("id", "current_phase_index")
    )
    if limit is not None:
        qs = qs[:limit]
    return list(qs)


def rollouts_advance_due(*, now: datetime | None = None, limit: int | None = None) -> int:
    """The sweep body, inline: advance every due rollout one phase. Returns how many moved."""
    return rollouts_advance_steps(steps=rollouts_due(now=now, limit=limit), now=now)


def rollouts_advance_steps(*, steps: Iterable[Sequence[int]], now: datetime | None = None) -> int:
    """Advance each (rollout id, expected phase index) if still due; returns how many moved.

    Each step is its own transaction (`rollout_advance`); consumers hear about the events in
    one batch. `now` fixes the time (tests); otherwise each step records when it applied.
    """
    moved = 0
    with events_batched():
        for rollout_id, index in steps:
            try:
                moved += rollout_advance(
                    rollout_id=int(rollout_id),
                    expected_phase_index=int(index),
                    actor=None,
                    source=Source.SCHEDULER,
                    now=now,
                )
            except ApplicationError as exc:
                # A rule now forbids the step (e.g. its segment is gone): a person must look;
                # the other rollouts go on.
                logger.warning(
                    "rollout.advance_failed rollout_id=%s phase=%s error=%s",
                    rollout_id, int(index) + 1, exc.message,
                )  # fmt: skip
    return moved


# --------------------------------------------------------------------------------------------
# What a person may do


def allowed_actions(rollout: Rollout) -> set[str]:
    """The actions the rollout's state allows (permissions are checked by the views).

    Uses `rollout.phases.all()`: prefetch phases when calling this for many rollouts.
    """
    state = rollout.state
    if state == State.DRAFT:
        return {"edit_plan", "schedule", "start", "cancel"}
    if state == State.SCHEDULED:
        return {"edit_plan", "start", "cancel", "hold"}
    if state == State.RUNNING:
        actions = {"edit_plan", "pause", "complete", "cancel", "rollback", "hold"}
        if rollout.current_phase_index + 1 < len(rollout.phases.all()):
            actions.add("advance_now")
        return actions
    if state in STOPPED_STATES:
        if rollout.current_phase_index < 0:  # held before it started
            return {"edit_plan", "resume", "cancel", "hold"}
        return {"edit_plan", "resume", "complete", "cancel", "rollback", "hold"}
    if state == State.COMPLETED:
        return {"rollback"}
    return set()


def rollout_exposure(rollout: Rollout) -> int | None:
    """The percentage the rollout applies now (None before the start or audience-only)."""
    if rollout.state in (State.DRAFT, State.SCHEDULED, State.CANCELLED) and (
        rollout.current_phase_index < 0
    ):
        return None
    if rollout.state == State.ROLLED_BACK and rollout.rollback_mode != Rollout.RollbackMode.FREEZE:
        return 0
    phases = list(rollout.phases.all())
    index = rollout.current_phase_index
    return phases[index].percentage if 0 <= index < len(phases) else None


__all__ = [
    "ACTIONS",
    "GateStatus",
    "allowed_actions",
    "approval_rule",
    "environment_policy",
    "events_batched",
    "events_committed",
    "gate_status",
    "normalize_matchers",
    "parse_matchers",
    "promotion_blocker",
    "release_create",
    "release_update",
    "rollout_advance",
    "rollout_advance_now",
    "rollout_cancel",
    "rollout_complete",
    "rollout_create",
    "rollout_exposure",
    "rollout_hold",
    "rollout_hold_clear",
    "rollout_pause",
    "rollout_plan_update",
    "rollout_resume",
    "rollout_rollback",
    "rollout_schedule",
    "rollout_start",
    "rollouts_advance_due",
    "rollouts_advance_steps",
    "rollouts_due",
    "window_specs",
]
