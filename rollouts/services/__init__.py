"""Every write to releases and rollouts goes through here (UI, API, admin, scheduler, alerts).

One module per concern:

- `lifecycle`: the state machine (schedule, start, advance, pause, resume, complete, cancel,
  roll back) and what each state allows.
- `plans`: creating a rollout and changing its plan (phases validated, templates).
- `releases`: releases.
- `gates`: what a phase waits for (approval rules, checklists, promotion).
- `approvals`: people at the gates (request and decide approvals, tick checklists, policies).
- `holds`: holds and clearing them, the emergency freeze.
- `windows`: freeze and allowed-hours windows (due times, overrides, admin edits).
- `alerts`: Alertmanager (matchers, webhook alerts, receiver configuration).
- `scheduler`: which rollouts are due and the sweep that advances them.
- `checks`: guarded phases (metric checks against Prometheus, evaluated every tick).
- `common` and `events`: shared bookkeeping and the event log with its `events_committed`
  signal.

Callers import from here (`rollouts.services.rollout_start`); every public name is
re-exported.
"""

from __future__ import annotations

from rollouts.services.alerts import (
    MAX_ALERTS,
    MAX_LABEL,
    Alert,
    AlertOutcome,
    Matcher,
    alert_matches,
    alertmanager_parse,
    alerts_receive,
    as_mapping,
    new_alert_secret,
    normalize_matchers,
    parse_matchers,
    receiver_config,
    rollout_alert_settings_update,
)
from rollouts.services.approvals import (
    DecisionResult,
    approval_decide,
    approval_policy_delete,
    approval_policy_set,
    approval_request,
    checklist_tick,
)
from rollouts.services.checks import (
    check_create,
    check_delete,
    check_query_test,
    check_update,
    checks_evaluate,
    rollout_checks_evaluate,
)
from rollouts.services.common import (
    APPROVE_PERMISSION,
    LIVE_STATES,
    OVERRIDE_PERMISSION,
    STOPPED_STATES,
)
from rollouts.services.events import events_batched, events_committed
from rollouts.services.failures import (
    advance_failure_discard,
    advance_failure_retry,
    advance_failures_clear,
    advance_failures_open,
    rollout_advance_failed,
)
from rollouts.services.gates import (
    ApprovalRule,
    GateStatus,
    approval_rule,
    environment_policy,
    gate_status,
    promotion_blocker,
)
from rollouts.services.holds import rollout_hold, rollout_hold_clear, window_hold_rollouts
from rollouts.services.lifecycle import (
    ACTIONS,
    INSTANT_ROLLBACK,
    allowed_actions,
    rollout_advance,
    rollout_advance_now,
    rollout_cancel,
    rollout_complete,
    rollout_exposure,
    rollout_pause,
    rollout_resume,
    rollout_schedule,
    rollout_start,
    rollout_start_when_approved,
)
from rollouts.services.plans import MAX_CHECKLIST_ITEMS, rollout_create, rollout_plan_update
from rollouts.services.releases import release_create, release_update
from rollouts.services.rollback import rollout_rollback
from rollouts.services.scheduler import rollouts_advance_due, rollouts_advance_steps, rollouts_due
from rollouts.services.windows import (
    window_create,
    window_delete,
    window_spec,
    window_specs,
    window_update,
)

__all__ = [
    "ACTIONS",
    "APPROVE_PERMISSION",
    "INSTANT_ROLLBACK",
    "LIVE_STATES",
    "MAX_ALERTS",
    "MAX_CHECKLIST_ITEMS",
    "MAX_LABEL",
    "OVERRIDE_PERMISSION",
    "STOPPED_STATES",
    "Alert",
    "AlertOutcome",
    "ApprovalRule",
    "DecisionResult",
    "GateStatus",
    "Matcher",
    "advance_failure_discard",
    "advance_failure_retry",
    "advance_failures_clear",
    "advance_failures_open",
    "alert_matches",
    "alertmanager_parse",
    "alerts_receive",
    "allowed_actions",
    "approval_decide",
    "approval_policy_delete",
    "approval_policy_set",
    "approval_request",
    "approval_rule",
    "as_mapping",
    "check_create",
    "check_delete",
    "check_query_test",
    "check_update",
    "checklist_tick",
    "checks_evaluate",
    "environment_policy",
    "events_batched",
    "events_committed",
    "gate_status",
    "new_alert_secret",
    "normalize_matchers",
    "parse_matchers",
    "promotion_blocker",
    "receiver_config",
    "release_create",
    "release_update",
    "rollout_advance",
    "rollout_advance_failed",
    "rollout_advance_now",
    "rollout_alert_settings_update",
    "rollout_cancel",
    "rollout_checks_evaluate",
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
    "rollout_start_when_approved",
    "rollouts_advance_due",
    "rollouts_advance_steps",
    "rollouts_due",
    "window_create",
    "window_delete",
    "window_hold_rollouts",
    "window_spec",
    "window_specs",
    "window_update",
]
