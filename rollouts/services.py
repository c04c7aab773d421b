"""Every write to releases and rollouts goes through here (UI, API, admin, scheduler, alerts).

Each transition locks the rollout row, checks the state it expects, changes the flag through
`flags.services` and writes a `RolloutEvent`, all in one transaction. The scheduler path
(`rollout_advance`) additionally skips rows another worker holds and checks the expected
phase, so duplicate ticks, retries and several workers never advance a phase twice.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.dispatch import Signal
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_duration
from django.utils.text import slugify

from core.exceptions import ApplicationError, ConflictError
from flags.models import Environment, Flag, FlagState, Segment
from flags.services import flag_create, flag_state_update
from rollouts import scheduling, strategies
from rollouts.models import Phase, Release, Rollout, RolloutEvent

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind
Source = RolloutEvent.Source

ACTIONS = frozenset(
    {"edit_plan", "schedule", "start", "pause", "resume", "advance_now", "complete", "cancel",
     "rollback"}
)  # fmt: skip
LIVE_STATES = (State.SCHEDULED, State.RUNNING, State.PAUSED, State.HELD)
STOPPED_STATES = (State.PAUSED, State.HELD)

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
            }
        )
    return clean


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
        }
        if i < len(existing):
            phase = existing[i]
            if any(getattr(phase, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(phase, k, v)
                phase.save()
        else:
            phase = Phase.objects.create(rollout=rollout, order=i, **values)
        result.append(phase)
    if len(existing) > len(clean):
        Phase.objects.filter(rollout=rollout, order__gte=len(clean)).delete()
    return result


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
_RESERVED_KEYS = {"templates", "new", "create", "releases", "events"}

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
) -> Rollout:
    """A draft rollout of `release` in `environment`; `phases` or `template` fill the plan."""
    _source(source)
    spec = strategies.strategy(strategy)
    tz = _timezone(timezone)
    if alert_policy not in Rollout.AlertPolicy.values:
        raise ApplicationError(f"Unknown alert policy {alert_policy!r}.", field="alert_policy")
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
    rollout.next_due_at = scheduling.next_due_at(rollout, stored)
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
    rollout.next_due_at = scheduling.next_due_at(rollout, phases)
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
    logger.info(
        "rollout.scheduled rollout_id=%s start=%s", rollout.id, rollout.next_due_at.isoformat()
    )
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
    rollout.next_due_at = scheduling.next_due_at(rollout, phases)
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
    *, rollout: Rollout, actor: AbstractBaseUser | None, source: str, now: datetime | None = None
) -> Rollout:
    """draft/scheduled -> running: capture the flag's state and apply phase 1 now."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.DRAFT, State.SCHEDULED):
        raise _illegal(rollout, "start")
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
        if rollout.state == State.SCHEDULED and expected_phase_index == -1:
            phases = _phases(rollout)
            due = scheduling.next_due_at(rollout, phases)
            if not phases or due is None or due > now or phases[0].gate == Phase.Gate.MANUAL:
                return False
            _start(rollout, now=now, actor=actor, source=source, due_at=due)
            return True
        if rollout.state != State.RUNNING:
            return False
        phases = _phases(rollout)
        index = expected_phase_index + 1
        if index >= len(phases):
            return False
        due = scheduling.next_due_at(rollout, phases)
        if due is None or due > now or phases[index].gate == Phase.Gate.MANUAL:
            return False
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
) -> Rollout:
    """A person starts the next phase now: skips the remaining soak or passes a manual gate.

    A reason is required to skip a soak; continuing past a due manual gate needs none.
    `expected_phase_index` (the phase the person saw) makes a double click harmless.
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
    due = scheduling.next_due_at(rollout, phases)
    skips_soak = due is None or due > now
    reason = (reason or "").strip()
    if skips_soak and not reason:
        raise ApplicationError(
            "Say why the remaining soak is skipped (it is recorded in the event log).",
            field="reason",
        )
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
    """paused/held -> running: the soak continues where it stopped."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in STOPPED_STATES:
        raise _illegal(rollout, "resume")
    from_state = rollout.state
    stopped = _close_pause(rollout, now)
    rollout.state = State.RUNNING
    phases = _phases(rollout)
    rollout.next_due_at = scheduling.next_due_at(rollout, phases)
    _save(rollout, actor, ["state", "paused_at", "paused_for", "next_due_at"])
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
        data={"from_state": from_state, "stopped_seconds": stopped.total_seconds()},
    )
    logger.info("rollout.resumed rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


@transaction.atomic
def rollout_complete(
    *, rollout: Rollout, actor: AbstractBaseUser | None, source: str, now: datetime | None = None
) -> Rollout:
    """running/paused/held -> completed: the last phase's exposure applies now."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.RUNNING, *STOPPED_STATES):
        raise _illegal(rollout, "complete")
    phases = _phases(rollout)
    _close_pause(rollout, now)
    last = len(phases) - 1
    if rollout.current_phase_index < last:
        skipped = list(range(rollout.current_phase_index + 1, last))
        _advance_to(
            rollout, phases, last, now=now, actor=actor, source=source, due_at=None,
            data={"manual": True, "skipped_phases": skipped},
        )  # fmt: skip
        return rollout
    # Already at the last phase (its plan was shortened): only the state changes.
    rollout.state = State.COMPLETED
    rollout.finished_at = now
    rollout.next_due_at = None
    _save(rollout, actor, ["state", "finished_at", "next_due_at", "paused_at", "paused_for"])
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
    _close_pause(rollout, now)
    rollout.state = State.CANCELLED
    rollout.finished_at = now
    rollout.next_due_at = None
    _save(rollout, actor, ["state", "finished_at", "next_due_at", "paused_at", "paused_for"])
    pct = _percentage(_phases(rollout), rollout.current_phase_index)
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
        data={"from_state": from_state},
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
) -> Rollout:
    """running/paused/held/completed -> rolled back: the flag's captured state returns at once."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.RUNNING, *STOPPED_STATES, State.COMPLETED):
        raise _illegal(rollout, "roll back")
    captured = rollout.captured_state
    if not isinstance(captured, dict):
        raise ApplicationError(
            f"Rollout {rollout.key} has no captured flag state to restore.", field="state"
        )
    from_state = rollout.state
    rules, dropped = _restorable_rules(list(captured.get("rules") or []))
    _close_pause(rollout, now)
    rollout.state = State.ROLLED_BACK
    rollout.finished_at = now
    rollout.next_due_at = None
    _save(rollout, actor, ["state", "finished_at", "next_due_at", "paused_at", "paused_for"])
    _record(
        rollout,
        kind=Kind.ROLLED_BACK,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=rollout.current_phase_index,
        from_percentage=_percentage(_phases(rollout), rollout.current_phase_index),
        to_percentage=0,
        data={"from_state": from_state, "restored": captured, "dropped_rules": dropped},
    )
    flag_state_update(
        flag=rollout.flag,
        environment=rollout.environment,
        actor=actor,
        enabled=bool(captured.get("enabled")),
        rules=rules,
    )
    logger.info(
        "rollout.rolled_back rollout_id=%s key=%s source=%s", rollout.id, rollout.key, source
    )
    return rollout


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

    Running or scheduled, due, and the next phase's gate is automatic. One indexed query.
    """
    now = _now(now)
    automatic_next = Phase.objects.filter(
        rollout=OuterRef("pk"),
        order=OuterRef("current_phase_index") + 1,
        gate=Phase.Gate.AUTOMATIC,
    )
    qs = (
        Rollout.objects.filter(state__in=(State.RUNNING, State.SCHEDULED), next_due_at__lte=now)
        .filter(Exists(automatic_next))
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
        return {"edit_plan", "start", "cancel"}
    if state == State.RUNNING:
        actions = {"edit_plan", "pause", "complete", "cancel", "rollback"}
        if rollout.current_phase_index + 1 < len(rollout.phases.all()):
            actions.add("advance_now")
        return actions
    if state in STOPPED_STATES:
        return {"edit_plan", "resume", "complete", "cancel", "rollback"}
    if state == State.COMPLETED:
        return {"rollback"}
    return set()


def rollout_exposure(rollout: Rollout) -> int | None:
    """The percentage the rollout applies now (None before the start or audience-only)."""
    if rollout.state in (State.DRAFT, State.SCHEDULED, State.CANCELLED) and (
        rollout.current_phase_index < 0
    ):
        return None
    if rollout.state == State.ROLLED_BACK:
        return 0
    phases = list(rollout.phases.all())
    index = rollout.current_phase_index
    return phases[index].percentage if 0 <= index < len(phases) else None


__all__ = [
    "ACTIONS",
    "allowed_actions",
    "events_batched",
    "events_committed",
    "release_create",
    "release_update",
    "rollout_advance",
    "rollout_advance_now",
    "rollout_cancel",
    "rollout_complete",
    "rollout_create",
    "rollout_exposure",
    "rollout_pause",
    "rollout_plan_update",
    "rollout_resume",
    "rollout_rollback",
    "rollout_schedule",
    "rollout_start",
    "rollouts_advance_due",
    "rollouts_advance_steps",
    "rollouts_due",
]
