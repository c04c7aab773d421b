"""The plan editor of a rollout: rows of phases edited in a form (add, move, remove, fill from
a template), a live preview of the projected timeline, and saving through the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done, render_page, toast
from core.roles import require
from flags.models import Segment
from rollouts import charts, scheduling, selectors, services
from rollouts.forms import (
    add_service_error,
    apply_op,
    bind_rows,
    row_from_phase,
    rows_from_post,
    validate_forms,
)
from rollouts.models import Phase, Rollout
from rollouts.strategies import STRATEGIES, TEMPLATES, template_phases
from rollouts.views.common import CHANGED, Source, zone_or_utc


@dataclass
class PlanEditor:
    rollout: Rollout
    applied: list[Phase]  # read-only: already applied
    forms: list[Any]
    segments: dict[int, Segment]
    errors: list[str]
    tz: ZoneInfo
    failed_save: bool = False

    @property
    def summary(self) -> list[dict[str, str]]:
        """Every problem of a failed save, each linking to its field (the error summary)."""
        if not self.failed_save:
            return []
        items = [{"text": e, "href": ""} for e in self.errors]
        for form in self.forms:
            number = form.phase_index + 1
            for e in form.non_field_errors():
                items.append({"text": f"Phase {number}: {e}", "href": f"#phase-{form.phase_index}"})
            for name, errors in form.errors.items():
                if name == "__all__":
                    continue
                label = form.fields[name].label or name
                for e in errors:
                    items.append(
                        {"text": f"Phase {number}, {label}: {e}", "href": f"#{form[name].auto_id}"}
                    )
        return items

    @property
    def offset(self) -> int:
        return len(self.applied)


def _plan_rollout(key: str) -> tuple[Rollout, list[Phase], dict[int, Segment]]:
    rollout = (
        Rollout.objects.select_related("release", "environment", "flag")
        .prefetch_related(selectors.phases_prefetch(), "phases__checklist")
        .filter(key=key)
        .first()
    )
    if rollout is None:
        raise Http404(f"No rollout with the key {key!r}.")
    segments = {s.id: s for s in Segment.objects.order_by("name")}
    return rollout, list(rollout.phases.all()), segments


def _editor(
    rollout: Rollout,
    phases: list[Phase],
    segments: dict[int, Segment],
    rows: list[dict[str, str]] | None,
) -> PlanEditor:
    tz = zone_or_utc(rollout.timezone)
    applied = phases[: rollout.current_phase_index + 1]
    if rows is None:
        rows = [row_from_phase(p, tz) for p in phases[len(applied) :]]
    choices = [(s.id, s.name) for s in segments.values()]
    forms_ = bind_rows(rows, offset=len(applied), segment_choices=choices)
    return PlanEditor(rollout, applied, forms_, segments, [], tz)


def _applied_dict(phase: Phase) -> dict[str, Any]:
    return {
        "name": phase.name,
        "percentage": phase.percentage,
        "segment": phase.segment_id,
        "start_rule": phase.start_rule,
        "start_at": phase.start_at,
        "soak": phase.soak,
        "gate": phase.gate,
        "notes": phase.notes,
        "requires_approval": phase.requires_approval,
        "checklist": [item.label for item in phase.checklist.all()],
    }


def _preview(editor: PlanEditor, now: datetime) -> dict[str, Any]:
    """Projected timeline of the plan as typed (valid rows only), without saving."""
    validate_forms(editor.forms, editor.tz)
    phases: list[Phase] = list(editor.applied)
    skipped = []
    for form in editor.forms:
        if not form.is_valid():
            skipped.append(form.phase_index + 1)
            continue
        d = form.to_phase()
        phase = Phase(
            rollout=editor.rollout,
            order=len(phases),
            name=d["name"],
            percentage=d["percentage"],
            segment_id=d["segment"],
            start_rule=d["start_rule"],
            start_at=d["start_at"],
            soak=d["soak"],
            gate=d["gate"],
            notes=d["notes"],
        )
        if d["segment"] is not None:
            phase.segment = editor.segments.get(d["segment"])
        phases.append(phase)
    timeline = scheduling.projected_timeline(editor.rollout, phases, now)
    end = scheduling.projected_end(editor.rollout, phases, now)
    return {
        "preview_timeline": timeline,
        "preview_end": end,
        "preview_skipped": skipped,
        "preview_svg": charts.phase_timeline_svg(
            timeline,
            now=now,
            timezone_name=timezone.get_current_timezone_name(),  # the viewer's
            projected_end=end,
            chart_id="preview",
            width=charts.COMPACT,
            label_width=150,
        ),
        "preview_table": charts.timeline_table(
            timeline, timezone_name=timezone.get_current_timezone_name(), final=False
        ),
    }


def _plan_context(request: HttpRequest, editor: PlanEditor) -> dict[str, Any]:
    rollout = editor.rollout
    spec = STRATEGIES.get(rollout.strategy)
    now = timezone.now()
    return {
        "rollout": rollout,
        "editor": editor,
        "spec": spec,
        "templates": spec.templates if spec else [],
        "can_use_template": not editor.applied,
        "now": now,
        **_preview(editor, now),
    }


@require("rollouts.change_rollout", "change rollout plans")
@require_http_methods(["GET", "POST"])
def rollout_plan(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout, phases, segments = _plan_rollout(key)
    if rollout.is_final:
        messages.error(request, f"Rollout {key} has finished; its plan cannot change.")
        return redirect("rollouts:detail", key=key)
    if request.method == "GET":
        editor = _editor(rollout, phases, segments, None)
        return render_page(request, "rollouts/plan.html", _plan_context(request, editor))
    op = request.POST.get("op", "save")
    rows = rows_from_post(request.POST)
    tz = zone_or_utc(rollout.timezone)
    errors: list[str] = []
    if op == "template":
        template_key = request.POST.get("template", "")
        if phases[: rollout.current_phase_index + 1]:
            errors.append("A template can only fill a plan before its first phase applied.")
        elif template_key not in TEMPLATES or template_key not in {
            t.key for t in STRATEGIES[rollout.strategy].templates
        }:
            errors.append("Pick one of this strategy's templates.")
        else:
            try:
                rows = [row_from_phase(p, tz) for p in template_phases(template_key)]
            except ApplicationError as exc:
                errors.append(exc.message)
    elif op != "save":
        rows = apply_op(rows, op)
    editor = _editor(rollout, phases, segments, rows)
    editor.errors = errors
    if op == "save":
        if validate_forms(editor.forms, tz):
            plan = [_applied_dict(p) for p in editor.applied]
            plan += [f.to_phase() for f in editor.forms]
            expected = request.POST.get("version", "")
            try:
                services.rollout_plan_update(
                    rollout=rollout,
                    phases=plan,
                    actor=request.user,
                    source=Source.UI,
                    expected_version=int(expected) if expected.isdigit() else None,
                )
            except ApplicationError as exc:
                if not add_service_error(editor.forms, field=exc.field, message=exc.message):
                    editor.errors.append(exc.message)
            else:
                url = reverse("rollouts:detail", kwargs={"key": key})
                if getattr(request, "htmx", None):
                    rollout, phases, segments = _plan_rollout(key)
                    editor = _editor(rollout, phases, segments, None)
                    response = render(
                        request, "rollouts/plan.html#plan-editor", _plan_context(request, editor)
                    )
                    return done(
                        request,
                        message="Plan saved.",
                        redirect_to=url,
                        events=[CHANGED],
                        response=response,
                    )
                return done(request, message="Plan saved.", redirect_to=url)
        editor.failed_save = True
        problem = "The plan was not saved: see the problems listed at the top of the form."
        if getattr(request, "htmx", None):
            response = render_page(
                request, "rollouts/plan.html", _plan_context(request, editor), partial="plan-editor"
            )
            return toast(response, problem, "error")
        messages.error(request, problem)
    return render_page(
        request, "rollouts/plan.html", _plan_context(request, editor), partial="plan-editor"
    )


@require("rollouts.change_rollout", "change rollout plans")
@require_POST
def rollout_plan_preview(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout, phases, segments = _plan_rollout(key)
    editor = _editor(rollout, phases, segments, rows_from_post(request.POST))
    now = timezone.now()
    context: dict[str, Any] = {"rollout": rollout, "now": now}
    context.update(_preview(editor, now))
    return render(request, "rollouts/plan.html#plan-preview", context)
