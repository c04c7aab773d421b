"""SDK usage in the UI: the flag page's usage section (evaluations over time per environment
and variant, connected applications) and the stale-flags page."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from core.charts import ChartTable, TimeScale, text_width, time_ticks
from core.http import AuthenticatedHttpRequest
from core.roles import require
from core.when import format_datetime
from flags import usage
from flags.models import Flag

WINDOW = timedelta(hours=24)
W, H, TOP, BOTTOM, PAD_R = 760, 150, 12, 126, 16
COLOURS = ("#2248b8", "#15803d", "#b45309", "#7c3aed", "#be123c", "#0e7490")
HOURS = 24


def _per_hour(points: list[usage.UsagePoint], start: datetime) -> dict[str, list[int]]:
    """Evaluations per environment in each hour since `start` (a list of `HOURS` counts)."""
    per_env: dict[str, list[int]] = defaultdict(lambda: [0] * HOURS)
    for p in points:
        slot = min(HOURS - 1, max(0, int((p.bucket - start).total_seconds() // 3600)))
        per_env[p.environment][slot] += p.yes + p.no
    return dict(sorted(per_env.items()))


def usage_chart_svg(points: list[usage.UsagePoint], *, start: Any, end: Any) -> SafeString:
    """Evaluations per hour per environment (stacked bars are overkill: one line each), on a
    time axis of round hours in the active time zone."""
    if not points:
        return mark_safe(
            '<svg class="chart usage" role="img" viewBox="0 0 760 40" width="100%" '
            'aria-label="No evaluations reported"><text x="12" y="24">No evaluations reported '
            "in the last 24 hours.</text></svg>"
        )
    per_env = _per_hour(points, start)
    top = max(max(v) for v in per_env.values()) or 1
    left = round(max(text_width(str(top)), text_width("0")) + 14)
    scale = TimeScale(start, end, left, W - PAD_R)

    def x(i: int) -> float:
        return scale.x(start + timedelta(hours=i + 0.5))

    def y(n: int) -> float:
        return round(BOTTOM - n / top * (BOTTOM - TOP), 1)

    body = [
        f'<line class="axis" x1="{left}" y1="{BOTTOM}" x2="{W - PAD_R}" y2="{BOTTOM}" />',
        f'<text class="tick" x="{left - 6}" y="{TOP + 4}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{left - 6}" y="{BOTTOM}" text-anchor="end">0</text>',
    ]
    for tick in time_ticks(start, end, x0=left, x1=W - PAD_R, bounds=(2, W - 2)):
        body.append(
            f'<line class="grid" x1="{tick.x}" y1="{TOP}" x2="{tick.x}" y2="{BOTTOM}" />'
            f'<text class="tick" x="{tick.x}" y="{BOTTOM + 18}" text-anchor="middle" '
            f'data-at="{tick.at.isoformat()}">{escape(tick.label)}</text>'
        )
    desc = []
    legend_x = float(left)
    for n, (env, series) in enumerate(per_env.items()):
        colour = COLOURS[n % len(COLOURS)]
        d = " ".join(f"{'M' if i == 0 else 'L'}{x(i)} {y(v)}" for i, v in enumerate(series))
        legend = f"{env}: {sum(series)}"
        body.append(
            f'<path class="series" data-environment="{escape(env)}" d="{d}" fill="none" '
            f'stroke="{colour}" stroke-width="2" />'
            f'<text x="{legend_x}" y="{BOTTOM + 34}" fill="{colour}">{escape(legend)}</text>'
        )
        legend_x += text_width(legend) + 16
        desc.append(f"{env}: {sum(series)} evaluations")
    return mark_safe(  # noqa: S308 - every value escaped
        f'<svg class="chart usage" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {W} {BOTTOM + 42}" width="100%" aria-labelledby="usage-title usage-desc">'
        '<title id="usage-title">Evaluations per hour over the last 24 hours</title>'
        f'<desc id="usage-desc">{escape("; ".join(desc))}.</desc>' + "".join(body) + "</svg>"
    )


def usage_table(points: list[usage.UsagePoint], *, start: datetime) -> ChartTable:
    """The chart's numbers: evaluations per hour (in the active time zone) per environment."""
    per_env = _per_hour(points, start)
    rows = []
    for i in range(HOURS):
        rows.append(
            (
                format_datetime(start + timedelta(hours=i)),
                *(str(series[i]) for series in per_env.values()),
            )
        )
    return ChartTable(
        caption="Evaluations per hour over the last 24 hours",
        columns=("Hour from", *per_env.keys()),
        rows=rows if per_env else [],
        empty="No evaluations reported in the last 24 hours.",
    )


def flag_usage_section(request: HttpRequest, *, flag: Flag) -> tuple[str, dict[str, Any]] | None:
    """On the flag page (registered in FlagsConfig.ready)."""
    now = timezone.now()
    start = now - WINDOW
    points = usage.flag_usage(flag.key, since=start)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    answers: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in points:
        answers[p.environment][0] += p.yes
        answers[p.environment][1] += p.no
        for variant, n in p.variants.items():
            totals[(p.environment, variant)] += n
    return "flags/_usage_section.html", {
        "flag": flag,
        "chart": usage_chart_svg(points, start=start, end=now),
        "chart_table": usage_table(points, start=start),
        "answers": [
            {
                "environment": env,
                "yes": y,
                "no": n,
                "share": round(100 * y / (y + n), 1) if y + n else None,
            }
            for env, (y, n) in sorted(answers.items())
        ],
        "variants": [
            {"environment": env, "variant": v, "count": n} for (env, v), n in sorted(totals.items())
        ],
        "apps": usage.flag_apps(flag.key),
    }


@require("flags.view_flag")
def stale_flags(request: AuthenticatedHttpRequest) -> HttpResponse:
    days = settings.FLAGS_STALE_DAYS
    with contextlib.suppress(ValueError):
        days = max(1, min(3650, int(request.GET.get("days", days))))
    return render(request, "flags/stale.html", {"rows": usage.stale_flags(days=days), "days": days})
