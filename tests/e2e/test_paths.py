"""The two key tasks of a first-time user, from the dashboard, counted in clicks and fields,
at 1280 and 390 px, with JavaScript on and off; axe-core on every page, and no page wider
than the screen:

- the release manager: new release -> canary in production in 5 phases with soaks ->
  Customer support briefed 24 h before each phase -> started (scheduled to start when the
  first briefing is due);
- support: what does this customer get?
"""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from core.demo import DEMO_PASSWORD
from rollouts.models import Rollout

MAX_CLICKS = 8
MAX_FIELDS = 12
WIDTHS = [1280, 390]


@pytest.fixture
def demo(transactional_db):
    call_command("load_demo")


class Counted:
    """A tab that counts what a person does, checks each page with axe (a copy of it when
    scripts are off: `UI.audit`) and that nothing overflows sideways."""

    def __init__(self, ui, *, width: int, js: bool) -> None:
        self.ui = ui
        self.page = ui.page
        self.width = width
        self.js = js
        self.clicks = 0
        self.fields = 0

    def check_page(self) -> None:
        self.page.wait_for_load_state("load")
        self.ui.audit()
        wide = self.page.evaluate("document.documentElement.scrollWidth")
        assert wide <= self.width, f"{self.page.url} is {wide}px wide at {self.width}px"

    def click(self, locator) -> None:
        self.clicks += 1
        locator.click()
        self.check_page()

    def fill(self, locator, value: str) -> None:
        self.fields += 1
        locator.fill(value)

    def select(self, locator, **option) -> None:
        self.fields += 1
        locator.select_option(**option)


def _tab(browser, live_server, *, width: int, js: bool):
    from tests.e2e.conftest import UI

    context = browser.new_context(java_script_enabled=js, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return context, Counted(UI(page, live_server.url, js=js), width=width, js=js)


def _login(tab: Counted, username: str) -> None:
    page = tab.page
    page.goto(tab.ui.base_url + "/accounts/login/")
    tab.check_page()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)


def _open_menu(tab: Counted, name: str) -> None:
    """Follow a main-navigation link (counted)."""
    tab.click(tab.page.get_by_role("navigation", name="Main").get_by_role("link", name=name))


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("width", WIDTHS)
def test_release_manager__new_release_to_briefed_canary__few_clicks(
    browser, live_server, demo, width, js
):
    context, tab = _tab(browser, live_server, width=width, js=js)
    page = tab.page
    try:
        _login(tab, "release")
        page.goto(tab.ui.base_url + "/")
        tab.check_page()
        expect(page.get_by_role("heading", level=1)).to_be_visible()

        _open_menu(tab, "Releases")
        tab.click(page.get_by_role("main").get_by_role("link", name="New release"))
        tab.fill(page.get_by_label("Name"), "Payments")
        tab.fill(page.get_by_label("Version"), f"3.{width}.{int(js)}")
        tab.click(page.get_by_role("button", name="Create release"))
        expect(page.get_by_role("heading", name=re.compile("^Payments 3"))).to_be_visible()

        tab.click(page.get_by_role("link", name="New rollout of this release"))
        tab.select(page.locator("#id_environment"), label="Production")
        tab.select(page.locator("#id_strategy"), value="canary")
        if js:  # htmx narrows the templates to the strategy's own
            expect(page.locator("#id_template optgroup")).to_have_count(1)
        tab.select(
            page.get_by_label("Plan template"),
            label="Canary 1 -> 5 -> 25 -> 50 -> 100, a day apart",
        )
        tab.click(page.get_by_role("button", name="Create rollout"))
        page.wait_for_url(re.compile(r"/rollouts/[\w-]+/$"))
        key = page.url.rstrip("/").rsplit("/", 1)[-1]

        # Starting now would brief Customer support too late: the page says so and offers
        # the start that meets every briefing, as the primary action.
        warning = page.locator("#start-warning")
        expect(warning).to_contain_text("Customer support would not get the notice 24 h")
        tab.click(warning.get_by_role("button", name=re.compile("^Schedule the start for")))
        expect(page.locator("#rollout-header")).to_contain_text("Scheduled")

        rollout = Rollout.objects.get(key=key)
        assert rollout.state == Rollout.State.SCHEDULED
        assert [p.percentage for p in rollout.phases.order_by("order")] == [1, 5, 25, 50, 100]
        notices = page.locator("section", has=page.get_by_role("heading", name="Notices"))
        support_briefings = notices.locator("li", has_text="Customer support")
        expect(support_briefings.filter(has_text="24 h before Phase 5")).to_have_count(1)
        expect(notices).not_to_contain_text("Too late")
        assert tab.clicks <= MAX_CLICKS, tab.clicks
        assert tab.fields <= MAX_FIELDS, tab.fields
    finally:
        context.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("width", WIDTHS)
def test_support__what_does_this_customer_get__few_clicks(browser, live_server, demo, width, js):
    context, tab = _tab(browser, live_server, width=width, js=js)
    page = tab.page
    try:
        _login(tab, "support")
        expect(page).to_have_url(re.compile("/support/changelog$"))  # Support starts here
        tab.check_page()
        page.goto(tab.ui.base_url + "/")
        tab.check_page()

        _open_menu(tab, "Customer lookup")
        tab.fill(page.get_by_label("User id"), "user-42")
        tab.click(page.get_by_role("button", name="Look up"))

        results = page.locator("#lookup-results")
        expect(results.locator("[data-rollout]").first).to_be_visible()
        why = results.locator("td.flag-why").first
        expect(why).to_have_text(re.compile(r"^(yes|no|“.*”|the caller's default) — "))
        assert ">disabled<" not in results.inner_html()
        assert tab.clicks <= MAX_CLICKS and tab.fields <= MAX_FIELDS
    finally:
        context.close()


MAIN_PAGES = [
    "/",
    "/flags/",
    "/rollouts/",
    "/rollouts/releases/",
    "/rollouts/new/",
    "/rollouts/checkout-v2-staging-canary/",
    "/rollouts/checkout-v2-staging-canary/plan/",
    "/rollouts/approvals/",
    "/rollouts/calendar/",
    "/comms/",
    "/comms/plans/checkout-v2-staging-canary/",
    "/support/changelog",
    "/support/lookup?user_id=user-42",
]


def test_main_pages__390px__nothing_wider_than_the_screen(browser, live_server, demo):
    context, tab = _tab(browser, live_server, width=390, js=True)
    try:
        _login(tab, "release")
        for path in MAIN_PAGES:
            tab.page.goto(tab.ui.base_url + path)
            tab.check_page()  # axe, and document width <= 390 px
        assert len(tab.ui.audited) >= len(MAIN_PAGES)
    finally:
        context.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_plan_editor__failed_save__error_summary_in_view_with_toast(browser, live_server, demo, js):
    from rollouts import services
    from rollouts.models import Release, RolloutEvent
    from tests.rollouts.factories import EnvironmentFactory, soak_plan

    rollout = services.rollout_create(
        release=Release.objects.create(name="Editor", version="9"),
        environment=EnvironmentFactory(key="qa", name="QA"),
        strategy="feature_flag",
        actor=None,
        source=RolloutEvent.Source.UI,
        flag_key="editor-flag-9",
        phases=soak_plan(10, 50, 100),
    )
    context, tab = _tab(browser, live_server, width=1280, js=js)
    page = tab.page
    try:
        _login(tab, "release")
        page.goto(f"{tab.ui.base_url}/rollouts/{rollout.key}/plan/")
        tab.check_page()
        page.locator("#id_phases-1-percentage").fill("500")
        tab.click(page.get_by_role("button", name="Save plan"))
        summary = page.locator("#error-summary")
        expect(summary).to_be_in_viewport()
        expect(summary).to_contain_text("The plan was not saved: 1 problem")
        expect(page.locator("#toasts")).to_contain_text("The plan was not saved")
        expect(page.locator("#id_phases-1-percentage")).to_have_value("500")
        if js:
            expect(summary).to_be_focused()
        summary.get_by_role("link").first.click()
        expect(page.locator("#id_phases-1-percentage")).to_be_in_viewport()
    finally:
        context.close()
