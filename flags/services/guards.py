"""Checks every direct flag-state write passes (UI, management API, import).

`flags` cannot know the rules of higher apps, so they register checks here: `rollouts` adds its
environments' approval policy, so a person cannot expose a production flag by editing it
directly when a rollout of the same change would need approval. The rollouts' own writes
(phases, rollbacks) already passed their gates: they run inside `through_rollout()`.

A check gets the change and answers None (allowed) or the message that says why it is refused
and how to get it approved; `check_state_change` raises it as an `ApplicationError` with the
code "approval_required".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from core.exceptions import ApplicationError
from flags.models import Environment


@dataclass(frozen=True, slots=True)
class StateChange:
    """A flag state about to change in one environment."""

    flag_key: str
    environment: Environment
    old_enabled: bool
    old_rules: list[dict[str, Any]]
    new_enabled: bool
    new_rules: list[dict[str, Any]]


StateCheck = Callable[[StateChange], str | None]

_CHECKS: list[StateCheck] = []
_THROUGH_ROLLOUT: ContextVar[bool] = ContextVar("flags_through_rollout", default=False)


def register_state_check(check: StateCheck) -> None:
    """Add a check (idempotent: the same function is registered once)."""
    if check not in _CHECKS:
        _CHECKS.append(check)


@contextmanager
def through_rollout() -> Iterator[None]:
    """Writes made by a rollout's own transitions (already gated) skip the checks."""
    token = _THROUGH_ROLLOUT.set(True)
    try:
        yield
    finally:
        _THROUGH_ROLLOUT.reset(token)


def check_state_change(change: StateChange) -> None:
    """Raise ApplicationError(code="approval_required") when a registered check refuses."""
    if _THROUGH_ROLLOUT.get():
        return
    for check in _CHECKS:
        refusal = check(change)
        if refusal:
            raise ApplicationError(refusal, field="enabled", code="approval_required")


def rules_exposure(enabled: bool, rules: list[dict[str, Any]]) -> int:
    """The most a state can expose, in percent: a percentage rule counts its percentage, any
    other rule (user ids, constraints, segments) counts as everyone; off is 0."""
    if not enabled:
        return 0
    if not rules:
        return 100  # on without rules: everyone (Unleash semantics)
    most = 0
    for rule in rules:
        params = rule.get("parameters") or {}
        name = rule.get("name")
        raw = None
        if name == "flexibleRollout":
            raw = params.get("rollout")
        elif name in ("gradualRolloutUserId", "gradualRolloutSessionId", "gradualRolloutRandom"):
            raw = params.get("percentage")
        if raw is None:
            return 100
        try:
            most = max(most, min(100, max(0, int(float(raw)))))
        except (TypeError, ValueError):
            return 100
    return most
