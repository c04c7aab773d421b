"""Support staff in the browser: search the changelog, open a release mid-rollout, look up
customers inside and outside the canary. Every page is checked by axe-core."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from core import demo
from core.demo import DEMO_PASSWORD
from rollouts import services
from tests.conftest import clear_flag_caches as _clear_flag_caches
from tests.support.factories import (
    UI,
    DocLinkFactory,
    EnvironmentFactory,
    ReleaseFactory,
    make_rollout,
)


@pytest.fixture
def canary(transactional_db):
    _clear_flag_caches()
    demo.load(stdout=io.StringIO())
    production = EnvironmentFactory(key="production", name="Production", order=10)
    ReleaseFactory(name="Unrelated billing fix", summary="Invoices round correctly.")
    release = ReleaseFactory(
        name="Checkout v2",
        version="2.0",
        summary="A one-page checkout.",
        known_issues="Saved cards need to be re-entered once.",
    )
    DocLinkFactory(release=release, title="Checkout guide")
    rollout = make_rollout(environment=production, release=release)
    start = timezone.now() - timedelta(hours=2)
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=start)
    services.rollout_advance_now(
        rollout=rollout, actor=None, source=UI, reason="looks good", now=start + timedelta(hours=1)
    )
    rollout.refresh_from_db()
    yield rollout
    _clear_flag_caches()


def _customers(rollout) -> tuple[str, str]:
    """A customer inside the canary and one outside it, from the snapshot OFREP serves."""
    from flags import snapshot

    snap = snapshot.get_snapshot(rollout.environment_id)
    inside = outside = None
    for i in range(10_000):
        user = f"customer-{i}"
        on = snap.evaluate(rollout.flag.key, {"userId": user}).enabled
        if on and inside is None:
            inside = user
        if not on and outside is None:
            outside = user
        if inside and outside:
            return inside, outside
    raise AssertionError("no customers found")


def test_support__searches_changelog_opens_release_and_looks_up_customers(ui, canary):
    inside, outside = _customers(canary)
    ui.login("support", DEMO_PASSWORD)
    page = ui.page

    # The changelog, searched.
    ui.visit("/support/changelog")
    page.get_by_role("searchbox", name="Search").fill("checkout")
    page.get_by_role("button", name="Search").click()
    results = page.locator("#changelog-results")
    results.get_by_role("heading", name="Checkout v2 2.0").wait_for()
    page.wait_for_function(
        "() => !document.querySelector('#changelog-results').innerText.includes('billing')"
    )
    ui.audit()
    assert "q=checkout" in page.url  # the search is in the address, so it can be shared
    assert "Live to 25% of traffic to the canary" in results.inner_text()

    # The release, mid-rollout.
    results.get_by_role("link", name="Checkout v2 2.0").click()
    page.get_by_role("heading", name="Live exposure").wait_for()
    ui.audit()
    main = page.locator("main")
    exposure = page.locator("#exposure")
    assert "phase 2 of 4 (Canary 25%)" in exposure.inner_text()
    assert "Saved cards need to be re-entered once." in main.inner_text()
    assert main.get_by_role("link", name="Checkout guide").is_visible()
    # Support reads: no doc-link edit controls.
    for name in ("Add a doc link", "Edit", "Delete", "Check now"):
        assert main.get_by_role("button", name=name).count() == 0
        assert main.get_by_role("link", name=name).count() == 0

    # A customer in the canary.
    main.get_by_role("link", name="Customer lookup").click()
    page.get_by_label("User id").fill(inside)
    page.get_by_label("Environment").select_option("production")
    page.get_by_role("button", name="Look up").click()
    row = page.locator(f'#lookup-results [data-rollout="{canary.key}"]')
    row.wait_for()
    ui.audit()
    assert row.get_attribute("data-in") == "yes"
    assert "In the canary since" in row.inner_text()
    assert "phase 2 of 4" in row.inner_text()

    # And one outside it.
    page.get_by_label("User id").fill(outside)
    page.get_by_role("button", name="Look up").click()
    page.wait_for_function(
        f"() => document.querySelector('#lookup-results [data-rollout=\"{canary.key}\"]')"
        "?.dataset.in === 'no'"
    )
    ui.audit()
    row = page.locator(f'#lookup-results [data-rollout="{canary.key}"]')
    assert "Not in the canary" in row.inner_text()


def test_release_notes__anonymous_reader__public_page_passes_axe(ui, canary):
    ReleaseFactory(name="Public thing", is_public=True, summary="Now public.")

    page = ui.visit("/release-notes/")

    assert page.get_by_role("heading", name="Release notes").is_visible()
    assert "Public thing" in page.locator("main").inner_text()
    assert "Checkout v2" not in page.locator("main").inner_text()
