"""Fixtures for flags tests."""

from __future__ import annotations

import pytest
from django.core.cache import cache


def clear_flag_caches() -> None:
    """Forget compiled snapshots and SDK-key lookups (in process and in the Django cache).

    Database ids and config versions restart in every test, so a snapshot cached by one test
    must never be served to the next.
    """
    from flags import sdk_auth, snapshot

    snapshot.invalidate_local()
    sdk_auth.clear_local()
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client is None:
        cache.clear()  # local memory: per process
        return
    redis = client(write=True)  # a shared Redis: drop only the flags keys
    keys = list(redis.scan_iter(match="*flags:*", count=1000))
    if keys:
        redis.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_flag_caches():
    clear_flag_caches()
    yield
    clear_flag_caches()
