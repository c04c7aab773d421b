"""Approval policies per environment (admins): approvals required, self-approval and the
environment a release must complete in first.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest
from core.roles import require
from rollouts import selectors, services
from rollouts.forms import PolicyForm


@require("rollouts.view_approvalpolicy")
@require_http_methods(["GET", "POST"])
def policies(request: AuthenticatedHttpRequest) -> HttpResponse:
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
        chosen = next((r for r in rows if str(r.environment.id) == env_id), None)
        if chosen is None:
            raise Http404("No such environment.")
        form = PolicyForm(request.POST, prefix=f"env{chosen.environment.id}")
        forms_[chosen.environment.id] = form
        if request.POST.get("op") == "delete":
            services.approval_policy_delete(environment=chosen.environment, actor=request.user)
            messages.success(request, f"Gates of {chosen.environment.name} removed.")
            return redirect("rollouts:policies")
        if form.is_valid():
            try:
                services.approval_policy_set(
                    environment=chosen.environment, actor=request.user, **form.cleaned_data
                )
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Gates of {chosen.environment.name} saved.")
                return redirect("rollouts:policies")
    context = {
        "rows": [(row, forms_[row.environment.id]) for row in rows],
        "can_change": can_change,
    }
    return render(request, "rollouts/policies.html", context)
