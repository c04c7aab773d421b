"""Shared fixtures.

Tiers: unit + database tests always run (SQLite in memory, or PostgreSQL when DATABASE_URL
is set). The integration tier (`integration` marker) needs DATABASE_URL and REDIS_URL and
starts real Celery processes; browser tests (`e2e`) need /usr/bin/chromium. Locally a
missing service skips those tests with the reason; with CI=true it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache

from core.roles import ADMINS, RELEASE_MANAGERS, SUPPORT, sync_roles

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = "/usr/bin/chromium"


def require_service(available: bool, reason: str) -> None:
    """Skip locally, fail in CI: CI must never go green by skipping a tier."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def clear_flag_caches() -> None:
    """Forget compiled snapshots and SDK-key lookups (in process and in the Django cache).

    Database ids and config versions restart in every test, so a snapshot cached by one test
    must never be served to the next.
    """
    from flags import sdk_auth, snapshot

    snapshot.forget_seen()
    sdk_auth.clear_local()
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client is None:
        cache.clear()  # local memory: per process
        return
    redis = client(write=True)  # a shared Redis: drop only this run's flags keys
    keys = list(redis.scan_iter(match=f"{cache.key_prefix}*flags:*", count=1000))
    if keys:
        redis.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_flag_caches():
    clear_flag_caches()
    yield
    clear_flag_caches()


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    sync_roles(Group, Permission)

    def make(username: str, role: str | None = None, **extra) -> User:
        user = User.objects.create_user(username=username, password="pw-" + username, **extra)
        if role:
            user.groups.add(Group.objects.get(name=role))
            if role == ADMINS:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
        return user

    return make


@pytest.fixture
def release_manager(make_user) -> User:
    return make_user("remy", RELEASE_MANAGERS, first_name="Remy")


@pytest.fixture
def approver(make_user) -> User:
    return make_user("alex", RELEASE_MANAGERS, first_name="Alex")


@pytest.fixture
def support_user(make_user) -> User:
    return make_user("sam", SUPPORT, first_name="Sam")


@pytest.fixture
def admin_user_role(make_user) -> User:
    return make_user("ada", ADMINS, first_name="Ada")


@pytest.fixture
def rm_client(client, release_manager):
    client.force_login(release_manager)
    return client


@pytest.fixture
def support_client(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def admin_client_role(client, admin_user_role):
    client.force_login(admin_user_role)
    return client
