"""Every write to flags goes through here (UI, API, import, rollouts, admin).

Any change that affects evaluation bumps the environment's `config_version` in the same
transaction, so cached snapshots are rebuilt (see `flags.snapshot`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from simple_history.utils import bulk_create_with_history

from core.exceptions import ApplicationError, ConflictError
from flags import engine
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


# Keys that would collide with the flags UI's own pages (/flags/new/, /flags/settings/, ...).
RESERVED_FLAG_KEYS = {"new", "segments", "settings"}
MAX_TAG_LENGTH = 50
# Unleash variant weights: 1000 is 100%.
TOTAL_WEIGHT = 1000
PAYLOAD_TYPES = {"string", "json", "csv", "number"}
# Non-boolean flags answer their variant's payload as the value, so the payload must fit.
PAYLOAD_TYPES_BY_FLAG_TYPE = {
    "string": {"string", "csv"},
    "number": {"number"},
    "object": {"json"},
}


class SegmentUse(NamedTuple):
    flag_key: str
    environment: str
    rule: int  # 1-based, as people count


def environments_bump(*, environment_ids: Iterable[int] | None = None) -> None:
    """Move the config version of some (or all) environments; snapshots follow."""
    qs = Environment.objects.all()
    if environment_ids is not None:
        qs = qs.filter(id__in=list(environment_ids))
    qs.update(config_version=F("config_version") + 1)

    def _invalidate() -> None:
        from flags import snapshot

        snapshot.publish_versions()
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
                try:  # the dialect the engine evaluates (Rust's regex), not Python's
                    engine.translate_rust_regex(str(value), bool(c.get("caseInsensitive")))
                except ValueError as exc:
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
    user = actor if actor is not None and actor.is_authenticated else None
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
    _set_history_user(flag, user)
    flag.save()
    bulk_create_with_history(
        [FlagState(flag=flag, environment=env) for env in Environment.objects.all()],
        FlagState,
        default_user=user,
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


# --------------------------------------------------------------------------------------------
# Flags: details, variants, archive


def _set_history_user(obj: Any, actor: AbstractBaseUser | None) -> None:
    if actor is not None and getattr(actor, "is_authenticated", False):
        obj._history_user = actor


def validate_tags(tags: Any) -> list[str]:
    """Tags: short labels without commas; returned sorted and without duplicates."""
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, list | tuple | set):
        raise ApplicationError("Tags must be a list of words.", field="tags")
    clean = set()
    for tag in tags:
        if not isinstance(tag, str):
            raise ApplicationError("Tags must be text.", field="tags")
        tag = tag.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH or "," in tag:
            raise ApplicationError(
                f"Tag {tag[:20]!r} is too long or has a comma: keep tags under "
                f"{MAX_TAG_LENGTH} characters, separated by commas.",
                field="tags",
            )
        clean.add(tag)
    return sorted(clean)


def _check_payload(payload: Any, *, label: str, flag_type: str) -> dict[str, str] | None:
    if payload in (None, {}):
        if flag_type != Flag.Type.BOOLEAN:
            raise ApplicationError(
                f"{label}: a {flag_type} flag answers with its variant's payload, so every "
                f"variant needs one.",
                field="variants",
            )
        return None
    if not isinstance(payload, dict):
        raise ApplicationError(f"{label}: payload must be an object.", field="variants")
    kind = payload.get("type")
    if kind not in PAYLOAD_TYPES:
        raise ApplicationError(
            f"{label}: payload type must be one of {', '.join(sorted(PAYLOAD_TYPES))}.",
            field="variants",
        )
    allowed = PAYLOAD_TYPES_BY_FLAG_TYPE.get(flag_type)
    if allowed and kind not in allowed:
        raise ApplicationError(
            f"{label}: a {flag_type} flag needs {' or '.join(sorted(allowed))} payloads, "
            f"not {kind}.",
            field="variants",
        )
    value = payload.get("value")
    if isinstance(value, dict | list) and kind == "json":
        value = json.dumps(value)
    if value is None:
        value = ""
    value = str(value)
    if kind == "json":
        try:
            json.loads(value)
        except ValueError as exc:
            raise ApplicationError(f"{label}: payload is not valid JSON ({exc}).") from exc
    elif kind == "number":
        try:
            number = float(value)
        except ValueError as exc:
            raise ApplicationError(f"{label}: payload {value!r} is not a number.") from exc
        if not math.isfinite(number):
            raise ApplicationError(f"{label}: payload must be a finite number.")
    return {"type": kind, "value": value}


def validate_variants(variants: Any, *, flag_type: str = Flag.Type.BOOLEAN) -> list[dict[str, Any]]:
    """Check Unleash feature variants and return them normalised.

    Weights are in Unleash's units (1000 = 100%). A `fix` variant keeps its weight; `variable`
    variants without a weight share what the fixed ones leave, as Unleash does. Given weights
    of `variable` variants are kept as they are (imported flags must keep every user in the
    same bucket, and bucketing depends on the total weight).
    """
    if variants is None:
        return []
    if not isinstance(variants, list):
        raise ApplicationError("Variants must be a list.", field="variants")
    clean: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, variant in enumerate(variants, start=1):
        label = f"Variant {i}"
        if not isinstance(variant, dict):
            raise ApplicationError(f"{label}: must be an object.", field="variants")
        name = str(variant.get("name") or "").strip()
        if not name:
            raise ApplicationError(f"{label}: give the variant a name.", field="variants")
        if name in names:
            raise ApplicationError(f"{label}: the name {name!r} is used twice.", field="variants")
        names.add(name)
        weight_type = variant.get("weightType") or "variable"
        if weight_type not in ("fix", "variable"):
            raise ApplicationError(f"{label}: weightType must be fix or variable.")
        weight = variant.get("weight")
        if weight in ("", None):
            if weight_type == "fix":
                raise ApplicationError(f"{label}: a fixed variant needs a weight.")
            weight = None
        else:
            try:
                weight = int(weight)
            except (TypeError, ValueError) as exc:
                raise ApplicationError(f"{label}: weight must be a whole number.") from exc
            if not 0 <= weight <= TOTAL_WEIGHT:
                raise ApplicationError(
                    f"{label}: weight must be between 0 and {TOTAL_WEIGHT} (100%).",
                    field="variants",
                )
        stickiness = str(variant.get("stickiness") or "default").strip() or "default"
        item: dict[str, Any] = {
            "name": name,
            "weight": weight,
            "weightType": weight_type,
            "stickiness": stickiness,
        }
        payload = _check_payload(variant.get("payload"), label=label, flag_type=flag_type)
        if payload is not None:
            item["payload"] = payload
        overrides = variant.get("overrides") or []
        if overrides:
            if not isinstance(overrides, list) or not all(
                isinstance(o, dict) and o.get("contextName") and isinstance(o.get("values"), list)
                for o in overrides
            ):
                raise ApplicationError(
                    f"{label}: overrides must be a list of {{contextName, values}}."
                )
            item["overrides"] = [
                {"contextName": str(o["contextName"]), "values": [str(v) for v in o["values"]]}
                for o in overrides
            ]
        clean.append(item)
    if not clean:
        return clean
    fixed = sum(v["weight"] for v in clean if v["weightType"] == "fix")
    if fixed > TOTAL_WEIGHT:
        raise ApplicationError(
            f"Fixed weights add up to {fixed / 10:g}%, more than 100%.", field="variants"
        )
    to_share = [v for v in clean if v["weight"] is None]
    if to_share:
        given = sum(v["weight"] for v in clean if v["weight"] is not None)
        remaining = max(TOTAL_WEIGHT - given, 0)
        share, extra = divmod(remaining, len(to_share))
        for index, variant in enumerate(to_share):
            variant["weight"] = share + (1 if index < extra else 0)
    elif all(v["weightType"] == "fix" for v in clean) and fixed != TOTAL_WEIGHT:
        raise ApplicationError(
            f"Weights add up to {fixed / 10:g}%; they must add up to 100% "
            f"(or leave one weight empty to take the rest).",
            field="variants",
        )
    if sum(v["weight"] for v in clean) <= 0:
        raise ApplicationError("At least one variant needs a weight above 0.", field="variants")
    return clean


def _disable_states(flag: Flag, actor: AbstractBaseUser | None, reason: str) -> list[int]:
    changed = []
    for state in FlagState.objects.select_for_update().filter(flag=flag, enabled=True):
        state.enabled = False
        state.version += 1
        _set_history_user(state, actor)
        state._change_reason = reason  # type: ignore[attr-defined]
        state.save()
        changed.append(state.environment_id)
    return changed


@transaction.atomic
def flag_update(
    *,
    flag: Flag,
    actor: AbstractBaseUser | None,
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
    _set_history_user(locked, actor)
    locked.save()
    if "lifecycle" in changed and locked.lifecycle == Flag.Lifecycle.ARCHIVED:
        _disable_states(locked, actor, "archived")
    environments_bump()
    logger.info("flag.updated flag=%s fields=%s", locked.key, ",".join(changed))
    return locked


def flag_archive(
    *, flag: Flag, actor: AbstractBaseUser | None, expected_version: int | None = None
) -> Flag:
    """Archive a flag: it is turned off in every environment and hidden from the list."""
    return flag_update(
        flag=flag,
        actor=actor,
        expected_version=expected_version,
        lifecycle=Flag.Lifecycle.ARCHIVED,
    )


# --------------------------------------------------------------------------------------------
# Rules of one flag in one environment (ordered; a flag is on when any rule matches)


def _rules_for_edit(
    flag: Flag, environment: Environment, expected_version: int | None
) -> tuple[FlagState, list[dict[str, Any]]]:
    state = _lock_state(flag, environment)
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
    actor: AbstractBaseUser | None,
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
    actor: AbstractBaseUser | None,
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
    actor: AbstractBaseUser | None,
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
    actor: AbstractBaseUser | None,
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


# --------------------------------------------------------------------------------------------
# Segments


def segment_usage(*, segment_ids: Iterable[int] | None = None) -> dict[int, list[SegmentUse]]:
    """Which rules reference each segment: segment id -> [(flag key, environment name, rule)]."""
    wanted = None if segment_ids is None else set(segment_ids)
    usage: dict[int, list[SegmentUse]] = {}
    states = FlagState.objects.select_related("flag", "environment").only(
        "rules", "flag__key", "environment__name", "environment__order", "environment__key"
    )
    for state in states:
        for number, rule in enumerate(state.rules or [], start=1):
            for segment_id in rule.get("segments") or []:
                if wanted is None or segment_id in wanted:
                    usage.setdefault(segment_id, []).append(
                        SegmentUse(state.flag.key, state.environment.name, number)
                    )
    return usage


def _check_segment_name(name: str, *, exclude_id: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the segment a name.", field="name")
    clash = Segment.objects.filter(name__iexact=name)
    if exclude_id is not None:
        clash = clash.exclude(pk=exclude_id)
    if clash.exists():
        raise ApplicationError(f"A segment called {name!r} already exists.", field="name")
    return name


@transaction.atomic
def segment_create(
    *,
    name: str,
    actor: AbstractBaseUser | None,
    description: str = "",
    constraints: list[dict[str, Any]] | None = None,
) -> Segment:
    name = _check_segment_name(name)
    segment = Segment(
        name=name,
        description=(description or "").strip(),
        constraints=validate_constraints(constraints or [], where=f"Segment {name}"),
    )
    _set_history_user(segment, actor)
    segment.save()
    environments_bump()
    logger.info("segment.created segment_id=%s name=%s", segment.pk, segment.name)
    return segment


@transaction.atomic
def segment_update(
    *,
    segment: Segment,
    actor: AbstractBaseUser | None,
    expected_version: int | None = None,
    name: str | None = None,
    description: str | None = None,
    constraints: list[dict[str, Any]] | None = None,
) -> Segment:
    locked = Segment.objects.select_for_update().get(pk=segment.pk)
    if expected_version is not None and locked.version != expected_version:
        raise ConflictError(
            f"Segment {locked.name} was changed by someone else (version {locked.version}, "
            f"you edited {expected_version}). Reload and try again."
        )
    updates: dict[str, Any] = {}
    if name is not None:
        updates["name"] = _check_segment_name(name, exclude_id=locked.pk)
    if description is not None:
        updates["description"] = description.strip()
    if constraints is not None:
        updates["constraints"] = validate_constraints(
            constraints, where=f"Segment {updates.get('name', locked.name)}"
        )
    changed = sorted(field for field, value in updates.items() if getattr(locked, field) != value)
    if not changed:
        return locked
    for field in changed:
        setattr(locked, field, updates[field])
    locked.version += 1
    _set_history_user(locked, actor)
    locked.save()
    environments_bump()
    logger.info("segment.updated segment_id=%s fields=%s", locked.pk, ",".join(changed))
    return locked


@transaction.atomic
def segment_delete(*, segment: Segment, actor: AbstractBaseUser | None) -> None:
    """Delete a segment that no rule uses (a rule with a missing segment would be off)."""
    locked = Segment.objects.select_for_update().get(pk=segment.pk)
    uses = segment_usage(segment_ids=[locked.pk]).get(locked.pk, [])
    if uses:
        shown = ", ".join(f"{u.flag_key} ({u.environment}, rule {u.rule})" for u in uses[:5])
        more = f" and {len(uses) - 5} more" if len(uses) > 5 else ""
        raise ApplicationError(
            f"Segment {locked.name!r} is used by {len(uses)} rule(s): {shown}{more}. "
            f"Remove it from those rules first.",
            code="in_use",
        )
    _set_history_user(locked, actor)
    segment_id = locked.pk
    locked.delete()
    environments_bump()
    logger.info("segment.deleted segment_id=%s", segment_id)


# --------------------------------------------------------------------------------------------
# Environments (admins)


@transaction.atomic
def environment_create(
    *,
    key: str,
    name: str,
    actor: AbstractBaseUser | None,
    is_production: bool = False,
    order: int | None = None,
) -> Environment:
    """Add an environment; every existing flag gets a state in it (off, no rules)."""
    key = (key or "").strip()
    if not re.match(r"^[-a-zA-Z0-9_]+$", key):
        raise ApplicationError(
            "The key may use letters, digits, '-' and '_' (it appears in URLs).", field="key"
        )
    if Environment.objects.filter(key=key).exists():
        raise ApplicationError(f"An environment with the key {key!r} exists.", field="key")
    name = (name or "").strip() or key
    if order is None:
        last = Environment.objects.order_by("-order").values_list("order", flat=True).first()
        order = 0 if last is None else last + 1
    environment = Environment(key=key, name=name, is_production=is_production, order=order)
    environment.full_clean()
    _set_history_user(environment, actor)
    environment.save()
    bulk_create_with_history(
        [FlagState(flag=flag, environment=environment) for flag in Flag.objects.only("id")],
        FlagState,
        default_user=actor if actor is not None and actor.is_authenticated else None,
    )
    logger.info("environment.created environment=%s", environment.key)
    return environment


@transaction.atomic
def environment_update(
    *,
    environment: Environment,
    actor: AbstractBaseUser | None,
    name: str | None = None,
    is_production: bool | None = None,
    order: int | None = None,
) -> Environment:
    locked = Environment.objects.select_for_update().get(pk=environment.pk)
    changed = []
    if name is not None:
        name = name.strip()
        if not name:
            raise ApplicationError("Give the environment a name.", field="name")
        if name != locked.name:
            locked.name = name
            changed.append("name")
    if is_production is not None and is_production != locked.is_production:
        locked.is_production = is_production
        changed.append("is_production")
    if order is not None and order != locked.order:
        if order < 0:
            raise ApplicationError("The order must be 0 or more.", field="order")
        locked.order = order
        changed.append("order")
    if changed:
        _set_history_user(locked, actor)
        locked.save()
        logger.info("environment.updated environment=%s fields=%s", locked.key, ",".join(changed))
    return locked


@transaction.atomic
def environment_move(
    *, environment: Environment, direction: str, actor: AbstractBaseUser | None
) -> list[Environment]:
    """Move an environment one place up or down; returns all environments in their new order."""
    if direction not in ("up", "down"):
        raise ApplicationError("Move an environment up or down.", field="direction")
    ordered = list(Environment.objects.select_for_update().order_by("order", "key"))
    index = next((i for i, env in enumerate(ordered) if env.pk == environment.pk), None)
    if index is None:
        raise ApplicationError("That environment no longer exists. Reload the page.")
    target = index - 1 if direction == "up" else index + 1
    if 0 <= target < len(ordered):
        ordered[index], ordered[target] = ordered[target], ordered[index]
    for position, env in enumerate(ordered):
        if env.order != position:
            env.order = position
            _set_history_user(env, actor)
            env.save(update_fields=["order", "updated_at"])
    logger.info("environment.moved environment=%s direction=%s", environment.key, direction)
    return ordered


# --------------------------------------------------------------------------------------------
# SDK keys (admins): secrets that let a service evaluate one environment's flags

from flags.models import SdkKey  # noqa: E402 - appended section, kept self-contained


def _sdk_key_secret() -> str:
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


@transaction.atomic
def sdk_key_create(
    *,
    environment: Environment,
    name: str,
    actor: AbstractBaseUser | None,
    kind: str = SdkKey.Kind.SERVER,
) -> tuple[SdkKey, str]:
    """Create a key; returns it with the raw secret, which is shown once and never stored.

    A `server` key reads the environment's rules (Unleash client API) and evaluates (OFREP);
    a `frontend` key may only ask for evaluated answers (Unleash frontend API, OFREP), so it
    is safe to ship in a browser or a mobile app.
    """
    if kind not in SdkKey.Kind.values:
        raise ApplicationError(
            f"Unknown key kind {kind!r}; use one of {', '.join(SdkKey.Kind.values)}.", field="kind"
        )
    name = (name or "").strip() or f"{environment.key} {kind} key"
    if len(name) > 100:
        raise ApplicationError("Keep the key's name under 100 characters.", field="name")
    raw = f"rc_{environment.key}_{_sdk_key_secret()}"
    sdk_key = SdkKey(
        environment=environment,
        name=name,
        kind=kind,
        prefix=raw[:16],
        key_hash=SdkKey.hash(raw),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    _set_history_user(sdk_key, actor)
    sdk_key.save()
    logger.info(
        "sdk_key.created sdk_key_id=%s environment=%s kind=%s", sdk_key.pk, environment.key, kind
    )
    return sdk_key, raw


@transaction.atomic
def sdk_key_revoke(*, sdk_key: SdkKey, actor: AbstractBaseUser | None) -> SdkKey:
    """Revoke a key: refused at once in this process, within FLAGS_SNAPSHOT_TTL elsewhere."""
    from django.utils import timezone

    locked = SdkKey.objects.select_for_update().get(pk=sdk_key.pk)
    if locked.revoked_at is not None:
        return locked
    locked.revoked_at = timezone.now()
    _set_history_user(locked, actor)
    locked.save()
    key_hash = locked.key_hash

    def _forget() -> None:
        from flags import sdk_auth

        sdk_auth.forget(key_hash)

    transaction.on_commit(_forget)
    logger.info("sdk_key.revoked sdk_key_id=%s environment_id=%s", locked.pk, locked.environment_id)
    return locked
