"""Compiled per-environment snapshots: built once per config version, shared by all requests.

Steady state does no database query and no cache round trip per evaluation: each process keeps
`{environment_id: Compiled}` and serves it while `flags.freshness` (one shared check at most
every `settings.FLAGS_SNAPSHOT_TTL` seconds per process: a Redis counter, or one tiny versions
query on the embedded default) reports no newer config version for the environment.

- `flags:env:<id>:state:<version>` holds the environment's client-API JSON, so a new process
  compiles from the cache instead of rebuilding the document from the database. A document
  is only stored outside a transaction of our own, so its content is at least its version.
- Services call `publish_versions` when their transaction commits (`services.environments_bump`):
  it increments the shared change counter and makes this process re-check at once.

Versions only move forward: a process never replaces its snapshot by an older one, not even
after `invalidate_local` (`_SEEN` keeps the highest version served). Changes made in this
process are visible at once; changes made by other processes within `FLAGS_SNAPSHOT_TTL`
seconds. When the environment's snapshot is being refreshed by another thread, requests keep
answering from the previous one meanwhile.

Keys identify an environment by id and version, so two databases must not share one cache
without distinct `CACHE_KEY_PREFIX` values (tests clear the cache between cases).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import connection

from flags import engine, freshness

logger = logging.getLogger(__name__)

STATE_KEY = "flags:env:{}:state:{}"
STATE_TIMEOUT = 24 * 3600
# Stickiness values that hash the user (`default` falls back to the session id).
_USER_STICKINESS = {"userId": True, "default": False}


class EnvironmentNotFound(LookupError):
    """The environment no longer exists."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """One environment at one config version, ready to serve."""

    environment_id: int
    version: int
    snapshot: engine.Snapshot
    #: The Unleash client-API document, as served by `GET /api/client/features`.
    body: bytes
    #: Strong ETag (quoted) of `body`.
    etag: str
    #: Flag key -> Rollcall value type (boolean, string, number, object).
    value_types: Mapping[str, str]
    #: Flag key -> True when it splits on `userId` alone, False when a session id also does.
    #: Flags absent here never need a targeting key.
    needs_targeting_key: Mapping[str, bool]
    #: Flag key -> its `impressionData` (the frontend API reports it per toggle).
    impression_data: Mapping[str, bool] = field(default_factory=dict)
    #: OFREP answers already built from this snapshot's evaluations (`flags.ofrep`): an
    #: evaluation is immutable and belongs to this snapshot, so its answer never changes.
    answers: dict[int, tuple[Any, ...]] = field(default_factory=dict, compare=False, repr=False)


_LOCAL: dict[int, Compiled] = {}
# The highest version this process has served per environment (survives invalidate_local).
_SEEN: dict[int, int] = {}
_REFRESH = threading.Lock()
# Bumped by invalidate_local: a refresh that started before it must not store its result.
_GENERATION = [0]


def get_snapshot(environment_id: int) -> engine.Snapshot:
    """The compiled snapshot of an environment (no query in the steady state)."""
    return load(environment_id).snapshot


def load(environment_id: int) -> Compiled:
    """The environment's `Compiled` state; raises EnvironmentNotFound."""
    entry = _LOCAL.get(environment_id)
    if entry is not None:
        wanted = freshness.environment_version(environment_id)
        if wanted is not None and entry.version >= wanted:
            return entry
        if not _REFRESH.acquire(blocking=False):
            return entry  # another thread is refreshing: answer from the previous version
    else:
        _REFRESH.acquire()
    try:
        return _refresh(environment_id)
    finally:
        _REFRESH.release()


def load_latest(environment_id: int) -> Compiled:
    """`load` after checking for changes now: before answering that a flag does not exist.

    One version check (a Redis GET, or the tiny versions query) per such answer, so a flag is
    never answered as missing by a process once another one committed it.
    """
    freshness.recheck()
    compiled = load(environment_id)
    wanted = freshness.environment_version(environment_id)
    if wanted is not None and compiled.version < wanted:
        with _REFRESH:  # another thread is refreshing: wait for it rather than answer the old
            return _refresh(environment_id)
    return compiled


def invalidate_local() -> None:
    """Forget every snapshot of this process (called on commit of any flag change)."""
    _GENERATION[0] += 1
    _LOCAL.clear()


def forget_seen() -> None:
    """Forget even the versions served (tests: a brand-new process)."""
    invalidate_local()
    _SEEN.clear()
    freshness.forget_local()


def publish_versions() -> None:
    """Tell every process that config versions moved (after a commit)."""
    freshness.publish()


def cache_call(method: str, *args: Any) -> Any:
    """A cache operation that degrades to "not cached" when the cache is unreachable."""
    try:
        return getattr(cache, method)(*args)
    except Exception as exc:  # noqa: BLE001 - a cache outage must not stop evaluations
        logger.warning("flags.snapshot_cache_failed method=%s error=%s", method, exc)
        return None


def _refresh(environment_id: int) -> Compiled:
    generation = _GENERATION[0]
    entry = _LOCAL.get(environment_id)
    version = _current_version(environment_id)
    if entry is not None and version <= entry.version:
        return entry  # refreshed by the thread we waited for
    version = max(version, _SEEN.get(environment_id, 0))
    compiled = _compile(environment_id, version)
    if _GENERATION[0] == generation and not _in_own_transaction():
        _LOCAL[environment_id] = compiled
        if compiled.version > _SEEN.get(environment_id, 0):
            _SEEN[environment_id] = compiled.version
    return compiled


def _current_version(environment_id: int) -> int:
    from flags.models import Environment

    version = freshness.environment_version(environment_id)
    if version is None:  # created since the last check, or gone
        version = (
            Environment.objects.filter(pk=environment_id)
            .values_list("config_version", flat=True)
            .first()
        )
        if version is None:
            raise EnvironmentNotFound(environment_id)
    return int(version)


def _in_own_transaction() -> bool:
    """Inside a transaction this code opened (not a test case's): reads may be uncommitted."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def _compile(environment_id: int, version: int) -> Compiled:
    from flags.models import Environment
    from flags.selectors import environment_client_state

    raw = cache_call("get", STATE_KEY.format(environment_id, version))
    if raw is None:
        environment = Environment.objects.filter(pk=environment_id).first()
        if environment is None:
            raise EnvironmentNotFound(environment_id)
        # The document is read after the version, so it is at least that version.
        version = max(version, environment.config_version)
        state = environment_client_state(environment)
        raw = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
        if not _in_own_transaction():
            cache_call("set", STATE_KEY.format(environment_id, version), raw, STATE_TIMEOUT)
        logger.info("flags.snapshot_built environment_id=%s version=%s", environment_id, version)
    else:
        state = json.loads(raw)
    return compile_state(state, environment_id=environment_id, version=version, raw=raw)


def compile_state(
    state: dict[str, Any], *, environment_id: int, version: int, raw: str | None = None
) -> Compiled:
    """Compile a client-API document into a `Compiled` (pure; used by the cache and tests)."""
    if raw is None:
        raw = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
    body = raw.encode()
    features = state.get("features") or []
    value_types = {}
    needs_key = {}
    impression_data = {}
    for feature in features:
        name = feature.get("name")
        impression_data[name] = bool(feature.get("impressionData"))
        value_types[name] = (feature.get("rollcall") or {}).get("valueType") or "boolean"
        user_only = _needs_targeting_key(feature)
        if user_only is not None:
            needs_key[name] = user_only
    return Compiled(
        environment_id=environment_id,
        version=version,
        snapshot=engine.compile_snapshot(state),
        body=body,
        etag='"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"',
        value_types=value_types,
        needs_targeting_key=needs_key,
        impression_data=impression_data,
    )


def _percent(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _weighted(variants: Any) -> int:
    return sum(
        1
        for v in variants or ()
        if isinstance(v, dict) and v.get("name") and _percent(v.get("weight")) > 0
    )


def _needs_targeting_key(feature: Mapping[str, Any]) -> bool | None:
    """Whether the flag's answer depends on hashing the user (see `flags.ofrep`).

    None: never. True: it splits on `userId` (the OFREP targeting key) alone. False: it
    splits on the default stickiness, for which a `sessionId` also does.
    """
    if not feature.get("enabled"):
        return None
    found: list[bool] = []
    for strategy in feature.get("strategies") or ():
        name = strategy.get("name")
        params = strategy.get("parameters") or {}
        if name == "flexibleRollout":
            pct = _percent(params.get("rollout"))
            stickiness = params.get("stickiness") or "default"
            if 0 < pct < 100 and stickiness in _USER_STICKINESS:
                found.append(_USER_STICKINESS[stickiness])
        elif name == "gradualRolloutUserId" and 0 < _percent(params.get("percentage")) < 100:
            found.append(True)
        if _weighted(strategy.get("variants")) > 1:
            stickiness = params.get("stickiness") or "default"
            if stickiness in _USER_STICKINESS:
                found.append(_USER_STICKINESS[stickiness])
    variants = feature.get("variants") or []
    if _weighted(variants) > 1:
        stickiness = variants[0].get("stickiness") or "default"
        if stickiness in _USER_STICKINESS:
            found.append(_USER_STICKINESS[stickiness])
    if not found:
        return None
    return any(found)
