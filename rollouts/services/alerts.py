"""Alertmanager and a rollout's alert settings: matchers (parsed and normalised), the
webhook body validated, firing alerts applied by the rollout's policy (hold, or roll back)
and resolved ones clearing their hold, and the receiver configuration people paste.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.dateparse import parse_datetime

from core.exceptions import ApplicationError
from core.json_limits import JSONTooDeep, NotUTF8, loads_bounded
from rollouts.models import Hold, Rollout, RolloutEvent
from rollouts.services.common import LIVE_STATES, _lock, _now, _save
from rollouts.services.events import events_batched
from rollouts.services.holds import _hold, rollout_hold_clear
from rollouts.services.rollback import rollout_rollback

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind
Source = RolloutEvent.Source


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
        rollout.alert_matchers = normalize_matchers(alert_matchers)
        fields.append("alert_matchers")
    if alert_auto_resume is not None:
        rollout.alert_auto_resume = bool(alert_auto_resume)
        fields.append("alert_auto_resume")
    if rotate_secret or not rollout.alert_secret:
        rollout.alert_secret = new_alert_secret()
        fields.append("alert_secret")
    if fields:
        _save(rollout, actor, fields)
    logger.info(
        "rollout.alert_settings rollout_id=%s fields=%s", rollout.id, ",".join(sorted(fields))
    )
    return rollout


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
        payload = loads_bounded(body)  # UTF-8 only (as Alertmanager sends), depth-limited
    except (NotUTF8, JSONTooDeep) as exc:
        raise ApplicationError(str(exc), field="body") from None
    except ValueError:
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
    matchers = parse_matchers(rollout.alert_matchers) if rollout.alert_matchers else []
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
    with events_batched():
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
            rollout_hold_clear(
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
        rollout_rollback(
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
    matchers = parse_matchers(rollout.alert_matchers) if rollout.alert_matchers else []
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
