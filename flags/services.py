"""Every write to flags goes through here (UI, API, import, rollouts, admin).

Any change that affects evaluation bumps the environment's `config_version` in the same
transaction, so cached snapshots are rebuilt (see `flags.snapshot`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from core.exceptions import ApplicationError, ConflictError
from flags.models import FLAG_KEY_PATTERN, Environment, Flag, FlagState, Segment

logger = logging.getLogger(__name__)

OPERATORS = {
    "IN", "NOT_IN", "STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH",
    "NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE", "DATE_AFTER", "DATE_BEFORE",
    "SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE", "REGEX", "IN_CIDR",
}  # fmt: skip
STRATEGIES = {
    "default", "userWithId", "gradualRolloutUserId", "gradualRolloutSessionId",
    "gradualRolloutRandom", "remoteAddress", "flexibleRollout", "applicationHostname",
}  # fmt: skip
SINGLE_VALUE_OPERATORS = {
    "NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE", "DATE_AFTER", "DATE_BEFORE",
    "SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE", "REGEX",
}  # fmt: skip


def environments_bump(*, environment_ids: Iterable[int] | None = None) -> None:
    """Move the config version of some (or all) environments; snapshots follow."""
    qs = Environment.objects.all()
    if environment_ids is not None:
        qs = qs.filter(id__in=list(environment_ids))
    qs.update(config_version=F("config_version") + 1)

    def _invalidate() -> None:
        from flags import snapshot

        snapshot.invalidate_local()

    transaction.on_commit(_invalidate)


def validate_constraints(constraints: Any, *, where: str) -> list[dict[str, Any]]:
    if not isinstance(constraints, list):
        raise ApplicationError(f"{where}: constraints must be a list.")
    clean = []
    for i, c in enumerate(constraints, start=1):
        label = f"{where}, constraint {i}"
        if not isinstance(c, dict):
            raise ApplicationError(f"{label}: must be an object.")
        context_name = c.get("contextName")
        if not isinstance(context_name, str) or not context_name.strip():
            raise ApplicationError(f"{label}: choose a context field (contextName).")
        operator = c.get("operator")
        if operator not in OPERATORS:
            allowed = ", ".join(sorted(OPERATORS))
            raise ApplicationError(f"{label}: unknown operator {operator!r}; use one of {allowed}.")
        item: dict[str, Any] = {
            "contextName": context_name.strip(),
            "operator": operator,
            "inverted": bool(c.get("inverted", False)),
            "caseInsensitive": bool(c.get("caseInsensitive", False)),
        }
        if operator in SINGLE_VALUE_OPERATORS:
            value = c.get("value")
            if value is None and c.get("values"):
                value = c["values"][0]
            if value is None or str(value) == "":
                raise ApplicationError(f"{label}: {operator} needs a value.")
            if operator == "REGEX":
                try:
                    re.compile(str(value))
                except re.error as exc:
                    raise ApplicationError(f"{label}: invalid regular expression ({exc}).") from exc
            item["value"] = str(value)
        else:
            values = c.get("values", [])
            if not isinstance(values, list) or not all(
                isinstance(v, str | int | float) for v in values
            ):
                raise ApplicationError(f"{label}: values must be a list of strings.")
            item["values"] = [str(v) for v in values]
        clean.append(item)
    return clean


def validate_rules(rules: Any, *, segment_ids: set[int] | None = None) -> list[dict[str, Any]]:
    """Check rules (Unleash activation strategies) and return them normalised."""
    if not isinstance(rules, list):
        raise ApplicationError("Rules must be a list.")
    if segment_ids is None:
        segment_ids = set(Segment.objects.values_list("id", flat=True))
    clean = []
    for i, rule in enumerate(rules, start=1):
        where = f"Rule {i}"
        if not isinstance(rule, dict):
            raise ApplicationError(f"{where}: must be an object.")
        name = rule.get("name", "flexibleRollout")
        if name not in STRATEGIES:
            raise ApplicationError(f"{where}: unknown strategy {name!r}.")
        parameters = rule.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ApplicationError(f"{where}: parameters must be an object.")
        parameters = {str(k): str(v) for k, v in parameters.items()}
        for pct_key in ("rollout", "percentage"):
            if pct_key in parameters:
                try:
                    pct = int(float(parameters[pct_key]))
                except ValueError as exc:
                    raise ApplicationError(f"{where}: {pct_key} must be a number.") from exc
                if not 0 <= pct <= 100:
                    raise ApplicationError(f"{where}: {pct_key} must be between 0 and 100.")
        segments = rule.get("segments") or []
        if not isinstance(segments, list) or not all(isinstance(s, int) for s in segments):
            raise ApplicationError(f"{where}: segments must be a list of segment ids.")
        missing = [s for s in segments if s not in segment_ids]
        if missing:
            raise ApplicationError(f"{where}: unknown segment id(s) {missing}.")
        variants = rule.get("variants") or []
        if not isinstance(variants, list):
            raise ApplicationError(f"{where}: variants must be a list.")
        clean.append(
            {
                "name": name,
                "parameters": parameters,
                "constraints": validate_constraints(rule.get("constraints") or [], where=where),
                "segments": segments,
                "variants": variants,
                **({"title": str(rule["title"])} if rule.get("title") else {}),
                **({"disabled": True} if rule.get("disabled") else {}),
            }
        )
    return clean


@transaction.atomic
def flag_create(
    *,
    key: str,
    name: str,
    actor: AbstractBaseUser | None,
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
    if Flag.objects.filter(key=key).exists():
        raise ApplicationError(f"A flag with the key {key!r} already exists.", field="key")
    if type not in Flag.Type.values:
        raise ApplicationError(f"Unknown flag type {type!r}.", field="type")
    flag = Flag(
        key=key,
        name=name or key,
        type=type,
        description=description,
        variants=variants or [],
        tags=sorted(set(tags or [])),
        lifecycle=lifecycle,
        owner=actor if actor and actor.is_authenticated else None,
    )
    flag.full_clean()
    flag.save()
    FlagState.objects.bulk_create(
        [FlagState(flag=flag, environment=env) for env in Environment.objects.all()]
    )
    environments_bump()
    logger.info("flag.created flag=%s", flag.key)
    return flag


def _lock_state(flag: Flag, environment: Environment) -> FlagState:
    state, _ = FlagState.objects.select_for_update().get_or_create(
        flag=flag, environment=environment
    )
    return state


@transaction.atomic
def flag_state_update(
    *,
    flag: Flag,
    environment: Environment,
    actor: AbstractBaseUser | None,
    enabled: bool | None = None,
    rules: list[dict[str, Any]] | None = None,
    expected_version: int | None = None,
) -> FlagState:
    """Set a flag's kill switch and/or rules in one environment."""
    state = _lock_state(flag, environment)
    if expected_version is not None and state.version != expected_version:
        raise ConflictError(
            f"{flag.key} in {environment.name} was changed by someone else "
            f"(version {state.version}, you edited {expected_version}). Reload and try again."
        )
    changed = False
    if rules is not None:
        clean = validate_rules(rules)
        if clean != state.rules:
            state.rules = clean
            changed = True
    if enabled is not None and enabled != state.enabled:
        state.enabled = enabled
        changed = True
    if not changed:
        return state
    state.version += 1
    if actor is not None and getattr(actor, "is_authenticated", False):
        state._history_user = actor  # type: ignore[attr-defined]
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


def flag_toggle(
    *, flag: Flag, environment: Environment, enabled: bool, actor: AbstractBaseUser | None
) -> FlagState:
    return flag_state_update(flag=flag, environment=environment, enabled=enabled, actor=actor)
