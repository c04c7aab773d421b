"""Freeze and allowed-hours windows as services: the due time they move, the check on a
person's move inside one (and its override), and the windows admins create, edit and delete.

Windows delay the *clock*: `next_due_at` is the next allowed moment, the scheduler never
moves a rollout inside a deny window, and a person needs `override_freeze` and a reason to
start, advance or complete inside one (recorded as an `override` event). The time arithmetic
itself is pure and lives in `rollouts.windows`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.exceptions import ApplicationError
from core.when import format_datetime
from flags.models import Environment
from rollouts import scheduling
from rollouts import windows as windows_mod
from rollouts.models import FreezeWindow, Phase, Rollout, RolloutEvent
from rollouts.services.common import OVERRIDE_PERMISSION, _may, _now, _timezone, _user
from rollouts.services.events import _record
from rollouts.windows import WindowSpec

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind


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


def _local_words(at: datetime | None) -> str:
    """In the zone of whoever reads it (the viewer's on a page; UTC for the API, tasks)."""
    if at is None:
        return "with no allowed moment in the next year"
    return f"until {format_datetime(at)}"


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
    when = _local_words(block.until)
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


def _clean_window(
    *,
    name: str,
    kind: str,
    timezone_name: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    cron: str,
    duration: timedelta | None,
) -> dict[str, Any]:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the window a name.", field="name")
    if len(name) > 100:
        raise ApplicationError("The name is longer than 100 characters.", field="name")
    if kind not in FreezeWindow.Kind.values:
        raise ApplicationError("A window is a freeze (deny) or allowed hours.", field="kind")
    tz = _timezone(timezone_name or "UTC")
    cron = " ".join((cron or "").split())
    if cron:
        if not windows_mod.valid_cron(cron):
            raise ApplicationError(
                f"{cron!r} is not a cron expression with 5 fields (minute hour day month "
                "weekday), e.g. 0 9 * * 1-5.",
                field="cron",
            )
        if duration is None or duration <= timedelta(0):
            raise ApplicationError(
                "Give each occurrence a duration, e.g. 7 hours.", field="duration"
            )
        if duration > timedelta(days=31):
            raise ApplicationError("An occurrence lasts at most 31 days.", field="duration")
        return {
            "name": name,
            "kind": kind,
            "timezone": tz.key,
            "cron": cron,
            "duration": duration,
            "starts_at": None,
            "ends_at": None,
        }
    if starts_at is None or ends_at is None:
        raise ApplicationError(
            "Give a start and an end, or a cron expression and a duration.", field="starts_at"
        )
    if timezone.is_naive(starts_at):
        starts_at = starts_at.replace(tzinfo=tz)
    if timezone.is_naive(ends_at):
        ends_at = ends_at.replace(tzinfo=tz)
    if ends_at <= starts_at:
        raise ApplicationError("The window ends before it starts.", field="ends_at")
    return {
        "name": name,
        "kind": kind,
        "timezone": tz.key,
        "cron": "",
        "duration": None,
        "starts_at": starts_at,
        "ends_at": ends_at,
    }


def _recompute_due(environment_id: int | None, *, now: datetime) -> int:
    """Windows changed: store the new next allowed moment of every clock-driven rollout they
    apply to (all environments for a global window). Returns how many changed."""
    # Lock them (in id order) so a scheduler step cannot interleave with the new due times.
    qs = (
        Rollout.objects.filter(state__in=(State.SCHEDULED, State.RUNNING))
        .select_for_update(of=("self",))
        .select_related("environment")
        .prefetch_related("phases")
        .order_by("id")
    )
    if environment_id is not None:
        qs = qs.filter(environment_id=environment_id)
    specs: dict[int, list[windows_mod.WindowSpec]] = {}
    changed: list[Rollout] = []
    for rollout in qs:
        env_id = rollout.environment_id
        if env_id not in specs:
            specs[env_id] = window_specs(env_id)
        due = _due(rollout, list(rollout.phases.all()), specs[env_id])
        if due != rollout.next_due_at:
            rollout.next_due_at = due
            changed.append(rollout)
    if changed:
        Rollout.objects.bulk_update(changed, ["next_due_at"])
    logger.info(
        "windows.recomputed environment_id=%s rollouts=%d", environment_id or "all", len(changed)
    )
    return len(changed)


@transaction.atomic
def window_create(
    *,
    name: str,
    kind: str = FreezeWindow.Kind.DENY,
    environment: Environment | None = None,
    timezone_name: str = "UTC",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    cron: str = "",
    duration: timedelta | None = None,
    reason: str = "",
    is_active: bool = True,
    actor: AbstractBaseUser | None,
    now: datetime | None = None,
) -> FreezeWindow:
    """A deny or allow window; due times of the rollouts it applies to move at once."""
    clean = _clean_window(
        name=name, kind=kind, timezone_name=timezone_name, starts_at=starts_at,
        ends_at=ends_at, cron=cron, duration=duration,
    )  # fmt: skip
    window = FreezeWindow(
        **clean,
        environment=environment,
        reason=(reason or "").strip(),
        is_active=is_active,
        created_by=_user(actor),
    )
    user = _user(actor)
    if user is not None:
        window._history_user = user  # type: ignore[attr-defined]
    window.save()
    _recompute_due(window.environment_id, now=_now(now))
    logger.info("window.created window_id=%s kind=%s name=%s", window.id, window.kind, window.name)
    return window


@transaction.atomic
def window_update(
    *,
    window: FreezeWindow,
    actor: AbstractBaseUser | None,
    now: datetime | None = None,
    **fields: Any,
) -> FreezeWindow:
    allowed = {
        "name", "kind", "environment", "timezone_name", "starts_at", "ends_at", "cron",
        "duration", "reason", "is_active",
    }  # fmt: skip
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(f"A window has no field(s) {', '.join(sorted(unknown))}.")
    window = FreezeWindow.objects.select_for_update().get(pk=window.pk)
    before_env = window.environment_id
    current = {
        "name": window.name,
        "kind": window.kind,
        "timezone_name": window.timezone,
        "starts_at": window.starts_at,
        "ends_at": window.ends_at,
        "cron": window.cron,
        "duration": window.duration,
    }
    merged = {**current, **{k: v for k, v in fields.items() if k in current}}
    if "cron" in fields and not fields["cron"]:
        merged["duration"] = fields.get("duration")
    if fields.get("cron"):
        merged["starts_at"] = merged["ends_at"] = None
    for name, value in _clean_window(**merged).items():
        setattr(window, name, value)
    if "environment" in fields:
        window.environment = fields["environment"]
    if "reason" in fields:
        window.reason = (fields["reason"] or "").strip()
    if "is_active" in fields:
        window.is_active = bool(fields["is_active"])
    user = _user(actor)
    if user is not None:
        window._history_user = user  # type: ignore[attr-defined]
    window.save()
    now = _now(now)
    if before_env != window.environment_id and before_env is not None:
        _recompute_due(before_env, now=now)
    _recompute_due(window.environment_id, now=now)
    logger.info("window.updated window_id=%s", window.id)
    return window


@transaction.atomic
def window_delete(
    *, window: FreezeWindow, actor: AbstractBaseUser | None, now: datetime | None = None
) -> None:
    environment_id = window.environment_id
    window_id = window.id
    user = _user(actor)
    if user is not None:
        window._history_user = user  # type: ignore[attr-defined]
    window.delete()
    _recompute_due(environment_id, now=_now(now))
    logger.info("window.deleted window_id=%s", window_id)
