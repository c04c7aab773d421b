"""Flags in the browser: a release manager builds a rollout, Support reads it (axe on each page)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from core.demo import DEMO_PASSWORD
from flags import engine

FLAG = "e2e-checkout"


@pytest.fixture
def demo(transactional_db):
    from tests.conftest import clear_flag_caches

    clear_flag_caches()
    call_command("load_demo")
    yield
    clear_flag_caches()


def _add_rule(
    ui, *, title: str, percentage: int, segment: str | None = None, try_rows: bool = False
) -> None:
    page = ui.page
    section = page.locator("#env-section-staging")
    section.get_by_text("Add a rule in Staging").click()
    form = section.locator("details.add-rule form")
    form.get_by_label("Title").fill(title)
    if try_rows:
        # Rows are added and removed by the server (htmx swaps the section; input is kept).
        form.get_by_role("button", name="Add constraint").click()
        form.get_by_label("Context field").wait_for()
        ui.audit()
        assert form.get_by_label("Title").input_value() == title
        form.get_by_role("button", name="Remove constraint 1").click()
        form.get_by_text("No constraints.").wait_for()
    form.get_by_label("Rollout percentage").fill(str(percentage))
    assert form.locator("output").inner_text() == str(percentage)
    if segment:
        form.get_by_label(segment).check()
    form.get_by_role("button", name="Add rule").click()
    page.locator("#env-section-staging .rule h3", has_text=title).wait_for()
    ui.audit()


def _evaluate(ui, user_id: str) -> tuple[str, str]:
    page = ui.page
    panel = page.locator("#evaluate-panel")
    panel.get_by_label("Environment").select_option("staging")
    panel.get_by_label("userId").fill(user_id)
    panel.get_by_role("button", name="Evaluate").click()
    result = page.locator("#evaluate-panel .result")
    result.wait_for()
    page.wait_for_function(
        "id => document.querySelector('#evaluate-panel .result h3') && "
        "document.querySelector('#evaluate-panel input[name=user_id]').value === id",
        arg=user_id,
    )
    ui.audit()
    return (
        result.locator(".eval-reason").inner_text(),
        result.locator(".eval-rule").inner_text(),
    )


def test_release_manager__builds_a_rollout_and_evaluates_it(ui, demo):
    ui.login("release", DEMO_PASSWORD)
    page = ui.page

    ui.visit("/flags/")
    page.get_by_role("link", name="New flag").click()
    page.wait_for_url("**/flags/new/")
    ui.audit()
    page.get_by_label("Key").fill(FLAG)
    page.get_by_label("Name:", exact=True).fill("E2E checkout")
    page.get_by_role("button", name="Create flag").click()
    page.wait_for_url(f"**/flags/{FLAG}/")
    ui.audit()
    assert page.get_by_role("heading", name="E2E checkout").is_visible()

    # "Segment Beta testers OR 10% of users": two rules, ORed.
    _add_rule(ui, title="Beta testers", percentage=100, segment="Beta testers")
    _add_rule(ui, title="10% of users", percentage=10, try_rows=True)
    rules = page.locator("#env-section-staging .rule h3")
    assert rules.all_inner_texts() == ["Rule 1: Beta testers", "Rule 2: 10% of users"]

    page.get_by_role("button", name=f"Turn on {FLAG} in Staging").click()
    page.get_by_role("button", name=f"Turn off {FLAG} in Staging").wait_for()
    ui.audit()
    assert "Staging" in page.locator("#flag-history").inner_text()

    assert _evaluate(ui, "beta-3") == ("TARGETING_MATCH", "Rule 1: Beta testers")

    # Someone else: in the 10% or not, exactly as Unleash would bucket them.
    for user in ("user-1", "user-2", "user-3", "user-4", "user-5", "user-6"):
        in_rollout = engine.bucket(FLAG, user) <= 10
        expected = ("SPLIT", "Rule 2: 10% of users") if in_rollout else ("DEFAULT", "None")
        assert _evaluate(ui, user) == expected, user


def test_support__sees_the_flag_and_rules_without_edit_controls(ui, demo):
    ui.login("support", DEMO_PASSWORD)
    page = ui.page

    ui.visit("/flags/")
    assert page.get_by_role("link", name="new-checkout").is_visible()
    assert page.get_by_role("link", name="New flag").count() == 0

    ui.visit("/flags/new-checkout/")
    main = page.locator("main")
    staging = page.locator("#env-section-staging")
    assert "Segment: Beta testers" in staging.inner_text()
    assert "10% of users" in staging.inner_text()
    assert main.locator("form[method=post]").count() == 0
    assert main.locator("[hx-post]").count() == 0
    for name in ("Turn on", "Turn off", "Add rule", "Save", "Delete", "Archive flag"):
        assert main.get_by_role("button", name=name).count() == 0, name
    assert page.get_by_text("Add a rule in Staging").count() == 0

    # Support may still ask what a customer gets.
    assert _evaluate(ui, "beta-1") == ("TARGETING_MATCH", "Rule 1: Beta testers")

    ui.visit("/flags/segments/")
    page.get_by_role("link", name="Beta testers").click()
    page.wait_for_url("**/flags/segments/*/")
    ui.audit()
    assert page.locator("main form[method=post]").count() == 0
