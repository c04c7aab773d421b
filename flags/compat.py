"""What Unleash tolerates in a configuration, Rollcall keeps: the warnings about it.

An Unleash server may serve (and `flags_import` therefore accepts) rules that can never match:
a constraint with an operator this version does not know, a regular expression the engine's
dialect (Rust's `regex`, see `flags.engine.translate_rust_regex`) rejects, a strategy of an
unknown name, a reference to a segment that does not exist, a dependency on a flag that does
not exist. Unleash SDKs evaluate each of these as false (the constraint, the strategy, the
child flag), and so does `flags.engine`. Rollcall keeps them as they are, so that what is
served means exactly what was imported, and lists them here: in the import report and on the
flag's page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flags import engine
from flags.models import Flag, FlagState, Segment
from flags.services import OPERATORS, STRATEGIES

#: Segment references to a segment that does not exist are stored as this id (never a real
#: one): the rule stays false, as in Unleash, and the reference survives an export.
MISSING_SEGMENT_ID = -1
FALSE_NOTE = "Unleash SDKs and Rollcall evaluate it as false"


def constraint_problem(constraint: Any) -> str | None:
    """Why a constraint can never match (and is tolerated), or None when it is usable."""
    if not isinstance(constraint, Mapping):
        return None
    operator = constraint.get("operator")
    if operator not in OPERATORS:
        return f"unknown operator {operator!r}"
    if operator == "REGEX":
        value = constraint.get("value")
        if value is None and constraint.get("values"):
            value = constraint["values"][0]
        if value is None:
            return None  # the validator reports a missing value
        try:
            engine.translate_rust_regex(str(value), bool(constraint.get("caseInsensitive")))
        except ValueError as exc:
            return f"invalid regular expression {str(value)!r} ({exc})"
    return None


def constraints_warnings(constraints: Iterable[Any], *, where: str) -> list[str]:
    warnings = []
    for number, constraint in enumerate(constraints or (), start=1):
        problem = constraint_problem(constraint)
        if problem:
            warnings.append(f"{where}, constraint {number}: {problem}; {FALSE_NOTE}.")
    return warnings


def rules_warnings(
    rules: Iterable[Mapping[str, Any]],
    *,
    segments: Mapping[int, Segment | Any] | None,
    where: str = "",
) -> list[str]:
    """Warnings about a flag's rules; `segments` maps the known segment ids (None: skip)."""
    warnings: list[str] = []
    prefix = f"{where}: " if where else ""
    for number, rule in enumerate(rules or (), start=1):
        if rule.get("disabled"):
            continue
        label = f"{prefix}rule {number}"
        name = rule.get("name", "flexibleRollout")
        if name not in STRATEGIES:
            warnings.append(f"{label}: unknown strategy {name!r}; {FALSE_NOTE}.")
        warnings += constraints_warnings(rule.get("constraints") or [], where=label)
        if segments is None:
            continue
        for segment_id in rule.get("segments") or []:
            segment = segments.get(segment_id)
            if segment is None:
                shown = "" if segment_id == MISSING_SEGMENT_ID else f" {segment_id}"
                warnings.append(
                    f"{label}: refers to a segment{shown} that does not exist; the rule "
                    "never matches (as in Unleash)."
                )
            elif isinstance(segment, Segment):
                warnings += constraints_warnings(
                    segment.constraints or [], where=f"{label}, segment {segment.name!r}"
                )
    return warnings


def dependencies_warnings(
    dependencies: Iterable[Mapping[str, Any]], *, flag_keys: set[str]
) -> list[str]:
    return [
        f"depends on {dependency.get('feature')!r}, which does not exist; the flag is off "
        "(as in Unleash) until that flag exists."
        for dependency in dependencies or ()
        if dependency.get("feature") not in flag_keys
    ]


def flag_warnings(*, flag: Flag) -> list[str]:
    """What can never match in this flag, in every environment (a few queries)."""
    segments = {s.pk: s for s in Segment.objects.all()}
    states = FlagState.objects.filter(flag=flag).select_related("environment")
    warnings = []
    for state in states:
        warnings += rules_warnings(
            state.rules or [], segments=segments, where=state.environment.name
        )
    if flag.dependencies:
        keys = set(
            Flag.objects.exclude(lifecycle=Flag.Lifecycle.ARCHIVED)
            .filter(key__in=[d.get("feature") for d in flag.dependencies])
            .values_list("key", flat=True)
        )
        warnings += [
            f"Dependency: {w}" for w in dependencies_warnings(flag.dependencies, flag_keys=keys)
        ]
    return warnings
