"""SDK usage in the UI: the flag page's usage section (evaluations over time per environment
and variant, connected applications) and the stale-flags page."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from core.http import AuthenticatedHttpRequest
from core.roles import require
from flags import usage
from flags.models import Flag

WINDOW = timedelta(hours=24)
W, H, LEFT, TOP, BOTTOM = 760, 150, 56, 12, 126
COLOURS = ("#2248b8", "#15803d", "#b45309", "#7c3aed", "#be123c", "#0e7490")


def usage_chart_svg(points: list[usage.UsagePoint], *, start: Any, end: Any) -> SafeString:
    """Evaluations per hour per environment (stacked bars are overkill: one line each)."""
    if not points:
        return mark_safe(
            '<svg class="chart usage" role="img" viewBox="0 0 760 40" width="100%" '
            'aria-label="No evaluations reported"><text x="12" y="24">No evaluations reported '
            "in the last 24 hours.</text></svg>"
        )
    hours = 24
    per_env: dict[str, list[int]] = defaultdict(lambda: [0] * hours)
    for p in points:
        slot = min(hours - 1, max(0, int((p.bucket - start).total_seconds() // 3600)))
        per_env[p.environment][slot] += p.yes + p.no
    top = max(max(v) for v in per_env.values()) or 1

    def x(i: int) -> float:
        return round(LEFT + (i + 0.5) * (W - LEFT - 16) / hours, 1)

    def y(n: int) -> float:
        return round(BOTTOM - n / top * (BOTTOM - TOP), 1)

    body = [
        f'<line class="axis" x1="{LEFT}" y1="{BOTTOM}" x2="{W - 16}" y2="{BOTTOM}" />',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{BOTTOM}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT}" y="{BOTTOM + 16}">24 h ago</text>',
        f'<text class="tick" x="{W - 16}" y="{BOTTOM + 16}" text-anchor="end">now</text>',
    ]
    desc = []
    for n, (env, series) in enumerate(sorted(per_env.items())):
        colour = COLOURS[n % len(COLOURS)]
        d = " ".join(f"{'M' if i == 0 else 'L'}{x(i)} {y(v)}" for i, v in enumerate(series))
        body.append(
            f'<path class="series" data-environment="{escape(env)}" d="{d}" fill="none" '
            f'stroke="{colour}" stroke-width="2" />'
            f'<text x="{LEFT + 8 + 120 * n}" y="{BOTTOM + 32}" fill="{colour}">'
            f"{escape(env)}: {sum(series)}</text>"
        )
        desc.append(f"{env}: {sum(series)} evaluations")
    return mark_safe(  # noqa: S308 - every value escaped
        f'<svg class="chart usage" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {W} {BOTTOM + 40}" width="100%" aria-labelledby="usage-title usage-desc">'
        '<title id="usage-title">Evaluations per hour over the last 24 hours</title>'
        f'<desc id="usage-desc">{escape("; ".join(desc))}.</desc>' + "".join(body) + "</svg>"
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
