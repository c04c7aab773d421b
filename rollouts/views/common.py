"""What the rollout pages share: the `rolloutChanged` event, the htmx target of a request,
and how a refused action answers (a toast for htmx, a message and a redirect otherwise).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from core.exceptions import ApplicationError
from core.http import toast
from rollouts.models import Rollout, RolloutEvent

Source = RolloutEvent.Source
CHANGED = "rolloutChanged"


def htmx_target(request: HttpRequest) -> str | None:
    htmx = getattr(request, "htmx", None)
    return htmx.target if htmx and not htmx.boosted else None


def zone_or_utc(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def refused(request: HttpRequest, exc: ApplicationError, redirect_to: str) -> HttpResponse:
    """A refused safety action: an error toast for htmx (the page refreshes), else a message."""
    if getattr(request, "htmx", None):
        response = HttpResponse(status=204)
        response["HX-Trigger"] = f'{{"{CHANGED}": null}}'
        return toast(response, exc.message, "error")
    messages.error(request, exc.message)
    return redirect(redirect_to)


def rollout_or_404(key: str) -> Rollout:
    rollout = Rollout.objects.filter(key=key).first()
    if rollout is None:
        raise Http404(f"No rollout with the key {key!r}.")
    return rollout
