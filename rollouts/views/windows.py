"""Freeze and allowed-hours windows (admins): list and add, delete, and the emergency hold of
every live rollout a freeze applies to.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done
from core.roles import require
from rollouts import selectors, services
from rollouts.forms import WindowForm
from rollouts.models import FreezeWindow
from rollouts.views.common import CHANGED, Source, refused


@require("rollouts.view_freezewindow")
@require_http_methods(["GET", "POST"])
def windows(request: AuthenticatedHttpRequest) -> HttpResponse:
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
def window_delete(request: AuthenticatedHttpRequest, window_id: int) -> HttpResponse:
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
def window_hold(request: AuthenticatedHttpRequest, window_id: int) -> HttpResponse:
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
        return refused(request, exc, url)
    return done(request, message=f"{held} rollout(s) held.", redirect_to=url, events=[CHANGED])
