"""Guarded phases: metric checks a phase must pass (PromQL against the environment's
Prometheus) before the scheduler moves on, evaluated on every tick of its soak.

- A check compares the query's value with a threshold (`<`, `<=`, `>`, `>=`). The query may
  use `{flag}`, `{environment}` and `{phase}`; several series: the worst one counts.
- Every evaluation is stored (`CheckResult`) and kept on the check (`last_status`), which the
  scheduler's due query reads: a phase with checks advances only once each of them passed
  after the phase started (`checks_blocking`).
- `failures_to_trip` consecutive failing evaluations apply the rollout's alert policy (hold,
  or roll back); Prometheus unreachable, an error or an empty result is "inconclusive" and
  only ever holds (fail safe), with the reason. The event carries query, value, threshold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from core.exceptions import ApplicationError
from flags.models import Environment
from rollouts.models import (
    CheckResult,
    Hold,
    Phase,
    PhaseCheck,
    PrometheusSource,
    Rollout,
    RolloutEvent,
)
from rollouts.services.common import _lock, _now
from rollouts.services.events import events_batched
from rollouts.services.holds import _hold
from rollouts.services.rollback import rollout_rollback

logger = logging.getLogger(__name__)

State = Rollout.State
Status = PhaseCheck.Status
Source = RolloutEvent.Source
Comparison = PhaseCheck.Comparison

MAX_CHECKS_PER_PHASE = 10
MAX_QUERY = 2000
PLACEHOLDERS = ("{flag}", "{environment}", "{phase}")


# --------------------------------------------------------------------------------------------
# Prometheus


@dataclass(frozen=True)
class Measurement:
    status: str  # pass | fail | inconclusive
    value: float | None
    query: str
    detail: str = ""


def prometheus_url(environment: Environment) -> str:
    """The environment's Prometheus, else the instance-wide default (may be empty)."""
    source = PrometheusSource.objects.filter(environment=environment).first()
    if source is not None:
        return source.url
    return str(getattr(settings, "ROLLCALL_PROMETHEUS_URL", "") or "")


def _token(environment: Environment) -> str:
    source = PrometheusSource.objects.filter(environment=environment).first()
    return source.bearer_token if source is not None else ""


def render_query(query: str, *, flag: str, environment: str, phase: int) -> str:
    """Fill the placeholders; PromQL's own braces (`{code="500"}`) are left alone."""
    return (
        query.replace("{flag}", flag)
        .replace("{environment}", environment)
        .replace("{phase}", str(phase))
    )


def compare(value: float, comparison: str, threshold: float) -> bool:
    if comparison == Comparison.LT:
        return value < threshold
    if comparison == Comparison.LTE:
        return value <= threshold
    if comparison == Comparison.GT:
        return value > threshold
    return value >= threshold


def _worst(values: list[float], comparison: str) -> float:
    # For "must stay below" the highest series decides; for "must stay above" the lowest.
    return max(values) if comparison in (Comparison.LT, Comparison.LTE) else min(values)


def prometheus_query(url: str, query: str, *, token: str = "") -> list[float]:
    """The instant values of a PromQL query; raises ApplicationError saying why not."""
    if not url:
        raise ApplicationError(
            "No Prometheus is configured for this environment.", field="prometheus"
        )
    timeouts = (
        float(getattr(settings, "ROLLCALL_PROMETHEUS_CONNECT_TIMEOUT", 2.0)),
        float(getattr(settings, "ROLLCALL_PROMETHEUS_READ_TIMEOUT", 5.0)),
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.get(
            f"{url.rstrip('/')}/api/v1/query",
            params={"query": query},
            headers=headers,
            timeout=timeouts,
        )
    except requests.RequestException as exc:
        raise ApplicationError(
            f"Prometheus at {url} is unreachable ({type(exc).__name__}).", field="prometheus"
        ) from None
    try:
        body = response.json()
    except ValueError:
        raise ApplicationError(
            f"Prometheus answered HTTP {response.status_code} without JSON.", field="prometheus"
        ) from None
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise ApplicationError(
            f"Prometheus rejected the query: {str(error or response.status_code)[:300]}",
            field="query",
        )
    data = body.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result")
    raw: list[Any] = []
    if kind in ("scalar", "string") and isinstance(result, list):
        raw = [result[1]] if len(result) == 2 else []
    elif kind == "vector" and isinstance(result, list):
        raw = [s.get("value", [None, None])[1] for s in result if isinstance(s, dict)]
    elif kind == "matrix":
        raise ApplicationError(
            "The query returns a range vector; use an instant query (e.g. rate(...[5m])).",
            field="query",
        )
    values: list[float] = []
    for item in raw:
        try:
            number = float(item)
        except (TypeError, ValueError):
            continue
        if not math.isnan(number):
            values.append(number)
    return values


def measure(
    *, url: str, query: str, comparison: str, threshold: float, token: str = ""
) -> Measurement:
    """One evaluation, never raising: unreachable, an error, empty or NaN is inconclusive."""
    try:
        values = prometheus_query(url, query, token=token)
    except ApplicationError as exc:
        return Measurement(Status.INCONCLUSIVE, None, query, exc.message)
    if not values:
        return Measurement(Status.INCONCLUSIVE, None, query, "The query returned no data.")
    value = _worst(values, comparison)
    ok = compare(value, comparison, threshold)
    detail = f"{value:g} {'is' if ok else 'is not'} {comparison} {threshold:g}"
    return Measurement(Status.PASS if ok else Status.FAIL, value, query, detail)


def check_query_test(
    *, environment: Environment, query: str, comparison: str, threshold: float, flag: str = "",
    phase: int = 1,
) -> Measurement:  # fmt: skip
    """ "Test this query now": the query as the scheduler would send it, nothing stored."""
    _clean_query(query)
    _clean_comparison(comparison)
    rendered = render_query(query, flag=flag, environment=environment.key, phase=phase)
    return measure(
        url=prometheus_url(environment),
        query=rendered,
        comparison=comparison,
        threshold=float(threshold),
        token=_token(environment),
    )


# --------------------------------------------------------------------------------------------
# Managing checks


def _clean_query(query: str) -> str:
    query = (query or "").strip()
    if not query:
        raise ApplicationError("Give the PromQL query.", field="query")
    if len(query) > MAX_QUERY:
        raise ApplicationError(f"The query is longer than {MAX_QUERY} characters.", field="query")
    return query


def _clean_comparison(comparison: str) -> str:
    if comparison not in Comparison.values:
        raise ApplicationError(
            f"Unknown comparison {comparison!r}; use <, <=, > or >=.", field="comparison"
        )
    return comparison


def _clean(
    *, name: str, query: str, comparison: str, threshold: Any, failures_to_trip: Any
) -> dict[str, Any]:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the check a name.", field="name")
    if len(name) > 100:
        raise ApplicationError("The name is longer than 100 characters.", field="name")
    try:
        number = float(threshold)
    except (TypeError, ValueError):
        raise ApplicationError("The threshold must be a number.", field="threshold") from None
    if math.isnan(number) or math.isinf(number):
        raise ApplicationError("The threshold must be a finite number.", field="threshold")
    try:
        trips = int(failures_to_trip)
    except (TypeError, ValueError):
        raise ApplicationError(
            "Failures to trip must be a whole number.", field="failures_to_trip"
        ) from None
    if not 1 <= trips <= 20:
        raise ApplicationError("Failures to trip is between 1 and 20.", field="failures_to_trip")
    return {
        "name": name,
        "query": _clean_query(query),
        "comparison": _clean_comparison(comparison),
        "threshold": number,
        "failures_to_trip": trips,
    }


def _editable(phase: Phase) -> None:
    rollout = phase.rollout
    if rollout.is_final:
        raise ApplicationError(
            f"Rollout {rollout.key} is {rollout.get_state_display().lower()}; its checks are "
            "kept as they were.",
            field="phase",
        )


@transaction.atomic
def check_create(
    *,
    phase: Phase,
    actor: AbstractBaseUser | None,
    name: str,
    query: str,
    threshold: Any,
    comparison: str = Comparison.LT,
    failures_to_trip: Any = 1,
) -> PhaseCheck:
    _editable(phase)
    if phase.checks.count() >= MAX_CHECKS_PER_PHASE:
        raise ApplicationError(f"At most {MAX_CHECKS_PER_PHASE} checks per phase.", field="phase")
    values = _clean(
        name=name,
        query=query,
        comparison=comparison,
        threshold=threshold,
        failures_to_trip=failures_to_trip,
    )
    check = PhaseCheck.objects.create(phase=phase, **values)
    logger.info("check.created check_id=%s phase_id=%s", check.id, phase.id)
    return check


@transaction.atomic
def check_update(*, check: PhaseCheck, actor: AbstractBaseUser | None, **fields: Any) -> PhaseCheck:
    _editable(check.phase)
    current = {
        "name": check.name,
        "query": check.query,
        "comparison": check.comparison,
        "threshold": check.threshold,
        "failures_to_trip": check.failures_to_trip,
    }
    unknown = set(fields) - set(current)
    if unknown:
        raise ApplicationError(f"Unknown field {sorted(unknown)[0]!r}.", field=sorted(unknown)[0])
    values = _clean(**{**current, **{k: v for k, v in fields.items() if v is not None}})
    changed = [k for k, v in values.items() if getattr(check, k) != v]
    if changed:
        for k in changed:
            setattr(check, k, values[k])
        # A changed check starts over: it must pass again before the phase moves on.
        check.last_status = ""
        check.consecutive_failures = 0
        check.save()
    return check


@transaction.atomic
def check_delete(*, check: PhaseCheck, actor: AbstractBaseUser | None) -> None:
    _editable(check.phase)
    logger.info("check.deleted check_id=%s phase_id=%s", check.id, check.phase_id)
    check.delete()


@transaction.atomic
def prometheus_source_set(
    *,
    environment: Environment,
    actor: AbstractBaseUser | None,
    url: str,
    bearer_token: str | None = None,
) -> PrometheusSource | None:
    """Set (or, with an empty url, remove) the Prometheus the environment's checks ask.
    `bearer_token` None keeps the stored one."""
    url = (url or "").strip()
    if not url:
        PrometheusSource.objects.filter(environment=environment).delete()
        return None
    validator = URLValidator(schemes=["http", "https"])
    try:
        validator(url)
    except ValidationError:
        raise ApplicationError(
            "The Prometheus URL must be an http(s) URL, e.g. http://prometheus:9090.",
            field="url",
        ) from None
    if len(url) > 500:
        raise ApplicationError("The URL is longer than 500 characters.", field="url")
    if bearer_token is not None and len(bearer_token) > 500:
        raise ApplicationError("The token is longer than 500 characters.", field="bearer_token")
    source, _ = PrometheusSource.objects.get_or_create(
        environment=environment, defaults={"url": url}
    )
    source.url = url
    if bearer_token is not None:
        source.bearer_token = bearer_token.strip()
    source.save()
    logger.info("prometheus.source_set environment=%s", environment.key)
    return source


def checks_from_template(*, phases: Iterable[Phase], raw_phases: list[dict[str, Any]]) -> None:
    """Checks a plan or strategy template carries (`"checks": [{name, query, ...}]`)."""
    for phase, raw in zip(phases, raw_phases, strict=False):
        specs = raw.get("checks") if isinstance(raw, dict) else None
        if not specs:
            continue
        if not isinstance(specs, list):
            raise ApplicationError(
                f"Phase {phase.order + 1}: checks are a list.", field=f"phases.{phase.order}.checks"
            )
        for spec in specs:
            if not isinstance(spec, dict):
                raise ApplicationError(
                    f"Phase {phase.order + 1}: each check is an object.",
                    field=f"phases.{phase.order}.checks",
                )
            check_create(
                phase=phase,
                actor=None,
                name=spec.get("name", ""),
                query=spec.get("query", ""),
                threshold=spec.get("threshold"),
                comparison=spec.get("comparison", Comparison.LT),
                failures_to_trip=spec.get("failures_to_trip", 1),
            )


# --------------------------------------------------------------------------------------------
# The scheduler's side


def checks_blocking() -> QuerySet[PhaseCheck]:
    """For the due query (`Exists(...)` with `OuterRef` to a rollout): a check of the current
    phase that has not passed since the phase started holds the next phase back."""
    return PhaseCheck.objects.filter(
        phase__rollout=OuterRef("pk"), phase__order=OuterRef("current_phase_index")
    ).exclude(Q(last_status=Status.PASS) & Q(last_evaluated_at__gte=OuterRef("phase_started_at")))


def _rollouts_to_check() -> list[Rollout]:
    current = PhaseCheck.objects.filter(
        phase__rollout=OuterRef("pk"), phase__order=OuterRef("current_phase_index")
    )
    return list(
        Rollout.objects.filter(state=State.RUNNING, current_phase_index__gte=0)
        .filter(Exists(current))
        .select_related("flag", "environment")
        .order_by("id")
    )


def checks_evaluate(*, now: datetime | None = None) -> int:
    """The sweep's part: evaluate the checks of every running rollout's current phase (the
    HTTP calls outside any transaction), store the results and apply what tripped. Returns
    how many checks were evaluated."""
    evaluated = 0
    with events_batched():
        for rollout in _rollouts_to_check():
            try:
                evaluated += rollout_checks_evaluate(rollout=rollout, now=now)
            except ApplicationError as exc:
                logger.warning("checks.failed rollout_id=%s error=%s", rollout.id, exc.message)
    return evaluated


def rollout_checks_evaluate(*, rollout: Rollout, now: datetime | None = None) -> int:
    index = rollout.current_phase_index
    checks = list(
        PhaseCheck.objects.filter(phase__rollout=rollout, phase__order=index).order_by("id")
    )
    if not checks:
        return 0
    url = prometheus_url(rollout.environment)
    token = _token(rollout.environment)
    measured = [
        (
            check,
            measure(
                url=url,
                query=render_query(
                    check.query,
                    flag=rollout.flag.key,
                    environment=rollout.environment.key,
                    phase=index + 1,
                ),
                comparison=check.comparison,
                threshold=check.threshold,
                token=token,
            ),
        )
        for check in checks
    ]
    _apply(rollout, index, measured, now=_now(now))
    return len(measured)


@transaction.atomic
def _apply(
    rollout: Rollout,
    index: int,
    measured: list[tuple[PhaseCheck, Measurement]],
    *,
    now: datetime,
) -> None:
    rollout = _lock(rollout)
    if rollout.state != State.RUNNING or rollout.current_phase_index != index:
        return  # it moved while Prometheus answered: these results are for another phase
    tripped: list[tuple[PhaseCheck, Measurement]] = []
    # Overlapping sweeps (a slow Prometheus, several workers) must not count one tick twice.
    min_gap = timedelta(seconds=float(getattr(settings, "ROLLCALL_TICK_SECONDS", 30)) / 2)
    for check, m in measured:
        check = PhaseCheck.objects.select_for_update().get(pk=check.pk)
        last = check.last_evaluated_at
        if last is not None and timedelta(0) <= now - last < min_gap:
            continue
        if m.status == Status.PASS:
            check.consecutive_failures = 0
        else:
            check.consecutive_failures = min(check.consecutive_failures + 1, 1000)
        check.last_status = m.status
        check.last_value = m.value
        check.last_evaluated_at = now
        check.save(
            update_fields=[
                "last_status", "last_value", "last_evaluated_at", "consecutive_failures",
                "updated_at",
            ]
        )  # fmt: skip
        CheckResult.objects.create(
            check_ref=check,
            rollout=rollout,
            phase_index=index,
            at=now,
            status=m.status,
            value=m.value,
            threshold=check.threshold,
            comparison=check.comparison,
            query=m.query,
            detail=m.detail[:500],
        )
        if m.status != Status.PASS and check.consecutive_failures >= check.failures_to_trip:
            tripped.append((check, m))
    if not tripped:
        return
    # A failing value acts by the policy; only inconclusive ones: hold (never act on no data).
    failing = [(c, m) for c, m in tripped if m.status == Status.FAIL]
    check, m = (failing or tripped)[0]
    data = {
        "check_id": check.id,
        "check": check.name,
        "status": m.status,
        "query": m.query,
        "value": m.value,
        "comparison": check.comparison,
        "threshold": check.threshold,
        "consecutive_failures": check.consecutive_failures,
    }
    if m.status == Status.FAIL:
        reason = (
            f"Check {check.name} failed {check.consecutive_failures} time(s): {m.value:g} is "
            f"not {check.comparison} {check.threshold:g} (query: {m.query})."
        )
    else:
        reason = f"Check {check.name} is inconclusive: {m.detail} (query: {m.query})."
    if m.status == Status.FAIL and rollout.alert_policy == Rollout.AlertPolicy.ROLLBACK:
        rollout_rollback(
            rollout=rollout,
            actor=None,
            source=Source.SCHEDULER,
            reason=reason[:2000],
            now=now,
            mode=Rollout.RollbackMode.RESTORE,
        )
        kind = RolloutEvent.Kind.ROLLED_BACK
    else:
        _hold(
            rollout,
            kind=Hold.Kind.CHECK,
            reason=reason[:2000],
            source=Source.SCHEDULER,
            actor=None,
            now=now,
        )
        kind = RolloutEvent.Kind.HELD
    event = RolloutEvent.objects.filter(rollout=rollout, kind=kind).order_by("-id").first()
    if event is not None:
        event.data = {**(event.data or {}), "check": data}
        event.save(update_fields=["data"])
    logger.warning(
        "check.tripped rollout_id=%s check_id=%s status=%s value=%s action=%s",
        rollout.id, check.id, m.status, m.value, kind,
    )  # fmt: skip


def check_results(rollout: Rollout) -> list[CheckResult]:
    return list(
        CheckResult.objects.filter(rollout=rollout).select_related("check_ref").order_by("at", "id")
    )
