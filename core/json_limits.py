"""Limits for untrusted JSON: nesting depth, UTF-8 only (no Django, no DRF).

`loads_bounded` is `json.loads` for bodies from outside: a document nested deeper than
`MAX_JSON_DEPTH` raises `JSONTooDeep` (Python's decoder would raise `RecursionError`, or return
something that makes later code recurse); bytes must be UTF-8. Used by the API's parser
(`core.parsers`) and by views and services that read a body themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Deeper than any document Rollcall accepts (rules, variants, payloads, alerts, contexts).
MAX_JSON_DEPTH = 64


class JSONTooDeep(ValueError):
    """A JSON document nested more deeply than allowed."""


class NotUTF8(ValueError):
    """A body in another encoding (json.loads would guess UTF-16/32; RFC 8259 says UTF-8)."""

    def __init__(self) -> None:
        super().__init__("The body must be JSON encoded as UTF-8.")


def json_depth_problem(data: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `data` (parsed JSON) is nested too deeply, or None. Iterative: no recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return f"The JSON is nested more than {max_depth} levels deep."
        stack.extend((child, depth + 1) for child in children)
    return None


def loads_bounded(body: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` for untrusted bodies: UTF-8 only, depth-limited.

    Raises `ValueError` (`NotUTF8`, `json.JSONDecodeError` or `JSONTooDeep`) with a message
    fit for the caller.
    """
    if isinstance(body, bytes):
        if json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
            raise NotUTF8()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NotUTF8() from None
    else:
        text = body
    try:
        data = json.loads(text)
    except RecursionError:
        raise JSONTooDeep(f"The JSON is nested more than {max_depth} levels deep.") from None
    problem = json_depth_problem(data, max_depth)
    if problem:
        raise JSONTooDeep(problem)
    return data
