"""The five rollout strategies: the flag each one drives, its templates, its exposure rules.

Every strategy is expressed as a flag so that routers, deploy agents and apps all ask the same
question over OFREP. A phase's exposure becomes the flag's rules in the rollout's environment
(Unleash activation strategies): a `flexibleRollout` whose group id is the flag key, so raising
the percentage only ever adds users, OR a rule for the phase's audience segment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from core.exceptions import ApplicationError

if TYPE_CHECKING:
    from rollouts.models import Rollout

BLUE = "blue"
GREEN = "green"


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    # {"name", "percentage", "segment_name", "start_rule", "soak", "gate"}
    phases: list[dict[str, Any]]
    description: str = ""


@dataclass(frozen=True)
class StrategySpec:
    key: str
    label: str
    flag_type: str  # "boolean" | "string"
    stickiness: str  # "userId" | "sessionId" | "default" | "hostId" | "random"
    description: str
    question: str  # what the caller asks, in a few words
    example_context: dict[str, Any]
    answer: str  # how to read the answer
    templates: list[Template] = field(default_factory=list)
    # Only 0 and 100 make sense (which slot is live).
    binary: bool = False

    def ofrep_example(self, rollout: Rollout, base_url: str) -> str:
        """A copyable curl call (and how to read the answer) for the caller of this flag."""
        url = f"{base_url.rstrip('/')}/ofrep/v1/evaluate/flags/{rollout.flag.key}"
        body = json.dumps({"context": self.example_context})
        return (
            f"# {self.question} ({rollout.environment.name})\n"
            f"curl -s -X POST '{url}' \\\n"
            f'  -H "Authorization: Bearer $ROLLCALL_SDK_KEY" \\\n'
            f"  -H 'Content-Type: application/json' \\\n"
            f"  -d '{body}'\n"
            f"# {self.answer}"
        )


def _phase(
    name: str,
    percentage: int | None,
    *,
    soak: timedelta | None = None,
    segment_name: str | None = None,
    gate: str = "automatic",
) -> dict[str, Any]:
    return {
        "name": name,
        "percentage": percentage,
        "segment_name": segment_name,
        "start_rule": "after_soak",
        "soak": soak,
        "gate": gate,
    }


DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
BETA = "Beta testers"

FEATURE_FLAG = StrategySpec(
    key="feature_flag",
    label="Feature flag",
    flag_type="boolean",
    stickiness="default",
    description=(
        "A boolean flag that the application asks for each user: is the feature on for this "
        "user? Each phase turns it on for a sticky percentage of users (by user id, else "
        "session) and/or an audience segment such as beta testers; a user who got the "
        "feature keeps it as the percentage grows. Rolling back restores the flag's rules "
        "exactly as they were before the rollout started."
    ),
    question="Is the feature on for this user?",
    example_context={"targetingKey": "user-123"},
    answer='"value": true means show the new feature to this user.',
    templates=[
        Template(
            key="beta-5-25-50-100",
            name="Beta testers -> 5 -> 25 -> 50 -> 100",
            description="Beta testers first, then a growing share of everyone.",
            phases=[
                _phase("Beta testers", None, segment_name=BETA),
                _phase("5% of users", 5, soak=DAY, segment_name=BETA),
                _phase("25% of users", 25, soak=DAY, segment_name=BETA),
                _phase("50% of users", 50, soak=DAY, segment_name=BETA),
                _phase("Everyone", 100, soak=2 * DAY),
            ],
        ),
        Template(
            key="percent-5-25-50-100",
            name="5 -> 25 -> 50 -> 100",
            description="A growing share of users, a day apart.",
            phases=[
                _phase("5% of users", 5),
                _phase("25% of users", 25, soak=DAY),
                _phase("50% of users", 50, soak=DAY),
                _phase("Everyone", 100, soak=DAY),
            ],
        ),
        Template(
            key="percent-1-10-50-100-hours",
            name="1 -> 10 -> 50 -> 100, hours apart",
            description="A quick percentage rollout: a small share, then more every 2 hours.",
            phases=[
                _phase("1% of users", 1),
                _phase("10% of users", 10, soak=2 * HOUR),
                _phase("50% of users", 50, soak=2 * HOUR),
                _phase("Everyone", 100, soak=2 * HOUR),
            ],
        ),
    ],
)

CANARY = StrategySpec(
    key="canary",
    label="Canary",
    flag_type="boolean",
    stickiness="default",
    description=(
        'A boolean flag "route to the new version" that the router asks for each request. '
        "Each phase sends a sticky share of traffic (by user id, else session id) to the "
        "canary, so a user stays on the same version as the share grows. Rolling back sends "
        "0% to the canary at once (the flag's rules from before the rollout)."
    ),
    question="Should this request go to the canary?",
    example_context={"targetingKey": "user-123", "sessionId": "sess-42"},
    answer='"value": true means route this request to the new version.',
    templates=[
        Template(
            key="canary-1-5-25-100",
            name="Canary 1 -> 5 -> 25 -> 100",
            description="1% of traffic, then 5% and 25% each after a soak, then everyone.",
            phases=[
                _phase("Canary 1%", 1),
                _phase("Canary 5%", 5, soak=timedelta(minutes=30)),
                _phase("Canary 25%", 25, soak=HOUR),
                _phase("Everyone", 100, soak=2 * HOUR),
            ],
        ),
        Template(
            key="canary-1-5-25-50-100",
            name="Canary 1 -> 5 -> 25 -> 50 -> 100, a day apart",
            description="Five phases, each a day after the one before (time to brief support).",
            phases=[
                _phase("Canary 1%", 1),
                _phase("Canary 5%", 5, soak=DAY),
                _phase("Canary 25%", 25, soak=DAY),
                _phase("Canary 50%", 50, soak=DAY),
                _phase("Everyone", 100, soak=DAY),
            ],
        ),
        Template(
            key="canary-10-50-100-manual",
            name="Canary 10 -> 50 -> 100, a person continues",
            description="10% after a check, then a person moves it on at each step.",
            phases=[
                _phase("Canary 10%", 10),
                _phase("Canary 50%", 50, soak=HOUR, gate="manual"),
                _phase("Everyone", 100, soak=HOUR, gate="manual"),
            ],
        ),
    ],
)

BLUE_GREEN = StrategySpec(
    key="blue_green",
    label="Blue/green",
    flag_type="string",
    stickiness="default",
    description=(
        'A string flag with the variants "blue" and "green" that the router asks to learn '
        "which slot is live. Green is the new version: a phase at 0% keeps blue live (a "
        "preview audience may already get green), a phase at 100% switches everyone to "
        "green. Rolling back switches back to the previous slot at once."
    ),
    question="Which slot serves this request?",
    example_context={"targetingKey": "user-123"},
    answer='"value": "blue" or "green" is the slot to route to; without an answer use blue.',
    binary=True,
    templates=[
        Template(
            key="blue-green-switch",
            name="Blue/green switch",
            description="Beta testers preview green, then a person switches everyone.",
            phases=[
                _phase("Preview green for beta testers", 0, segment_name=BETA),
                _phase("Switch to green", 100, soak=HOUR, gate="manual"),
            ],
        ),
        Template(
            key="blue-green-timed",
            name="Blue/green switch after a soak",
            description="Beta testers preview green for a day, then everyone switches.",
            phases=[
                _phase("Preview green for beta testers", 0, segment_name=BETA),
                _phase("Switch to green", 100, soak=DAY),
            ],
        ),
    ],
)

ROLLING = StrategySpec(
    key="rolling",
    label="Rolling",
    flag_type="boolean",
    stickiness="hostId",
    description=(
        "A boolean flag that each host's deploy agent asks with its host id: should this "
        "host run the new version? Each phase moves a sticky share of hosts (batches) to the "
        "new version; a host that moved stays moved. Rolling back moves all hosts back to "
        "the old version."
    ),
    question="Should this host run the new version?",
    example_context={"hostId": "web-042"},
    answer='"value": true means this host runs the new version.',
    templates=[
        Template(
            key="rolling-4-batches",
            name="Rolling in 4 batches",
            description="A quarter of the hosts at a time.",
            phases=[
                _phase("Batch 1 (25% of hosts)", 25),
                _phase("Batch 2 (50% of hosts)", 50, soak=timedelta(minutes=15)),
                _phase("Batch 3 (75% of hosts)", 75, soak=timedelta(minutes=15)),
                _phase("Batch 4 (all hosts)", 100, soak=timedelta(minutes=15)),
            ],
        ),
        Template(
            key="rolling-2-batches",
            name="Rolling in 2 batches",
            description="Half the hosts, then the other half after an hour.",
            phases=[
                _phase("Batch 1 (50% of hosts)", 50),
                _phase("Batch 2 (all hosts)", 100, soak=HOUR),
            ],
        ),
    ],
)

SHADOW = StrategySpec(
    key="shadow",
    label="Shadow",
    flag_type="boolean",
    stickiness="random",
    description=(
        'A boolean flag "mirror this request" that the proxy asks for each request: a '
        "random share of requests is copied to the new version, whose answers are compared "
        "and thrown away, so users are unaffected. Rolling back stops mirroring."
    ),
    question="Should this request be mirrored to the new version?",
    example_context={},
    answer='"value": true means send a copy of this request to the shadow.',
    templates=[
        Template(
            key="shadow",
            name="Shadow",
            description="Mirror 10%, then 50%, then all requests.",
            phases=[
                _phase("Mirror 10%", 10),
                _phase("Mirror 50%", 50, soak=HOUR),
                _phase("Mirror all requests", 100, soak=HOUR),
            ],
        ),
        Template(
            key="shadow-1-10-100-days",
            name="Shadow 1 -> 10 -> 100, a day apart",
            description="Mirror a few requests first, more each day.",
            phases=[
                _phase("Mirror 1%", 1),
                _phase("Mirror 10%", 10, soak=DAY),
                _phase("Mirror all requests", 100, soak=DAY),
            ],
        ),
    ],
)

STRATEGIES: dict[str, StrategySpec] = {
    spec.key: spec for spec in (FEATURE_FLAG, CANARY, BLUE_GREEN, ROLLING, SHADOW)
}
TEMPLATES: dict[str, Template] = {t.key: t for spec in STRATEGIES.values() for t in spec.templates}


def strategy(key: str) -> StrategySpec:
    try:
        return STRATEGIES[key]
    except KeyError:
        choices = ", ".join(STRATEGIES)
        raise ApplicationError(
            f"Unknown strategy {key!r}; choose one of {choices}.", field="strategy"
        ) from None


def template_phases(
    template_key: str, *, segment_ids: Callable[[list[str]], dict[str, int]] | None = None
) -> list[dict[str, Any]]:
    """The template's phases as plan phase dicts, with segment names resolved to ids."""
    template = TEMPLATES.get(template_key)
    if template is None:
        choices = ", ".join(TEMPLATES)
        raise ApplicationError(
            f"Unknown template {template_key!r}; choose one of {choices}.", field="template"
        )
    names = sorted({p["segment_name"] for p in template.phases if p["segment_name"]})
    if segment_ids is None:
        from flags.models import Segment

        resolved = dict(Segment.objects.filter(name__in=names).values_list("name", "id"))
    else:
        resolved = segment_ids(names)
    missing = [n for n in names if n not in resolved]
    if missing:
        raise ApplicationError(
            f"The template {template.name!r} needs the segment {missing[0]!r}; "
            "create it under Flags > Segments first, or pick another template.",
            field="template",
        )
    return [
        {
            "name": p["name"],
            "percentage": p["percentage"],
            "segment": resolved[p["segment_name"]] if p["segment_name"] else None,
            "start_rule": p["start_rule"],
            "start_at": None,
            "soak": p["soak"],
            "gate": p["gate"],
            "notes": "",
        }
        for p in template.phases
    ]


def flag_variants(strategy_key: str) -> list[dict[str, Any]]:
    """Flag-level variants of a flag created for this strategy (blue/green only)."""
    if strategy_key != BLUE_GREEN.key:
        return []
    # Blue serves when nothing else decides; green is declared for the UI and SDK docs.
    return [_variant(BLUE, 1000), _variant(GREEN, 0)]


def _variant(name: str, weight: int) -> dict[str, Any]:
    return {
        "name": name,
        "weight": weight,
        "weightType": "variable",
        "stickiness": "default",
        "payload": {"type": "string", "value": name},
    }


def answers_a_value(strategy_key: str) -> bool:
    """Whether the strategy's flag answers a value (a slot) rather than on/off."""
    return strategy(strategy_key).flag_type != "boolean"


def resting_rules(*, strategy_key: str, flag_key: str, title: str = "") -> list[dict[str, Any]]:
    """The rules that answer the old version explicitly: before the rollout and after rollback.

    Only for strategies whose answer is a value (blue/green answers "blue" to everyone), so a
    service's own default never decides where traffic goes. Boolean strategies need none: a
    disabled flag already answers false.
    """
    if not answers_a_value(strategy_key):
        return []
    return exposure_rules(
        strategy_key=strategy_key, flag_key=flag_key, percentage=0, segment_id=None, title=title
    )


def answers_explicitly(strategy_key: str, *, enabled: bool, rules: list[dict[str, Any]]) -> bool:
    """Whether a flag state gives the strategy's callers an explicit answer (not their default)."""
    if not answers_a_value(strategy_key):
        return True
    return enabled and any(
        (r.get("parameters") or {}).get("rollout") == "100"
        and not r.get("segments")
        and not r.get("constraints")
        and r.get("variants")
        for r in rules
    )


def exposure_rules(
    *,
    strategy_key: str,
    flag_key: str,
    percentage: int | None,
    segment_id: int | None,
    title: str = "",
) -> list[dict[str, Any]]:
    """The flag's rules in the rollout's environment while a phase is applied.

    Percentage -> a `flexibleRollout` with the strategy's stickiness and the flag key as group
    id (never changes during a rollout, so raising the percentage only adds users); segment ->
    a rule for that segment at 100%; both -> OR of the two. Blue/green picks the live slot
    with rule variants: 0 keeps blue (the segment previews green), 100 switches to green.
    """
    spec = strategy(strategy_key)
    pct = 0 if percentage is None else int(percentage)

    def rule(rollout: int, *, segment: int | None = None, variant: str | None = None) -> dict:
        item: dict[str, Any] = {
            "name": "flexibleRollout",
            "parameters": {
                "rollout": str(rollout),
                "stickiness": spec.stickiness,
                "groupId": flag_key,
            },
            "constraints": [],
            "segments": [segment] if segment is not None else [],
            "variants": [_variant(variant, 1000)] if variant else [],
        }
        if title:
            item["title"] = title
        return item

    if spec.binary:
        if pct >= 100:
            return [rule(100, variant=GREEN)]
        rules = [rule(100, segment=segment_id, variant=GREEN)] if segment_id is not None else []
        return [*rules, rule(100, variant=BLUE)]
    rules = []
    if segment_id is not None and pct < 100:
        rules.append(rule(100, segment=segment_id))
    if pct > 0 or segment_id is None:
        rules.append(rule(pct))
    return rules
