"""Rollout plans: creating a draft rollout (its flag, key and phases from a template or as
given) and changing its plan. Phases are validated here, field by field, with errors that
name the field ("phases.<index>.<field>"); phases already applied keep their exposure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_duration
from django.utils.text import slugify

from core.exceptions import ApplicationError
from core.when import format_datetime
from flags.models import Environment, Flag, FlagState, Segment
from flags.services import flag_create, flag_state_update, through_rollout
from rollouts import strategies
from rollouts.models import Approval, ChecklistItem, Phase, Release, Rollout, RolloutEvent
from rollouts.services.alerts import new_alert_secret, normalize_matchers
from rollouts.services.checks import checks_from_template
from rollouts.services.common import (
    _check_version,
    _illegal,
    _lock,
    _now,
    _phases,
    _save,
    _source,
    _timezone,
    _user,
)
from rollouts.services.events import _record
from rollouts.services.gates import _refresh_gates
from rollouts.services.lifecycle import _check_schedulable
from rollouts.services.windows import _due

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind


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
    moment: datetime = value
    if timezone.is_naive(moment):
        # A wall-clock time in the plan's time zone.
        moment = moment.replace(tzinfo=tz)
    return moment


def _segment_ref(value: Any) -> Any:
    """A phase's segment as given: a Segment becomes its id; anything else stays as it is."""
    return value.pk if isinstance(value, Segment) else value


def _clean_phases(
    phases: Any, *, strategy_key: str, tz: ZoneInfo, allow_decreasing: bool
) -> list[dict[str, Any]]:
    """Validate plan phases; errors name the field as "phases.<index>.<field>"."""
    if not isinstance(phases, list | tuple) or not phases:
        raise ApplicationError("A rollout plan needs at least one phase.", field="phases")
    spec = strategies.strategy(strategy_key)
    segment_refs = {_segment_ref(p.get("segment")) for p in phases if isinstance(p, dict)} - {None}
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
                # In the plan's zone: the one the editor's start times are typed in.
                local = format_datetime(previous_at, tz)
                raise ApplicationError(
                    f"{label}: starts before an earlier phase ({local}); phases start in order.",
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
    owner: User | None = None,
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
    checks_from_template(phases=stored, raw_phases=list(phases))
    release.flags.add(flag_obj)
    _answer_old_version(rollout, actor)
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


def _answer_old_version(rollout: Rollout, actor: AbstractBaseUser | None) -> None:
    """A flag that answers a value (blue/green) and has no rules yet answers blue explicitly."""
    if not strategies.answers_a_value(rollout.strategy):
        return
    state = FlagState.objects.filter(flag=rollout.flag, environment=rollout.environment).first()
    if state is not None and (
        state.rules
        or strategies.answers_explicitly(rollout.strategy, enabled=state.enabled, rules=state.rules)
    ):
        return  # configured by someone: leave it
    with through_rollout():  # answers the old version: exposes nobody to the new one
        flag_state_update(
            flag=rollout.flag,
            environment=rollout.environment,
            actor=actor,
            enabled=True,
            rules=strategies.resting_rules(
                strategy_key=rollout.strategy,
                flag_key=rollout.flag.key,
                title=f"Rollout {rollout.key}: before the switch"[:200],
            ),
        )


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
