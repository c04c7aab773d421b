"""One path to production: direct flag-state writes follow the environment's approval policy.

Where an environment's approval policy asks for approval of phases reaching a percentage, a
direct write (flags UI, management API `PUT`, import) that would expose users at that level
without a rollout is refused with a message saying how to get it approved: through a rollout,
whose phases ask for approval. Turning a flag off, and edits while it stays off, are never
blocked (the kill switch must always work). Rollouts' own writes run in
`flags.services.through_rollout()` and are gated by their phases instead.

Every allowed write stays in the flag state's history (who, when, diff).
"""

from __future__ import annotations

import logging

from flags.services import StateChange
from flags.services.guards import rules_exposure
from rollouts.services.gates import environment_policy

logger = logging.getLogger(__name__)


def direct_state_change_refusal(change: StateChange) -> str | None:
    """Why a direct write is refused under the environment's approval policy, or None."""
    if not change.new_enabled:
        return None  # off, or edited while off: exposes nobody
    if change.old_enabled and change.old_rules == change.new_rules:
        return None
    policy = environment_policy(change.environment.id)
    if policy is None or policy.min_percentage is None:
        return None
    exposure = rules_exposure(change.new_enabled, change.new_rules)
    if exposure < policy.min_percentage:
        return None
    env = change.environment.name
    if policy.min_percentage == 0:
        needs = f"{env} asks for approval of every change that exposes users"
    else:
        needs = f"{env} asks for approval of changes reaching {policy.min_percentage}% or more"
    logger.info(
        "flag.direct_write_refused flag=%s environment=%s exposure=%s min_percentage=%s",
        change.flag_key, change.environment.key, exposure, policy.min_percentage,
    )  # fmt: skip
    return (
        f"{needs}; this change would expose {change.flag_key} to up to {exposure}% of users "
        f"without approval. To get it approved, start a rollout of {change.flag_key} in {env} "
        "(Rollouts > New rollout): its phases ask the approvers. Turning the flag off needs no "
        "approval."
    )
