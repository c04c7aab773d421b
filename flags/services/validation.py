"""Validation of what flags are made of: rules (Unleash strategies), constraints, variants
and payloads, tags. Each `validate_*` returns the normalised value or raises
`ApplicationError`; the UI, the API and the Unleash import share them.

Edits made in Rollcall (UI and API) pass ``check_values=True``: a rule value the operator can
never compare (a number, date, SemVer version, CIDR network or regular expression the engine
cannot parse) is refused with a message, rather than saved as a rule that silently never
matches. The Unleash import does not: it keeps what an Unleash server serves.
"""

from __future__ import annotations

import json
import math
from typing import Any

from core.exceptions import ApplicationError
from flags.engine import rule_value_problem, translate_rust_regex
from flags.models import Flag, Segment

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


def validate_constraints(
    constraints: Any, *, where: str, check_values: bool = False
) -> list[dict[str, Any]]:
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
            if check_values:
                problem = rule_value_problem(operator, value, item["caseInsensitive"])
                if problem:
                    raise ApplicationError(f"{label}: {problem}.")
            elif operator == "REGEX":
                try:  # the dialect the engine evaluates (Rust's regex), not Python's
                    translate_rust_regex(str(value), bool(c.get("caseInsensitive")))
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
            if check_values and operator == "IN_CIDR":
                if not values:
                    raise ApplicationError(f"{label}: IN_CIDR needs at least one network.")
                for entry in item["values"]:
                    problem = rule_value_problem(operator, entry)
                    if problem:
                        raise ApplicationError(f"{label}: {problem}.")
        clean.append(item)
    return clean


def validate_rules(
    rules: Any, *, segment_ids: set[int] | None = None, check_values: bool = False
) -> list[dict[str, Any]]:
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
                "constraints": validate_constraints(
                    rule.get("constraints") or [], where=where, check_values=check_values
                ),
                "segments": segments,
                "variants": variants,
                **({"title": str(rule["title"])} if rule.get("title") else {}),
                **({"disabled": True} if rule.get("disabled") else {}),
            }
        )
    return clean


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
        if weight is None or weight == "":
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
