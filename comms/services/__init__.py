"""Every write of the communication side, one module per concern:

- `audiences`: audiences and their channels (admins).
- `templates`: notice templates.
- `plans`: communication plans of rollouts and the "phase starting soon" notices they keep in
  step with the timeline.
- `notices`: write, edit, schedule, cancel, and dispatch (render once, queue deliveries).
- `outbox`: deliveries: publish after commit, send, record, retry, re-queue stuck ones.
- `events`: rollout events -> notices, and the beat sweeps.

How a notice travels: a rollout transition writes a RolloutEvent; `event_dispatch` turns it
into notices per the plan, once; a due notice is rendered once and its deliveries are queued
in the same transaction; the send tasks are published after commit (by task name: services
never import tasks); `delivery_send` sends each one, retried with backoff by the task.

Callers import from here (`comms.services.notice_schedule`); the names below are the API.
Imports inside the package point one way: events -> plans -> notices -> outbox.
"""

from comms.services.audiences import (
    audience_create,
    audience_delete,
    audience_update,
    channel_create,
    channel_delete,
    channel_rotate_secret,
    channel_update,
    parse_contacts,
    parse_recipients,
)
from comms.services.events import (
    EVENT_NOTICES,
    FINAL_ROLLOUT_KINDS,
    SweepResult,
    event_dispatch,
    event_dispatch_isolated,
    event_failure_discard,
    event_failure_record,
    event_failure_retry,
    events_dispatch_pending,
    notices_sweep,
)
from comms.services.notices import (
    notice_cancel,
    notice_context,
    notice_create,
    notice_dispatch,
    notice_schedule,
    notice_send_now,
    notice_update,
    notices_send_due,
)
from comms.services.outbox import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_ERROR,
    RETRY_BACKOFF,
    RETRY_BACKOFF_MAX,
    SEND_DELIVERY_TASK,
    deliveries_enqueue_on_commit,
    deliveries_requeue_stuck,
    delivery_retry,
    delivery_send,
    notice_finish,
    notice_retry,
    notices_finish_stale,
    requeue_after,
    retry_delay,
    stale_after,
)
from comms.services.plans import (
    MAX_LEAD_TIME,
    plan_ensure,
    plan_reset,
    plan_rule_create,
    plan_rule_delete,
    plan_rule_update,
    plan_rules_replace,
    rollout_notices_sync,
)
from comms.services.templates import template_create, template_delete, template_update

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "EVENT_NOTICES",
    "FINAL_ROLLOUT_KINDS",
    "MAX_ERROR",
    "MAX_LEAD_TIME",
    "RETRY_BACKOFF",
    "RETRY_BACKOFF_MAX",
    "SEND_DELIVERY_TASK",
    "SweepResult",
    "audience_create",
    "audience_delete",
    "audience_update",
    "channel_create",
    "channel_delete",
    "channel_rotate_secret",
    "channel_update",
    "deliveries_enqueue_on_commit",
    "deliveries_requeue_stuck",
    "delivery_retry",
    "delivery_send",
    "event_dispatch",
    "event_dispatch_isolated",
    "event_failure_discard",
    "event_failure_record",
    "event_failure_retry",
    "events_dispatch_pending",
    "notice_cancel",
    "notice_context",
    "notice_create",
    "notice_dispatch",
    "notice_finish",
    "notice_retry",
    "notice_schedule",
    "notice_send_now",
    "notice_update",
    "notices_finish_stale",
    "notices_send_due",
    "notices_sweep",
    "parse_contacts",
    "parse_recipients",
    "plan_ensure",
    "plan_reset",
    "plan_rule_create",
    "plan_rule_delete",
    "plan_rule_update",
    "plan_rules_replace",
    "requeue_after",
    "retry_delay",
    "rollout_notices_sync",
    "stale_after",
    "template_create",
    "template_delete",
    "template_update",
]
