"""Reads of the flags UI and management API: lists, detail pages, history, evaluation.

(`flags.selectors` holds the machine reads; these serve people.) Every function runs a constant
number of queries, whatever the number of flags, rules or history records.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from flags import engine
from flags.models import Environment, Flag, FlagState, Segment

# --------------------------------------------------------------------------------------------
# Flag list


def environments() -> list[Environment]:
    return list(Environment.objects.order_by("order", "key"))


def flag_tags() -> list[str]:
    """Every tag in use, sorted (one query)."""
    tags: set[str] = set()
    for flag_tags in Flag.objects.values_list("tags", flat=True):
        tags.update(flag_tags or [])
    return sorted(tags, key=str.lower)


def _states_prefetch() -> Prefetch:
    return Prefetch(
        "states",
        queryset=FlagState.objects.only(
            "id", "flag_id", "environment_id", "enabled", "rules", "version"
        ),
    )


def flag_list(
    *,
    q: str = "",
    environment: str = "",
    tag: str = "",
    lifecycle: str = "",
    enabled: str = "",
) -> QuerySet[Flag]:
    """Flags matching the list filters, with their states prefetched (slice it to paginate)."""
    qs = Flag.objects.all()
    if q:
        qs = qs.filter(Q(key__icontains=q) | Q(name__icontains=q) | Q(description__icontains=q))
    if tag:
        if connection.features.supports_json_field_contains:
            qs = qs.filter(tags__contains=[tag])
        else:
            # SQLite: match the JSON text of the list (tags never contain quotes' escapes).
            qs = qs.filter(tags__icontains=json.dumps(tag))
    if lifecycle == "all":
        pass
    elif lifecycle:
        qs = qs.filter(lifecycle=lifecycle)
    else:
        qs = qs.exclude(lifecycle=Flag.Lifecycle.ARCHIVED)
    if enabled in ("on", "off"):
        on = enabled == "on"
        if environment:
            qs = qs.filter(states__environment__key=environment, states__enabled=on)
        elif on:
            qs = qs.filter(states__enabled=True).distinct()
        else:
            qs = qs.exclude(states__enabled=True)
    return qs.order_by("key").prefetch_related(_states_prefetch())


@dataclass
class FlagRow:
    flag: Flag
    # One entry per environment, in environment order (None: no state there yet).
    states: list[tuple[Environment, FlagState | None]]


def flag_rows(flags: Iterable[Flag], envs: Sequence[Environment]) -> list[FlagRow]:
    """Rows for the flag table: each flag with its state in every environment."""
    rows = []
    for flag in flags:
        by_env = {state.environment_id: state for state in flag.states.all()}
        rows.append(FlagRow(flag, [(env, by_env.get(env.id)) for env in envs]))
    return rows


# --------------------------------------------------------------------------------------------
# One flag


def flag_with_states(*, key: str) -> Flag | None:
    """The flag with its owner and states (each with its environment) in two queries."""
    return (
        Flag.objects.filter(key=key)
        .select_related("owner")
        .prefetch_related(
            Prefetch("states", queryset=FlagState.objects.select_related("environment"))
        )
        .first()
    )


def segments() -> list[Segment]:
    return list(Segment.objects.order_by("name"))


# --------------------------------------------------------------------------------------------
# History


@dataclass
class Change:
    field: str
    old: str = ""
    new: str = ""
    # For JSON fields (rules, variants): compact lines "path: old → new".
    lines: list[str] = dataclasses.field(default_factory=list)
    # For rules: the change in words ("Rule 1: 10% of users → 25% of users").
    words: list[str] = dataclasses.field(default_factory=list)


def rule_words(rule: Any) -> str:
    """One rule in a few words: "25% of users (by userId), if country in [DE, AT]"."""
    if not isinstance(rule, dict):
        return str(rule)
    name = rule.get("name", "flexibleRollout")
    params = rule.get("parameters") or {}
    if name == "flexibleRollout":
        stickiness = params.get("stickiness") or "default"
        text = f"{params.get('rollout', '100')}% of users" + (
            f" (by {stickiness})" if stickiness != "default" else ""
        )
    elif name == "default":
        text = "everyone"
    else:
        text = f"imported strategy {name}"
    conditions = []
    for c in rule.get("constraints") or []:
        values = c.get("values")
        shown = ", ".join(str(v) for v in values) if values is not None else str(c.get("value", ""))
        negated = "not " if c.get("inverted") else ""
        conditions.append(f"{c.get('contextName', '?')} {negated}{c.get('operator', '?')} {shown}")
    if rule.get("segments"):
        conditions.append(
            f"in segment{'s' if len(rule['segments']) > 1 else ''} "
            + ", ".join(f"#{s}" for s in rule["segments"])
        )
    if conditions:
        text += ", if " + " and ".join(conditions)
    if rule.get("disabled"):
        text += " (disabled)"
    return text


def rules_words(old: Any, new: Any) -> list[str]:
    """Rule changes in words, one line per rule added, removed or changed."""
    old = old if isinstance(old, list) else []
    new = new if isinstance(new, list) else []
    lines = []
    for i in range(max(len(old), len(new))):
        if i >= len(old):
            lines.append(f"Rule {i + 1} added: {rule_words(new[i])}")
        elif i >= len(new):
            lines.append(f"Rule {i + 1} removed: {rule_words(old[i])}")
        elif old[i] != new[i]:
            before, after = rule_words(old[i]), rule_words(new[i])
            lines.append(
                f"Rule {i + 1}: {before} → {after}" if before != after else f"Rule {i + 1} changed"
            )
    return lines


@dataclass
class HistoryEntry:
    when: datetime
    who: str
    what: str
    action: str
    changes: list[Change]
    reason: str = ""


FLAG_FIELDS = (
    ("name", "Name"),
    ("description", "Description"),
    ("type", "Type"),
    ("tags", "Tags"),
    ("lifecycle", "Lifecycle"),
    ("variants", "Variants"),
    ("dependencies", "Dependencies"),
    ("impression_data", "Impression data"),
)
STATE_FIELDS = (("enabled", "Enabled"), ("rules", "Rules"))
SEGMENT_FIELDS = (("name", "Name"), ("description", "Description"), ("constraints", "Constraints"))
JSON_FIELDS = {"variants", "dependencies", "rules", "constraints"}
_ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}


def _prune(value: Any) -> Any:
    """Drop empty and false members of objects: they say nothing in a diff line."""
    if isinstance(value, dict):
        return {
            k: _prune(v)
            for k, v in value.items()
            if not (v is None or v is False or (isinstance(v, str | list | dict) and not v))
        }
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _compact(value: Any) -> str:
    text = json.dumps(_prune(value), separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "…"


def json_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Compact differences between two JSON values: ["[2].parameters.rollout: "10" → "25"", ...]."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                lines.append(f"{sub}: removed")
            elif key not in old:
                lines.append(f"{sub}: added {_compact(new[key])}")
            else:
                lines.extend(json_diff(old[key], new[key], sub))
        return lines
    if isinstance(old, list) and isinstance(new, list):
        lines = []
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i + 1}]"
            if i >= len(old):
                lines.append(f"{sub}: added {_compact(new[i])}")
            elif i >= len(new):
                lines.append(f"{sub}: removed {_compact(old[i])}")
            else:
                lines.extend(json_diff(old[i], new[i], sub))
        return lines
    if old != new:
        return [f"{path or 'value'}: {_compact(old)} → {_compact(new)}"]
    return []


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    if value in (None, ""):
        return "(empty)"
    return str(value)


def _changes(old: Any, new: Any, fields: Iterable[tuple[str, str]]) -> list[Change]:
    changes = []
    for name, label in fields:
        before = getattr(old, name) if old is not None else None
        after = getattr(new, name)
        if old is not None and before == after:
            continue
        if old is None and after in (None, "", [], False):
            continue
        if name in JSON_FIELDS:
            lines = json_diff(before or [], after or [])
            if lines:
                words = rules_words(before, after) if name == "rules" else []
                changes.append(Change(label, lines=lines, words=words))
        elif name == "tags":
            old_tags = "" if old is None else _display(before or [])
            changes.append(Change(label, old_tags, _display(after or [])))
        else:
            changes.append(Change(label, "" if old is None else _display(before), _display(after)))
    return changes


def _who(record: Any) -> str:
    user = record.history_user
    if user is None:
        return "system"
    return user.get_full_name() or user.get_username()


def _entries(
    records: Sequence[Any],
    fields: Iterable[tuple[str, str]],
    what: Any,
    *,
    skip_created: bool = False,
) -> list[HistoryEntry]:
    """Pair each record with the previous one of the same object (records newest first)."""
    fields = tuple(fields)
    by_object: dict[int, list[Any]] = {}
    for record in records:
        by_object.setdefault(record.id, []).append(record)
    entries = []
    for group in by_object.values():
        for i, record in enumerate(group):
            previous = group[i + 1] if i + 1 < len(group) else None
            if record.history_type == "+":
                if skip_created:
                    continue
                changes = _changes(None, record, fields)
            elif previous is None:
                continue  # its predecessor is older than the window shown
            elif record.history_type == "-":
                changes = []
            else:
                changes = _changes(previous, record, fields)
                if not changes:
                    continue  # only unshown fields (e.g. the version) moved
            entries.append(
                HistoryEntry(
                    when=record.history_date,
                    who=_who(record),
                    what=what(record),
                    action=_ACTIONS.get(record.history_type, "changed"),
                    changes=changes,
                    reason=record.history_change_reason or "",
                )
            )
    return entries


def flag_history(
    *, flag: Flag, limit: int = 50, before: datetime | None = None
) -> list[HistoryEntry]:
    """Readable changes of a flag and its states, newest first (three queries); `before`
    gives the changes made before that moment (the next page: the oldest `when` shown)."""
    env_names = dict(Environment.objects.values_list("id", "name"))
    flag_qs = Flag.history.filter(id=flag.pk)
    state_qs = FlagState.history.filter(flag_id=flag.pk)
    if before is not None:
        flag_qs = flag_qs.filter(history_date__lt=before)
        state_qs = state_qs.filter(history_date__lt=before)
    flag_records = list(
        flag_qs.select_related("history_user").order_by("-history_date", "-history_id")[: limit + 1]
    )
    state_records = list(
        state_qs.select_related("history_user").order_by("-history_date", "-history_id")[
            : limit * 2
        ]
    )
    entries = _entries(flag_records, FLAG_FIELDS, lambda r: "Flag")
    entries += _entries(
        state_records,
        STATE_FIELDS,
        lambda r: env_names.get(r.environment_id, "Removed environment"),
        skip_created=True,
    )
    entries.sort(key=lambda e: e.when, reverse=True)
    return entries[:limit]


def segment_history(*, segment: Segment, limit: int = 30) -> list[HistoryEntry]:
    records = list(
        Segment.history.filter(id=segment.pk)
        .select_related("history_user")
        .order_by("-history_date", "-history_id")[: limit + 1]
    )
    return _entries(records, SEGMENT_FIELDS, lambda r: "Segment")[:limit]


# --------------------------------------------------------------------------------------------
# Evaluation (the same compiled snapshot OFREP serves)


@dataclass
class EvaluationResult:
    flag_key: str
    environment: Environment
    context: dict[str, Any]
    found: bool
    enabled: bool
    # The OFREP answer a caller gets: value (absent when the caller's default applies),
    # variant, reason, or an error code with details.
    has_value: bool
    value: Any
    variant: str
    reason: str
    error_code: str
    error_details: str
    # 1-based number of the matched rule in the flag's rules of that environment (or None).
    rule_number: int | None
    rule: dict[str, Any] | None

    @property
    def value_json(self) -> str:
        return json.dumps(self.value, ensure_ascii=False)

    @property
    def explanation(self) -> str:
        return REASON_TEXT.get(self.reason, "")


REASON_TEXT = {
    engine.STATIC: "on for everyone this rule covers (it has no conditions)",
    engine.TARGETING_MATCH: "the rule's constraints or segments match this context",
    engine.SPLIT: "this context falls inside the rule's rollout percentage (or variant split)",
    engine.DISABLED: "the flag is off in this environment",
    engine.DEFAULT: "the flag is on, but no rule matches this context",
}


def flag_evaluate(
    *, flag: Flag, environment: Environment, rules: list[dict[str, Any]], context: dict
) -> EvaluationResult:
    """Evaluate `flag` in `environment` for an OpenFeature context exactly as OFREP answers:
    the same compiled snapshot and the same answer mapping (`flags.ofrep.evaluate_one`)."""
    from flags import ofrep, snapshot

    compiled = snapshot.load(environment.id)
    unleash_context = engine.context_from_ofrep(context)
    found = flag.key in compiled.snapshot
    answer = ofrep.evaluate_one(compiled, flag.key, unleash_context) if found else {}
    evaluation = compiled.snapshot.evaluate(flag.key, unleash_context)
    served = _served_rule_indexes(flag.key, environment.key, rules)
    rule_number = rule = None
    if evaluation.rule_index is not None and evaluation.rule_index < len(served):
        stored_index = served[evaluation.rule_index]
        rule_number, rule = stored_index + 1, rules[stored_index]
    return EvaluationResult(
        flag_key=flag.key,
        environment=environment,
        context=unleash_context,
        found=found,
        enabled=evaluation.enabled,
        has_value="value" in answer,
        value=answer.get("value"),
        variant=answer.get("variant", evaluation.variant),
        reason=answer.get("reason", evaluation.reason),
        error_code=answer.get("errorCode", ""),
        error_details=answer.get("errorDetails", ""),
        rule_number=rule_number,
        rule=rule,
    )


def _served_rule_indexes(flag_key: str, env_key: str, rules: list[dict[str, Any]]) -> list[int]:
    """For each strategy of the served document, the index of the stored rule it came from.

    The client document leaves out disabled rules and may serve one rule as several ORed
    strategies (SEMVER_GTE/LTE spelled out for Unleash SDKs), so the engine's `rule_index`
    counts served strategies, not stored rules.
    """
    from flags import selectors

    expand = getattr(selectors, "_strategy", None)
    served: list[int] = []
    for index, rule in enumerate(rules):
        if rule.get("disabled"):
            continue
        count = 1
        if expand is not None:
            try:
                count = len(
                    expand(
                        rule,
                        environment_key=env_key,
                        flag_key=flag_key,
                        index=index,
                        for_export=False,
                    )
                )
            except (TypeError, KeyError, ValueError):
                count = 1
        served.extend([index] * count)
    return served
