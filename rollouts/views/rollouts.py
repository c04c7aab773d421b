"""Rollout pages: the list, a new rollout, one rollout's page (progress, header and safety
regions for htmx) and the actions a person takes on it (start, pause, roll back, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.contrib import messages
from django.forms import ChoiceField
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from core.dashboard import render_sections, run_checks
from core.exceptions import ApplicationError, ConflictError
from core.http import AuthenticatedHttpRequest, done, render_page, toast
from core.roles import require
from rollouts import charts, selectors, services
from rollouts.forms import AlertSettingsForm, ReasonForm, RolloutCreateForm, template_choices
from rollouts.models import Rollout
from rollouts.strategies import STRATEGIES
from rollouts.views.common import CHANGED, Source, htmx_target

logger = logging.getLogger(__name__)


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
            run=lambda *, rollout, actor, reason, expected, start_at=None, **_: (
                services.rollout_schedule(
                    rollout=rollout, actor=actor, source=Source.UI, start_at=start_at
                )
            ),
        ),
        ActionSpec(
            "start_when_approved",
            "Start when approved",
            "◷",
            run=lambda *, rollout, actor, reason, expected, **_: (
                services.rollout_start_when_approved(rollout=rollout, actor=actor, source=Source.UI)
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


def visible_actions(
    rollout: Rollout, user: Any, gate: services.GateStatus | None = None
) -> list[ActionSpec]:
    """The action buttons this person sees: none without the change permission.

    `gate` is the next phase's gate: while it is not satisfied, Start and Advance now are not
    offered (they could only fail); a draft offers "Start when approved" instead.
    """
    if not user.has_perm("rollouts.change_rollout"):
        return []
    allowed = set(services.allowed_actions(rollout))
    if gate is not None and not gate.satisfied:
        allowed -= {"start", "advance_now"}
        if rollout.state == Rollout.State.DRAFT and not gate.promotion:
            allowed.add("start_when_approved")
    return [spec for key, spec in ACTIONS.items() if key in allowed]


@require("rollouts.view_rollout")
def rollout_list(request: AuthenticatedHttpRequest) -> HttpResponse:
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
    partial = "rollout-table" if htmx_target(request) == "rollout-table" else None
    return render_page(request, "rollouts/list.html", context, partial=partial)


@require("rollouts.add_rollout", "create rollouts")
@require_http_methods(["GET", "POST"])
def rollout_create(request: AuthenticatedHttpRequest) -> HttpResponse:
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
                    template=None if d.get("phases") else (d["template"] or None),
                    phases=d.get("phases"),
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
    # A first visit lists every strategy's templates (grouped): without JavaScript the list
    # cannot follow the strategy chosen; with htmx it narrows to the chosen strategy.
    chosen = form.is_bound or bool(request.GET.get("strategy"))
    cast(ChoiceField, form.fields["template"]).choices = template_choices(
        str(strategy) if chosen else None
    )
    context = {"form": form, "strategies": STRATEGIES, "strategy": STRATEGIES.get(str(strategy))}
    partial = "template-field" if htmx_target(request) == "template-field" else None
    return render_page(request, "rollouts/new.html", context, partial=partial)


def _aware(value: str) -> datetime | None:
    """An ISO date-time with its offset (as the page wrote it), or None."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _start_warnings(rollout: Rollout, now: datetime) -> dict[str, Any]:
    """Lead-time notices that starting a draft now would miss, and the start that meets them
    all (now + the largest shortfall, rounded up to a quarter hour)."""
    if rollout.state != Rollout.State.DRAFT:
        return {"start_warnings": []}
    warnings = run_checks("rollout_start", rollout=rollout, now=now)
    if not warnings:
        return {"start_warnings": []}
    short_by = max(w["short_by"] for w in warnings)
    later = now + short_by + timedelta(minutes=1)
    later += timedelta(minutes=(15 - later.minute % 15) % 15)
    later = later.replace(second=0, microsecond=0)
    words = " ".join(w["message"] for w in warnings)
    return {
        "start_warnings": warnings,
        "schedule_at": later,
        "start_confirm": f"Start now? {words} Schedule the start instead to brief them in time.",
    }


def _form_error(form: Any, exc: ApplicationError) -> None:
    field = exc.field if exc.field in form.fields else None
    if (exc.field or "").startswith("phases") and form.cleaned_data.get("phases"):
        field = "phases_text"
    if exc.field == "flag" and form.cleaned_data.get("flag_choice") == "new":
        field = "flag_key"
    form.add_error(field, exc.message)


def _detail(key: str, event_page: str | None = None) -> selectors.RolloutDetail:
    try:
        return selectors.rollout_detail(key=key, event_page=event_page)
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
        "actions": visible_actions(
            rollout, request.user, detail.safety.gate if detail.safety else None
        ),
        "can_edit_plan": can_change and "edit_plan" in allowed,
        "timeline_svg": charts.phase_timeline_svg(
            detail.timeline,
            now=detail.now,
            timezone_name=timezone.get_current_timezone_name(),  # the viewer's
            projected_end=detail.projected_end,
            final=rollout.is_final,
        ),
        "exposure_svg": charts.exposure_chart_svg(
            planned=steps.planned,
            actual=steps.actual,
            holds=steps.holds,
            now=detail.now,
            timezone_name=timezone.get_current_timezone_name(),  # the viewer's
            actual_until=final_at,
        ),
        "exposure_table": charts.exposure_table(
            planned=steps.planned,
            actual=steps.actual,
            holds=steps.holds,
            timezone_name=timezone.get_current_timezone_name(),  # the viewer's
        ),
        "ofrep_example": (
            spec.ofrep_example(rollout, request.build_absolute_uri("/")) if spec else ""
        ),
        "polling": not rollout.is_final,
        **(_start_warnings(rollout, detail.now) if can_change else {"start_warnings": []}),
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
def rollout_detail(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    detail = _detail(key, event_page=request.GET.get("events"))
    context = _detail_context(request, detail)
    target = htmx_target(request)
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
def rollout_action(request: AuthenticatedHttpRequest, key: str, action: str) -> HttpResponse:
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
    start_at = _aware(request.POST.get("start_at", "")) if action == "schedule" else None
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
            start_at=start_at,
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
        "start_when_approved": "scheduled: it starts as soon as phase 1 is approved",
        "advance_now": "advanced to its next phase",
        "pause": "paused",
        "hold": "held",
        "resume": "resumed",
        "complete": "completed",
        "rollback": "rolled back",
        "cancel": "cancelled",
    }[action]
    return done(request, message=f"Rollout {key} {past}.", redirect_to=detail_url, events=[CHANGED])
