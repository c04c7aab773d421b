"""Shared fixtures.

Tiers: unit + database tests always run (SQLite in memory, or PostgreSQL when DATABASE_URL
is set). The integration tier (`integration` marker) needs DATABASE_URL and REDIS_URL and
starts real Celery processes; browser tests (`e2e`) need /usr/bin/chromium. Locally a
missing service skips those tests with the reason; with CI=true it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache

from core.roles import ADMINS, RELEASE_MANAGERS, SUPPORT, sync_roles

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


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
    from flags import sdk_auth, sdk_usage, snapshot

    snapshot.forget_seen()
    sdk_auth.clear_local()
    sdk_usage.reset()
    clear_own_cache("*flags:*")


def clear_own_cache(pattern: str = "*") -> None:
    """Delete this test process's cache keys (matching `pattern`), never another's.

    With Redis, Django's `cache.clear()` empties the whole database: the keys of the other
    xdist worker and of the worker processes of another run too, in the middle of their tests.
    Every test process has its own key prefix (config.settings_test), so delete by prefix.
    """
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client is None:
        cache.clear()  # local memory: per process
        return
    redis = client(write=True)
    keys = list(redis.scan_iter(match=f"{cache.key_prefix}:{pattern}", count=1000))
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


# --------------------------------------------------------------------------------------------
# The suite at any hour and date: ROLLCALL_TEST_NOW=2027-03-28T00:59:30Z runs every unit and
# database test with the clock travelled to that instant (time-machine, ticking on from it), so
# a test that reads the real clock where behaviour depends on time fails at the awkward
# instants below instead of at 23:00 in CI. ROLLCALL_TEST_NOW=mix gives each test one of
# CLOCK_INSTANTS, picked from its node id (the same test always gets the same instant, so a
# failure reproduces). The integration and browser tiers run real processes and are left alone.
# `make test-clock` runs the mixed instants (part of `make test`); `make test-clock-all` runs
# the whole suite once per instant.
CLOCK_INSTANTS = (
    "2026-06-15T23:30:00Z",  # late evening UTC: "today" differs between UTC and the Americas
    "2026-06-16T00:00:30Z",  # just after midnight UTC
    "2027-03-28T00:59:30Z",  # Europe: 30 s before clocks go forward (last Sunday of March)
    "2026-11-01T05:59:30Z",  # America: 30 s before clocks go back (first Sunday of November)
    "2026-12-31T23:59:30Z",  # the last 30 s of the year
    "2028-02-29T12:00:00Z",  # a leap day
)
TEST_NOW = os.environ.get("ROLLCALL_TEST_NOW", "").strip()


def _test_instant(nodeid: str) -> str:
    if TEST_NOW.lower() != "mix":
        return TEST_NOW
    import zlib

    return CLOCK_INSTANTS[zlib.crc32(nodeid.encode()) % len(CLOCK_INSTANTS)]


QUERY_COUNTING_FIXTURES = frozenset({"django_assert_num_queries", "django_assert_max_num_queries"})


@pytest.fixture
def hold_change_check(monkeypatch):
    """Hold still the clock of the twice-a-second flag change check (`flags.freshness`).

    That check runs by the monotonic clock: without Redis it is one versions query, so on a
    slow machine it can land inside one of two query counts only. Changes made in this process
    are still seen at once (`publish` expires the process's own view)."""
    from flags import freshness

    monkeypatch.setattr(freshness, "_clock", lambda: 1_000_000.0)


@pytest.fixture(autouse=True)
def _query_counts_hold_change_check(request):
    """Every test that counts queries (pytest-django's fixtures, or marked
    `hold_change_check` when it counts with CaptureQueriesContext) holds the check still."""
    if QUERY_COUNTING_FIXTURES & set(request.fixturenames) or request.node.get_closest_marker(
        "hold_change_check"
    ):
        request.getfixturevalue("hold_change_check")


@pytest.fixture(autouse=True)
def _clock_at_test_instant(request):
    """Travel to ROLLCALL_TEST_NOW (see above) for unit and database tests."""
    if not TEST_NOW or {"integration", "e2e"} & set(request.keywords):
        yield
        return
    from datetime import datetime

    import time_machine

    instant = datetime.fromisoformat(_test_instant(request.node.nodeid).replace("Z", "+00:00"))
    with time_machine.travel(instant, tick=True):
        yield


def pytest_report_header(config):
    if TEST_NOW:
        return [f"clock: ROLLCALL_TEST_NOW={TEST_NOW} (unit and database tests)"]
    return []


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One Chromium for the whole run: Playwright's sync API allows one running instance per
    thread, so the browser tests and the integration tests that use a browser share it."""
    require_service(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    # Playwright's sync API runs an event loop in the test thread; Django's ORM calls in the
    # same thread are still synchronous, so this is safe here.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
