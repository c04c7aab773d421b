import pytest
from django.core.management import call_command

from core.demo import DEMO_PASSWORD


@pytest.fixture
def demo(transactional_db):
    call_command("load_demo")


@pytest.mark.parametrize(
    ("username", "role"),
    [("release", "Release managers"), ("support", "Support"), ("admin", "Admins")],
)
def test_demo_role__logs_in_and_sees_dashboard(ui, demo, username, role):
    ui.login(username, DEMO_PASSWORD)
    page = ui.page
    ui.visit("/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert role in page.locator(".account").inner_text()
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Dashboard").is_visible()


def test_support__lands_on_changelog_and_sees_no_edit_controls(ui, demo):
    ui.login("support", DEMO_PASSWORD)
    page = ui.page
    assert "/support/changelog" in page.url
    ui.visit("/")
    main = page.locator("main")
    # Support reads; nothing in the main region may offer a change.
    assert main.locator("form[method=post]").count() == 0
    for name in ("New", "Edit", "Delete", "Start", "Roll back", "Save"):
        assert main.get_by_role("button", name=name).count() == 0
    assert page.get_by_role("link", name="Settings").count() == 0


def test_logout__returns_to_login(ui, demo):
    ui.login("release", DEMO_PASSWORD)
    ui.page.get_by_role("button", name="Log out").click()
    ui.page.wait_for_url("**/accounts/login/")
    ui.audit()
    assert ui.page.get_by_role("heading", name="Log in to Rollcall").is_visible()
