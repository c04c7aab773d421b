"""The evaluation context: its shape, and how values are read and stringified.

A context is a mapping with Unleash's field names: ``userId``, ``sessionId``,
``remoteAddress``, ``environment``, ``appName``, ``currentTime`` at the top level and
everything else in ``properties`` (a dict). Constraints on those six names read the top level;
any other name reads ``properties``. Values should be strings (``context_from_ofrep`` makes
them so); non-strings are stringified like Unleash SDKs do (``true``/``false``,
``str(number)``). ``None`` means "absent".

This module owns ``Context``, ``TOP_LEVEL_FIELDS``, ``as_str`` (Unleash's stringification),
``getter`` (a field reader) and ``context_from_ofrep`` (OpenFeature context -> Unleash, and
the one place where context input is validated: ``InvalidContext``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

#: Context fields Unleash keeps at the top level; every other name is a custom property.
TOP_LEVEL_FIELDS = frozenset(
    ("userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime")
)

Context = Mapping[str, Any]
EMPTY: Context = {}


def as_str(value: Any) -> str:
    """Stringify a context value the way Unleash SDKs do."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


class InvalidContext(ValueError):
    """A context value that cannot be evaluated (answered as OFREP ``INVALID_CONTEXT``)."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def _check_text(name: str, text: str) -> None:
    """Refuse text that is not valid Unicode (a lone UTF-16 surrogate from a JSON escape).

    Such a string cannot be encoded as UTF-8, and hashing it (``mmh3``) crashes the process;
    only strings that are not ASCII reach this check (``str.isascii`` is O(1)).
    """
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidContext(
            f"Context attribute {name!a} is not valid Unicode text: it contains a lone "
            f"UTF-16 surrogate at position {exc.start}; send well-formed strings."
        ) from None


def _non_string(name: str, value: Any) -> Any:
    """A non-string context value, stringified (a ``datetime`` ``currentTime`` is kept)."""
    if name == "currentTime" and isinstance(value, dt.datetime):
        return value
    text = as_str(value)
    if not text.isascii():
        _check_text(name, text)
    return text


def context_from_ofrep(ctx: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map an OpenFeature (OFREP) evaluation context to an Unleash context.

    ``targetingKey`` is ``userId`` (and wins when both are given); ``sessionId``,
    ``remoteAddress``, ``appName``, ``environment``, ``currentTime`` and ``userId`` keep their
    names; every other key is a custom property. Values are stringified like Unleash SDKs do
    (booleans ``"true"``/``"false"``, numbers with ``str``); ``None`` values are dropped; a
    ``datetime`` ``currentTime`` is kept as is.

    Every path that evaluates goes through here, so this is where input is made safe for the
    engine: names and values that are not valid Unicode (lone surrogates, which JSON escapes
    such as ``"\\ud800"`` produce) raise ``InvalidContext``. Strings that are ASCII, nearly all
    of them, are not even looked at. This runs once per request, so it is kept as cheap as an
    evaluation: one pass, no function call per plain string value.
    """
    out: dict[str, Any] = {}
    if not ctx:
        return out
    props: dict[str, Any] = {}
    top = TOP_LEVEL_FIELDS
    targeting_key = None
    for name, value in ctx.items():
        if value.__class__ is str:
            if not value.isascii():
                _check_text(name, value)
        elif value is None:
            continue
        else:
            value = _non_string(name, value)
        if name in top:
            out[name] = value
        elif name == "targetingKey":
            targeting_key = value
        else:
            if name.__class__ is not str or not name.isascii():
                name = _property_name(name)
            props[name] = value
    if targeting_key is not None:
        out["userId"] = targeting_key
    if props:
        out["properties"] = props
    return out


def _property_name(name: Any) -> str:
    text = name if isinstance(name, str) else as_str(name)
    if not text.isascii():
        _check_text(text, text)
    return text


def getter(field: str) -> Callable[[Context], Any]:
    """A function reading ``field`` from a context (top level or properties)."""
    if field in TOP_LEVEL_FIELDS:

        def get_top(ctx: Context) -> Any:
            return ctx.get(field)

        return get_top

    def get_prop(ctx: Context) -> Any:
        props = ctx.get("properties")
        return props.get(field) if props else None

    return get_prop
