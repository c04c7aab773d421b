"""Constraint operators: one Unleash constraint compiled into a predicate on a context.

A compiled constraint is a ``Predicate`` or ``True`` (always) / ``False`` (never).
Operators: ``IN``, ``NOT_IN`` (case-sensitive, like Unleash), ``STR_CONTAINS``,
``STR_STARTS_WITH``, ``STR_ENDS_WITH`` (``caseInsensitive``), ``NUM_EQ/GT/GTE/LT/LTE``
(numbers parsed from strings; an unparsable context value is false), ``DATE_AFTER/DATE_BEFORE``
(strict; ``currentTime`` defaults to now, naive times are UTC), ``SEMVER_EQ/GT/GTE/LT/LTE``
(strict SemVer 2.0.0 with pre-release precedence; ``v1.2.3`` is not valid), ``REGEX`` (the
Rust dialect, see ``flags.engine.rust_regex``) and ``IN_CIDR`` (invalid entries ignored).
``inverted`` negates the result, including for an absent context value. A constraint that
cannot be compiled (unknown operator, invalid regex, unparsable number/date/version in the
rule) is false even when inverted.

This module also owns value parsing shared by strategies and variants: numbers
(``parse_number``, ``parse_percentage``), dates, SemVer keys, IP addresses and networks.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from flags.engine.context import TOP_LEVEL_FIELDS, Context, as_str
from flags.engine.rust_regex import translate_rust_regex


class _Invalid(ValueError):
    """A rule value that cannot be compiled; the constraint is then false."""


def parse_number(value: Any) -> float | None:
    if value is None or value is True or value is False:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = value if isinstance(value, str) else str(value)
        if "_" in text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    return None if math.isnan(number) else number


def _parse_date(value: Any) -> float | None:
    """A timestamp from an ISO-8601 string or datetime; naive times are UTC."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


_SEMVER_RE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)

_SemverKey = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


@lru_cache(maxsize=4096)
def _semver_key(value: str) -> _SemverKey | None:
    """A sort key with SemVer 2.0.0 precedence, or None when ``value`` is not strict SemVer."""
    match = _SEMVER_RE.fullmatch(value)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        # A release sorts after every pre-release of the same version.
        return (int(major), int(minor), int(patch), 1, ())
    ids = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split("."))
    return (int(major), int(minor), int(patch), 0, ids)


@lru_cache(maxsize=4096)
def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def parse_networks(
    entries: Iterable[Any],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            continue
    return tuple(nets)


def parse_percentage(value: Any) -> float:
    parsed = parse_number(value)
    return parsed if parsed is not None else 0.0


# A compiled constraint is a predicate, or True (always) / False (never).
Predicate = Callable[[Context], bool]
Compiled = Predicate | bool


def compile_constraint(constraint: Mapping[str, Any]) -> Compiled:
    operator = constraint.get("operator")
    field = constraint.get("contextName") or ""
    inverted = bool(constraint.get("inverted"))
    case_insensitive = bool(constraint.get("caseInsensitive"))
    values = constraint.get("values") or []
    value = constraint.get("value")

    if operator in ("IN", "NOT_IN"):
        base = _compile_in(field, values)
        if operator == "NOT_IN":
            inverted = not inverted
        return _invert(base) if inverted else base

    try:
        test = _value_test(operator, field, values, value, case_insensitive)
    except _Invalid:
        return False
    if test is None:
        return False  # unknown operator
    if isinstance(test, bool):
        return test != inverted
    if operator in ("DATE_AFTER", "DATE_BEFORE") and field == "currentTime":

        def check_now(ctx: Context) -> bool:
            current = ctx.get("currentTime")
            return test(dt.datetime.now(dt.UTC) if current is None else current)

        predicate: Predicate = check_now
    elif field in TOP_LEVEL_FIELDS:

        def check_top(ctx: Context) -> bool:
            current = ctx.get(field)
            return False if current is None else test(current)

        predicate = check_top
    else:

        def check_prop(ctx: Context) -> bool:
            props = ctx.get("properties")
            current = props.get(field) if props else None
            return False if current is None else test(current)

        predicate = check_prop
    return _invert(predicate) if inverted else predicate


def _invert(compiled: Compiled) -> Compiled:
    if isinstance(compiled, bool):
        return not compiled

    def inverted(ctx: Context) -> bool:
        return not compiled(ctx)

    return inverted


def _compile_in(field: str, values: Iterable[Any]) -> Compiled:
    allowed = frozenset(as_str(v) for v in values)
    if not allowed:
        return False
    if field in TOP_LEVEL_FIELDS:

        def in_top(ctx: Context) -> bool:
            current = ctx.get(field)
            if current.__class__ is str:
                return current in allowed
            return current is not None and as_str(current) in allowed

        return in_top

    def in_prop(ctx: Context) -> bool:
        props = ctx.get("properties")
        if not props:
            return False
        current = props.get(field)
        if current.__class__ is str:
            return current in allowed
        return current is not None and as_str(current) in allowed

    return in_prop


def _value_test(
    operator: Any,
    field: str,
    values: list[Any],
    value: Any,
    case_insensitive: bool,
) -> Callable[[Any], bool] | bool | None:
    """A test on a present context value for the non-list operators (None: unknown operator)."""
    if operator in ("STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH"):
        needles = tuple(as_str(v) for v in values)
        if case_insensitive:
            needles = tuple(n.lower() for n in needles)
        if not needles:
            return False
        lower = case_insensitive

        def text(current: Any) -> str:
            s = current if current.__class__ is str else as_str(current)
            return s.lower() if lower else s

        if operator == "STR_STARTS_WITH":
            return lambda current: text(current).startswith(needles)
        if operator == "STR_ENDS_WITH":
            return lambda current: text(current).endswith(needles)

        def contains(current: Any) -> bool:
            s = text(current)
            return any(n in s for n in needles)

        return contains

    if operator in ("NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE"):
        target = parse_number(value)
        if target is None:
            raise _Invalid(value)
        compare = _COMPARATORS[operator[4:]]

        def number(current: Any) -> bool:
            parsed = parse_number(current)
            return parsed is not None and compare(parsed, target)

        return number

    if operator in ("DATE_AFTER", "DATE_BEFORE"):
        moment = _parse_date(value)
        if moment is None:
            raise _Invalid(value)
        after = operator == "DATE_AFTER"

        def date(current: Any) -> bool:
            parsed = _parse_date(current)
            if parsed is None:
                return False
            return parsed > moment if after else parsed < moment

        return date

    if operator in ("SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE"):
        version = _semver_key(value) if isinstance(value, str) else None
        if version is None:
            raise _Invalid(value)
        compare = _COMPARATORS[operator[7:]]

        def semver(current: Any) -> bool:
            parsed = _semver_key(current if current.__class__ is str else as_str(current))
            return parsed is not None and compare(parsed, version)

        return semver

    if operator == "REGEX":
        source = value if value is not None else (values[0] if values else None)
        if not isinstance(source, str):
            raise _Invalid(source)
        try:
            search = translate_rust_regex(source, case_insensitive).search
        except ValueError as exc:
            raise _Invalid(source) from exc

        def regex(current: Any) -> bool:
            return search(current if current.__class__ is str else as_str(current)) is not None

        return regex

    if operator == "IN_CIDR":
        nets = parse_networks(values if values else ([value] if value is not None else []))
        if not nets:
            return False

        def cidr(current: Any) -> bool:
            address = parse_ip(current if current.__class__ is str else as_str(current))
            return address is not None and any(address in net for net in nets)

        return cidr

    return None


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": lambda a, b: a == b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
}


def rule_value_problem(operator: Any, value: Any, case_insensitive: bool = False) -> str | None:
    """Why a rule value can never be compared by ``operator``, or None when it can.

    The checks are the engine's own parsers, so that a value accepted when a rule is saved is
    a value the constraint compiles with. For ``IN_CIDR`` pass each entry in turn.
    """
    text = value if isinstance(value, str) else as_str(value)
    if operator in ("NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE"):
        number = parse_number(text.strip())
        if number is None or not math.isfinite(number):
            return f"{text!r} is not a number (write it like 42 or 3.5)"
    elif operator in ("DATE_AFTER", "DATE_BEFORE"):
        if _parse_date(text) is None:
            return f"{text!r} is not a date and time (ISO 8601, like 2026-01-31T09:00:00Z)"
    elif operator in ("SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE"):
        if _semver_key(text) is None:
            hint = f"; write {text[1:]!r}" if text[:1] in "vV" and _semver_key(text[1:]) else ""
            return f"{text!r} is not a semantic version (like 1.2.3 or 2.0.0-beta.1){hint}"
    elif operator == "IN_CIDR":
        if not parse_networks([text]):
            return f"{text!r} is not an IP address or network (like 10.0.0.0/8 or 2001:db8::/32)"
    elif operator == "REGEX":
        try:
            translate_rust_regex(text, case_insensitive)
        except ValueError as exc:
            return f"{text!r} is not a regular expression Rollcall can run ({exc})"
    return None
