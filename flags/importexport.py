"""Import and export an environment's flags in Unleash's client-API format (flags as code).

`flags_export` returns the document `GET /api/client/features` serves, plus the rules that are
switched off (`"disabled": true`) and segment descriptions, so that an export imports back to
the same configuration. `flags_import` accepts that document, or one fetched from an Unleash
server's `/api/client/features` (legacy strategy names included).

An import validates everything first and changes nothing when anything is wrong: the error
lists every problem, one per line. What an Unleash server itself serves is never wrong: rules
that can never match (an unknown operator or strategy, a regex the engine's dialect rejects, a
reference to a missing segment, a dependency on a missing flag; see `flags.compat`) are kept
as they are, evaluated as Unleash SDKs do (false), and listed as warnings in the result.
Segments without a name are named after their id ("Segment 3"). A document in the delta API
format (`{"events": [...]}`) is hydrated first. Strategy and feature variants keep exactly the
fields they had (no `stickiness` is added: an Unleash SDK reads a missing one as "inherit the
strategy's", not as `default`). Then, in one transaction, it creates or updates segments
(matched by name; the file's segment ids are mapped to Rollcall's), creates or updates each
flag's definition (type, variants, dependencies, ... are shared by all environments) and sets
the flag's state (enabled + rules) in the target environment. Flags absent from the file are
left alone: an import never deletes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from simple_history.utils import bulk_create_with_history

from core.exceptions import ApplicationError
from flags import compat, engine, services
from flags.models import FLAG_KEY_PATTERN, Environment, Flag, FlagState, Segment
from flags.selectors import environment_client_state
from flags.services.common import Actor, actor_user, set_history_user

logger = logging.getLogger(__name__)

ENVIRONMENT_KEY_PATTERN = r"^[-a-zA-Z0-9_]+$"
MAX_REPORTED_PROBLEMS = 100


@dataclass
class ImportResult:
    environment: Environment
    created_flags: list[str] = field(default_factory=list)
    updated_flags: list[str] = field(default_factory=list)
    unchanged_flags: list[str] = field(default_factory=list)
    created_segments: list[str] = field(default_factory=list)
    updated_segments: list[str] = field(default_factory=list)
    created_environment: bool = False
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"Imported into {self.environment.key}: {len(self.created_flags)} flag(s) created, "
            f"{len(self.updated_flags)} updated, {len(self.unchanged_flags)} unchanged; "
            f"{len(self.created_segments)} segment(s) created, "
            f"{len(self.updated_segments)} updated."
        )
        if self.warnings:
            text += f" {len(self.warnings)} warning(s):"
            text += "".join(f"\n- {w}" for w in self.warnings)
        return text


@dataclass
class _Segment:
    file_id: Any
    name: str
    description: str
    constraints: list[dict[str, Any]]


@dataclass
class _Feature:
    key: str
    name: str
    description: str
    type: str
    variants: list[dict[str, Any]]
    dependencies: list[dict[str, Any]]
    tags: list[str]
    lifecycle: str | None  # None: keep the existing one (or active)
    impression_data: bool
    enabled: bool
    rules: list[dict[str, Any]]  # segments still hold the file's ids


def flags_export(*, environment: Environment) -> dict[str, Any]:
    """The environment's flags and segments, in the format `flags_import` reads."""
    return environment_client_state(environment, for_export=True)


def flags_import(
    *,
    environment: Environment | str,
    data: Any,
    actor: Actor,
    create_environment: bool = False,
) -> ImportResult:
    """Import a client-API document into an environment (all or nothing)."""
    problems: list[str] = []
    warnings: list[str] = []
    env, env_key = _resolve_environment(environment, create_environment, problems)
    segments, features = _validate_document(data, problems, warnings)
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        lines = [f"Nothing was imported: fix {len(problems)} problem(s) and try again."]
        lines += [f"- {p}" for p in shown]
        if more:
            lines.append(f"- ... and {more} more.")
        raise ApplicationError("\n".join(lines), code="import_invalid")
    with transaction.atomic():
        result = _apply(env, env_key, segments, features, actor)
        result.warnings = warnings + _dependency_warnings(features)
    logger.info(
        "flags.imported environment=%s created=%d updated=%d unchanged=%d segments_created=%d "
        "segments_updated=%d",
        result.environment.key,
        len(result.created_flags),
        len(result.updated_flags),
        len(result.unchanged_flags),
        len(result.created_segments),
        len(result.updated_segments),
    )
    return result


# --------------------------------------------------------------------------------------------
# Validation (no writes)


def _resolve_environment(
    environment: Environment | str, create: bool, problems: list[str]
) -> tuple[Environment | None, str]:
    if isinstance(environment, Environment):
        return environment, environment.key
    key = str(environment or "").strip()
    env = Environment.objects.filter(key=key).first()
    if env is not None:
        return env, key
    if not create:
        problems.append(f"There is no environment {key!r}; create it first (or ask to create it).")
    elif not re.match(ENVIRONMENT_KEY_PATTERN, key) or len(key) > 64:
        problems.append(
            f"{key!r} cannot be an environment key: use up to 64 letters, digits, '-' or '_'."
        )
    return None, key


def _validate_document(
    data: Any, problems: list[str], warnings: list[str]
) -> tuple[list[_Segment], list[_Feature]]:
    if not isinstance(data, dict):
        problems.append('The file must be a JSON object: {"version": 2, "features": [...]}.')
        return [], []
    if "features" not in data and isinstance(data.get("events"), list):
        try:  # Unleash's delta API format: hydrate the events into a client-API document
            data = engine.apply_delta(None, data["events"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"'events' is not a valid list of delta API events ({exc}).")
            return [], []
    raw_features = data.get("features")
    if not isinstance(raw_features, list):
        problems.append("'features' must be a list of flags.")
        raw_features = []
    raw_segments = data.get("segments") or []
    if not isinstance(raw_segments, list):
        problems.append("'segments' must be a list.")
        raw_segments = []
    segments = _validate_segments(raw_segments, problems, warnings)
    segment_ids = {s.file_id for s in segments}
    known_keys = set(
        Flag.objects.exclude(lifecycle=Flag.Lifecycle.ARCHIVED).values_list("key", flat=True)
    )
    file_keys = {f.get("name") for f in raw_features if isinstance(f, dict)}
    features = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_features, start=1):
        label = f"Flag {number}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label = f"Flag {raw['name']!r}"
        try:
            feature = _validate_feature(raw, segment_ids, known_keys | file_keys)
            seg_map: dict[Any, Any] = {i: i for i in segment_ids}
            warnings += [
                f"{label}: {w}" for w in compat.rules_warnings(feature.rules, segments=seg_map)
            ]
        except ApplicationError as exc:
            problems.append(f"{label}: {exc.message}")
            continue
        if feature.key in seen:
            problems.append(f"{label}: appears twice in the file.")
            continue
        seen.add(feature.key)
        features.append(feature)
    return segments, features


def _validate_segments(
    raw_segments: list[Any], problems: list[str], warnings: list[str]
) -> list[_Segment]:
    segments = []
    ids: set[Any] = set()
    names: set[str] = set()
    for number, raw in enumerate(raw_segments, start=1):
        label = f"Segment {number}"
        if not isinstance(raw, dict):
            problems.append(f"{label}: must be an object with id, name and constraints.")
            continue
        name = raw.get("name")
        file_id = raw.get("id")
        if name is None and isinstance(file_id, int) and not isinstance(file_id, bool):
            name = f"Segment {file_id}"  # Unleash's client API may leave names out
            warnings.append(f"Segment {file_id} has no name: imported as {name!r}.")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{label}: give the segment a name.")
            continue
        name = name.strip()
        label = f"Segment {name!r}"
        if not isinstance(file_id, int) or isinstance(file_id, bool):
            problems.append(f"{label}: 'id' must be a whole number (rules refer to it).")
            continue
        if file_id in ids:
            problems.append(f"{label}: id {file_id} is used by another segment in the file.")
            continue
        if name.lower() in names:
            problems.append(f"{label}: the name appears twice in the file.")
            continue
        if len(name) > 100:
            problems.append(f"{label}: keep the name under 100 characters.")
            continue
        try:
            constraints = _tolerant_constraints(raw.get("constraints") or [], where="constraints")
        except ApplicationError as exc:
            problems.append(f"{label}: {exc.message}")
            continue
        warnings += compat.constraints_warnings(constraints, where=label)
        ids.add(file_id)
        names.add(name.lower())
        segments.append(
            _Segment(file_id, name, str(raw.get("description") or "").strip(), constraints)
        )
    return segments


def _validate_feature(raw: Any, segment_ids: set[Any], flag_keys: set[Any]) -> _Feature:
    if not isinstance(raw, dict):
        raise ApplicationError("must be an object with name, enabled and strategies.")
    key = raw.get("name")
    if not isinstance(key, str) or not re.fullmatch(FLAG_KEY_PATTERN, key) or len(key) > 100:
        raise ApplicationError(
            "'name' (the flag key) may use up to 100 characters of any language, without "
            "spaces or '/', '\\', '?', '#', '%', starting with a letter or digit."
        )
    if key.lower() in getattr(services, "RESERVED_FLAG_KEYS", set()):
        raise ApplicationError(f"{key!r} is reserved for a page of Rollcall; rename the flag.")
    extra = raw.get("rollcall") or {}
    if not isinstance(extra, dict):
        raise ApplicationError("'rollcall' must be an object.")
    value_type = extra.get("valueType") or Flag.Type.BOOLEAN
    if value_type not in Flag.Type.values:
        raise ApplicationError(
            f"unknown value type {value_type!r}; use one of {', '.join(Flag.Type.values)}."
        )
    lifecycle = extra.get("lifecycle")
    if lifecycle is None and raw.get("stale"):
        lifecycle = Flag.Lifecycle.STALE
    if lifecycle is not None and lifecycle not in Flag.Lifecycle.values:
        raise ApplicationError(
            f"unknown lifecycle {lifecycle!r}; use one of {', '.join(Flag.Lifecycle.values)}."
        )
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ApplicationError("'enabled' must be true or false.")
    variants = _variants(raw.get("variants") or [], value_type)
    strategies = raw.get("strategies") or []
    if not isinstance(strategies, list):
        raise ApplicationError("Rules must be a list.")
    rules = [
        _tolerant_rule(strategy, number, segment_ids, value_type)
        for number, strategy in enumerate(strategies, start=1)
    ]
    dependencies = _validate_dependencies(raw.get("dependencies") or [], key, flag_keys)
    display_name = extra.get("displayName") or key
    description = raw.get("description") or ""
    if not isinstance(display_name, str) or len(display_name) > 200:
        raise ApplicationError("'rollcall.displayName' must be text of up to 200 characters.")
    if not isinstance(description, str):
        raise ApplicationError("'description' must be text.")
    return _Feature(
        key=key,
        name=display_name.strip() or key,
        description=description.strip(),
        type=value_type,
        variants=variants,
        dependencies=dependencies,
        tags=services.validate_tags(extra.get("tags") or []),
        lifecycle=lifecycle,
        impression_data=bool(raw.get("impressionData", False)),
        enabled=enabled,
        rules=rules,
    )


def _tolerant_constraints(raw: Any, *, where: str) -> list[dict[str, Any]]:
    """Validated constraints; those that can never match (see `flags.compat`) kept as given."""
    if not isinstance(raw, list):
        raise ApplicationError(f"{where}: constraints must be a list.")
    clean = []
    for number, constraint in enumerate(raw, start=1):
        if compat.constraint_problem(constraint) and isinstance(constraint.get("contextName"), str):
            clean.append(dict(constraint))
            continue
        try:
            clean += services.validate_constraints([constraint], where=where)
        except ApplicationError as exc:
            message = exc.message.replace(f"{where}, constraint 1", f"{where}, constraint {number}")
            raise ApplicationError(message) from exc
    return clean


def _variants(raw: Any, value_type: str) -> list[dict[str, Any]]:
    """Validated variants, without the `stickiness` the validator adds where there was none."""
    clean = services.validate_variants(raw, flag_type=value_type)
    for given, variant in zip(raw, clean, strict=True):
        if not (isinstance(given, dict) and given.get("stickiness")):
            variant.pop("stickiness", None)
    return clean


def _tolerant_rule(raw: Any, number: int, segment_ids: set[Any], value_type: str) -> dict[str, Any]:
    """One strategy, validated; what Unleash tolerates (flags.compat) is kept as given."""
    where = f"Rule {number}"
    if not isinstance(raw, dict):
        raise ApplicationError(f"{where}: must be an object.")
    name = raw.get("name", "flexibleRollout")
    segments = raw.get("segments") or []
    known = segment_ids | {s for s in segments if isinstance(s, int) and not isinstance(s, bool)}
    probe = {**raw, "constraints": []}
    if name not in services.STRATEGIES and isinstance(name, str) and name:
        probe["name"] = "default"  # an unknown strategy: kept, false (as in Unleash)
    try:
        rule = services.validate_rules([probe], segment_ids=known)[0]
    except ApplicationError as exc:
        raise ApplicationError(exc.message.replace("Rule 1", where, 1)) from exc
    rule["name"] = name
    rule["constraints"] = _tolerant_constraints(raw.get("constraints") or [], where=where)
    if rule["variants"]:
        try:
            rule["variants"] = _variants(rule["variants"], value_type)
        except ApplicationError as exc:
            raise ApplicationError(f"{where}: {exc.message}") from exc
    return rule


def _dependency_warnings(features: list[_Feature]) -> list[str]:
    """Dependencies on flags that do not exist (checked after the import's writes)."""
    parents = {d["feature"] for f in features for d in f.dependencies}
    if not parents:
        return []
    existing = set(
        Flag.objects.exclude(lifecycle=Flag.Lifecycle.ARCHIVED)
        .filter(key__in=parents)
        .values_list("key", flat=True)
    )
    return [
        f"Flag {f.key!r}: {warning}"
        for f in features
        for warning in compat.dependencies_warnings(f.dependencies, flag_keys=existing)
    ]


def _validate_dependencies(raw: Any, key: str, flag_keys: set[Any]) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ApplicationError("'dependencies' must be a list.")
    clean = []
    for number, dependency in enumerate(raw, start=1):
        label = f"dependency {number}"
        if not isinstance(dependency, dict) or not isinstance(dependency.get("feature"), str):
            raise ApplicationError(f"{label}: must be an object naming its parent 'feature'.")
        parent = dependency["feature"]
        if parent == key:
            raise ApplicationError(f"{label}: a flag cannot depend on itself.")
        # A parent that is neither in the file nor in Rollcall is kept: the flag is off, as in
        # Unleash (warned about after the import).
        variants = dependency.get("variants") or []
        if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
            raise ApplicationError(f"{label}: 'variants' must be a list of variant names.")
        item: dict[str, Any] = {
            "feature": parent,
            "enabled": dependency.get("enabled", True) is not False,
        }
        if variants:
            item["variants"] = variants
        clean.append(item)
    return clean


# --------------------------------------------------------------------------------------------
# Writes (one transaction)


def _apply(
    env: Environment | None,
    env_key: str,
    segments: list[_Segment],
    features: list[_Feature],
    actor: Actor,
) -> ImportResult:
    created_env = False
    if env is None:
        env = services.environment_create(key=env_key, name=env_key.title(), actor=actor)
        created_env = True
    result = ImportResult(environment=env, created_environment=created_env)
    user = actor_user(actor)

    by_name = {s.name.lower(): s for s in Segment.objects.select_for_update()}
    id_map: dict[Any, int] = {}
    for item in segments:
        segment = by_name.get(item.name.lower())
        if segment is None:
            segment = Segment(
                name=item.name, description=item.description, constraints=item.constraints
            )
            set_history_user(segment, actor)
            segment.save()
            result.created_segments.append(item.name)
        elif segment.constraints != item.constraints or (
            item.description and segment.description != item.description
        ):
            segment.constraints = item.constraints
            if item.description:
                segment.description = item.description
            segment.version += 1
            set_history_user(segment, actor)
            segment.save()
            result.updated_segments.append(segment.name)
        id_map[item.file_id] = segment.pk

    keys = [f.key for f in features]
    flags = {f.key: f for f in Flag.objects.select_for_update().filter(key__in=keys)}
    states = {
        s.flag.key: s
        for s in FlagState.objects.select_for_update()
        .select_related("flag")
        .filter(environment=env, flag__key__in=keys)
    }
    other_envs = list(Environment.objects.exclude(pk=env.pk))
    for feature in features:
        rules = [
            {
                **rule,
                "segments": [id_map.get(s, compat.MISSING_SEGMENT_ID) for s in rule["segments"]],
            }
            for rule in feature.rules
        ]
        flag = flags.get(feature.key)
        changed = False
        if flag is None:
            flag = Flag(
                key=feature.key,
                name=feature.name,
                description=feature.description,
                type=feature.type,
                variants=feature.variants,
                dependencies=feature.dependencies,
                tags=feature.tags,
                lifecycle=feature.lifecycle or Flag.Lifecycle.ACTIVE,
                impression_data=feature.impression_data,
                owner=user,
            )
            set_history_user(flag, actor)
            flag.save()
            bulk_create_with_history(
                [FlagState(flag=flag, environment=other) for other in other_envs],
                FlagState,
                default_user=user,
            )
            result.created_flags.append(feature.key)
        else:
            lifecycle = feature.lifecycle
            if lifecycle is None:
                keep = (Flag.Lifecycle.ACTIVE, Flag.Lifecycle.PERMANENT)
                lifecycle = flag.lifecycle if flag.lifecycle in keep else Flag.Lifecycle.ACTIVE
            updates = {
                "name": feature.name,
                "description": feature.description,
                "type": feature.type,
                "variants": feature.variants,
                "dependencies": feature.dependencies,
                "tags": feature.tags,
                "lifecycle": lifecycle,
                "impression_data": feature.impression_data,
            }
            diff = [name for name, value in updates.items() if getattr(flag, name) != value]
            if diff:
                for name in diff:
                    setattr(flag, name, updates[name])
                flag.version += 1
                set_history_user(flag, actor)
                flag.save()
                changed = True
        state = states.get(feature.key)
        if state is None or state.enabled != feature.enabled or state.rules != rules:
            services.check_state_change(  # the environment's approval policy applies here too
                services.StateChange(
                    flag_key=feature.key,
                    environment=env,
                    old_enabled=state.enabled if state is not None else False,
                    old_rules=state.rules if state is not None else [],
                    new_enabled=feature.enabled,
                    new_rules=rules,
                )
            )
        if state is None:
            state = FlagState(flag=flag, environment=env, enabled=feature.enabled, rules=rules)
            set_history_user(state, actor)
            state.save()
            changed = True
        elif state.enabled != feature.enabled or state.rules != rules:
            state.enabled = feature.enabled
            state.rules = rules
            state.version += 1
            set_history_user(state, actor)
            state.save()
            changed = True
        if feature.key not in result.created_flags:
            (result.updated_flags if changed else result.unchanged_flags).append(feature.key)
    if (
        result.created_flags
        or result.updated_flags
        or result.created_segments
        or (result.updated_segments)
    ):
        services.environments_bump()
    return result
