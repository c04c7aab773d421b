"""HTML pages of releases and rollouts: short views that parse, call a service or selector,
and render (htmx requests get only the partial they target)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from core.dashboard import render_sections
from core.exceptions import ApplicationError, ConflictError
from core.http import done, render_page, toast
from core.markdown import render_markdown
from core.roles import require
from flags.models import Segment
from rollouts import charts, scheduling, selectors, services
from rollouts.forms import (
    AlertSettingsForm,
    CalendarQuery,
    DecisionForm,
    PolicyForm,
    ReasonForm,
    ReleaseForm,
    RolloutCreateForm,
    WindowForm,
    add_service_error,
    apply_op,
    bind_rows,
    row_from_phase,
    rows_from_post,
    template_choices,
    validate_forms,
)
from rollouts.models import (
    Approval,
    ChecklistItem,
    FreezeWindow,
    Hold,
    Phase,
    Release,
    Rollout,
    RolloutEvent,
)
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
    # Inside a freeze window a person with the permission may tick "override" (with a reason).
    overridable: bool = False


def _advance_now(
    *,
    rollout: Rollout,
    actor: Any,
    reason: str,
    expected: int | None,
    override: bool = False,
    **_: Any,
) -> Any:
    return services.rollout_advance_now(
        rollout=rollout,
        actor=actor,
        source=Source.UI,
        reason=reason,
        expected_phase_index=expected,
        override_window=override,
    )


def _rollback(*, rollout: Rollout, actor: Any, reason: str, mode: str = "", **_: Any) -> Any:
    return services.rollout_rollback(
        rollout=rollout,
        actor=actor,
        source=Source.UI,
        reason=reason,
        mode=mode or Rollout.RollbackMode.RESTORE,
    )


ACTIONS: dict[str, ActionSpec] = {
    spec.key: spec
    for spec in (
        ActionSpec(
            "start",
            "Start",
            "▶",
            style="btn-primary",
            run=lambda *, rollout, actor, reason, expected, override=False, **_: (
                services.rollout_start(
                    rollout=rollout,
                    actor=actor,
                    source=Source.UI,
                    override_window=override,
                    reason=reason,
                )
            ),
            overridable=True,
        ),
        ActionSpec(
            "schedule",
            "Schedule",
            "◷",
            run=lambda *, rollout, actor, reason, expected, **_: services.rollout_schedule(
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
            overridable=True,
        ),
        ActionSpec(
            "pause",
            "Pause",
            "‖",
            confirm="Pause this rollout? Exposure stays as it is and the soak clock stops "
            "until someone resumes it.",
            run=lambda *, rollout, actor, reason, expected, **_: services.rollout_pause(
                rollout=rollout, actor=actor, source=Source.UI, reason=reason
            ),
        ),
        ActionSpec(
            "hold",
            "Hold",
            "⚑",
            confirm="Hold this rollout? Exposure stays as it is and the clock stops until the "
            "hold is cleared or someone resumes it.",
            reason="required",
            run=lambda *, rollout, actor, reason, expected, **_: services.rollout_hold(
                rollout=rollout, actor=actor, source=Source.UI, reason=reason
            ),
        ),
        ActionSpec(
            "resume",
            "Resume",
            "▶",
            style="btn-primary",
            run=lambda *, rollout, actor, reason, expected, **_: services.rollout_resume(
                rollout=rollout, actor=actor, source=Source.UI
            ),
        ),
        ActionSpec(
            "complete",
            "Complete",
            "✓",
            confirm="Complete this rollout now? The last phase's exposure applies at once.",
            run=lambda *, rollout, actor, reason, expected, override=False, **_: (
                services.rollout_complete(
                    rollout=rollout,
                    actor=actor,
                    source=Source.UI,
                    override_window=override,
                    reason=reason,
                )
            ),
            overridable=True,
        ),
        ActionSpec(
            "rollback",
            "Roll back",
            "↶",
            confirm="Roll back this rollout? The flag's rules from before the rollout return "
            "at once for everyone.",
            reason="optional",
            style="btn-danger",
            run=_rollback,
        ),
        ActionSpec(
            "cancel",
            "Cancel rollout",
            "✕",
            confirm="Cancel this rollout? Its plan stops; the flag keeps its current exposure "
            "(roll back to undo that).",
            reason="optional",
            run=lambda *, rollout, actor, reason, expected, **_: services.rollout_cancel(
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
    rows, page = selectors.rollout_list_page(filters=filters, page=request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "rows": rows,
        "page": page,
        "page_query": query.urlencode(),
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
        **_safety_context(request, detail, can_change=can_change),
    }


def _safety_context(
    request: HttpRequest, detail: selectors.RolloutDetail, *, can_change: bool
) -> dict[str, Any]:
    rollout = detail.rollout
    view = detail.safety
    assert view is not None
    user = request.user
    approval = view.approval
    can_decide = bool(
        approval is not None
        and approval.state == "pending"
        and user.has_perm(services.APPROVE_PERMISSION)
        and all(d.user_id != user.pk for d in approval.decisions.all())
        and (approval.requested_by_id != user.pk or approval.allow_self_approval)
    )
    gate = view.gate
    return {
        "safety": view,
        "can_change": can_change,
        "can_override": user.has_perm(services.OVERRIDE_PERMISSION),
        "can_decide": can_decide,
        "can_request_approval": bool(
            can_change
            and gate is not None
            and gate.rule is not None
            and gate.approval is None
            and rollout.state != Rollout.State.HELD
        ),
        "rollback_choice": rollout.strategy not in services.INSTANT_ROLLBACK
        and rollout.state != Rollout.State.COMPLETED,
        "receiver_yaml": services.receiver_config(
            rollout, base_url=request.build_absolute_uri("/"), show_secret=can_change
        ),
        "alert_form": AlertSettingsForm(
            initial={
                "alert_policy": rollout.alert_policy,
                "alert_matchers": rollout.alert_matchers,
                "alert_auto_resume": rollout.alert_auto_resume,
            }
        ),
        "upcoming_checklists": [
            (t.phase, view.checklists.get(t.phase.id, []))
            for t in detail.timeline
            if t.state == "upcoming" and view.checklists.get(t.phase.id)
        ],
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
    if target in ("rollout-header", "safety"):
        return render(request, f"rollouts/detail.html#{target}", context)
    context["extra_sections"] = render_sections("rollout_detail", request, rollout=detail.rollout)
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
    override = spec.overridable and request.POST.get("override") in ("1", "on", "true")
    mode = request.POST.get("mode", "")
    try:
        if spec.reason == "required" and not reason:
            raise ApplicationError(f"{spec.label}: say why (it is recorded).", field="reason")
        if override and not request.user.has_perm(services.OVERRIDE_PERMISSION):
            raise ApplicationError(
                "Overriding a freeze window needs the permission to override freezes.",
                code="forbidden",
            )
        spec.run(
            rollout=rollout,
            actor=request.user,
            reason=reason,
            expected=expected,
            override=override,
            mode=mode if mode in Rollout.RollbackMode.values else "",
        )
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
        "hold": "held",
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
        "pipeline": selectors.release_pipeline(row),
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


def approvals_panel(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    if not request.user.has_perm(services.APPROVE_PERMISSION):
        return None
    return "rollouts/_panel_approvals.html", {
        "approvals_waiting": selectors.approval_queue(user=request.user, limit=8)
    }


# ---------------------------------------------------------------------------------------------
# Rollout safety: holds, approvals, checklists, alert settings


def _refused(request: HttpRequest, exc: ApplicationError, redirect_to: str) -> HttpResponse:
    """A refused safety action: an error toast for htmx (the page refreshes), else a message."""
    if getattr(request, "htmx", None):
        response = HttpResponse(status=204)
        response["HX-Trigger"] = f'{{"{CHANGED}": null}}'
        return toast(response, exc.message, "error")
    messages.error(request, exc.message)
    return redirect(redirect_to)


def _rollout_or_404(key: str) -> Rollout:
    rollout = Rollout.objects.filter(key=key).first()
    if rollout is None:
        raise Http404(f"No rollout with the key {key!r}.")
    return rollout


@require("rollouts.change_rollout", "clear holds")
@require_POST
def hold_clear(request: HtmxHttpRequest, key: str, hold_id: int) -> HttpResponse:
    hold = Hold.objects.select_related("rollout").filter(pk=hold_id, rollout__key=key).first()
    if hold is None:
        raise Http404("No such hold.")
    url = reverse("rollouts:detail", kwargs={"key": key})
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        rollout = services.rollout_hold_clear(
            hold=hold, actor=request.user, source=Source.UI, reason=reason
        )
    except ApplicationError as exc:
        return _refused(request, exc, url)
    words = "Hold cleared."
    if rollout.state == Rollout.State.PAUSED:
        words += " It was the last one: resume the rollout when you are ready."
    return done(request, message=words, redirect_to=url, events=[CHANGED])


@require("rollouts.change_rollout", "request approvals")
@require_POST
def approval_request(request: HtmxHttpRequest, key: str) -> HttpResponse:
    rollout = _rollout_or_404(key)
    url = reverse("rollouts:detail", kwargs={"key": key})
    try:
        services.approval_request(rollout=rollout, actor=request.user, source=Source.UI)
    except ApplicationError as exc:
        return _refused(request, exc, url)
    return done(request, message="Approval requested.", redirect_to=url, events=[CHANGED])


@require("rollouts.approve_rollout", "approve rollouts")
@require_POST
def approval_decide(request: HtmxHttpRequest, approval_id: int, decision: str) -> HttpResponse:
    if decision not in ("approve", "decline"):
        raise Http404("Approve or decline.")
    approval = Approval.objects.select_related("rollout").filter(pk=approval_id).first()
    if approval is None:
        raise Http404("No such approval request.")
    back = request.POST.get("next", "")
    url = back if back.startswith("/rollouts/") else reverse("rollouts:approvals")
    form = DecisionForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    try:
        result = services.approval_decide(
            approval=approval,
            actor=request.user,
            decision=decision,
            comment=comment,
            source=Source.UI,
        )
    except ApplicationError as exc:
        return _refused(request, exc, url)
    key = approval.rollout.key
    if decision == "decline":
        words = f"Declined; rollout {key} is held with your reason."
    elif result.complete:
        words = f"Approved: rollout {key} may continue."
    else:
        words = f"Approval recorded; rollout {key} needs {result.approval.required} in all."
    return done(request, message=words, redirect_to=url, events=[CHANGED, "approvalsChanged"])


@require("rollouts.view_rollout")
def approvals(request: HtmxHttpRequest) -> HttpResponse:
    context = {
        "approvals": selectors.approval_queue(user=request.user),
        "can_approve": request.user.has_perm(services.APPROVE_PERMISSION),
    }
    partial = "approval-queue" if _target(request) == "approval-queue" else None
    return render_page(request, "rollouts/approvals.html", context, partial=partial)


@require("rollouts.change_rollout", "tick checklists")
@require_POST
def checklist_tick(request: HtmxHttpRequest, key: str, item_id: int) -> HttpResponse:
    item = (
        ChecklistItem.objects.select_related("phase__rollout")
        .filter(pk=item_id, phase__rollout__key=key)
        .first()
    )
    if item is None:
        raise Http404("No such checklist step.")
    url = reverse("rollouts:detail", kwargs={"key": key})
    ticked = request.POST.get("ticked", "1") in ("1", "on", "true")
    try:
        services.checklist_tick(
            item=item,
            actor=request.user,
            source=Source.UI,
            ticked=ticked,
            note=request.POST.get("note", "")[:500],
        )
    except ApplicationError as exc:
        return _refused(request, exc, url)
    words = f"“{item.label}” {'ticked' if ticked else 'unticked'}."
    return done(request, message=words, redirect_to=url, events=[CHANGED])


@require("rollouts.change_rollout", "change alert settings")
@require_POST
def alert_settings(request: HtmxHttpRequest, key: str) -> HttpResponse:
    rollout = _rollout_or_404(key)
    url = reverse("rollouts:detail", kwargs={"key": key}) + "#alerts-title"
    form = AlertSettingsForm(request.POST)
    if not form.is_valid():
        first = next(iter(form.errors.values()))[0]
        return _refused(request, ApplicationError(str(first)), url)
    d = form.cleaned_data
    try:
        services.rollout_alert_settings_update(
            rollout=rollout,
            actor=request.user,
            alert_policy=d["alert_policy"],
            alert_matchers=d["alert_matchers"],
            alert_auto_resume=d["alert_auto_resume"],
            rotate_secret=d["rotate_secret"],
        )
    except ApplicationError as exc:
        return _refused(request, exc, url)
    words = "Alert settings saved."
    if d["rotate_secret"]:
        words += " Paste the new receiver configuration into Alertmanager."
    return done(request, message=words, redirect_to=url, events=[CHANGED])


# ---------------------------------------------------------------------------------------------
# Calendar


@dataclass
class CalendarDay:
    date: Any
    entries: list[tuple[selectors.CalendarEntry, bool]]
    in_month: bool
    is_today: bool


def _calendar_range(query: CalendarQuery) -> tuple[Any, Any]:
    if query.view == "week":
        first = query.date - timedelta(days=query.date.weekday())
        return first, first + timedelta(days=7)
    month_start = query.date.replace(day=1)
    first = month_start - timedelta(days=month_start.weekday())
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    last = next_month + timedelta(days=(7 - next_month.weekday()) % 7)
    return first, last


@require("rollouts.view_rollout")
def calendar(request: HtmxHttpRequest) -> HttpResponse:
    query = CalendarQuery(request.GET)
    first, last = _calendar_range(query)
    tz = query.tz
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(last, datetime.min.time(), tzinfo=tz)
    entries = selectors.calendar_entries(start=start, end=end, environment=query.environment)
    # (entry, continued from an earlier day) per day; a window spanning days shows on each.
    by_day: dict[Any, list[tuple[selectors.CalendarEntry, bool]]] = {}
    for entry in entries:
        day = entry.start.astimezone(tz).date()
        by_day.setdefault(day, []).append((entry, False))
        if entry.end is not None:
            current = max(day + timedelta(days=1), first)
            end_day = (entry.end - timedelta(seconds=1)).astimezone(tz).date()
            while current <= end_day and current < last:
                by_day.setdefault(current, []).append((entry, True))
                current += timedelta(days=1)
    for day_entries in by_day.values():
        # Continuations first: they are what is going on when the day begins.
        day_entries.sort(key=lambda pair: (not pair[1], pair[0].start))
    days = []
    current = first
    while current < last:
        days.append(
            CalendarDay(
                date=current,
                entries=by_day.get(current, []),
                in_month=query.view == "week" or current.month == query.date.month,
                is_today=current == query.today,
            )
        )
        current += timedelta(days=1)
    weeks = [days[i : i + 7] for i in range(0, len(days), 7)]
    if query.view == "week":
        previous, following = query.date - timedelta(days=7), query.date + timedelta(days=7)
    else:
        previous = (query.date.replace(day=1) - timedelta(days=1)).replace(day=1)
        following = (query.date.replace(day=1) + timedelta(days=32)).replace(day=1)
    feed_url = _calendar_feed_url(request, query)
    context = {
        "query": query,
        "weeks": weeks,
        "days": days,
        "entries": entries,
        "upcoming": [e for e in entries if e.kind == "planned"],
        "previous": previous,
        "following": following,
        "environments": selectors.filter_choices()["environment"],
        "timezones": [("UTC", "UTC")] + [(z, z) for z in _COMMON_ZONES],
        "feed_url": feed_url,
        "title": (
            f"Week of {first:%b} {first.day}, {first.year}"
            if query.view == "week"
            else f"{query.date:%B %Y}"
        ),
    }
    partial = "calendar-body" if _target(request) == "calendar-body" else None
    return render_page(request, "rollouts/calendar.html", context, partial=partial)


_COMMON_ZONES = (
    "Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York", "America/Chicago",
    "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney",
)  # fmt: skip


def _feed_token_model() -> Any:
    """comms' FeedToken, looked up through the app registry: rollouts never imports comms."""
    from django.apps import apps

    try:
        return apps.get_model("comms", "FeedToken")
    except LookupError:
        return None


def _calendar_feed_url(request: HttpRequest, query: CalendarQuery) -> Any:
    """A callable: the template asks for the URL (and the token is made) only when shown."""

    def url() -> str:
        model = _feed_token_model()
        if model is None:
            return ""
        token, _ = model.objects.get_or_create(user=request.user)
        path = reverse("rollouts:calendar_feed", args=[token.token])
        if query.environment:
            path += f"?environment={query.environment}"
        return request.build_absolute_uri(path)

    return url


def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The calendar as iCalendar for subscriptions; the personal token is the only auth."""
    import icalendar

    model = _feed_token_model()
    feed = model.objects.select_related("user").filter(token=token).first() if model else None
    user = feed.user if feed else None
    if user is None or not user.is_active or not user.has_perm("rollouts.view_rollout"):
        raise Http404("No such calendar.")
    now = timezone.now()
    environment = str(request.GET.get("environment", ""))[:64]
    entries = selectors.calendar_entries(
        start=now - timedelta(days=30), end=now + timedelta(days=120), environment=environment,
        now=now,
    )  # fmt: skip
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Rollcall//rollout calendar//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "Rollcall rollouts" + (f" ({environment})" if environment else ""))
    for entry in entries:
        event = icalendar.Event()
        event.add("uid", entry.uid)
        event.add("dtstamp", now)
        event.add("dtstart", entry.start)
        event.add("dtend", entry.end or entry.start + timedelta(minutes=15))
        prefix = {"planned": "Planned", "freeze": "Freeze", "allow": "Allowed", "done": "Done"}
        event.add("summary", f"{prefix[entry.kind]}: {entry.title}")
        if entry.note:
            event.add("description", entry.note)
        if entry.rollout is not None:
            event.add(
                "url",
                request.build_absolute_uri(
                    reverse("rollouts:detail", kwargs={"key": entry.rollout.key})
                ),
            )
        if entry.kind == "freeze":
            event.add("transp", "OPAQUE")
        cal.add_component(event)
    response = HttpResponse(cal.to_ical(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="rollcall.ics"'
    return response


# ---------------------------------------------------------------------------------------------
# Windows and policies (admins)


@require("rollouts.view_freezewindow")
@require_http_methods(["GET", "POST"])
def windows(request: HtmxHttpRequest) -> HttpResponse:
    can_add = request.user.has_perm("rollouts.add_freezewindow")
    form = WindowForm(request.POST or None)
    if request.method == "POST":
        if not can_add:
            raise PermissionDenied(
                "Adding freeze windows needs the Admins role (settings, SDK keys, channels "
                "and users); ask an admin."
            )
        if form.is_valid():
            try:
                window = services.window_create(**form.service_kwargs(), actor=request.user)
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Window “{window.name}” saved.")
                return redirect("rollouts:windows")
    context = {
        "notes": selectors.window_list(),
        "form": form,
        "can_add": can_add,
        "can_delete": request.user.has_perm("rollouts.delete_freezewindow"),
        "can_hold": request.user.has_perm("rollouts.change_rollout"),
    }
    return render(request, "rollouts/windows.html", context)


@require("rollouts.delete_freezewindow", "delete freeze windows")
@require_POST
def window_delete(request: HtmxHttpRequest, window_id: int) -> HttpResponse:
    window = FreezeWindow.objects.filter(pk=window_id).first()
    if window is None:
        raise Http404("No such window.")
    services.window_delete(window=window, actor=request.user)
    return done(
        request,
        message=f"Window “{window.name}” deleted.",
        redirect_to=reverse("rollouts:windows"),
        events=[CHANGED],
    )


@require("rollouts.change_rollout", "hold rollouts")
@require_POST
def window_hold(request: HtmxHttpRequest, window_id: int) -> HttpResponse:
    window = FreezeWindow.objects.filter(pk=window_id).first()
    if window is None:
        raise Http404("No such window.")
    url = reverse("rollouts:windows")
    try:
        held = services.window_hold_rollouts(
            window=window,
            actor=request.user,
            source=Source.UI,
            reason=request.POST.get("reason", "")[:2000],
        )
    except ApplicationError as exc:
        return _refused(request, exc, url)
    return done(request, message=f"{held} rollout(s) held.", redirect_to=url, events=[CHANGED])


@require("rollouts.view_approvalpolicy")
@require_http_methods(["GET", "POST"])
def policies(request: HtmxHttpRequest) -> HttpResponse:
    can_change = request.user.has_perm("rollouts.change_approvalpolicy")
    rows = selectors.policy_rows()
    forms_ = {}
    for row in rows:
        p = row.policy
        initial = (
            {
                "min_percentage": p.min_percentage,
                "approvals_required": p.approvals_required,
                "allow_self_approval": p.allow_self_approval,
                "requires_completed_in": p.requires_completed_in_id,
            }
            if p
            else {"approvals_required": 1}
        )
        forms_[row.environment.id] = PolicyForm(initial=initial, prefix=f"env{row.environment.id}")
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied(
                "Changing approval policies needs the Admins role (settings, SDK keys, channels "
                "and users); ask an admin."
            )
        env_id = request.POST.get("environment", "")
        row = next((r for r in rows if str(r.environment.id) == env_id), None)
        if row is None:
            raise Http404("No such environment.")
        form = PolicyForm(request.POST, prefix=f"env{row.environment.id}")
        forms_[row.environment.id] = form
        if request.POST.get("op") == "delete":
            services.approval_policy_delete(environment=row.environment, actor=request.user)
            messages.success(request, f"Gates of {row.environment.name} removed.")
            return redirect("rollouts:policies")
        if form.is_valid():
            try:
                services.approval_policy_set(
                    environment=row.environment, actor=request.user, **form.cleaned_data
                )
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Gates of {row.environment.name} saved.")
                return redirect("rollouts:policies")
    context = {
        "rows": [(row, forms_[row.environment.id]) for row in rows],
        "can_change": can_change,
    }
    return render(request, "rollouts/policies.html", context)
