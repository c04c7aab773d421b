"""Rollout safety in the browser: an approver approves a pending phase from the queue; the
change calendar shows the next phase change (waiting for a freeze) and the freeze window."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from core.demo import DEMO_PASSWORD
from rollouts import services
from rollouts.models import Approval, Rollout, RolloutEvent
from tests.rollouts.factories import (
    EnvironmentFactory,
    ReleaseFactory,
    freeze,
    gate_policy,
    make_rollout,
    phase,
    soak_plan,
)


@pytest.fixture
def world(transactional_db):
    call_command("load_demo")


def test_approver__approves_pending_phase_from_the_queue(ui, world):
    from django.contrib.auth.models import User

    requester = User.objects.get(username="release")
    env = EnvironmentFactory(key="eu-prod", name="EU production", order=5)
    gate_policy(env, min_percentage=50)
    rollout = make_rollout(
        environment=env,
        phases=soak_plan(10, 50, 100, soak=timedelta(hours=1)),
        release=ReleaseFactory(name="Payments", version="3.1"),
        actor=requester,
    )
    services.rollout_start(rollout=rollout, actor=requester, source=RolloutEvent.Source.UI)
    approval = Approval.objects.get(rollout=rollout, state="pending")

    page = ui.page
    ui.login("approver", DEMO_PASSWORD)
    panel = page.get_by_role("region", name="Approvals waiting for you")
    expect(panel).to_contain_text("Payments 3.1")
    panel.get_by_role("link", name="Approve or decline").click()
    page.wait_for_url("**/rollouts/approvals/")
    ui.audit()

    item = page.get_by_role("article", name=re.compile("Payments 3.1"))
    expect(item).to_contain_text("Phase 2: 50%")
    expect(item).to_contain_text("0 of 1 approval")
    item.get_by_label(re.compile("Comment on")).fill("dashboards are green")
    item.get_by_role("button", name=re.compile("^Approve")).click()
    expect(page.locator("#toasts")).to_contain_text("Approved")
    expect(page.locator("#approval-queue")).to_contain_text("Nothing waits for your approval")
    ui.audit()

    approval.refresh_from_db()
    assert approval.state == Approval.State.APPROVED
    event = rollout.events.get(kind=RolloutEvent.Kind.APPROVED)
    assert (event.actor.username, event.reason) == ("approver", "dashboards are green")

    # The rollout page says so, and the next phase now only waits for its soak.
    ui.visit(f"/rollouts/{rollout.key}/")
    safety = page.locator("#safety")
    expect(safety).to_contain_text("Approved")
    expect(safety).to_contain_text("Alex Approver approved: “dashboards are green”")
    expect(page.locator("#progress .next-change")).not_to_contain_text("approval")


def test_calendar__shows_next_phase_change_after_a_freeze_window(ui, world):
    env = EnvironmentFactory(key="eu-prod", name="EU production", order=5)
    start = datetime(2031, 3, 5, 10, 0, tzinfo=UTC)  # a Wednesday
    rollout = make_rollout(
        environment=env,
        phases=[
            phase("Canary 10%", 10, start_rule="at", start_at=start),
            phase("Half", 50, soak=timedelta(hours=2)),
        ],
        release=ReleaseFactory(name="Search", version="5"),
    )
    services.rollout_schedule(
        rollout=rollout, actor=None, source=RolloutEvent.Source.UI, now=start - timedelta(days=1)
    )
    # Due at 12:00, but the freeze runs 11:00-13:00: the change waits for 13:00.
    freeze("Payments freeze", environment=env, starts_at=start + timedelta(hours=1),
           ends_at=start + timedelta(hours=3))  # fmt: skip
    assert Rollout.objects.get(pk=rollout.pk).next_due_at == start

    page = ui.page
    ui.login("release", DEMO_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
    page.wait_for_url("**/rollouts/calendar/")
    ui.audit()

    ui.visit("/rollouts/calendar/?view=week&date=2031-03-05")
    wednesday = page.get_by_role("region", name=re.compile("Wed 5 Mar 2031"))
    expect(wednesday.get_by_role("link", name="Search 5 → Canary 10%")).to_be_visible()
    half = wednesday.locator("li.planned", has_text="Half")
    expect(half).to_contain_text("13:00")
    expect(wednesday.locator("li.freeze")).to_contain_text("11:00–13:00 Payments freeze")

    # The month view shows them too, and filtering by another environment hides them.
    ui.visit("/rollouts/calendar/?view=month&date=2031-03-05")
    expect(page.locator("table.cal")).to_contain_text("Payments freeze")
    expect(page.locator("table.cal")).to_contain_text("Search 5 → Half (50%)")
    ui.visit("/rollouts/calendar/?view=month&date=2031-03-05&environment=staging")
    expect(page.locator("table.cal")).not_to_contain_text("Search 5")

    # Each entry links to its rollout.
    ui.visit("/rollouts/calendar/?view=week&date=2031-03-05")
    page.get_by_role("link", name="Search 5 → Canary 10%").first.click()
    page.wait_for_url(f"**/rollouts/{rollout.key}/")
    expect(page.locator("#safety")).to_contain_text("Payments freeze")
    ui.audit()
