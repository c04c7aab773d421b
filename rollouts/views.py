"""HTML pages of releases and rollouts: short views that parse, call a service or selector,
and render (htmx requests get only the partial they target)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from core.exceptions import ApplicationError, ConflictError
from core.http import done, render_page, toast
from core.markdown import render_markdown
from core.roles import require
from flags.models import Segment
from rollouts import charts, scheduling, selectors, services
from rollouts.forms import (
    ReasonForm,
    ReleaseForm,
    RolloutCreateForm,
    add_service_error,
    apply_op,
    bind_rows,
    row_from_phase,
    rows_from_post,
    template_choices,
    validate_forms,
)
from rollouts.models import Phase, Release, Rollout, RolloutEvent
from rollouts.strategies import STRATEGIES, TEMPLATES, template_phases

logger = logging.getLogger(__name__)

Source = RolloutEvent.Source
CHANGED = "rolloutChanged"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _target(request: HttpRequest) -> str | None:
    htmx = getattr(request, "htmx", None)
    return htmx.target if htmx and not htmx.boosted else None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


# ---------------------------------------------------------------------------------------------
# Actions a person may take on a rollout


@dataclass(frozen=True)
class ActionSpec:
    key: str
    label: str
    icon: str
    confirm: str = ""
    reason: str = ""  # "" none, "optional", "required"
    style: str = ""
    run: Callable[..., Any] | None = None


def _advance_now(*, rollout: Rollout, actor: Any, reason: str, expected: int | None) -> Any:
    return services.rollout_advance_now(
        rollout=rollout,
        actor=actor,
        source=Source.UI,
        reason=reason,
        expected_phase_index=expected,
    )


ACTIONS: dict[str, ActionSpec] = {
    spec.key: spec
    for spec in (
        ActionSpec(
            "start",
            "Start",
            "▶",
            style="btn-primary",
            run=lambda *, rollout, actor, reason, expected: services.rollout_start(
                rollout=rollout, actor=actor, source=Source.UI
            ),
        ),
        ActionSpec(
            "schedule",
            "Schedule",
            "◷",
            run=lambda *, rollout, actor, reason, expected: services.rollout_schedule(
                rollout=rollout, actor=actor, source=Source.UI
            ),
        ),
        ActionSpec(
            "advance_now",
            "Advance now",
            "»",
            confirm="Start the next phase now? The rest of the soak (or the manual gate) is "
            "skipped and your reason is recorded.",
            reason="required",
            style="btn-primary",
            run=_advance_now,
        ),
        ActionSpec(
            "pause",
            "Pause",
            "‖",
            confirm="Pause this rollout? Exposure stays as it is and the soak clock stops "
            "until someone resumes it.",
            run=lambda *, rollout, actor, reason, expected: services.rollout_pause(
                rollout=rollout, actor=actor, source=Source.UI, reason=reason
            ),
        ),
        ActionSpec(
            "resume",
            "Resume",
            "▶",
            style="btn-primary",
            run=lambda *, rollout, actor, reason, expected: services.rollout_resume(
                rollout=rollout, actor=actor, source=Source.UI
            ),
        ),
        ActionSpec(
            "complete",
            "Complete",
            "✓",
            confirm="Complete this rollout now? The last phase's exposure applies at once.",
            run=lambda *, rollout, actor, reason, expected: services.rollout_complete(
                rollout=rollout, actor=actor, source=Source.UI
            ),
        ),
        ActionSpec(
            "rollback",
            "Roll back",
            "↶",
            confirm="Roll back this rollout? The flag's rules from before the rollout return "
            "at once for everyone.",
            reason="optional",
            style="btn-danger",
            run=lambda *, rollout, actor, reason, expected: services.rollout_rollback(
                rollout=rollout, actor=actor, source=Source.UI, reason=reason
            ),
        ),
        ActionSpec(
            "cancel",
            "Cancel rollout",
            "✕",
            confirm="Cancel this rollout? Its plan stops; the flag keeps its current exposure "
            "(roll back to undo that).",
            reason="optional",
            run=lambda *, rollout, actor, reason, expected: services.rollout_cancel(
                rollout=rollout, actor=actor, source=Source.UI, reason=reason
            ),
        ),
    )
}


def visible_actions(rollout: Rollout, user: Any) -> list[ActionSpec]:
    """The action buttons this person sees: none without the change permission."""
    if not user.has_perm("rollouts.change_rollout"):
        return []
    allowed = services.allowed_actions(rollout)
    return [spec for key, spec in ACTIONS.items() if key in allowed]


# ---------------------------------------------------------------------------------------------
# Rollouts list


@require("rollouts.view_rollout")
def rollout_list(request: HtmxHttpRequest) -> HttpResponse:
    filters = selectors.RolloutFilters.from_mapping(request.GET)
    context = {
        "rows": selectors.rollout_list(filters=filters),
        "filters": filters,
        "choices": selectors.filter_choices(),
        "can_add": request.user.has_perm("rollouts.add_rollout"),
    }
    # Only a request that targets the table gets the partial (a history restore gets the page).
    partial = "rollout-table" if _target(request) == "rollout-table" else None
    return render_page(request, "rollouts/list.html", context, partial=partial)


# ---------------------------------------------------------------------------------------------
# New rollout


@require("rollouts.add_rollout", "create rollouts")
@require_http_methods(["GET", "POST"])
def rollout_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = RolloutCreateForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                rollout = services.rollout_create(
                    release=d["release"],
                    environment=d["environment"],
                    strategy=d["strategy"],
                    actor=request.user,
                    source=Source.UI,
                    flag=d["flag"] if d["flag_choice"] == "existing" else None,
                    flag_key=(d["flag_key"] or None) if d["flag_choice"] == "new" else None,
                    key=d["key"] or None,
                    timezone=d["timezone"],
                    template=d["template"] or None,
                )
            except ApplicationError as exc:
                _form_error(form, exc)
            else:
                messages.success(
                    request,
                    f"Rollout {rollout.key} created as a draft. Review the plan, then "
                    "start or schedule it.",
                )
                return redirect("rollouts:detail", key=rollout.key)
    else:
        initial: dict[str, Any] = {}
        for name in ("release", "environment", "strategy"):
            if request.GET.get(name):
                initial[name] = request.GET[name]
        form = RolloutCreateForm(initial=initial)
    strategy = form["strategy"].value() or Rollout.Strategy.FEATURE_FLAG
    form.fields["template"].choices = template_choices(str(strategy))
    context = {"form": form, "strategies": STRATEGIES, "strategy": STRATEGIES.get(str(strategy))}
    partial = "template-field" if _target(request) == "template-field" else None
    return render_page(request, "rollouts/new.html", context, partial=partial)


def _form_error(form: Any, exc: ApplicationError) -> None:
    field = exc.field if exc.field in form.fields else None
    if exc.field == "flag" and form.cleaned_data.get("flag_choice") == "new":
        field = "flag_key"
    form.add_error(field, exc.message)


# ---------------------------------------------------------------------------------------------
# Rollout page


def _detail(key: str) -> selectors.RolloutDetail:
    try:
        return selectors.rollout_detail(key=key)
    except Rollout.DoesNotExist:
        raise Http404(f"No rollout with the key {key!r}.") from None


def _detail_context(request: HttpRequest, detail: selectors.RolloutDetail) -> dict[str, Any]:
    rollout = detail.rollout
    spec = STRATEGIES.get(rollout.strategy)
    can_change = request.user.has_perm("rollouts.change_rollout")
    allowed = services.allowed_actions(rollout)
    steps = detail.steps
    final_at = rollout.finished_at if rollout.is_final else None
    return {
        "detail": detail,
        "rollout": rollout,
        "row": detail.row,
        "spec": spec,
        "actions": visible_actions(rollout, request.user),
        "can_edit_plan": can_change and "edit_plan" in allowed,
        "timeline_svg": charts.phase_timeline_svg(
            detail.timeline,
            now=detail.now,
            timezone_name=rollout.timezone,
            projected_end=detail.projected_end,
            final=rollout.is_final,
        ),
        "exposure_svg": charts.exposure_chart_svg(
            planned=steps.planned,
            actual=steps.actual,
            holds=steps.holds,
            now=detail.now,
            timezone_name=rollout.timezone,
            actual_until=final_at,
        ),
        "ofrep_example": (
            spec.ofrep_example(rollout, request.build_absolute_uri("/")) if spec else ""
        ),
        "polling": not rollout.is_final,
    }


@require("rollouts.view_rollout")
def rollout_detail(request: HtmxHttpRequest, key: str) -> HttpResponse:
    detail = _detail(key)
    context = _detail_context(request, detail)
    target = _target(request)
    if target == "progress":
        html = render_to_string("rollouts/detail.html#progress", context, request=request)
        if detail.rollout.is_final:
            # A finished rollout never changes again: show its last state, stop the polling.
            return HttpResponseStopPolling(html)
        return HttpResponse(html)
    if target == "rollout-header":
        return render(request, f"rollouts/detail.html#{target}", context)
    return render(request, "rollouts/detail.html", context)


@require("rollouts.change_rollout", "change rollouts")
@require_POST
def rollout_action(request: HtmxHttpRequest, key: str, action: str) -> HttpResponse:
    spec = ACTIONS.get(action)
    if spec is None or spec.run is None:
        raise Http404(f"Unknown action {action!r}.")
    rollout = Rollout.objects.filter(key=key).first()
    if rollout is None:
        raise Http404(f"No rollout with the key {key!r}.")
    detail_url = reverse("rollouts:detail", kwargs={"key": key})
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    expected_raw = request.POST.get("expected_phase_index", "")
    expected = int(expected_raw) if expected_raw.lstrip("-").isdigit() else None
    try:
        if spec.reason == "required" and not reason:
            raise ApplicationError(f"{spec.label}: say why (it is recorded).", field="reason")
        spec.run(rollout=rollout, actor=request.user, reason=reason, expected=expected)
    except ApplicationError as exc:
        logger.info("rollout.action_refused key=%s action=%s reason=%s", key, action, exc.code)
        if getattr(request, "htmx", None):
            # No swap; the toast says why, and the page catches up if someone else moved it.
            response = HttpResponse(status=204)
            if isinstance(exc, ConflictError) or exc.code == "illegal_transition":
                response["HX-Trigger"] = f'{{"{CHANGED}": null}}'
            return toast(response, exc.message, "error")
        messages.error(request, exc.message)
        return redirect(detail_url)
    past = {
        "start": "started",
        "schedule": "scheduled",
        "advance_now": "advanced to its next phase",
        "pause": "paused",
        "resume": "resumed",
        "complete": "completed",
        "rollback": "rolled back",
        "cancel": "cancelled",
    }[action]
    return done(request, message=f"Rollout {key} {past}.", redirect_to=detail_url, events=[CHANGED])


# ---------------------------------------------------------------------------------------------
# Plan editor


@dataclass
class PlanEditor:
    rollout: Rollout
    applied: list[Phase]  # read-only: already applied
    forms: list[Any]
    segments: dict[int, Segment]
    errors: list[str]
    tz: ZoneInfo

    @property
    def offset(self) -> int:
        return len(self.applied)


def _plan_rollout(key: str) -> tuple[Rollout, list[Phase], dict[int, Segment]]:
    rollout = (
        Rollout.objects.select_related("release", "environment", "flag")
        .prefetch_related(selectors._phases_prefetch())
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
    tz = _zone(rollout.timezone)
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
            timezone_name=editor.rollout.timezone,
            projected_end=end,
            chart_id="preview",
            width=520,
            label_width=150,
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
def rollout_plan(request: HtmxHttpRequest, key: str) -> HttpResponse:
    rollout, phases, segments = _plan_rollout(key)
    if rollout.is_final:
        messages.error(request, f"Rollout {key} has finished; its plan cannot change.")
        return redirect("rollouts:detail", key=key)
    if request.method == "GET":
        editor = _editor(rollout, phases, segments, None)
        return render_page(request, "rollouts/plan.html", _plan_context(request, editor))
    op = request.POST.get("op", "save")
    rows = rows_from_post(request.POST)
    tz = _zone(rollout.timezone)
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
        else:
            editor.errors.append("Some phases need attention: see the messages on the fields.")
    return render_page(
        request, "rollouts/plan.html", _plan_context(request, editor), partial="plan-editor"
    )


@require("rollouts.change_rollout", "change rollout plans")
@require_POST
def rollout_plan_preview(request: HtmxHttpRequest, key: str) -> HttpResponse:
    rollout, phases, segments = _plan_rollout(key)
    editor = _editor(rollout, phases, segments, rows_from_post(request.POST))
    context = {"rollout": rollout, "now": timezone.now()}
    context.update(_preview(editor, context["now"]))
    return render(request, "rollouts/plan.html#plan-preview", context)


# ---------------------------------------------------------------------------------------------
# Releases


@require("rollouts.view_release")
def release_list(request: HtmxHttpRequest) -> HttpResponse:
    context = {
        "releases": selectors.release_list(),
        "can_add": request.user.has_perm("rollouts.add_release"),
    }
    return render(request, "rollouts/releases.html", context)


@require("rollouts.view_release")
def release_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    try:
        row = selectors.release_detail(pk=pk)
    except Release.DoesNotExist:
        raise Http404("No such release.") from None
    context = {
        "row": row,
        "release": row.release,
        "changelog_html": render_markdown(row.release.changelog),
        "known_issues_html": render_markdown(row.release.known_issues),
        "can_change": request.user.has_perm("rollouts.change_release"),
        "can_add_rollout": request.user.has_perm("rollouts.add_rollout"),
    }
    return render(request, "rollouts/release_detail.html", context)


@require("rollouts.add_release", "create releases")
@require_http_methods(["GET", "POST"])
def release_create(request: HtmxHttpRequest) -> HttpResponse:
    form = ReleaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            release = services.release_create(**form.cleaned_data, actor=request.user)
        except ApplicationError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Release {release} created.")
            return redirect("rollouts:release_detail", pk=release.pk)
    return render(request, "rollouts/release_form.html", {"form": form, "release": None})


@require("rollouts.change_release", "edit releases")
@require_http_methods(["GET", "POST"])
def release_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    release = Release.objects.prefetch_related("flags").filter(pk=pk).first()
    if release is None:
        raise Http404("No such release.")
    if request.method == "POST":
        form = ReleaseForm(request.POST)
        if form.is_valid():
            try:
                release = services.release_update(
                    release=release, actor=request.user, **form.cleaned_data
                )
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Release {release} saved.")
                return redirect("rollouts:release_detail", pk=release.pk)
    else:
        form = ReleaseForm(initial=ReleaseForm.initial_for(release))
    return render(request, "rollouts/release_form.html", {"form": form, "release": release})


# ---------------------------------------------------------------------------------------------
# Dashboard panels (registered in RolloutsConfig.ready)


def active_rollouts_panel(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    if not request.user.has_perm("rollouts.view_rollout"):
        return None
    rows, total = selectors.active_rollouts()
    return "rollouts/_panel_active.html", {"rollouts_active": rows, "rollouts_active_total": total}


def upcoming_changes_panel(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    if not request.user.has_perm("rollouts.view_rollout"):
        return None
    return "rollouts/_panel_upcoming.html", {"rollouts_upcoming": selectors.upcoming_changes()}
