"""Reads of flags for machines: the Unleash client-API document of an environment.

The document is what SDKs download (`GET /api/client/features`), what `flags.engine` compiles,
and (with `for_export=True`) what the import/export round-trips. It is built with a constant
number of queries, whatever the number of flags.

For SDKs the served document spells out what Unleash servers always send (a rollout's
`groupId`, which defaults to the flag key, and `stickiness`) and rewrites Rollcall's
SEMVER_GTE / SEMVER_LTE rule constraints with SEMVER_GT / SEMVER_EQ / SEMVER_LT, the only ones
Unleash SDKs know; both are exact (the engine answers the same either way). REGEX and IN_CIDR,
and SEMVER_GTE / SEMVER_LTE inside segments, stay as they are: Unleash SDKs that do not know
them evaluate such constraints as false, while OFREP answers them.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from django.db.models import FilteredRelation, Q

from flags.models import Environment, Flag, Segment

CLIENT_API_VERSION = 2
# Namespace of the stable strategy ids (Unleash SDKs expect an id per strategy).
_STRATEGY_NS = uuid.UUID("6f0e7a52-3f3a-4d4f-9a0c-6f3c2d1b8e11")


_GROUPED_STRATEGIES = {
    "flexibleRollout",
    "gradualRolloutUserId",
    "gradualRolloutSessionId",
    "gradualRolloutRandom",
}
# Rollcall's "or equal" SemVer operators; Unleash SDKs only know SEMVER_EQ/GT/LT.
_SEMVER_OR_EQUAL = {"SEMVER_GTE": "SEMVER_GT", "SEMVER_LTE": "SEMVER_LT"}
_MAX_EXPANSION = 16


def _strategy(
    rule: dict[str, Any], *, environment_key: str, flag_key: str, index: int, for_export: bool
) -> list[dict[str, Any]]:
    """A rule as Unleash strategies (one, or several ORed ones for Unleash SDKs, see below)."""
    name = rule.get("name", "flexibleRollout")
    parameters = dict(rule.get("parameters") or {})
    # Unleash servers always send these; the Python SDK fails without a groupId.
    if name in _GROUPED_STRATEGIES and not parameters.get("groupId"):
        parameters["groupId"] = flag_key
    if name == "flexibleRollout" and not parameters.get("stickiness"):
        parameters["stickiness"] = "default"
    strategy: dict[str, Any] = {
        "id": str(uuid.uuid5(_STRATEGY_NS, f"{environment_key}/{flag_key}/{index}")),
        "name": name,
        "parameters": parameters,
        "constraints": list(rule.get("constraints") or []),
        "segments": list(rule.get("segments") or []),
        "variants": list(rule.get("variants") or []),
    }
    if rule.get("title"):
        strategy["title"] = rule["title"]
    if for_export:
        if rule.get("disabled"):
            strategy["disabled"] = True
        return [strategy]
    return _without_semver_or_equal(strategy)


def _without_semver_or_equal(strategy: dict[str, Any]) -> list[dict[str, Any]]:
    """Rewrite SEMVER_GTE/LTE constraints with the operators every Unleash SDK knows.

    `v >= x` is `v > x OR v == x`: the strategy is repeated once per alternative (strategies
    are ORed and share group id and stickiness, so every user gets the same answer). An
    inverted one is `NOT v > x AND NOT v == x`, two inverted constraints in the same strategy.
    """
    options: list[list[list[dict[str, Any]]]] = []
    for constraint in strategy["constraints"]:
        strict = _SEMVER_OR_EQUAL.get(constraint.get("operator"))
        if strict is None:
            options.append([[constraint]])
            continue
        greater = {**constraint, "operator": strict}
        equal = {**constraint, "operator": "SEMVER_EQ"}
        options.append([[greater, equal]] if constraint.get("inverted") else [[greater], [equal]])
    count = 1
    for choice in options:
        count *= len(choice)
    if count == 1 or count > _MAX_EXPANSION:
        if count == 1 and options:
            strategy["constraints"] = [c for choice in options for c in choice[0]]
        return [strategy]
    expanded = []
    for number, combination in enumerate(itertools.product(*options)):
        expanded.append(
            {
                **strategy,
                "id": f"{strategy['id']}-{number}",
                "constraints": [c for part in combination for c in part],
            }
        )
    return expanded


def environment_client_state(
    environment: Environment, *, for_export: bool = False
) -> dict[str, Any]:
    """The environment's flags and segments in Unleash's client API format (2 queries).

    Every flag that is not archived is listed, with `enabled: false` where the environment
    has no state for it yet. Rules marked `disabled` are left out (Unleash SDKs would evaluate
    them), except for an export, which keeps them as `"disabled": true`. Rollcall's own flag
    details (value type, display name, tags, lifecycle) travel in a `rollcall` object, which
    SDKs ignore.
    """
    rows = (
        Flag.objects.exclude(lifecycle=Flag.Lifecycle.ARCHIVED)
        .annotate(
            env_state=FilteredRelation("states", condition=Q(states__environment=environment))
        )
        .values(
            "key",
            "name",
            "description",
            "type",
            "variants",
            "dependencies",
            "tags",
            "lifecycle",
            "impression_data",
            "env_state__enabled",
            "env_state__rules",
        )
        .order_by("key")
    )
    features = []
    for row in rows:
        key = row["key"]
        rules = row["env_state__rules"] or []
        strategies = [
            strategy
            for i, rule in enumerate(rules)
            if for_export or not rule.get("disabled")
            for strategy in _strategy(
                rule, environment_key=environment.key, flag_key=key, index=i, for_export=for_export
            )
        ]
        features.append(
            {
                "name": key,
                "type": "release",
                "description": row["description"],
                "project": "default",
                "enabled": bool(row["env_state__enabled"]),
                "stale": row["lifecycle"] == Flag.Lifecycle.STALE,
                "impressionData": row["impression_data"],
                "strategies": strategies,
                "variants": row["variants"] or [],
                "dependencies": row["dependencies"] or [],
                "rollcall": {
                    "valueType": row["type"],
                    "displayName": row["name"],
                    "tags": row["tags"] or [],
                    "lifecycle": row["lifecycle"],
                },
            }
        )
    segments = []
    for segment in Segment.objects.order_by("id"):
        item: dict[str, Any] = {
            "id": segment.id,
            "name": segment.name,
            "constraints": segment.constraints or [],
        }
        if for_export and segment.description:
            item["description"] = segment.description
        segments.append(item)
    return {"version": CLIENT_API_VERSION, "features": features, "segments": segments}
