"""Guarded phases in the UI: the checks page of a rollout (add, remove, "test this query now",
the environment's Prometheus) and the checks section with its charts on the rollout page.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done
from core.roles import require
from rollouts.check_charts import Point, check_chart_svg, check_table
from rollouts.models import CheckResult, PhaseCheck, PrometheusSource, Rollout
from rollouts.services import checks as check_services
from rollouts.views.common import CHANGED, refused, rollout_or_404

MAX_POINTS = 240  # per check on the chart: the latest evaluations


def _checks_url(key: str) -> str:
    return reverse("rollouts:checks", kwargs={"key": key})


def _rows(rollout: Rollout) -> list[dict[str, Any]]:
    """Each phase with its checks and each check's latest results (for status and chart)."""
    phases = list(rollout.phases.order_by("order").prefetch_related("checks"))
    check_ids = [c.id for p in phases for c in p.checks.all()]
    results: dict[int, list[CheckResult]] = {i: [] for i in check_ids}
    if check_ids:
        recent = CheckResult.objects.filter(check_ref_id__in=check_ids).order_by("-at", "-id")
        for r in recent[: MAX_POINTS * len(check_ids)]:
            results[r.check_ref_id].append(r)
    now = timezone.now()
    rows = []
    for p in phases:
        checks = []
        for c in p.checks.all():
            points = [Point(r.at, r.status, r.value) for r in reversed(results[c.id])]
            checks.append(
                {
                    "check": c,
                    "points": points,
                    "chart": check_chart_svg(
                        name=c.name,
                        comparison=c.comparison,
                        threshold=c.threshold,
                        points=points,
                        now=now,
                        timezone_name=timezone.get_current_timezone_name(),  # the viewer's
                        chart_id=f"check-{c.id}",
                    ),
                    "table": check_table(
                        name=c.name,
                        comparison=c.comparison,
                        threshold=c.threshold,
                        points=points,
                        timezone_name=timezone.get_current_timezone_name(),  # the viewer's
                    ),
                }
            )
        rows.append(
            {"phase": p, "checks": checks, "current": p.order == rollout.current_phase_index}
        )
    return rows


def rollout_checks_section(
    request: HttpRequest, *, rollout: Rollout
) -> tuple[str, dict[str, Any]] | None:
    """The rollout page's "Guarded phases" section (registered in RolloutsConfig.ready)."""
    if not request.user.has_perm("rollouts.view_phasecheck"):
        return None
    rows = [r for r in _rows(rollout) if r["checks"]]
    can_change = request.user.has_perm("rollouts.add_phasecheck")
    return "rollouts/_checks_section.html", {
        "rollout": rollout,
        "rows": rows,
        "can_change": can_change,
    }


@require("rollouts.view_phasecheck")
def rollout_checks(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout = rollout_or_404(key)
    source = PrometheusSource.objects.filter(environment=rollout.environment).first()
    return render(
        request,
        "rollouts/checks.html",
        {
            "rollout": rollout,
            "rows": _rows(rollout),
            "source": source,
            "prometheus_url": check_services.prometheus_url(rollout.environment),
            "comparisons": PhaseCheck.Comparison.choices,
            "can_change": request.user.has_perm("rollouts.add_phasecheck"),
            "can_set_source": request.user.has_perm("rollouts.change_prometheussource"),
        },
    )


@require("rollouts.add_phasecheck", "add checks")
@require_POST
def check_add(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout = rollout_or_404(key)
    url = _checks_url(key)
    phase_id = _int(request.POST.get("phase"))
    phase = rollout.phases.filter(pk=phase_id).first() if phase_id is not None else None
    if phase is None:
        return refused(request, ApplicationError("Choose a phase of this rollout."), url)
    try:
        check = check_services.check_create(
            phase=phase,
            actor=request.user,
            name=request.POST.get("name", ""),
            query=request.POST.get("query", ""),
            comparison=request.POST.get("comparison", "<"),
            threshold=request.POST.get("threshold", ""),
            failures_to_trip=request.POST.get("failures_to_trip", "1"),
        )
    except ApplicationError as exc:
        return refused(request, exc, url)
    return done(
        request, message=f"Check {check.name} added to {phase.name}.", redirect_to=url,
        events=[CHANGED],
    )  # fmt: skip


@require("rollouts.delete_phasecheck", "remove checks")
@require_POST
def check_delete(request: AuthenticatedHttpRequest, key: str, check_id: int) -> HttpResponse:
    check = get_object_or_404(
        PhaseCheck.objects.select_related("phase__rollout"), pk=check_id, phase__rollout__key=key
    )
    url = _checks_url(key)
    try:
        check_services.check_delete(check=check, actor=request.user)
    except ApplicationError as exc:
        return refused(request, exc, url)
    return done(request, message=f"Check {check.name} removed.", redirect_to=url, events=[CHANGED])


@require("rollouts.add_phasecheck", "test check queries")
@require_POST
def check_test(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    """ "Test this query now": the value Prometheus gives right now, nothing stored."""
    rollout = rollout_or_404(key)
    phase_number = _int(request.POST.get("phase_number")) or max(rollout.current_phase_index, 0) + 1
    context: dict[str, Any] = {"rollout": rollout}
    try:
        threshold = float(request.POST.get("threshold", ""))
    except ValueError:
        threshold = float("nan")
    try:
        if threshold != threshold:  # NaN: no usable threshold
            raise ApplicationError("The threshold must be a number.", field="threshold")
        context["measurement"] = check_services.check_query_test(
            environment=rollout.environment,
            query=request.POST.get("query", ""),
            comparison=request.POST.get("comparison", "<"),
            threshold=threshold,
            flag=rollout.flag.key,
            phase=phase_number,
        )
    except ApplicationError as exc:
        context["error"] = exc.message
    # htmx swaps only 2xx answers: it gets the error as content; a plain POST gets a 400.
    status = 400 if "error" in context and not getattr(request, "htmx", None) else 200
    return render(request, "rollouts/_check_test_result.html", context, status=status)


@require("rollouts.change_prometheussource", "set the environment's Prometheus")
@require_POST
def prometheus_source_set(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout = rollout_or_404(key)
    url = _checks_url(key)
    try:
        check_services.prometheus_source_set(
            environment=rollout.environment,
            actor=request.user,
            url=request.POST.get("url", ""),
            bearer_token=request.POST.get("bearer_token"),
        )
    except ApplicationError as exc:
        return refused(request, exc, url)
    return done(
        request, message=f"Prometheus of {rollout.environment.name} saved.", redirect_to=url,
        events=[CHANGED],
    )  # fmt: skip


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def rollout_observed_section(
    request: HttpRequest, *, rollout: Rollout
) -> tuple[str, dict[str, Any]] | None:
    """The rollout page's "Observed exposure": per applied phase, the share of SDK answers
    that were "on" (yes / (yes + no)) while it was applied, next to its planned percentage."""
    if not request.user.has_perm("flags.view_flag"):
        return None
    from flags.usage import observed_exposure

    phases = [p for p in rollout.phases.order_by("order") if p.applied_at is not None]
    end_of_rollout = rollout.finished_at if rollout.is_final else None
    rows = []
    for i, p in enumerate(phases):
        end = phases[i + 1].applied_at if i + 1 < len(phases) else end_of_rollout
        assert p.applied_at is not None
        share, answers = observed_exposure(
            environment_id=rollout.environment_id,
            flag_key=rollout.flag.key,
            start=p.applied_at,
            end=end,
        )
        rows.append(
            {
                "phase": p,
                "planned": p.percentage,
                "observed": None if share is None else round(share * 100, 1),
                "answers": answers,
            }
        )
    return "rollouts/_observed_section.html", {
        "rollout": rollout,
        "rows": rows,
        # Without any SDK report there is nothing to draw: the table says "no data".
        "chart": _observed_svg(rows) if any(r["observed"] is not None for r in rows) else "",
    }


def _observed_svg(rows: list[dict[str, Any]]) -> str:
    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    if not rows:
        return ""
    width, row_h, left = 760, 28, 190
    scale = (width - left - 60) / 100
    body = []
    for i, r in enumerate(rows):
        y = 8 + i * row_h
        planned = r["planned"] if r["planned"] is not None else 0
        body.append(
            f'<text x="4" y="{y + 14}">{escape(r["phase"].name[:28])}</text>'
            f'<rect class="bar-planned" x="{left}" y="{y}" width="{round(planned * scale, 1)}" '
            f'height="9" data-planned="{planned}" fill="#cbd5e1" />'
        )
        if r["observed"] is not None:
            body.append(
                f'<rect class="bar-observed" x="{left}" y="{y + 10}" '
                f'width="{round(r["observed"] * scale, 1)}" height="9" '
                f'data-observed="{r["observed"]:g}" fill="#2248b8" />'
                f'<text x="{left + round(r["observed"] * scale, 1) + 4}" y="{y + 19}">'
                f"{r['observed']:g}%</text>"
            )
    height = 8 + len(rows) * row_h + 22
    legend_y = height - 6
    body.append(
        f'<rect x="{left}" y="{legend_y - 9}" width="14" height="9" fill="#cbd5e1" />'
        f'<text x="{left + 18}" y="{legend_y}">planned</text>'
        f'<rect x="{left + 90}" y="{legend_y - 9}" width="14" height="9" fill="#2248b8" />'
        f'<text x="{left + 108}" y="{legend_y}">observed (yes / (yes + no))</text>'
    )
    desc = "; ".join(
        f"{r['phase'].name}: planned {r['planned']}%, observed "
        + (f"{r['observed']:g}%" if r["observed"] is not None else "no data")
        for r in rows
    )
    return mark_safe(  # noqa: S308 - every value escaped
        f'<svg class="chart observed" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-labelledby="observed-t observed-d">'
        '<title id="observed-t">Planned and observed exposure per phase</title>'
        f'<desc id="observed-d">{escape(desc)}.</desc>' + "".join(body) + "</svg>"
    )
