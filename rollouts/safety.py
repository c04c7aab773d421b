"""Rollout safety services: approvals, testing-protocol checklists, freeze windows,
environment policies, Alertmanager alerts and alert settings.

The state machine itself (holds, gates checked on every move, windows moving the clock) lives
in `rollouts.services`; this module adds the writes people and Alertmanager make around it.
Like every service: keyword-only, one transaction, a `RolloutEvent` for what a rollout's
people should know, `ApplicationError` with a message a person can act on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.exceptions import ApplicationError
from flags.models import Environment
from rollouts import services
from rollouts import windows as windows_mod
from rollouts.models import (
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ChecklistItem,
    FreezeWindow,
    Hold,
    Rollout,
    RolloutEvent,
)
from rollouts.services import (
    APPROVE_PERMISSION,
    LIVE_STATES,
    _due,
    _hold,
    _lock,
    _may,
    _now,
    _phases,
    _record,
    _refresh_gates,
    _source,
    _timezone,
    _user,
    approval_rule,
    environment_policy,
)

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind
Source = RolloutEvent.Source


# --------------------------------------------------------------------------------------------
# Approvals


@transaction.atomic
def approval_request(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
) -> Approval:
    """Ask for the approval the rollout's next phase needs (e.g. before starting a draft).

    Live rollouts ask by themselves when they reach the phase before a gated one; this is for
    drafts and for asking again after a request was declined or withdrawn.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.is_final:
        raise ApplicationError(
            f"Rollout {rollout.key} has finished; there is nothing to approve.", field="state"
        )
    phases = _phases(rollout)
    index = rollout.current_phase_index + 1
    if index >= len(phases):
        raise ApplicationError(
            f"Rollout {rollout.key} is at its last phase; there is nothing to approve.",
            field="state",
        )
    phase = phases[index]
    rule = approval_rule(phase, environment_policy(rollout.environment_id))
    if rule is None:
        raise ApplicationError(
            f"Phase {index + 1} ({phase.name}) needs no approval.", field="phase"
        )
    if rollout.state == State.HELD:
        raise ApplicationError(
            f"Rollout {rollout.key} is held; resume it and the approval is requested again.",
            field="state",
        )
    existing = services._live_approval(phase)
    if existing is not None:
        return existing
    return services._request_approval(rollout, phase, rule, now=now, actor=actor, source=source)


@dataclass(frozen=True)
class DecisionResult:
    approval: Approval
    complete: bool  # the request is decided (approved by enough people, or declined)


@transaction.atomic
def approval_decide(
    *,
    approval: Approval,
    actor: AbstractBaseUser | None,
    decision: str,
    comment: str = "",
    source: str,
    now: datetime | None = None,
) -> DecisionResult:
    """Approve or decline a pending request.

    Approving counts once per person; the request is granted when `required` different people
    approved. The requester cannot approve their own request unless the policy allows it.
    Declining needs a comment; it declines the request and holds the rollout with it.
    """
    _source(source)
    now = _now(now)
    if decision not in ApprovalDecision.Decision.values:
        raise ApplicationError("Approve or decline.", field="decision")
    user = _user(actor)
    if user is None or not _may(user, APPROVE_PERMISSION):
        raise ApplicationError(
            "Approving rollouts needs the Release managers role.",
            field="decision",
            code="forbidden",
        )
    comment = (comment or "").strip()
    rollout = _lock(approval.rollout)
    approval = Approval.objects.select_for_update().select_related("phase").get(pk=approval.pk)
    if approval.state != Approval.State.PENDING:
        raise ApplicationError(
            f"This request is {approval.get_state_display().lower()} already; nothing to decide.",
            field="decision",
            code="illegal_transition",
        )
    phase = approval.phase
    if approval.decisions.filter(user=user).exists():
        raise ApplicationError("You already decided on this request.", field="decision")
    own = approval.requested_by_id is not None and approval.requested_by_id == user.pk
    approve = decision == ApprovalDecision.Decision.APPROVE
    if approve and own and not approval.allow_self_approval:
        raise ApplicationError(
            "You asked for this approval, so someone else must give it (four eyes).",
            field="decision",
            code="self_approval",
        )
    if not approve and not comment:
        raise ApplicationError(
            "Say why you decline (the rollout is held with your reason).", field="comment"
        )
    ApprovalDecision.objects.create(
        approval=approval, user=user, decision=decision, comment=comment, at=now
    )
    given = approval.decisions.filter(decision=ApprovalDecision.Decision.APPROVE).count()
    pct = phase.percentage
    base = {
        "approval_id": approval.id,
        "phase": phase.name,
        "required": approval.required,
        "approvals": given,
    }
    if approve:
        complete = given >= approval.required
        if complete:
            approval.state = Approval.State.APPROVED
            approval.decided_at = now
            approval.save(update_fields=["state", "decided_at", "updated_at"])
        _record(
            rollout,
            kind=Kind.APPROVED,
            source=source,
            actor=user,
            at=now,
            reason=comment,
            to_phase=phase.order,
            to_percentage=pct,
            data={**base, "complete": complete},
        )
        logger.info(
            "approval.approved approval_id=%s user_id=%s approvals=%d required=%d",
            approval.id, user.pk, given, approval.required,
        )  # fmt: skip
        return DecisionResult(approval, complete)
    approval.state = Approval.State.DECLINED
    approval.decided_at = now
    approval.save(update_fields=["state", "decided_at", "updated_at"])
    _record(
        rollout,
        kind=Kind.DECLINED,
        source=source,
        actor=user,
        at=now,
        reason=comment,
        to_phase=phase.order,
        to_percentage=pct,
        data={**base, "complete": True},
    )
    if rollout.state in LIVE_STATES:
        _hold(
            rollout,
            kind=Hold.Kind.DECLINED,
            reason=f"Approval of phase {phase.order + 1} ({phase.name}) declined: {comment}",
            source=source,
            actor=user,
            now=now,
            approval=approval,
        )
    logger.info("approval.declined approval_id=%s user_id=%s", approval.id, user.pk)
    return DecisionResult(approval, True)


# --------------------------------------------------------------------------------------------
# Checklists (testing protocol)


@transaction.atomic
def checklist_tick(
    *,
    item: ChecklistItem,
    actor: AbstractBaseUser | None,
    source: str,
    ticked: bool = True,
    note: str = "",
    now: datetime | None = None,
) -> ChecklistItem:
    """Tick (or untick) a step of a phase's checklist; who and when are recorded."""
    _source(source)
    now = _now(now)
    rollout = _lock(item.phase.rollout)
    item = ChecklistItem.objects.select_for_update().select_related("phase").get(pk=item.pk)
    phase = item.phase
    if rollout.is_final:
        raise ApplicationError(
            f"Rollout {rollout.key} has finished; its checklists are closed.", field="state"
        )
    if phase.order <= rollout.current_phase_index:
        raise ApplicationError(
            f"Phase {phase.order + 1} ({phase.name}) has started; its checklist is closed.",
            field="state",
        )
    if item.is_ticked == ticked:
        return item  # already so: a double click changes nothing
    user = _user(actor)
    item.ticked_by = user if ticked else None
    item.ticked_at = now if ticked else None
    item.note = (note or "").strip()[:500] if ticked else ""
    item.save(update_fields=["ticked_by", "ticked_at", "note", "updated_at"])
    _record(
        rollout,
        kind=Kind.CHECKLIST_TICKED if ticked else Kind.CHECKLIST_UNTICKED,
        source=source,
        actor=user,
        at=now,
        reason=item.note,
        to_phase=phase.order,
        data={"item_id": item.id, "label": item.label, "phase": phase.name},
    )
    logger.info(
        "checklist.%s item_id=%s rollout_id=%s phase=%s",
        "ticked" if ticked else "unticked", item.id, rollout.id, phase.order,
    )  # fmt: skip
    return item


# --------------------------------------------------------------------------------------------
# Freeze and allow windows (admins)


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
            specs[env_id] = services.window_specs(env_id)
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


@transaction.atomic
def window_hold_rollouts(
    *,
    window: FreezeWindow,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
) -> int:
    """An emergency freeze: hold every live rollout the window applies to (a `freeze` hold
    each, so the clock stops too). Returns how many were held."""
    _source(source)
    now = _now(now)
    if window.kind != FreezeWindow.Kind.DENY:
        raise ApplicationError("Only a freeze (deny) window can hold rollouts.", field="kind")
    qs = Rollout.objects.filter(state__in=(State.SCHEDULED, State.RUNNING, State.PAUSED))
    if window.environment_id is not None:
        qs = qs.filter(environment_id=window.environment_id)
    text = (reason or "").strip() or f"Freeze window “{window.name}”"
    held = 0
    for rollout in qs.order_by("id"):
        locked = _lock(rollout)
        if locked.state in (State.SCHEDULED, State.RUNNING, State.PAUSED):
            _hold(
                locked, kind=Hold.Kind.FREEZE, reason=text, source=source, actor=actor,
                now=now, window=window,
            )  # fmt: skip
            held += 1
    logger.info("window.held_rollouts window_id=%s held=%d", window.id, held)
    return held


# --------------------------------------------------------------------------------------------
# Environment policies (admins)


@transaction.atomic
def approval_policy_set(
    *,
    environment: Environment,
    actor: AbstractBaseUser | None,
    min_percentage: int | None = None,
    approvals_required: int = 1,
    allow_self_approval: bool = False,
    requires_completed_in: Environment | None = None,
    now: datetime | None = None,
) -> ApprovalPolicy:
    """Create or replace an environment's gates; live rollouts there follow at once (their
    next phase asks for approval, or a request that is no longer needed is withdrawn)."""
    now = _now(now)
    if min_percentage is not None and not 0 <= int(min_percentage) <= 100:
        raise ApplicationError("The percentage is between 0 and 100.", field="min_percentage")
    if not 1 <= int(approvals_required) <= 10:
        raise ApplicationError("Between 1 and 10 approvers.", field="approvals_required")
    if requires_completed_in is not None and requires_completed_in.pk == environment.pk:
        raise ApplicationError(
            "An environment cannot require a release to complete in itself first.",
            field="requires_completed_in",
        )
    if requires_completed_in is not None:
        loop = ApprovalPolicy.objects.filter(
            environment=requires_completed_in, requires_completed_in=environment
        ).exists()
        if loop:
            raise ApplicationError(
                f"{requires_completed_in.name} already requires {environment.name} first; "
                "promotion cannot go both ways.",
                field="requires_completed_in",
            )
    policy, _ = ApprovalPolicy.objects.select_for_update().get_or_create(environment=environment)
    policy.min_percentage = None if min_percentage is None else int(min_percentage)
    policy.approvals_required = int(approvals_required)
    policy.allow_self_approval = bool(allow_self_approval)
    policy.requires_completed_in = requires_completed_in
    user = _user(actor)
    if user is not None:
        policy._history_user = user  # type: ignore[attr-defined]
    policy.save()
    _policy_changed(environment.id, actor=actor, now=now)
    logger.info("approval_policy.set environment=%s", environment.key)
    return policy


@transaction.atomic
def approval_policy_delete(
    *, environment: Environment, actor: AbstractBaseUser | None, now: datetime | None = None
) -> None:
    ApprovalPolicy.objects.filter(environment=environment).delete()
    _policy_changed(environment.id, actor=actor, now=_now(now))
    logger.info("approval_policy.deleted environment=%s", environment.key)


def _policy_changed(environment_id: int, *, actor: AbstractBaseUser | None, now: datetime) -> None:
    policy = environment_policy(environment_id)
    live = Rollout.objects.filter(
        environment_id=environment_id, state__in=(State.SCHEDULED, State.RUNNING, State.PAUSED)
    )
    for rollout in live.order_by("id"):
        locked = _lock(rollout)
        _refresh_gates(
            locked, _phases(locked), now=now, actor=actor, source=Source.SYSTEM, policy=policy
        )


# --------------------------------------------------------------------------------------------
# Alert settings of a rollout


@transaction.atomic
def rollout_alert_settings_update(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    alert_policy: str | None = None,
    alert_matchers: str | None = None,
    alert_auto_resume: bool | None = None,
    rotate_secret: bool = False,
) -> Rollout:
    rollout = _lock(rollout)
    fields: list[str] = []
    if alert_policy is not None:
        if alert_policy not in Rollout.AlertPolicy.values:
            raise ApplicationError(f"Unknown alert policy {alert_policy!r}.", field="alert_policy")
        rollout.alert_policy = alert_policy
        fields.append("alert_policy")
    if alert_matchers is not None:
        rollout.alert_matchers = services.normalize_matchers(alert_matchers)
        fields.append("alert_matchers")
    if alert_auto_resume is not None:
        rollout.alert_auto_resume = bool(alert_auto_resume)
        fields.append("alert_auto_resume")
    if rotate_secret or not rollout.alert_secret:
        rollout.alert_secret = services.new_alert_secret()
        fields.append("alert_secret")
    if fields:
        services._save(rollout, actor, fields)
    logger.info(
        "rollout.alert_settings rollout_id=%s fields=%s", rollout.id, ",".join(sorted(fields))
    )
    return rollout


# --------------------------------------------------------------------------------------------
# Alertmanager


MAX_ALERTS = 500
MAX_LABEL = 1024


@dataclass(frozen=True)
class Alert:
    """One alert of an Alertmanager webhook (version 4), validated."""

    status: str  # "firing" | "resolved"
    labels: dict[str, str]
    fingerprint: str
    starts_at: str
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "") or "alert"

    @property
    def key(self) -> str:
        """One firing of one alert: a re-sent notification has the same key."""
        return f"{self.fingerprint}@{self.starts_at}"


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApplicationError(f"{where} must be an object of strings.", field=where)
    result: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ApplicationError(f"{where} must be an object of strings.", field=where)
        if len(k) > MAX_LABEL or len(v) > MAX_LABEL:
            raise ApplicationError(
                f"{where}: names and values are at most {MAX_LABEL} characters.", field=where
            )
        result[k] = v
    return result


def alertmanager_parse(body: bytes | str) -> list[Alert]:
    """Validate an Alertmanager webhook body (JSON, version "4"). Unknown keys are ignored;
    anything else wrong raises ApplicationError saying what (nothing is applied then)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApplicationError("The body is not JSON.", field="body") from None
    raw = body if isinstance(body, str) else body.decode("utf-8")
    if "\\u0000" in raw or "\x00" in raw:
        raise ApplicationError("The body contains NUL characters; remove them.", field="body")
    if not isinstance(payload, dict):
        raise ApplicationError("The body must be a JSON object.", field="body")
    version = payload.get("version")
    if version != "4":
        raise ApplicationError(
            f'Unsupported webhook version {version!r}; Alertmanager sends "4".', field="version"
        )
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        raise ApplicationError("`alerts` must be a list.", field="alerts")
    if len(raw_alerts) > MAX_ALERTS:
        raise ApplicationError(f"At most {MAX_ALERTS} alerts a request.", field="alerts")
    common = _strings(payload.get("commonLabels"), "commonLabels")
    alerts: list[Alert] = []
    for i, raw in enumerate(raw_alerts):
        where = f"alerts.{i}"
        if not isinstance(raw, dict):
            raise ApplicationError(f"{where} must be an object.", field=where)
        status = raw.get("status", payload.get("status"))
        if status not in ("firing", "resolved"):
            raise ApplicationError(
                f"{where}.status must be firing or resolved.", field=f"{where}.status"
            )
        labels = {**common, **_strings(raw.get("labels"), f"{where}.labels")}
        annotations = _strings(raw.get("annotations"), f"{where}.annotations")
        fingerprint = raw.get("fingerprint")
        if fingerprint is None or fingerprint == "":
            # Older senders: the label set identifies the alert, as Alertmanager's own does.
            canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
            fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        if not isinstance(fingerprint, str) or len(fingerprint) > 128:
            raise ApplicationError(
                f"{where}.fingerprint must be a string (at most 128 characters).",
                field=f"{where}.fingerprint",
            )
        starts_at = raw.get("startsAt", "")
        if starts_at is None:
            starts_at = ""
        if not isinstance(starts_at, str) or len(starts_at) > 64:
            raise ApplicationError(
                f"{where}.startsAt must be a date-time string.", field=f"{where}.startsAt"
            )
        if starts_at:
            try:
                parsed = parse_datetime(starts_at)
            except ValueError:
                parsed = None
            if parsed is None:
                raise ApplicationError(
                    f"{where}.startsAt must be an RFC 3339 date-time.", field=f"{where}.startsAt"
                )
        alerts.append(Alert(status, labels, fingerprint, starts_at, annotations))
    return alerts


def alert_matches(rollout: Rollout, alert: Alert) -> bool:
    """The alert is about this rollout: its `rollout` label is the key, or (without such a
    label) every matcher configured on the rollout matches its labels."""
    label = alert.labels.get("rollout")
    if label is not None:
        return label == rollout.key
    matchers = services.parse_matchers(rollout.alert_matchers) if rollout.alert_matchers else []
    return bool(matchers) and all(m.matches(alert.labels) for m in matchers)


@dataclass
class AlertOutcome:
    fingerprint: str
    status: str
    action: str  # held, rolled_back, cleared, duplicate, not_matching, ignored, error
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "action": self.action,
            **({"detail": self.detail} if self.detail else {}),
        }


def alerts_receive(
    *, rollout: Rollout, alerts: Iterable[Alert], now: datetime | None = None
) -> list[AlertOutcome]:
    """Apply validated alerts to the rollout whose webhook secret was used.

    Firing and matching: the rollout's policy (hold, or roll back to the rules from before).
    Resolved: that alert's hold is cleared; the rollout stays stopped for a person, unless
    it auto-resumes. A re-sent firing (same fingerprint and start) changes nothing.
    """
    now = _now(now)
    outcomes: list[AlertOutcome] = []
    with services.events_batched():
        for alert in alerts:
            try:
                outcomes.append(_alert_apply(rollout, alert, now=now))
            except ApplicationError as exc:
                logger.warning(
                    "alert.failed rollout_id=%s fingerprint=%s error=%s",
                    rollout.id, alert.fingerprint, exc.message,
                )  # fmt: skip
                outcomes.append(AlertOutcome(alert.fingerprint, alert.status, "error", exc.message))
    return outcomes


@transaction.atomic
def _alert_apply(rollout: Rollout, alert: Alert, *, now: datetime) -> AlertOutcome:
    rollout = _lock(rollout)
    out = AlertOutcome(alert.fingerprint, alert.status, "ignored")
    if not alert_matches(rollout, alert):
        out.action = "not_matching"
        return out
    if alert.status == "resolved":
        holds = list(
            rollout.holds.filter(
                kind=Hold.Kind.ALERT, alert_fingerprint=alert.fingerprint, cleared_at__isnull=True
            )
        )
        if not holds:
            out.action = (
                "duplicate"
                if rollout.holds.filter(alert_fingerprint=alert.fingerprint).exists()
                else "ignored"
            )
            return out
        for hold in holds:
            services.rollout_hold_clear(
                hold=hold,
                actor=None,
                source=Source.ALERT,
                reason=f"Alert {alert.name} resolved.",
                now=now,
                auto_resume=rollout.alert_auto_resume,
            )
        out.action = "cleared"
        return out
    if rollout.state not in LIVE_STATES:
        out.detail = f"rollout is {rollout.get_state_display().lower()}"
        return out
    if rollout.holds.filter(kind=Hold.Kind.ALERT, alert_key=alert.key[:200]).exists():
        out.action = "duplicate"
        return out
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    reason = f"Alert {alert.name} firing" + (f": {summary}" if summary else ".")
    if rollout.alert_policy == Rollout.AlertPolicy.ROLLBACK and rollout.state != State.SCHEDULED:
        services.rollout_rollback(
            rollout=rollout,
            actor=None,
            source=Source.ALERT,
            reason=reason[:2000],
            now=now,
            mode=Rollout.RollbackMode.RESTORE,
        )
        out.action = "rolled_back"
        return out
    # Hold (also for a roll-back policy before the start: nothing is exposed to roll back).
    _hold(
        rollout,
        kind=Hold.Kind.ALERT,
        reason=reason[:2000],
        source=Source.ALERT,
        actor=None,
        now=now,
        alert={
            "key": alert.key,
            "fingerprint": alert.fingerprint,
            "name": alert.name,
            "labels": alert.labels,
        },
    )
    out.action = "held"
    return out


def receiver_config(rollout: Rollout, *, base_url: str, show_secret: bool) -> str:
    """The Alertmanager configuration (YAML) that sends this rollout's alerts to Rollcall."""
    secret = rollout.alert_secret if show_secret else "<ask a release manager for the secret>"
    matchers = services.parse_matchers(rollout.alert_matchers) if rollout.alert_matchers else []
    lines = [str(m) for m in matchers] or [f'rollout="{rollout.key}"']
    name = f"rollcall-{rollout.key}"[:100]
    matcher_yaml = "\n".join(f"        - {json.dumps(line)}" for line in lines)
    return (
        "# alertmanager.yml: add the route under `route.routes` and the receiver under "
        "`receivers`.\n"
        "route:\n"
        "  routes:\n"
        f"    - receiver: {name}\n"
        "      matchers:\n"
        f"{matcher_yaml}\n"
        "      continue: true\n"
        "receivers:\n"
        f"  - name: {name}\n"
        "    webhook_configs:\n"
        f"      - url: {base_url.rstrip('/')}/hooks/alertmanager\n"
        "        send_resolved: true\n"
        "        http_config:\n"
        "          authorization:\n"
        "            type: Bearer\n"
        f"            credentials: {secret}\n"
    )


def as_mapping(outcomes: list[AlertOutcome]) -> Mapping[str, Any]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    return {"status": "ok", "alerts": len(outcomes), "counts": counts,
            "results": [o.as_dict() for o in outcomes]}  # fmt: skip
