"""Is this process's copy of the flag configuration current? One cheap shared check per interval.

Every process keeps compiled snapshots (`flags.snapshot`) and SDK-key answers
(`flags.sdk_auth`) in memory. To answer changes committed by any other process (web workers,
Celery workers, management commands) within a second, a process asks "did anything change?"
at most once every `settings.FLAGS_SNAPSHOT_TTL` seconds (0.5 by default), never per
evaluation:

- with a shared cache (Redis): one `GET` of the change counter `flags:changes`, which every
  committed change increments (`publish`). Only when the counter moved (or is missing, or the
  cache is down) does the process run the versions query below.
- with a per-process cache (the embedded default, local memory): the versions query itself,
  one tiny query: every environment's config version and a fingerprint of the SDK keys
  (count, revoked count, highest id), so a revocation is seen by the same check.

The process that commits a change sees it at once (`publish` expires its own view). Versions
only move forward: a stale read never replaces a newer version already seen.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection

logger = logging.getLogger(__name__)

CHANGES_KEY = "flags:changes"
#: Marks the versions query in SQL logs (benches tell it from per-evaluation queries).
VERSIONS_QUERY_MARK = "/* rollcall:versions */"
_PER_PROCESS_BACKENDS = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)
_NEVER = float("-inf")


@dataclass
class View:
    """What this process last learned about the shared configuration."""

    checked_at: float = _NEVER
    #: The change counter seen with this view (shared cache only), or None.
    token: Any = None
    #: Environment id -> config version.
    environments: dict[int, int] = field(default_factory=dict)
    #: Changes whenever an SDK key is created, revoked or deleted.
    keys: tuple[int, int, int] = (0, 0, 0)
    loaded: bool = False


_VIEW = View()
_POLL = threading.Lock()
_clock = time.monotonic


def cache_is_shared() -> bool:
    """Whether the Django cache is shared by every process (Redis), not per process."""
    return settings.CACHES["default"]["BACKEND"] not in _PER_PROCESS_BACKENDS


def current() -> View:
    """This process's view, re-checked when `FLAGS_SNAPSHOT_TTL` seconds have passed."""
    view = _VIEW
    if _clock() - view.checked_at < settings.FLAGS_SNAPSHOT_TTL:
        return view
    if view.loaded and not _POLL.acquire(blocking=False):
        return view  # another thread is checking: answer from what we know meanwhile
    if not view.loaded:
        _POLL.acquire()
    try:
        if _clock() - view.checked_at >= settings.FLAGS_SNAPSHOT_TTL:
            _poll(view)
        return view
    finally:
        _POLL.release()


def recheck() -> View:
    """Check now, whatever the interval (a flag asked for is unknown: it may be brand new)."""
    with _POLL:
        _poll(_VIEW)
    return _VIEW


def environment_version(environment_id: int) -> int | None:
    """The environment's config version as last checked (None: not known to exist)."""
    return current().environments.get(environment_id)


def keys_fingerprint() -> tuple[int, int, int]:
    """Moves whenever an SDK key is created, revoked or deleted (as last checked)."""
    return current().keys


def publish() -> None:
    """A change committed: tell the other processes, and re-check in this one at once."""
    _VIEW.checked_at = _NEVER
    if not cache_is_shared():
        return
    try:
        try:
            cache.incr(CHANGES_KEY)
        except ValueError:  # missing (first change, or evicted): start the counter
            if not cache.add(CHANGES_KEY, 1, None):
                cache.incr(CHANGES_KEY)
    except Exception as exc:  # noqa: BLE001 - readers fall back to the versions query
        logger.warning("flags.publish_failed error=%s", exc)


def forget_local() -> None:
    """Forget what this process knows (tests; a new process)."""
    global _VIEW
    _VIEW = View()


def _poll(view: View) -> None:
    token = None
    if cache_is_shared():
        try:
            token = cache.get(CHANGES_KEY)
        except Exception as exc:  # noqa: BLE001 - a cache outage must not stop evaluations
            logger.warning("flags.changes_check_failed error=%s", exc)
        if token is not None and view.loaded and token == view.token:
            view.checked_at = _clock()
            return
    environments, keys = _read_versions()
    for environment_id, version in environments.items():
        if version >= view.environments.get(environment_id, 0):
            view.environments[environment_id] = version
    for gone in set(view.environments) - set(environments):
        del view.environments[gone]
    view.keys = keys
    view.token = token
    view.loaded = True
    view.checked_at = _clock()


def _read_versions() -> tuple[dict[int, int], tuple[int, int, int]]:
    """One query: every environment's config version plus the SDK keys' fingerprint."""
    from flags.models import Environment, SdkKey

    qn = connection.ops.quote_name
    # Only quoted table and column names are interpolated; there are no parameters.
    sql = (
        f"{VERSIONS_QUERY_MARK} SELECT e.{qn('id')}, e.{qn('config_version')}, k.n, k.r, k.m "  # noqa: S608
        f"FROM {qn(Environment._meta.db_table)} e CROSS JOIN ("
        f"SELECT COUNT(*) AS n, COUNT({qn('revoked_at')}) AS r, "
        f"COALESCE(MAX({qn('id')}), 0) AS m "
        f"FROM {qn(SdkKey._meta.db_table)}) k"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    environments = {int(row[0]): int(row[1]) for row in rows}
    keys = (int(rows[0][2]), int(rows[0][3]), int(rows[0][4])) if rows else (0, 0, 0)
    return environments, keys
