"""Server-rendered SVG of a guarded phase's checks: each check's value over time against its
threshold, passes and failures marked, inconclusive evaluations as gaps.

Pure function like `rollouts.charts` (which it reuses): no database, no request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString

from core.charts import ChartTable
from rollouts.charts import (
    PAD_R,
    WIDTH,
    TimeScale,
    _axis,
    _domain,
    _fmt_long,
    _svg,
    _table_time,
    _value_labels,
    _zone,
)

PLOT_H = 110


@dataclass(frozen=True)
class Point:
    at: datetime
    status: str  # pass | fail | inconclusive
    value: float | None


def check_chart_svg(
    *,
    name: str,
    comparison: str,
    threshold: float,
    points: Sequence[Point],
    now: datetime,
    timezone_name: str = "UTC",
    chart_id: str = "check",
) -> SafeString:
    """One check: its values (line and dots; failing dots marked) and the threshold (dashed)."""
    tz = _zone(timezone_name)
    title = f"{name}: value over time (must be {comparison} {threshold:g})"
    if not points:
        return _svg(
            title=title,
            desc="Not evaluated yet.",
            height=50,
            body=['<text class="empty" x="12" y="30">Not evaluated yet.</text>'],
            css_class="checks",
            label_id=chart_id,
        )
    values = [p.value for p in points if p.value is not None] + [threshold]
    high = max(max(values), 0.0)
    low = min(min(values), 0.0)
    if high - low <= 0:
        high = low + 1.0
    high += (high - low) * 0.1
    y_ticks = [(tick, f"{tick:.3g}") for tick in (low, (low + high) / 2, high)]
    left = max(40, _value_labels([label for _, label in y_ticks]))
    start, end = _domain([p.at for p in points], now)
    scale = TimeScale(start, end, left, WIDTH - PAD_R)
    top, bottom = 14.0, 14.0 + PLOT_H
    height = bottom + 44

    def y(value: float) -> float:
        return round(bottom - (value - low) / (high - low) * (bottom - top), 1)

    body: list[str] = []
    for tick, label in y_ticks:
        body.append(
            f'<line class="grid" x1="{left}" y1="{y(tick)}" x2="{scale.x1}" y2="{y(tick)}" />'
            f'<text class="tick" x="{left - 6}" y="{y(tick) + 4}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    body += _axis(scale, tz, top, bottom)
    body.append(
        f'<line class="threshold" data-threshold="{threshold:g}" x1="{left}" y1="{y(threshold)}" '
        f'x2="{scale.x1}" y2="{y(threshold)}" stroke-dasharray="6 4" />'
        f'<text class="tick" x="{scale.x1 - 4}" y="{y(threshold) - 4}" text-anchor="end">'
        f"threshold {escape(comparison)} {threshold:g}</text>"
    )
    # The line breaks at inconclusive evaluations (no value: nothing to draw).
    segments: list[list[Point]] = [[]]
    for p in points:
        if p.value is None:
            segments.append([])
        else:
            segments[-1].append(p)
    for seg in segments:
        if len(seg) > 1:
            d = " ".join(
                f"{'M' if i == 0 else 'L'}{scale.x(p.at)} {y(p.value or 0.0)}"
                for i, p in enumerate(seg)
            )
            body.append(f'<path class="series actual" d="{d}" fill="none" />')
    for p in points:
        tip = f"{_fmt_long(p.at, tz)}: {p.status}" + (
            f" ({p.value:g})" if p.value is not None else ""
        )
        if p.value is None:
            body.append(
                f'<g class="point inconclusive" data-status="{p.status}">'
                f'<line x1="{scale.x(p.at)}" y1="{top}" x2="{scale.x(p.at)}" y2="{bottom}" '
                f'stroke-dasharray="2 3" /><title>{escape(tip)}</title></g>'
            )
        else:
            body.append(
                f'<circle class="point {p.status}" data-status="{p.status}" '
                f'data-value="{p.value:g}" cx="{scale.x(p.at)}" cy="{y(p.value)}" '
                f'r="{4 if p.status == "fail" else 3}"><title>{escape(tip)}</title></circle>'
            )
    failed = sum(1 for p in points if p.status == "fail")
    unknown = sum(1 for p in points if p.status == "inconclusive")
    last = points[-1]
    desc = (
        f"{len(points)} evaluation(s), {failed} failing, {unknown} inconclusive; latest "
        f"{last.status}" + (f" at {last.value:g}" if last.value is not None else "") + "."
    )
    return _svg(
        title=title,
        desc=desc,
        height=height,
        body=body,
        css_class="checks",
        label_id=chart_id,
    )


def check_table(
    *,
    name: str,
    comparison: str,
    threshold: float,
    points: Sequence[Point],
    timezone_name: str = "UTC",
) -> ChartTable:
    """Each evaluation of one check: when, its value, the threshold, and the result."""
    tz = _zone(timezone_name)
    must = f"{comparison} {threshold:g}"
    return ChartTable(
        caption=f"{name}: evaluations",
        columns=("When", "Value", "Must be", "Result"),
        rows=[
            (
                _table_time(p.at, tz),
                "no value" if p.value is None else f"{p.value:g}",
                must,
                p.status,
            )
            for p in points
        ],
        empty="Not evaluated yet.",
    )
