"""`SdkKey.last_used_at`, kept without a write per request.

Each process collects the ids of keys that authenticated in a set and writes them with one
UPDATE at most every `settings.SDK_KEY_LAST_USED_FLUSH_SECONDS` (the first use in a process is
written at once). The time shown is therefore at most that many seconds old; a process that
stops loses at most that window of "used" marks, never a request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_pending: set[int] = set()
_last_flush = [float("-inf")]
_clock: Callable[[], float] = time.monotonic


def record_use(sdk_key_id: int, *, now: datetime | None = None) -> None:
    """Remember that a key was used; flush the batch when it is due."""
    due = False
    with _lock:
        _pending.add(sdk_key_id)
        interval = getattr(settings, "SDK_KEY_LAST_USED_FLUSH_SECONDS", 60)
        if _clock() - _last_flush[0] >= interval:
            due = True
    if due:
        flush(now=now)


def flush(*, now: datetime | None = None) -> int:
    """Write the pending ids' last_used_at in one UPDATE; returns how many rows changed."""
    from flags.models import SdkKey

    with _lock:
        ids = sorted(_pending)
        _pending.clear()
        _last_flush[0] = _clock()
    if not ids:
        return 0
    try:
        updated = SdkKey.objects.filter(pk__in=ids).update(last_used_at=now or timezone.now())
    except Exception:  # a failed bookkeeping write must never fail an evaluation
        logger.warning("sdk_key.last_used_flush_failed count=%s", len(ids), exc_info=True)
        with _lock:
            _pending.update(ids)
        return 0
    return updated


def reset() -> None:
    """Forget pending ids and the last flush time (tests)."""
    with _lock:
        _pending.clear()
        _last_flush[0] = float("-inf")
