"""Rollout safety actions from its page and the approval queue: clear a hold, request and
decide approvals, tick checklist steps, change alert settings.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done, render_page
from core.roles import require
from rollouts import selectors, services
from rollouts.forms import AlertSettingsForm, DecisionForm, ReasonForm
from rollouts.models import Approval, ChecklistItem, Hold, Rollout
from rollouts.views.common import CHANGED, Source, htmx_target, refused, rollout_or_404


@require("rollouts.change_rollout", "clear holds")
@require_POST
def hold_clear(request: AuthenticatedHttpRequest, key: str, hold_id: int) -> HttpResponse:
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
        return refused(request, exc, url)
    words = "Hold cleared."
    if rollout.state == Rollout.State.PAUSED:
        words += " It was the last one: resume the rollout when you are ready."
    return done(request, message=words, redirect_to=url, events=[CHANGED])


@require("rollouts.change_rollout", "request approvals")
@require_POST
def approval_request(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout = rollout_or_404(key)
    url = reverse("rollouts:detail", kwargs={"key": key})
    try:
        services.approval_request(rollout=rollout, actor=request.user, source=Source.UI)
    except ApplicationError as exc:
        return refused(request, exc, url)
    return done(request, message="Approval requested.", redirect_to=url, events=[CHANGED])


@require("rollouts.approve_rollout", "approve rollouts")
@require_POST
def approval_decide(
    request: AuthenticatedHttpRequest, approval_id: int, decision: str
) -> HttpResponse:
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
        return refused(request, exc, url)
    key = approval.rollout.key
    if decision == "decline":
        words = f"Declined; rollout {key} is held with your reason."
    elif result.complete:
        words = f"Approved: rollout {key} may continue."
    else:
        words = f"Approval recorded; rollout {key} needs {result.approval.required} in all."
    return done(request, message=words, redirect_to=url, events=[CHANGED, "approvalsChanged"])


@require("rollouts.view_rollout")
def approvals(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = {
        "approvals": selectors.approval_queue(user=request.user),
        "can_approve": request.user.has_perm(services.APPROVE_PERMISSION),
    }
    partial = "approval-queue" if htmx_target(request) == "approval-queue" else None
    return render_page(request, "rollouts/approvals.html", context, partial=partial)


@require("rollouts.change_rollout", "tick checklists")
@require_POST
def checklist_tick(request: AuthenticatedHttpRequest, key: str, item_id: int) -> HttpResponse:
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
        return refused(request, exc, url)
    words = f"“{item.label}” {'ticked' if ticked else 'unticked'}."
    return done(request, message=words, redirect_to=url, events=[CHANGED])


@require("rollouts.change_rollout", "change alert settings")
@require_POST
def alert_settings(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout = rollout_or_404(key)
    url = reverse("rollouts:detail", kwargs={"key": key}) + "#alerts-title"
    form = AlertSettingsForm(request.POST)
    if not form.is_valid():
        first = next(iter(form.errors.values()))[0]
        return refused(request, ApplicationError(str(first)), url)
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
        return refused(request, exc, url)
    words = "Alert settings saved."
    if d["rotate_secret"]:
        words += " Paste the new receiver configuration into Alertmanager."
    return done(request, message=words, redirect_to=url, events=[CHANGED])
