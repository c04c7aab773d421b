"""rollouts.charts: accessible, well-formed SVG that draws exactly the data it was given."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from rollouts import charts
from rollouts.models import Phase
from rollouts.scheduling import PhaseTimes

T0 = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))


def phase(order: int, pct: int | None, name: str | None = None, gate: str = "automatic") -> Phase:
    return Phase(order=order, name=name or f"{pct}%", percentage=pct, gate=gate)


def times(p, *, planned=None, actual=None, end=None, state="upcoming", current=False):
    return PhaseTimes(
        phase=p,
        planned_start=planned,
        actual_start=actual,
        end=end,
        is_current=current,
        state=state,
    )


def path_xs(d: str) -> list[float]:
    """x of every H command of a step path (the horizontal runs' ends)."""
    return [float(x) for x in re.findall(r"H(-?[\d.]+)", d)]


def rise_x(d: str) -> float:
    """x where a step path first goes up (the first V after the first H)."""
    match = re.search(r"H(-?[\d.]+) V", d)
    assert match, d
    return float(match.group(1))


# --------------------------------------------------------------------------------------------
# Phase timeline


def running_rows():
    p0, p1, p2 = phase(0, 10), phase(1, 50), phase(2, 100, gate="manual")
    return [
        times(p0, planned=T0, actual=T0, end=T0 + 2 * H, state="done"),
        times(p1, planned=T0 + H, actual=T0 + 2 * H, end=T0 + 5 * H, state="current", current=True),
        times(p2, planned=None, actual=None, end=None, state="upcoming"),
    ]


def test_phase_timeline__well_formed_with_title_desc_and_role_img():
    svg = parse(charts.phase_timeline_svg(running_rows(), now=T0 + 3 * H))
    assert svg.get("role") == "img"
    assert svg.find("svg:title", NS).text == "Phase timeline"
    desc = svg.find("svg:desc", NS).text
    assert "10%" in desc and "waits for a person" in desc


def test_phase_timeline__one_group_per_phase_current_highlighted():
    svg = parse(charts.phase_timeline_svg(running_rows(), now=T0 + 3 * H))
    groups = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if "phase" in g.get("class", "")]
    assert len(groups) == 3
    assert ["current" in g.get("class") for g in groups] == [False, True, False]
    assert "current" in "".join(groups[1].itertext())


def test_phase_timeline__applied_phases_solid_upcoming_hatched():
    rows = running_rows()
    rows[2] = times(phase(2, 100), planned=T0 + 5 * H, state="upcoming")
    html = str(charts.phase_timeline_svg(rows, now=T0 + 3 * H))
    assert html.count('class="bar bar-actual"') == 2
    assert html.count('class="bar bar-planned"') == 1
    assert 'fill="url(#timeline-hatch)"' in html


def test_phase_timeline__manual_gate__says_waits_for_a_person_instead_of_a_bar():
    svg = str(charts.phase_timeline_svg(running_rows(), now=T0 + 3 * H))
    assert ">waits for a person</text>" in svg
    assert svg.count('<rect class="bar') == 2


def test_phase_timeline__final_rollout__unstarted_phases_never_started():
    rows = running_rows()
    rows[2] = times(phase(2, 100), planned=None, state="upcoming")
    svg = str(charts.phase_timeline_svg(rows, now=T0 + 3 * H, final=True))
    assert ">never started</text>" in svg
    assert "waits for a person" not in svg


def test_phase_timeline__automatic_phase_after_a_gate__after_a_person_continues():
    rows = [*running_rows(), times(phase(3, 100), planned=None, state="upcoming")]
    svg = str(charts.phase_timeline_svg(rows, now=T0 + 3 * H))
    assert svg.count(">waits for a person</text>") == 1
    assert ">after a person continues</text>" in svg


def test_phase_timeline__late_phase__planned_start_marked_apart_from_actual():
    svg = parse(charts.phase_timeline_svg(running_rows(), now=T0 + 3 * H))
    marks = [
        p for p in svg.iter("{http://www.w3.org/2000/svg}path") if p.get("class") == "planned-mark"
    ]
    # Phase 2 was planned at T0+1h and started at T0+2h: one marker, at the planned time.
    assert len(marks) == 1
    assert marks[0].get("data-at") == (T0 + H).isoformat()


def test_phase_timeline__now_marked_between_bars():
    now = T0 + 3 * H
    svg = parse(charts.phase_timeline_svg(running_rows(), now=now))
    now_group = next(
        g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "now"
    )
    line = now_group.find("svg:line", NS)
    current_bar = next(
        r
        for r in svg.iter("{http://www.w3.org/2000/svg}rect")
        if r.get("data-start") == (T0 + 2 * H).isoformat()
    )
    x_now = float(line.get("x1"))
    assert float(current_bar.get("x")) < x_now
    assert "now" in "".join(now_group.itertext())


def test_phase_timeline__projected_end__labelled_in_the_given_zone_and_the_one_format():
    html = str(
        charts.phase_timeline_svg(
            running_rows(),
            now=T0,
            timezone_name="Europe/Berlin",
            projected_end=datetime(2030, 5, 3, 10, 0, tzinfo=UTC),
        )
    )
    assert "Projected end: Fri 3 May 2030, 12:00 CEST" in html


def test_phase_timeline__names_escaped():
    rows = [times(phase(0, 5, name="<script>x</script>"), planned=T0)]
    html = str(charts.phase_timeline_svg(rows, now=T0))
    assert "<script>" not in html
    parse(html)


def test_phase_timeline__no_phases__says_so():
    html = str(charts.phase_timeline_svg([], now=T0))
    assert "No phases planned yet." in html
    parse(html)


# --------------------------------------------------------------------------------------------
# Exposure over time


PLANNED = [(T0, 5), (T0 + 24 * H, 25), (T0 + 48 * H, 100)]
# What happened: 25% came 6 hours late, 100% not yet.
ACTUAL = [(T0, 5), (T0 + 30 * H, 25)]


def exposure(**kw):
    args = {"planned": PLANNED, "actual": ACTUAL, "now": T0 + 36 * H}
    args.update(kw)
    return parse(charts.exposure_chart_svg(**args))


def series(svg: ET.Element, kind: str) -> ET.Element:
    (found,) = [
        p
        for p in svg.iter("{http://www.w3.org/2000/svg}path")
        if p.get("class") == f"series {kind}"
    ]
    return found


def test_exposure_chart__planned_and_actual_series_carry_their_own_steps():
    svg = exposure()
    planned, actual = series(svg, "planned"), series(svg, "actual")
    assert planned.get("data-steps") == ";".join(f"{t.isoformat()}={p}" for t, p in PLANNED)
    assert actual.get("data-steps") == ";".join(f"{t.isoformat()}={p}" for t, p in ACTUAL)


def test_exposure_chart__late_step__actual_rises_after_planned():
    """Fails if planned and actual are mixed up: the actual 25% came 6 hours after the plan."""
    svg = exposure()
    planned_rise = rise_x(series(svg, "planned").get("d"))
    actual_rise = rise_x(series(svg, "actual").get("d"))
    assert actual_rise > planned_rise
    # 6 hours on a (48h + padding) axis of ~690 px is well over 50 px.
    assert actual_rise - planned_rise > 50


def test_exposure_chart__actual_stops_at_now_planned_runs_to_the_end():
    now = T0 + 36 * H
    svg = exposure(now=now)
    now_x = float(
        next(g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "now")
        .find("svg:line", NS)
        .get("x1")
    )
    assert path_xs(series(svg, "actual").get("d"))[-1] == now_x
    assert path_xs(series(svg, "planned").get("d"))[-1] > now_x


def test_exposure_chart__percent_maps_to_height():
    svg = exposure()
    d = series(svg, "planned").get("d")
    ys = [float(y) for y in re.findall(r"V(-?[\d.]+)", d)]
    # 25% then 100%: each higher on screen (smaller y) than the one before.
    assert ys[0] > ys[1]


def test_exposure_chart__holds_shaded_and_labelled():
    hold_start, hold_end = T0 + 10 * H, T0 + 12 * H
    svg = exposure(holds=[(hold_start, hold_end), (T0 + 34 * H, None)])
    holds = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "hold"]
    assert [h.get("data-start") for h in holds] == [
        hold_start.isoformat(),
        (T0 + 34 * H).isoformat(),
    ]
    assert all("held" in "".join(h.itertext()) for h in holds)
    assert "still held" in "".join(holds[1].itertext())


def test_exposure_chart__labels_each_actual_step_with_its_percentage():
    svg = exposure()
    labels = [
        t.text
        for t in svg.iter("{http://www.w3.org/2000/svg}text")
        if t.get("class") == "step-label"
    ]
    assert labels == ["5%", "25%"]


def test_exposure_chart__desc_reads_planned_and_actual_in_words():
    desc = exposure().find("svg:desc", NS).text
    assert desc.startswith("Planned: 5% from Wed 1 May 2030, 09:00 UTC")
    assert "Actual: 5% from Wed 1 May 2030, 09:00 UTC, 25% from Thu 2 May 2030, 15:00 UTC" in desc


def test_exposure_chart__nothing_yet__says_so():
    html = str(charts.exposure_chart_svg(planned=[], actual=[], now=T0))
    assert "No exposure planned yet." in html
