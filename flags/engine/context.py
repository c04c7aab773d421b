"""The evaluation context: its shape, and how values are read and stringified.

A context is a mapping with Unleash's field names: ``userId``, ``sessionId``,
``remoteAddress``, ``environment``, ``appName``, ``currentTime`` at the top level and
everything else in ``properties`` (a dict). Constraints on those six names read the top level;
any other name reads ``properties``. Values should be strings (``context_from_ofrep`` makes
them so); non-strings are stringified like Unleash SDKs do (``true``/``false``,
``str(number)``). ``None`` means "absent".

This module owns ``Context``, ``TOP_LEVEL_FIELDS``, ``as_str`` (Unleash's stringification),
``getter`` (a field reader) and ``context_from_ofrep`` (OpenFeature context -> Unleash).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

#: Context fields Unleash keeps at the top level; every other name is a custom property.
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


def context_from_ofrep(ctx: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map an OpenFeature (OFREP) evaluation context to an Unleash context.

    ``targetingKey`` is ``userId`` (and wins when both are given); ``sessionId``,
    ``remoteAddress``, ``appName``, ``environment``, ``currentTime`` and ``userId`` keep their
    names; every other key is a custom property. Values are stringified like Unleash SDKs do
    (booleans ``"true"``/``"false"``, numbers with ``str``); ``None`` values are dropped; a
    ``datetime`` ``currentTime`` is kept as is.
    """
    out: dict[str, Any] = {}
    props: dict[str, str] = {}
    if not ctx:
        return out
    for name, value in ctx.items():
        if value is None or name == "targetingKey":
            continue
        if name in TOP_LEVEL_FIELDS:
            if name == "currentTime" and isinstance(value, dt.datetime):
                out[name] = value
            else:
                out[name] = as_str(value)
        else:
            props[name] = as_str(value)
    targeting_key = ctx.get("targetingKey")
    if targeting_key is not None:
        out["userId"] = as_str(targeting_key)
    if props:
        out["properties"] = props
    return out


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
