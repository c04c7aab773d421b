"""Flags: create, details and variants, archive; and a flag's state (kill switch and rules)
in one environment."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import transaction
from django.db.transaction import TransactionManagementError
from simple_history.utils import bulk_create_with_history

from core.exceptions import ApplicationError, ConflictError
from flags.models import FLAG_KEY_PATTERN, Environment, Flag, FlagState
from flags.services.common import (
    Actor,
    actor_user,
    environments_bump,
    lock_state,
    set_history_user,
)
from flags.services.guards import StateChange, check_state_change
from flags.services.validation import validate_rules, validate_tags, validate_variants

logger = logging.getLogger(__name__)

# Keys that would collide with the flags UI's own pages (/flags/new/, /flags/settings/, ...).
RESERVED_FLAG_KEYS = {"new", "segments", "settings"}


@transaction.atomic
def flag_create(
    *,
    key: str,
    name: str,
    actor: Actor,
    type: str = Flag.Type.BOOLEAN,
    description: str = "",
    variants: list[dict[str, Any]] | None = None,
    tags: list[str] | None = None,
    lifecycle: str = Flag.Lifecycle.ACTIVE,
) -> Flag:
    if not re.match(FLAG_KEY_PATTERN, key or ""):
        raise ApplicationError(
            "The key may use letters, digits, '.', '_' and '-', starting with a letter or digit.",
            field="key",
        )
    if key.lower() in RESERVED_FLAG_KEYS:
        raise ApplicationError(
            f"{key!r} is reserved for a page of Rollcall; choose another key.", field="key"
        )
    if Flag.objects.filter(key=key).exists():
        raise ApplicationError(f"A flag with the key {key!r} already exists.", field="key")
    if type not in Flag.Type.values:
        raise ApplicationError(f"Unknown flag type {type!r}.", field="type")
    if lifecycle not in Flag.Lifecycle.values:
        raise ApplicationError(f"Unknown lifecycle {lifecycle!r}.", field="lifecycle")
    user = actor_user(actor)
    flag = Flag(
        key=key,
        name=(name or "").strip() or key,
        type=type,
        description=description,
        variants=validate_variants(variants or [], flag_type=type),
        tags=validate_tags(tags or []),
        lifecycle=lifecycle,
        owner=user,
    )
    flag.full_clean()
    set_history_user(flag, user)
    flag.save()
    bulk_create_with_history(
        [FlagState(flag=flag, environment=env) for env in Environment.objects.all()],
        FlagState,
        default_user=user,
    )
    environments_bump()
    logger.info("flag.created flag=%s", flag.key)
    return flag


@transaction.atomic
def flag_state_update(
    *,
    flag: Flag,
    environment: Environment,
    actor: Actor,
    enabled: bool | None = None,
    rules: list[dict[str, Any]] | None = None,
    expected_version: int | None = None,
) -> FlagState:
    """Set a flag's kill switch and/or rules in one environment."""
    state = lock_state(flag, environment)
    if expected_version is not None and state.version != expected_version:
        raise ConflictError(
            f"{flag.key} in {environment.name} was changed by someone else "
            f"(version {state.version}, you edited {expected_version}). Reload and try again."
        )
    return flag_state_apply(
        state=state, flag=flag, environment=environment, actor=actor, enabled=enabled, rules=rules
    )


def flag_state_apply(
    *,
    state: FlagState,
    flag: Flag,
    environment: Environment,
    actor: Actor,
    enabled: bool | None = None,
    rules: list[dict[str, Any]] | None = None,
    segment_ids: set[int] | None = None,
) -> FlagState:
    """`flag_state_update` for a caller whose transaction already locked `state` (`lock_state`).

    No savepoint of its own: an error leaves the caller's transaction to roll back as a whole
    (a rollout's step). `segment_ids` are segments the caller knows exist (e.g. its phase's
    protected segment); by default every segment id is read to check the rules' references.
    """
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError("flag_state_apply needs the transaction holding the lock.")
    changed = False
    old_enabled, old_rules = state.enabled, state.rules
    if rules is not None:
        clean = validate_rules(rules, segment_ids=segment_ids, check_values=True)
        if clean != state.rules:
            state.rules = clean
            changed = True
    if enabled is not None and enabled != state.enabled:
        state.enabled = enabled
        changed = True
    if not changed:
        return state
    check_state_change(
        StateChange(
            flag_key=flag.key,
            environment=environment,
            old_enabled=old_enabled,
            old_rules=old_rules,
            new_enabled=state.enabled,
            new_rules=state.rules,
        )
    )
    state.version += 1
    set_history_user(state, actor)
    state.save()
    environments_bump(environment_ids=[environment.id])
    logger.info(
        "flag.state_updated flag=%s environment=%s enabled=%s rules=%d",
        flag.key,
        environment.key,
        state.enabled,
        len(state.rules),
    )
    return state


def flag_toggle(*, flag: Flag, environment: Environment, enabled: bool, actor: Actor) -> FlagState:
    return flag_state_update(flag=flag, environment=environment, enabled=enabled, actor=actor)


def _disable_states(flag: Flag, actor: Actor, reason: str) -> list[int]:
    changed = []
    for state in FlagState.objects.select_for_update().filter(flag=flag, enabled=True):
        state.enabled = False
        state.version += 1
        set_history_user(state, actor)
        state._change_reason = reason  # type: ignore[attr-defined]
        state.save()
        changed.append(state.environment_id)
    return changed


@transaction.atomic
def flag_update(
    *,
    flag: Flag,
    actor: Actor,
    expected_version: int | None,
    name: str | None = None,
    description: str | None = None,
    type: str | None = None,
    variants: list[dict[str, Any]] | None = None,
    tags: list[str] | None = None,
    lifecycle: str | None = None,
) -> Flag:
    """Change a flag's details and variants (never its key). Archiving turns it off everywhere."""
    locked = Flag.objects.select_for_update().get(pk=flag.pk)
    if expected_version is not None and locked.version != expected_version:
        raise ConflictError(
            f"Flag {locked.key} was changed by someone else (version {locked.version}, you "
            f"edited {expected_version}). Reload and try again."
        )
    updates: dict[str, Any] = {}
    if name is not None:
        name = name.strip()
        if not name:
            raise ApplicationError("Give the flag a name.", field="name")
        updates["name"] = name
    if description is not None:
        updates["description"] = description.strip()
    new_type = locked.type if type is None else type
    if new_type not in Flag.Type.values:
        raise ApplicationError(f"Unknown flag type {new_type!r}.", field="type")
    updates["type"] = new_type
    if variants is not None or new_type != locked.type:
        updates["variants"] = validate_variants(
            locked.variants if variants is None else variants, flag_type=new_type
        )
    if tags is not None:
        updates["tags"] = validate_tags(tags)
    if lifecycle is not None:
        if lifecycle not in Flag.Lifecycle.values:
            raise ApplicationError(f"Unknown lifecycle {lifecycle!r}.", field="lifecycle")
        updates["lifecycle"] = lifecycle
    changed = sorted(field for field, value in updates.items() if getattr(locked, field) != value)
    if not changed:
        return locked
    for field in changed:
        setattr(locked, field, updates[field])
    locked.version += 1
    set_history_user(locked, actor)
    locked.save()
    if "lifecycle" in changed and locked.lifecycle == Flag.Lifecycle.ARCHIVED:
        _disable_states(locked, actor, "archived")
    environments_bump()
    logger.info("flag.updated flag=%s fields=%s", locked.key, ",".join(changed))
    return locked


def flag_archive(*, flag: Flag, actor: Actor, expected_version: int | None = None) -> Flag:
    """Archive a flag: it is turned off in every environment and hidden from the list."""
    return flag_update(
        flag=flag,
        actor=actor,
        expected_version=expected_version,
        lifecycle=Flag.Lifecycle.ARCHIVED,
    )
