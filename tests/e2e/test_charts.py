"""Charts as the browser lays them out (issue 14, item 6): every label inside its chart, "now"
clear of the plot and of every other label, axis labels apart, chart text at least 10 px or
the chart replaced by its table (no script needed), and no page wider than the screen.

The demo's mid-flight canary gets a guarded check with results and SDK usage, so that the
rollout page, its checks page, its plan editor and its flag page show every kind of chart.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.demo import DEMO_PASSWORD
from flags import usage
from rollouts.models import CheckResult, PhaseCheck, Rollout

KEY = "checkout-v2-staging-canary"

# Boxes in viewBox units (getBBox) of every <text> of every chart on the page, the chart's
# size, the rendered size of its text, and where the plotted lines begin.
MEASURE = """() => [...document.querySelectorAll('svg.chart')].map((svg) => {
  const vb = svg.viewBox.baseVal;
  const shown = svg.getBoundingClientRect().width;
  const box = (el) => { const b = el.getBBox(); return {x: b.x, y: b.y, w: b.width, h: b.height}; };
  return {
    cls: svg.getAttribute('class'),
    visible: shown > 0,
    width: vb.width,
    height: vb.height,
    texts: [...svg.querySelectorAll('text')].map((t) => ({
      text: t.textContent.trim(),
      now: t.parentNode.getAttribute('class') === 'now',
      tick: t.hasAttribute('data-at'),
      px: parseFloat(getComputedStyle(t).fontSize) * shown / vb.width,
      ...box(t),
    })),
    seriesTop: Math.min(...[...svg.querySelectorAll('path.series')].map((p) => p.getBBox().y)),
  };
})"""


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.fixture
def world(transactional_db):
    call_command("load_demo")
    rollout = Rollout.objects.get(key=KEY)
    phase = rollout.phases.order_by("order").first()
    check = PhaseCheck.objects.create(
        phase=phase, name="Error ratio", query='errors{flag="{flag}"}', threshold=0.01
    )
    now = timezone.now()
    for i, value in enumerate((0.001, 0.002, None, 123.456)):
        CheckResult.objects.create(
            check_ref=check, rollout=rollout, phase_index=0, at=now - timedelta(hours=4 - i),
            status="pass" if value is not None and value < 0.01 else "fail" if value else
            "inconclusive", value=value, threshold=0.01, comparison="<", query="errors",
        )  # fmt: skip
    usage.usage_add(
        environment_id=rollout.environment_id,
        counts={(rollout.flag.key, "checkout-api", "pod-1", "unleash"): (1234, 56789, {})},
        bucket=now - timedelta(hours=3),
    )
    return rollout


def pages(rollout: Rollout) -> list[str]:
    return [
        f"/rollouts/{KEY}/",
        f"/rollouts/{KEY}/checks/",
        f"/rollouts/{KEY}/plan/",
        f"/flags/{rollout.flag.key}/",
        "/support/changelog",
    ]


def tab(browser, live_server, *, width: int, js: bool):
    from tests.e2e.conftest import UI

    context = browser.new_context(java_script_enabled=js, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    ui = UI(page, live_server.url, js=js)
    ui.visit("/accounts/login/")
    page.get_by_label("Username").fill("release")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)
    return context, ui


def check_charts(page, url: str) -> int:
    """Every shown chart: labels inside, readable, ticks apart, "now" clear. Returns how many
    charts were shown."""
    shown = 0
    for chart in page.evaluate(MEASURE):
        if not chart["visible"]:
            continue
        shown += 1
        where = f"{url} {chart['cls']}"
        texts = chart["texts"]
        for t in texts:
            # 1. inside the viewBox (half a unit for anti-aliasing)
            assert t["x"] >= -0.5 and t["x"] + t["w"] <= chart["width"] + 0.5, (where, t)
            assert t["y"] >= -0.5 and t["y"] + t["h"] <= chart["height"] + 0.5, (where, t)
            # 4. readable where it is drawn
            assert t["px"] >= 10, (where, t["text"], t["px"])
        # 3. axis labels apart
        ticks = sorted((t for t in texts if t["tick"]), key=lambda t: t["x"])
        for a, b in itertools.pairwise(ticks):
            assert a["x"] + a["w"] + 4 <= b["x"], (where, a["text"], b["text"])
        # 2. "now" above the lines, overlapping no other label
        for now in (t for t in texts if t["now"]):
            assert not [o["text"] for o in texts if not o["now"] and overlap(now, o)], where
            assert now["y"] + now["h"] <= chart["seriesTop"] + 0.5, where
    return shown


@pytest.mark.parametrize("width", [1280, 390])
def test_charts__labels_inside_apart_readable_now_clear(browser, live_server, world, width):
    context, ui = tab(browser, live_server, width=width, js=True)
    page = ui.page
    try:
        shown = 0
        for path in pages(world):
            ui.visit(path)
            shown += check_charts(page, path)
            # 4. a chart too narrow for 10 px text gives way to its table
            figures = page.locator(".chart-figure")
            for i in range(figures.count()):
                figure = figures.nth(i)
                if not figure.locator("svg.chart").is_visible():
                    table = figure.locator("table, .empty")
                    assert table.first.is_visible(), f"{path}: chart {i} hidden, table too"
            assert_no_sideways_overflow(page, path, width)
        if width == 1280:
            assert shown >= 6  # timeline, exposure, check (x2 pages), preview, usage
    finally:
        context.close()


def assert_no_sideways_overflow(page, path: str, width: int) -> None:
    wide = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"{path} is {wide}px wider than the {width}px screen"


def test_charts__390px_without_javascript__tables_instead_of_charts(browser, live_server, world):
    context, ui = tab(browser, live_server, width=390, js=False)
    page = ui.page
    try:
        for path in pages(world):
            ui.visit(path)  # axe on a copy (UI.audit)
            figures = page.locator(".chart-figure")
            for i in range(figures.count()):
                figure = figures.nth(i)
                assert not figure.locator("svg.chart").is_visible(), f"{path}: chart {i}"
                if figure.locator("details").count():
                    expect_visible = figure.locator("table, .empty").first
                    assert expect_visible.is_visible(), f"{path}: table {i}"
                    assert not figure.locator("summary").is_visible()
            assert_no_sideways_overflow(page, path, 390)
    finally:
        context.close()


def test_audit__scripts_off__axe_still_runs_and_finds_problems(browser, live_server, world):
    """5. A page without scripts is audited too: an image without a text alternative fails."""
    context, ui = tab(browser, live_server, width=1280, js=False)
    page = ui.page
    try:
        url = live_server.url + "/broken-for-axe"
        page.route(
            url,
            lambda route: route.fulfill(
                content_type="text/html",
                body='<!doctype html><html lang="en"><title>x</title><main>'
                '<img src="/static/img/favicon.svg"></main></html>',
            ),
        )
        page.goto(url)
        with pytest.raises(AssertionError, match="image-alt"):
            ui.audit()
        ui.visit(f"/rollouts/{KEY}/")  # and a real page passes
        assert ui.audited[-1].endswith(f"/rollouts/{KEY}/")
    finally:
        context.close()
