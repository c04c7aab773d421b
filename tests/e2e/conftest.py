"""Browser tests: Playwright drives Debian's Chromium against pytest-django's live server.

Every page a test visits goes through `ui.visit()` / `ui.audit()`, which run axe-core and
fail on any serious or critical accessibility finding.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls in the
# same thread are still synchronous, so this is safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)


class UI:
    """A logged-in (or anonymous) browser tab with accessibility checks on every page.

    `js=False`: the tab runs no script, and axe-core is script. Each audit then serves the
    tab's document as it stands (`page.content()`) at the same URL to a scripted tab of its
    own context and viewport, with every page script refused (CSP `script-src 'none'`):
    axe sees the markup and styles a person without JavaScript gets, nothing htmx or
    rollcall.js would have changed."""

    def __init__(self, page, base_url: str, *, js: bool = True) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.page = page
        self.base_url = base_url
        self.js = js
        self._axe = Axe()
        self.audited: list[str] = []

    def visit(self, path: str):
        self.page.goto(self.base_url + path)
        self.audit()
        return self.page

    def audit(self) -> None:
        self.page.wait_for_load_state("networkidle")
        results = self._axe.run(self.page) if self.js else self._audit_copy()
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} -> "
            + ", ".join(str(n["target"]) for n in v["nodes"][:3])
            for v in results.response["violations"]
            if v.get("impact") in {"serious", "critical"}
        ]
        assert not bad, f"axe found problems on {self.page.url}:\n" + "\n".join(bad)
        self.audited.append(self.page.url)

    def _audit_copy(self):
        html = self.page.content()
        url = self.page.url.split("#", 1)[0]
        context = self.page.context.browser.new_context(
            java_script_enabled=True, viewport=self.page.viewport_size
        )
        try:
            copy = context.new_page()
            copy.route(
                lambda u: u.split("#", 1)[0] == url,
                lambda route: route.fulfill(
                    status=200,
                    content_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": "script-src 'none'"},
                    body=html,
                ),
            )
            copy.goto(url)
            copy.wait_for_load_state("load")
            scripted = copy.evaluate("typeof window.htmx")
            assert scripted == "undefined", "the copy must not run the page's scripts"
            return self._axe.run(copy)
        finally:
            context.close()

    def login(self, username: str, password: str) -> None:
        self.visit("/accounts/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(lambda url: "/accounts/login" not in url)
        self.audit()


@pytest.fixture
def ui(browser, live_server) -> Iterator[UI]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield UI(page, live_server.url)
    context.close()
