"""A person picks their time zone from the header; the header and a rollout page then show
times in it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from core.demo import DEMO_PASSWORD
from rollouts.models import Rollout
from tests.rollouts.factories import rollout_with_phases

STARTED = datetime(2030, 3, 4, 9, 5, tzinfo=UTC)


@pytest.fixture
def world(transactional_db):
    call_command("load_demo")
    return rollout_with_phases(
        10, 100, state=Rollout.State.RUNNING, current=0, applied_from=STARTED,
        timezone="America/New_York",
    )  # fmt: skip


def test_time_zone__chosen_in_settings__header_and_rollout_page_follow(ui, world):
    page = ui.page
    ui.login("release", DEMO_PASSWORD)
    ui.visit(f"/rollouts/{world.key}/")
    expect(page.locator("#viewer-zone")).to_have_text("Times in UTC")

    page.locator("#viewer-zone").click()
    page.wait_for_url("**/accounts/settings/**")
    ui.audit()
    page.get_by_label("Show times in").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**/rollouts/{world.key}/")
    ui.audit()

    expect(page.locator("#toasts")).to_contain_text("Times are now shown in Asia/Tokyo.")
    expect(page.locator("#viewer-zone")).to_have_text("Times in Asia/Tokyo")
    started = page.locator('time[datetime="2030-03-04T09:05:00+00:00"]').first
    expect(started).to_have_text("Mon 4 Mar 2030, 18:05 JST")
