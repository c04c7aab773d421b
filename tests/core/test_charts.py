"""core.charts and every chart drawn with it: round ticks, labels that never overlap, no text
past a chart's edges, "now" clear of the plot and of every other label, and the tables the
charts are also shown as. Fixed instants only (no clock), zones with odd offsets and DST."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core.charts import DAY, STEPS, TICK_GAP, text_width, time_ticks
from flags.usage import UsagePoint
from flags.usage_views import usage_chart_svg, usage_table
from rollouts import charts
from rollouts.check_charts import Point, check_chart_svg, check_table
from rollouts.models import Phase
from rollouts.scheduling import PhaseTimes

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2030, 5, 1, 9, 7, 13, tzinfo=UTC)  # deliberately not round
H = timedelta(hours=1)
ZONES = ["UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Berlin"]
SPANS = {
    "10 min": timedelta(minutes=10),
    "5 h": timedelta(hours=5),
    "3 days": timedelta(days=3),
    "6 weeks": timedelta(weeks=6),
}


# ---------------------------------------------------------------------------------------------
# Boxes of the text in an SVG, estimated like core.charts does


def boxes(svg: str) -> tuple[float, float, list[dict]]:
    root = ET.fromstring(str(svg))
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    found = []
    parents = {child: parent for parent in root.iter() for child in parent}
    for el in root.iter(f"{SVG}text"):
        text = "".join(t for t in [el.text or ""] if t).strip() or "".join(el.itertext()).strip()
        if el.find(f"{SVG}title") is not None:  # <text><title>tip</title>shown</text>
            text = (el.find(f"{SVG}title").tail or "").strip()
        cls = el.get("class") or parents[el].get("class") or ""
        bold = cls in {"now", "current-label", "phase-name", "step-label"}
        w = text_width(text) * (1.15 if bold else 1.0)
        x, y = float(el.get("x")), float(el.get("y"))
        anchor = el.get("text-anchor", "start")
        left = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        found.append(
            {"text": text, "cls": cls, "left": left, "right": left + w, "top": y - 10,
             "bottom": y + 3, "el": el}
        )  # fmt: skip
    return width, height, found


def overlap(a: dict, b: dict) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


def assert_inside(svg: str) -> None:
    width, height, found = boxes(svg)
    for b in found:
        assert b["left"] >= 0 and b["right"] <= width, (b["text"], b["left"], b["right"], width)
        assert b["top"] >= 0 and b["bottom"] <= height, (b["text"], b["top"], height)


def tick_boxes(svg: str) -> list[dict]:
    return [b for b in boxes(svg)[2] if b["el"].get("data-at")]


def assert_ticks_apart(svg: str) -> None:
    ticks = sorted(tick_boxes(svg), key=lambda b: b["left"])
    for a, b in itertools.pairwise(ticks):
        assert b["left"] - a["right"] >= TICK_GAP - 0.5, (a["text"], b["text"])


# ---------------------------------------------------------------------------------------------
# Charts under test, over several spans and zones


def phase(order: int, pct: int | None, name: str | None = None) -> Phase:
    return Phase(order=order, name=name or f"{pct}%", percentage=pct, gate="automatic")


def timeline(span: timedelta, zone: str, *, width: int = charts.WIDTH, label_width: int = 190):
    step = span / 4
    rows = [
        PhaseTimes(phase(0, 1, "Canary in the first region"), T0, T0, T0 + step, False, "done"),
        PhaseTimes(phase(1, 25), T0 + step, T0 + step, T0 + 2 * step, True, "current"),
        PhaseTimes(phase(2, 100), T0 + 2 * step, None, T0 + 4 * step, False, "upcoming"),
    ]
    return charts.phase_timeline_svg(
        rows, now=T0 + 1.5 * step, timezone_name=zone, projected_end=T0 + span,
        width=width, label_width=label_width,
    )  # fmt: skip


def exposure(span: timedelta, zone: str, *, now_frac: float = 0.6):
    planned = [(T0, 5), (T0 + span / 3, 25), (T0 + 2 * span / 3, 100)]
    actual = [(T0, 5), (T0 + span / 2, 25)]
    return charts.exposure_chart_svg(
        planned=planned, actual=actual, now=T0 + span * now_frac, timezone_name=zone,
        holds=[(T0 + span / 4, T0 + span / 3)],
    )  # fmt: skip


def check(span: timedelta, zone: str, *, values=(0.0001, 12345.678, None, 0.02)):
    points = [
        Point(T0 + span * i / len(values), "fail" if v and v > 1 else "pass", v)
        for i, v in enumerate(values)
    ]
    return check_chart_svg(
        name="Error ratio", comparison="<", threshold=0.01, points=points, now=T0 + span,
        timezone_name=zone,
    )  # fmt: skip


def usage(zone: str):
    start = T0
    points = [
        UsagePoint(start + H * i, env, 1000 * i + 7, 3, {})
        for i in range(24)
        for env in ("production", "staging-eu-west")
    ]
    with timezone.override(ZoneInfo(zone)):
        return usage_chart_svg(points, start=start, end=start + 24 * H)


def all_charts():
    for zone in ZONES:
        for name, span in SPANS.items():
            yield f"timeline-{name}-{zone}", timeline(span, zone)
            yield f"preview-{name}-{zone}", timeline(span, zone, width=520, label_width=150)
            yield f"exposure-{name}-{zone}", exposure(span, zone)
            yield f"check-{name}-{zone}", check(span, zone)
        yield f"usage-{zone}", usage(zone)


CHARTS = dict(all_charts())


# ---------------------------------------------------------------------------------------------
# 1. No clipped labels


@pytest.mark.parametrize("name", list(CHARTS))
def test_every_label__inside_the_viewbox(name):
    assert_inside(CHARTS[name])


def test_exposure__100_percent_label_whole_left_of_the_plot():
    svg = exposure(SPANS["3 days"], "UTC")
    (hundred,) = [b for b in boxes(svg)[2] if b["text"] == "100%" and b["cls"] == "tick"]
    axis = next(
        el for el in ET.fromstring(str(svg)).iter(f"{SVG}line") if el.get("class") == "axis"
    )
    assert hundred["left"] >= 2 and hundred["right"] <= float(axis.get("x1"))


def test_exposure__steps_close_together__later_label_kept_none_overlapping():
    svg = charts.exposure_chart_svg(
        planned=[(T0, 1), (T0 + 3 * H, 5)], actual=[(T0, 1), (T0 + timedelta(minutes=3), 5)],
        now=T0 + 5 * H,
    )  # fmt: skip
    steps = [b for b in boxes(svg)[2] if b["cls"] == "step-label"]
    assert [b["text"] for b in steps] == ["5%"]
    _, _, found = boxes(exposure(SPANS["6 weeks"], "UTC"))
    labels = [b for b in found if b["cls"] == "step-label"]
    assert [b["text"] for b in labels] == ["5%", "25%"]


def test_check_chart__long_values__margin_grows_to_fit():
    svg = check(SPANS["5 h"], "UTC", values=(123456789.0, 0.5))
    assert_inside(svg)
    labels = [b["text"] for b in boxes(svg)[2] if b["cls"] == "tick" and not b["el"].get("data-at")]
    assert any("e+" in label for label in labels)


# ---------------------------------------------------------------------------------------------
# 2. "now": above the plot, on the side with room, overlapping nothing


def now_box(svg: str) -> dict:
    (found,) = [b for b in boxes(svg)[2] if b["cls"] == "now"]
    return found


@pytest.mark.parametrize("now_frac", [0.0, 0.3, 0.6, 1.0, 1.2])
def test_exposure__now_label_above_the_plot_and_clear_of_other_labels(now_frac):
    svg = exposure(SPANS["3 days"], "UTC", now_frac=now_frac)
    now = now_box(svg)
    root = ET.fromstring(str(svg))
    plot_top = min(
        float(n) for p in root.iter(f"{SVG}path") if "series" in (p.get("class") or "")
        for n in [*re.findall(r"V(-?[\d.]+)", p.get("d")), p.get("d").split()[1]]
    )  # fmt: skip
    assert now["bottom"] <= plot_top
    others = [b for b in boxes(svg)[2] if b["cls"] != "now"]
    assert not [b["text"] for b in others if overlap(now, b)]
    assert_inside(svg)


def test_now_label__flips_left_of_the_line_at_the_right_edge():
    scale = charts.TimeScale(T0, T0 + H, 48, 750)
    right = "".join(charts._now_marker(scale, T0 + H, 30, 200))
    left = "".join(charts._now_marker(scale, T0, 30, 200))
    assert 'x="746.0" y="14" text-anchor="end">now<' in right
    assert 'x="52.0" y="14">now<' in left


@pytest.mark.parametrize("span", list(SPANS))
def test_timeline__now_label_clear_of_every_other_label(span):
    for svg in (timeline(SPANS[span], "UTC"), timeline(SPANS[span], "UTC", width=520)):
        now = now_box(svg)
        assert not [b["text"] for b in boxes(svg)[2] if b["cls"] != "now" and overlap(now, b)]


# ---------------------------------------------------------------------------------------------
# 3. Time axes: round ticks, labels apart


def is_round(at: datetime, zone: ZoneInfo) -> bool:
    wall = at.astimezone(zone)
    if wall.second or wall.microsecond:
        return False
    minutes = wall.hour * 60 + wall.minute
    return any(
        (minutes * 60) % step.total_seconds() == 0 if step < DAY else minutes == 0 for step in STEPS
    )


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("span", list(SPANS))
@pytest.mark.parametrize(("x0", "x1"), [(48, 736), (150, 496), (64, 736)])
def test_time_ticks__round_times_labels_apart(span, zone, x0, x1):
    tz = ZoneInfo(zone)
    ticks = time_ticks(T0, T0 + SPANS[span], x0=x0, x1=x1, tz=tz, bounds=(2, x1 + 22))
    assert len(ticks) >= 2, [t.label for t in ticks]
    assert all(is_round(t.at, tz) for t in ticks), [t.at for t in ticks]
    steps = {b.at - a.at for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 or SPANS[span] < DAY * 8, steps  # one step (DST aside)
    for a, b in itertools.pairwise(ticks):
        assert b.left - a.right >= TICK_GAP
    assert ticks[0].left >= 2 and ticks[-1].right <= x1 + 22


def test_time_ticks__expected_steps():
    def labels(span):
        return [t.label for t in time_ticks(T0, T0 + span, x0=48, x1=736, tz=UTC)]

    assert labels(SPANS["10 min"])[:3] == ["1 May, 09:08", "09:09", "09:10"]
    assert labels(SPANS["5 h"])[:3] == ["1 May, 09:30", "10:00", "10:30"]
    assert labels(SPANS["3 days"])[:3] == ["2 May, 00:00", "12:00", "3 May, 00:00"]
    assert labels(SPANS["6 weeks"])[:2] == ["6 May", "13 May"]  # Mondays


def test_time_ticks__dst_day__wall_clock_hours_not_utc_hours():
    berlin = ZoneInfo("Europe/Berlin")
    # 2030-03-31: clocks go from 02:00 to 03:00 in Berlin.
    start = datetime(2030, 3, 30, 22, 0, tzinfo=UTC)
    ticks = time_ticks(start, start + 6 * H, x0=0, x1=700, tz=berlin)
    walls = [t.at.astimezone(berlin).strftime("%H:%M") for t in ticks]
    assert walls[:4] == ["00:00", "01:00", "03:00", "04:00"]
    assert {b.at - a.at for a, b in itertools.pairwise(ticks)} == {H}


def test_time_ticks__active_zone_by_default():
    with timezone.override(ZoneInfo("Asia/Kolkata")):
        ticks = time_ticks(T0, T0 + 5 * H, x0=0, x1=700)
    assert all(t.at.astimezone(ZoneInfo("Asia/Kolkata")).minute == 0 for t in ticks[::2])


@pytest.mark.parametrize("name", list(CHARTS))
def test_every_chart__axis_labels_apart_and_at_round_times(name):
    svg = CHARTS[name]
    ticks = tick_boxes(svg)
    assert len(ticks) >= 2
    assert_ticks_apart(svg)
    for b in ticks:
        at = datetime.fromisoformat(b["el"].get("data-at"))
        assert at.second == 0 and at.microsecond == 0


# ---------------------------------------------------------------------------------------------
# 4. The same facts as tables


def test_exposure_table__steps_and_holds_in_time_order():
    table = charts.exposure_table(
        planned=[(T0, 5), (T0 + 2 * H, 100)],
        actual=[(T0, 5)],
        holds=[(T0 + H, None)],
        timezone_name="Europe/Berlin",
    )
    assert table.columns == ("When", "What", "Exposure")
    assert table.rows == [
        ("Wed 1 May 2030, 11:07 CEST", "planned", "5%"),
        ("Wed 1 May 2030, 11:07 CEST", "applied", "5%"),
        ("Wed 1 May 2030, 12:07 CEST", "held", "still held"),
        ("Wed 1 May 2030, 13:07 CEST", "planned", "100%"),
    ]


def test_timeline_table__phase_exposure_and_start():
    manual = Phase(order=2, name="100%", percentage=100, gate="manual")
    rows = [
        PhaseTimes(phase(0, 10), T0, T0, T0 + H, False, "done"),
        PhaseTimes(phase(1, 50), T0 + H, None, None, False, "upcoming"),
        PhaseTimes(manual, None, None, None, False, "upcoming"),
    ]
    table = charts.timeline_table(rows, timezone_name="UTC")
    assert table.rows == [
        ("1. 10%", "10%", "started Wed 1 May 2030, 09:07 UTC"),
        ("2. 50%", "50%", "Wed 1 May 2030, 10:07 UTC"),
        ("3. 100%", "100%", "waits for a person"),
    ]


def test_check_table__value_threshold_result():
    table = check_table(
        name="Error ratio", comparison="<", threshold=0.01,
        points=[Point(T0, "pass", 0.001), Point(T0 + H, "inconclusive", None)],
    )  # fmt: skip
    assert table.caption == "Error ratio: evaluations"
    assert table.rows == [
        ("Wed 1 May 2030, 09:07 UTC", "0.001", "< 0.01", "pass"),
        ("Wed 1 May 2030, 10:07 UTC", "no value", "< 0.01", "inconclusive"),
    ]


def test_usage_table__per_hour_per_environment_in_the_active_zone():
    points = [UsagePoint(T0 + H, "production", 4, 6, {}), UsagePoint(T0, "staging", 1, 0, {})]
    with timezone.override(ZoneInfo("Asia/Kolkata")):
        table = usage_table(points, start=T0)
    assert table.columns == ("Hour from", "production", "staging")
    assert len(table.rows) == 24
    assert table.rows[0] == ("Wed 1 May 2030, 14:37 IST", "0", "1")
    assert table.rows[1] == ("Wed 1 May 2030, 15:37 IST", "10", "0")
    assert usage_table([], start=T0).rows == []


def test_chart_svg__compact_class_only_for_the_narrow_preview():
    assert "chart-compact" in str(timeline(SPANS["5 h"], "UTC", width=520, label_width=150))
    assert "chart-compact" not in str(timeline(SPANS["5 h"], "UTC"))


@pytest.mark.parametrize("name", list(CHARTS))
def test_every_chart__no_two_labels_overlap(name):
    found = boxes(CHARTS[name])[2]
    clashes = [
        (a["text"], b["text"]) for i, a in enumerate(found) for b in found[i + 1 :] if overlap(a, b)
    ]
    assert not clashes
