"""Pages work under the Content-Security-Policy: no violation is reported while people use
them (htmx swaps, the copy buttons' script, the rollout pages' styles), and the login is
throttled with a readable page."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from core.demo import DEMO_PASSWORD

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.lineNumber}`);
});
"""


@pytest.fixture
def demo(transactional_db):
    call_command("load_demo")


def _violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def test_pages_under_csp__no_violations_and_htmx_works(ui, demo):
    page = ui.page
    page.context.add_init_script(RECORD_VIOLATIONS)
    ui.login("release", DEMO_PASSWORD)
    for path in ("/", "/rollouts/", "/rollouts/calendar/", "/flags/", "/support/changelog"):
        ui.visit(path)
        assert _violations(page) == [], path
        assert page.evaluate("typeof htmx") == "object", path

    # The rollout pages' <style> blocks (with the nonce) apply: `.exposure-cell` is only there.
    ui.visit("/rollouts/")
    display = page.evaluate(
        """() => { const el = document.createElement("div"); el.className = "exposure-cell";
        document.body.append(el); return getComputedStyle(el).display; }"""
    )
    assert display == "flex"

    # An htmx interaction: create the calendar feed link (POST), then the page shows it.
    ui.visit("/rollouts/calendar/")
    page.get_by_role("button", name="Create feed link").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("#calendar-feed").inner_text().endswith(".ics")
    assert _violations(page) == []


def test_login__too_many_wrong_passwords__lockout_page(ui, demo, settings):
    settings.AXES_FAILURE_LIMIT = 3
    page = ui.page
    for _ in range(3):
        ui.visit("/accounts/login/")
        page.get_by_label("Username").fill("support")
        page.get_by_label("Password").fill("wrong-password")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state("networkidle")
    ui.visit("/accounts/login/")
    page.get_by_label("Username").fill("support")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Too many failed log-in attempts").is_visible()
    ui.audit()
