"""The rules of one flag in one environment: add, edit, delete, reorder.

Rules are ordered; a flag is on when any rule matches. Every change goes through
`flag_state_update` with the version the editor saw, so concurrent edits conflict instead
of overwriting each other.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.exceptions import ApplicationError, ConflictError
from flags.models import Environment, Flag, FlagState
from flags.services.common import Actor, lock_state
from flags.services.flags import flag_state_update


def _rules_for_edit(
    flag: Flag, environment: Environment, expected_version: int | None
) -> tuple[FlagState, list[dict[str, Any]]]:
    state = lock_state(flag, environment)
    if expected_version is not None and state.version != expected_version:
        raise ConflictError(
            f"{flag.key} in {environment.name} was changed by someone else "
            f"(version {state.version}, you edited {expected_version}). Reload and try again."
        )
    return state, [dict(rule) for rule in state.rules]


def _check_index(rules: list[dict[str, Any]], index: int) -> None:
    if not 0 <= index < len(rules):
        raise ApplicationError(
            f"There is no rule {index + 1} (the environment has {len(rules)}). Reload the page."
        )


@transaction.atomic
def rule_add(
    *,
    flag: Flag,
    environment: Environment,
    rule: dict[str, Any],
    actor: Actor,
    expected_version: int | None,
) -> FlagState:
    state, rules = _rules_for_edit(flag, environment, expected_version)
    rules.append(rule)
    return flag_state_update(
        flag=flag, environment=environment, rules=rules, actor=actor, expected_version=state.version
    )


@transaction.atomic
def rule_update(
    *,
    flag: Flag,
    environment: Environment,
    index: int,
    rule: dict[str, Any],
    actor: Actor,
    expected_version: int | None,
) -> FlagState:
    """Replace rule `index` (0-based); its variants and `disabled` mark stay unless `rule` sets
    them (the UI's rule editor edits neither)."""
    state, rules = _rules_for_edit(flag, environment, expected_version)
    _check_index(rules, index)
    new_rule = dict(rule)
    for kept in ("variants", "disabled"):
        if kept not in new_rule and rules[index].get(kept):
            new_rule[kept] = rules[index][kept]
    rules[index] = new_rule
    return flag_state_update(
        flag=flag, environment=environment, rules=rules, actor=actor, expected_version=state.version
    )


@transaction.atomic
def rule_delete(
    *,
    flag: Flag,
    environment: Environment,
    index: int,
    actor: Actor,
    expected_version: int | None,
) -> FlagState:
    state, rules = _rules_for_edit(flag, environment, expected_version)
    _check_index(rules, index)
    del rules[index]
    return flag_state_update(
        flag=flag, environment=environment, rules=rules, actor=actor, expected_version=state.version
    )


@transaction.atomic
def rule_move(
    *,
    flag: Flag,
    environment: Environment,
    index: int,
    direction: str,
    actor: Actor,
    expected_version: int | None,
) -> FlagState:
    """Move rule `index` one place "up" (earlier) or "down"; at either end it stays put."""
    if direction not in ("up", "down"):
        raise ApplicationError("Move a rule up or down.", field="direction")
    state, rules = _rules_for_edit(flag, environment, expected_version)
    _check_index(rules, index)
    target = index - 1 if direction == "up" else index + 1
    if not 0 <= target < len(rules):
        return state
    rules[index], rules[target] = rules[target], rules[index]
    return flag_state_update(
        flag=flag, environment=environment, rules=rules, actor=actor, expected_version=state.version
    )
