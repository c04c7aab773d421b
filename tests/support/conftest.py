"""Fixtures for the support pages' tests."""

from __future__ import annotations

import pytest
from django.core.cache import cache


def _clear_flag_caches() -> None:
    """Compiled snapshots and SDK-key lookups must not leak between tests (ids restart)."""
    from flags import sdk_auth, snapshot

    snapshot.invalidate_local()
    sdk_auth.clear_local()
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client is None:
        cache.clear()
        return
    redis = client(write=True)
    keys = list(redis.scan_iter(match="*flags:*", count=1000))
    if keys:
        redis.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_flag_caches():
    _clear_flag_caches()
    yield
    _clear_flag_caches()
