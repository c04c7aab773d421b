"""Compiled per-environment snapshots, cached in process and invalidated by config version.

Placeholder owner: the flags machine-API work fills in caching across processes; this
module only offers `invalidate_local()` to services today.
"""

from __future__ import annotations

_LOCAL: dict[int, object] = {}


def invalidate_local() -> None:
    _LOCAL.clear()
