"""A release manager creates a release and a phased rollout, runs it, and rolls it back;
Support reads the same page without a single action control."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from core.demo import DEMO_PASSWORD
from rollouts.models import Rollout
from tests.rollouts.factories import EnvironmentFactory, beta_segment


@pytest.fixture
def world(transactional_db):
    call_command("load_demo")
    EnvironmentFactory(key="production", name="Production", order=1)
    beta_segment()


def test_release_manager__release_to_rollback__progress_updates_live(ui, world, browser):
    page = ui.page
    confirmed: list[str] = []

    def accept(dialog) -> None:
        confirmed.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    ui.login("release", DEMO_PASSWORD)

    # A release, with a Markdown changelog.
    ui.visit("/rollouts/releases/new/")
    page.get_by_label("Name").fill("Checkout")
    page.get_by_label("Version").fill("2.0")
    page.get_by_label("Summary").fill("A one-page checkout.")
    page.get_by_label("Changelog").fill("## New\n\n- one page\n- **Apple Pay**")
    page.get_by_role("button", name="Create release").click()
    expect(page.get_by_role("heading", name="Checkout 2.0")).to_be_visible()
    expect(page.locator(".markdown strong")).to_have_text("Apple Pay")
    ui.audit()

    # A rollout of it, with the beta template, in Berlin time.
    page.get_by_role("link", name="New rollout of this release").click()
    page.wait_for_url("**/rollouts/new/**")
    ui.audit()
    page.get_by_label("Environment").select_option(label="Production")
    page.get_by_label("Plan template").select_option(label="Beta testers -> 5 -> 25 -> 50 -> 100")
    page.get_by_label("New flag key").fill("checkout-v2")
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_role("button", name="Create rollout").click()
    page.wait_for_url(re.compile(r"/rollouts/[\w-]+/$"))
    key = page.url.rstrip("/").rsplit("/", 1)[-1]
    progress = page.locator("#progress")
    expect(progress.locator(".current-phase")).to_contain_text("not started · 5 phases")
    expect(page.locator("svg.timeline")).to_be_visible()
    ui.audit()

    # Start: phase 1 (beta testers) applies, the page catches up without a reload. (Starting
    # now sends a support briefing late: the page offers to schedule instead; we confirm.)
    page.get_by_role("button", name="Start", exact=True).click()
    expect(progress.locator(".current-phase")).to_contain_text("1 of 5")
    expect(page.locator("#rollout-header")).to_contain_text("Running")
    expect(progress.locator(".exposure-text")).to_have_text("Beta testers")

    # Advance now, with a reason (confirmed).
    page.get_by_label("Reason to advance now").fill("beta feedback is good")
    page.get_by_role("button", name="Advance now").click()
    expect(progress.locator(".current-phase")).to_contain_text("2 of 5")
    expect(progress.locator(".exposure-text")).to_have_text("Beta testers + 5%")
    expect(progress.locator(".event-log")).to_contain_text("beta feedback is good")
    assert confirmed and confirmed[-1].startswith("Start the next phase now?")
    ui.audit()

    # Roll back (confirmed): final, so the progress region stops polling. Since rollout safety
    # the person first chooses how (restore the old rules, or freeze the current exposure).
    page.locator("#rollout-header summary", has_text="Roll back").click()
    choice = page.get_by_role("form", name="Roll back this rollout")
    expect(choice.get_by_label("Restore the rules from before the rollout")).to_be_checked()
    ui.audit()
    choice.get_by_role("button", name="Roll back").click()
    expect(progress.locator(".state")).to_contain_text("Rolled back")
    assert confirmed[-1].startswith("Roll back this rollout?")
    expect(progress).not_to_have_attribute("hx-trigger", re.compile("every"))
    expect(page.locator("#rollout-header").get_by_role("button", name="Roll back")).to_have_count(0)
    ui.audit()
    rollout = Rollout.objects.get(key=key)
    assert rollout.state == Rollout.State.ROLLED_BACK
    assert rollout.events.filter(reason="beta feedback is good").exists()

    # Support opens the same rollout: everything to read, nothing to press.
    context = browser.new_context()
    try:
        support = type(ui)(context.new_page(), ui.base_url)
        support.login("support", DEMO_PASSWORD)
        support.visit(f"/rollouts/{rollout.key}/")
        main = support.page.locator("main")
        expect(main.get_by_role("heading", name="Event log")).to_be_visible()
        assert main.locator("form[method=post]").count() == 0
        for name in ("Start", "Advance now", "Pause", "Resume", "Roll back", "Cancel rollout"):
            assert main.get_by_role("button", name=name, exact=True).count() == 0, name
        assert main.get_by_role("link", name="Edit plan").count() == 0
    finally:
        context.close()


def test_plan_editor__projection_follows_typing_and_plan_saves(ui, world):
    from rollouts import services
    from rollouts.models import Release, RolloutEvent
    from tests.rollouts.factories import soak_plan

    environment = EnvironmentFactory(key="production")
    release = Release.objects.create(name="Editor", version="1")
    rollout = services.rollout_create(
        release=release,
        environment=environment,
        strategy="feature_flag",
        actor=None,
        source=RolloutEvent.Source.UI,
        flag_key="editor-flag",
        phases=soak_plan(10, 100),
    )
    ui.login("release", DEMO_PASSWORD)
    page = ui.visit(f"/rollouts/{rollout.key}/plan/")
    preview = page.locator("#plan-preview")
    expect(preview.locator("li")).to_have_count(2)

    # Typing a longer soak moves the projected end: no save, no reload.
    before = preview.locator("p", has_text="Projected end").inner_text()
    page.get_by_label("Soak unit of phase 2").select_option("days")
    expect(preview.locator("p", has_text="Projected end")).not_to_have_text(before)

    # Add a phase between, move it up, name it, save.
    page.get_by_role("button", name="+ Add a phase").click()
    expect(page.locator(".phase-row")).to_have_count(3)
    page.locator("#id_phases-2-name").fill("Half")
    page.locator("#id_phases-2-percentage").fill("50")
    page.get_by_role("button", name="Up (move phase 3 up)").click()
    expect(page.locator("#id_phases-1-name")).to_have_value("Half")
    ui.audit()
    page.get_by_role("button", name="Save plan").click()
    expect(page.locator("#toasts")).to_contain_text("Plan saved")
    names = list(rollout.phases.order_by("order").values_list("name", flat=True))
    assert names == ["10%", "Half", "100%"]
