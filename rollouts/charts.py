"""Server-rendered SVG pictures of a rollout: the phase timeline and exposure over time.

Pure functions (no database, no request): they take what `rollouts.scheduling` computed and
return an accessible `<svg>` (role="img", <title>, <desc>, text labels) as a SafeString.
People look at these; the page also offers the same facts as a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from core.charts import ChartTable, TimeScale, text_width, time_ticks
from core.when import format_datetime

__all__ = ["TimeScale", "exposure_chart_svg", "exposure_table", "phase_timeline_svg"]

WIDTH = 760
COMPACT = 520  # at most this wide: a chart for a half-width column (the plan preview)
LABEL_W = 190  # left column for phase names
PAD_R = 24
AXIS_H = 34
ROW_H = 30
BAR_H = 16
CHART_H = 220  # plot height of the exposure chart
NOW_BAND = 18  # above the plot: the "now" label, clear of the lines and their labels
PAD_T = NOW_BAND + 4


def _fmt_long(at: datetime, tz: ZoneInfo) -> str:
    return format_datetime(at, tz)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _domain(points: Iterable[datetime | None], now: datetime) -> tuple[datetime, datetime]:
    times = [p for p in points if p is not None] + [now]
    start, end = min(times), max(times)
    if end - start < timedelta(hours=1):
        end = start + timedelta(hours=1)
    # A little air on both sides so "now" and the first bar do not touch the frame.
    pad = (end - start) * 0.04
    return start - pad, end + pad


def _axis(
    scale: TimeScale, tz: ZoneInfo, y_top: float, y_bottom: float, *, width: int = WIDTH
) -> list[str]:
    """The time axis under a plot: round times of the chart's zone, labels never overlapping
    and never past the chart's edges."""
    parts = [
        f'<line class="axis" x1="{scale.x0}" y1="{y_bottom}" x2="{scale.x1}" y2="{y_bottom}" />'
    ]
    for tick in time_ticks(
        scale.start, scale.end, x0=scale.x0, x1=scale.x1, tz=tz, bounds=(2, width - 2)
    ):
        parts.append(
            f'<line class="grid" x1="{tick.x}" y1="{y_top}" x2="{tick.x}" y2="{y_bottom}" />'
        )
        parts.append(
            f'<text class="tick" x="{tick.x}" y="{y_bottom + 18}" text-anchor="middle" '
            f'data-at="{tick.at.isoformat()}">{escape(tick.label)}</text>'
        )
    return parts


def _value_labels(labels: Sequence[str]) -> float:
    """Left margin for right-aligned value labels (y axis): the widest one and some air."""
    return round(max(text_width(label) for label in labels) + 14)


def _now_marker(
    scale: TimeScale, now: datetime, y_top: float, y_bottom: float, *, width: int = WIDTH
) -> list[str]:
    """A dashed line through the plot and "now" in the band above it: right of the line, or
    left of it near the right edge."""
    x = scale.x(now)
    label_w = text_width("now") * 1.15  # bold
    if x + 4 + label_w <= width - 2:
        text = f'<text x="{x + 4}" y="{NOW_BAND - 4}">now</text>'
    else:
        text = f'<text x="{x - 4}" y="{NOW_BAND - 4}" text-anchor="end">now</text>'
    return [
        f'<g class="now" data-at="{now.isoformat()}">',
        f'<line x1="{x}" y1="{NOW_BAND - 14}" x2="{x}" y2="{y_bottom}" />',
        text,
        "</g>",
    ]


def _svg(
    *,
    title: str,
    desc: str,
    height: float,
    body: list[str],
    css_class: str,
    label_id: str,
    width: int = WIDTH,
) -> SafeString:
    size = " chart-compact" if width <= COMPACT else ""
    head = (
        f'<svg class="chart {css_class}{size}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {round(height)}" width="100%" '
        f'aria-labelledby="{label_id}-title {label_id}-desc">'
        f'<title id="{label_id}-title">{escape(title)}</title>'
        f'<desc id="{label_id}-desc">{escape(desc)}</desc>'
        "<defs>"
        f'<pattern id="{label_id}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg" />'
        '<line x1="0" y1="0" x2="0" y2="6" class="hatch-line" /></pattern>'
        "</defs>"
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - every value escaped


# ---------------------------------------------------------------------------------------------
# Phase timeline: one horizontal bar per phase, "now" marked.


def _phase_label(phase: Any, index: int) -> str:
    pct = getattr(phase, "percentage", None)
    segment = getattr(phase, "segment", None) if getattr(phase, "segment_id", None) else None
    exposure = []
    if segment is not None:
        exposure.append(str(segment))
    if pct is not None:
        exposure.append(f"{pct}%")
    text = f"{index + 1}. {phase.name}"
    return f"{text} · {' + '.join(exposure)}" if exposure else text


def _trim(text: str, room: float) -> str:
    """`text`, cut with an ellipsis to fit `room` units (bold: the current phase)."""
    if text_width(text) * 1.1 <= room:
        return text
    while text and text_width(text + "…") * 1.1 > room:
        text = text[:-1]
    return text.rstrip() + "…"


def phase_timeline_svg(
    rows: Sequence[Any],
    *,
    now: datetime,
    timezone_name: str = "UTC",
    projected_end: datetime | None = None,
    chart_id: str = "timeline",
    width: int = WIDTH,
    label_width: int = LABEL_W,
    final: bool = False,
) -> SafeString:
    """Horizontal bars per phase from `scheduling.projected_timeline` rows.

    Solid bar = what happened (from `actual_start`); hatched bar = projected (from
    `planned_start`); a diamond marks the planned start of a phase that actually started at
    another time; the current phase is outlined and labelled; a phase behind a manual gate
    (no planned start) says "waits for a person" instead of a bar (a phase after it: "after a
    person continues"; a phase of a finished rollout that never ran: "never started").
    """
    tz = _zone(timezone_name)
    n = len(rows)
    height = PAD_T + n * ROW_H + AXIS_H + (18 if projected_end else 0)
    if not n:
        return _svg(
            title="Phase timeline",
            desc="This rollout has no phases yet.",
            height=60,
            body=['<text class="empty" x="12" y="34">No phases planned yet.</text>'],
            css_class="timeline",
            label_id=chart_id,
            width=width,
        )
    points: list[datetime | None] = [projected_end]
    for row in rows:
        points += [row.planned_start, row.actual_start, row.end]
    start, end = _domain(points, now)
    scale = TimeScale(start, end, label_width, width - PAD_R)
    y_axis = PAD_T + n * ROW_H
    body = _axis(scale, tz, PAD_T, y_axis, width=width)
    described: list[str] = []
    for i, row in enumerate(rows):
        phase = row.phase
        state = getattr(row, "state", "upcoming")
        y = PAD_T + i * ROW_H + (ROW_H - BAR_H) / 2
        label = _phase_label(phase, i)
        current = bool(getattr(row, "is_current", False))
        body.append(
            f'<g class="phase phase-{escape(state)}{" current" if current else ""}" '
            f'data-index="{i}">'
        )
        body.append(
            f'<text class="phase-name" x="8" y="{y + BAR_H - 3}">'
            f"<title>{escape(label)}</title>{escape(_trim(label, label_width - 14))}</text>"
        )
        bar_start = row.actual_start or row.planned_start
        if bar_start is None:
            if getattr(row, "waits_for_person", False):
                words = "waits for a person"
            elif final:
                words = "never started"
            else:
                words = "after a person continues"
            body.append(
                f'<text class="waits" x="{label_width + 6}" y="{y + BAR_H - 3}">{words}</text>'
            )
            described.append(f"{label}: {words}")
        else:
            # A bar ends where the next phase starts (actually or as projected); the last
            # phase is open-ended (to the right edge).
            bar_end = row.end or scale.end
            x1, x2 = scale.x(bar_start), scale.x(bar_end)
            kind = "actual" if row.actual_start else "planned"
            fill = f"url(#{chart_id}-hatch)" if kind == "planned" else ""
            when = _fmt_long(bar_start, tz)
            tip = f"{label}: {'started' if kind == 'actual' else 'planned for'} {when}"
            if row.end:
                tip += f", until {_fmt_long(row.end, tz)}"
            body.append(
                f'<rect class="bar bar-{kind}" x="{x1}" y="{y}" width="{max(2.0, x2 - x1)}" '
                f'height="{BAR_H}" rx="3" data-start="{bar_start.isoformat()}"'
                + (f' fill="{fill}"' if fill else "")
                + f"><title>{escape(tip)}</title></rect>"
            )
            if row.actual_start and row.planned_start and row.planned_start != row.actual_start:
                px = scale.x(row.planned_start)
                body.append(
                    f'<path class="planned-mark" d="M{px} {y - 3} l4 4 l-4 4 l-4 -4 z" '
                    f'data-at="{row.planned_start.isoformat()}">'
                    f"<title>planned for {escape(_fmt_long(row.planned_start, tz))}</title></path>"
                )
            if current:
                # Inside the bar's end when it fits, else just after the bar (or before it
                # at the right edge): never over the phase names.
                word_w = text_width("current") * 1.15
                if x2 - x1 >= word_w + 8:
                    at, anchor = x2 - 4, "end"
                elif x2 + 4 + word_w <= width - 2:
                    at, anchor = x2 + 4, "start"
                else:
                    at, anchor = x1 - 4, "end"
                body.append(
                    f'<text class="current-label" x="{at}" y="{y + BAR_H - 3}" '
                    f'text-anchor="{anchor}">current</text>'
                )
            described.append(tip)
        body.append("</g>")
    body += _now_marker(scale, now, PAD_T, y_axis, width=width)
    if projected_end:
        body.append(
            f'<text class="projected-end" x="{width - PAD_R}" y="{height - 4}" '
            f'text-anchor="end">Projected end: {escape(_fmt_long(projected_end, tz))}</text>'
        )
    desc = "; ".join(described) + f". Now is {_fmt_long(now, tz)}."
    if projected_end:
        desc += f" Projected end {_fmt_long(projected_end, tz)}."
    return _svg(
        title="Phase timeline",
        desc=desc,
        height=height,
        body=body,
        css_class="timeline",
        label_id=chart_id,
        width=width,
    )


# ---------------------------------------------------------------------------------------------
# Exposure over time: planned steps vs what actually happened, holds shaded.


def _series(points: Iterable[tuple[datetime, float | int | None]]) -> list[tuple[datetime, float]]:
    clean = [(at, float(pct or 0)) for at, pct in points if at is not None]
    return sorted(clean, key=lambda p: p[0])


def step_path(
    points: Sequence[tuple[datetime, float]],
    *,
    scale: TimeScale,
    y: Any,
    until: datetime,
) -> str:
    """SVG path `d` of a step line: horizontal until the next point, then vertical."""
    if not points:
        return ""
    d = [f"M{scale.x(points[0][0])} {y(points[0][1])}"]
    for at, pct in points[1:]:
        d.append(f"H{scale.x(at)} V{y(pct)}")
    d.append(f"H{scale.x(max(until, points[-1][0]))}")
    return " ".join(d)


def exposure_chart_svg(
    *,
    planned: Sequence[tuple[datetime, float | int | None]],
    actual: Sequence[tuple[datetime, float | int | None]],
    holds: Sequence[tuple[datetime, datetime | None]] = (),
    now: datetime,
    timezone_name: str = "UTC",
    actual_until: datetime | None = None,
    chart_id: str = "exposure",
) -> SafeString:
    """Step chart of exposure (0-100%) over time.

    `planned`: the plan's steps (dashed); `actual`: what was applied (solid, ends at now or
    at `actual_until` for a finished rollout); `holds`: (start, end or None while holding)
    intervals, shaded and labelled "held".
    """
    tz = _zone(timezone_name)
    plan, real = _series(planned), _series(actual)
    height = PAD_T + CHART_H + AXIS_H + 22
    if not plan and not real:
        return _svg(
            title="Exposure over time",
            desc="No exposure planned or applied yet.",
            height=60,
            body=['<text class="empty" x="12" y="34">No exposure planned yet.</text>'],
            css_class="exposure",
            label_id=chart_id,
        )
    until = actual_until or now
    hold_points = [t for h in holds for t in h]
    start, end = _domain([p[0] for p in plan + real] + hold_points + [until], now)
    y_ticks = (0, 25, 50, 75, 100)
    left = _value_labels([f"{tick}%" for tick in y_ticks])
    scale = TimeScale(start, end, left, WIDTH - PAD_R)
    top, bottom = PAD_T + 8, PAD_T + 8 + CHART_H

    def y(pct: float) -> float:
        return round(bottom - (pct / 100.0) * (bottom - top), 1)

    body: list[str] = []
    for h_start, h_end in holds:
        x1, x2 = scale.x(h_start), scale.x(h_end or until)
        hold_tip = f"held from {_fmt_long(h_start, tz)}" + (
            f" to {_fmt_long(h_end, tz)}" if h_end else " (still held)"
        )
        body.append(
            f'<g class="hold" data-start="{h_start.isoformat()}">'
            f'<rect x="{x1}" y="{top}" width="{max(2.0, x2 - x1)}" height="{bottom - top}" '
            f'fill="url(#{chart_id}-hatch)"><title>{escape(hold_tip)}</title></rect>'
            f'<text x="{x1 + 3}" y="{top + 12}">held</text></g>'
        )
    for tick in y_ticks:
        body.append(
            f'<line class="grid" x1="{left}" y1="{y(tick)}" x2="{scale.x1}" y2="{y(tick)}" />'
        )
        body.append(
            f'<text class="tick" x="{left - 6}" y="{y(tick) + 4}" text-anchor="end">{tick}%</text>'
        )
    body += _axis(scale, tz, top, bottom)
    plan_end = scale.end
    if plan:
        steps = ";".join(f"{at.isoformat()}={pct:g}" for at, pct in plan)
        body.append(
            f'<path class="series planned" data-steps="{escape(steps)}" '
            f'd="{step_path(plan, scale=scale, y=y, until=plan_end)}" fill="none" />'
        )
    if real:
        steps = ";".join(f"{at.isoformat()}={pct:g}" for at, pct in real)
        body.append(
            f'<path class="series actual" data-steps="{escape(steps)}" '
            f'd="{step_path(real, scale=scale, y=y, until=until)}" fill="none" />'
        )
        # Latest first: where two steps came close together, the later one keeps its label
        # (the table lists every step).
        placed: list[tuple[float, float, float]] = []  # left, right, baseline
        labels: list[str] = []
        for at, pct in reversed(real):
            x, base = scale.x(at) + 3, y(pct) - 4
            right = x + text_width(f"{pct:g}%") * 1.1
            if any(x < r and lft < right and abs(base - b) < 13 for lft, r, b in placed):
                continue
            placed.append((x, right, base))
            labels.append(f'<text class="step-label" x="{x}" y="{base}">{pct:g}%</text>')
        body += reversed(labels)
    body += _now_marker(scale, now, top, bottom)
    legend_y = height - 6
    body.append(
        f'<g class="legend"><line class="planned" x1="{left}" y1="{legend_y - 4}" '
        f'x2="{left + 24}" y2="{legend_y - 4}" />'
        f'<text x="{left + 30}" y="{legend_y}">planned</text>'
        f'<line class="actual" x1="{left + 110}" y1="{legend_y - 4}" x2="{left + 134}" '
        f'y2="{legend_y - 4}" /><text x="{left + 140}" y="{legend_y}">actual</text>'
        f'<rect x="{left + 210}" y="{legend_y - 10}" width="14" height="10" '
        f'fill="url(#{chart_id}-hatch)" /><text x="{left + 230}" y="{legend_y}">held</text></g>'
    )
    desc_parts = []
    if plan:
        desc_parts.append(
            "Planned: " + ", ".join(f"{pct:g}% from {_fmt_long(at, tz)}" for at, pct in plan)
        )
    if real:
        desc_parts.append(
            "Actual: " + ", ".join(f"{pct:g}% from {_fmt_long(at, tz)}" for at, pct in real)
        )
    if holds:
        desc_parts.append(f"{len(holds)} hold(s) shaded")
    return _svg(
        title="Exposure over time",
        desc=". ".join(desc_parts) + ".",
        height=height,
        body=body,
        css_class="exposure",
        label_id=chart_id,
    )


# ---------------------------------------------------------------------------------------------
# The same facts as tables (shown instead of the chart on a narrow screen)


def _table_time(at: datetime, tz: ZoneInfo) -> str:
    return format_datetime(at, tz)


def exposure_table(
    *,
    planned: Sequence[tuple[datetime, float | int | None]],
    actual: Sequence[tuple[datetime, float | int | None]],
    holds: Sequence[tuple[datetime, datetime | None]] = (),
    timezone_name: str = "UTC",
) -> ChartTable:
    """Every planned and applied step and every hold, in time order."""
    tz = _zone(timezone_name)
    rows: list[tuple[datetime, int, tuple[str, ...]]] = []
    for at, pct in _series(planned):
        rows.append((at, 0, (_table_time(at, tz), "planned", f"{pct:g}%")))
    for at, pct in _series(actual):
        rows.append((at, 1, (_table_time(at, tz), "applied", f"{pct:g}%")))
    for h_start, h_end in holds:
        until = f"until {_table_time(h_end, tz)}" if h_end else "still held"
        rows.append((h_start, 2, (_table_time(h_start, tz), "held", until)))
    rows.sort(key=lambda r: (r[0], r[1]))
    return ChartTable(
        caption="Exposure over time",
        columns=("When", "What", "Exposure"),
        rows=[r[2] for r in rows],
        empty="No exposure planned yet.",
    )


def timeline_table(
    rows: Sequence[Any], *, timezone_name: str = "UTC", final: bool = False
) -> ChartTable:
    """Phase, exposure and start (actual, planned, or why there is none) per phase."""
    tz = _zone(timezone_name)
    out: list[tuple[str, ...]] = []
    for i, row in enumerate(rows):
        phase = row.phase
        pct = getattr(phase, "percentage", None)
        segment = getattr(phase, "segment", None) if getattr(phase, "segment_id", None) else None
        exposure = " + ".join([str(segment)] * bool(segment) + [f"{pct}%"] * (pct is not None))
        if row.actual_start:
            start = f"started {_table_time(row.actual_start, tz)}"
        elif row.planned_start:
            start = _table_time(row.planned_start, tz)
        elif getattr(row, "waits_for_person", False):
            start = "waits for a person"
        else:
            start = "never started" if final else "after a person continues"
        out.append((f"{i + 1}. {phase.name}", exposure or "—", start))
    return ChartTable(
        caption="Phase timeline",
        columns=("Phase", "Exposure", "Start"),
        rows=out,
        empty="No phases planned yet.",
    )
