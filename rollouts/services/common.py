"""Shared bookkeeping of every rollout service: states, locking, saving, clocks, actors.

Nothing here changes a rollout on its own; the services in the sibling modules use these to
lock the row, check the state they expect and save with a new version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.contrib.auth.models import AbstractBaseUser, User
from django.utils import timezone

from core.exceptions import ApplicationError, ConflictError
from rollouts.models import Phase, Rollout, RolloutEvent

State = Rollout.State
Source = RolloutEvent.Source
LIVE_STATES = (State.SCHEDULED, State.RUNNING, State.PAUSED, State.HELD)
STOPPED_STATES = (State.PAUSED, State.HELD)
OVERRIDE_PERMISSION = "rollouts.override_freeze"
APPROVE_PERMISSION = "rollouts.approve_rollout"


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def _user(actor: AbstractBaseUser | None) -> User | None:
    """The person behind an action, or None (the system, or nobody signed in)."""
    return actor if isinstance(actor, User) and actor.is_authenticated else None


def _may(actor: AbstractBaseUser | None, perm: str) -> bool:
    user = _user(actor)
    return bool(user is not None and user.has_perm(perm))


def _source(source: str) -> str:
    if source not in Source.values:
        raise ApplicationError(f"Unknown event source {source!r}.", field="source")
    return source


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


def _illegal(rollout: Rollout, doing: str) -> ApplicationError:
    hints: dict[str, str] = {
        State.DRAFT: "start or schedule it first",
        State.SCHEDULED: "start it now or wait for its start time",
        State.PAUSED: "resume it first",
        State.HELD: "it is held; resume it once the cause is cleared",
        State.COMPLETED: "it has finished",
        State.ROLLED_BACK: "it was rolled back; create a new rollout to try again",
        State.CANCELLED: "it was cancelled; create a new rollout to try again",
    }
    hint = hints.get(rollout.state, "")
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


def _close_pause(rollout: Rollout, now: datetime) -> timedelta:
    stopped = timedelta(0)
    if rollout.paused_at is not None:
        stopped = max(now - rollout.paused_at, timedelta(0))
        rollout.paused_for = (rollout.paused_for or timedelta(0)) + stopped
        rollout.paused_at = None
    return stopped


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
