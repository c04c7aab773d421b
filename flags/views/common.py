"""Helpers every flags page shares: form status codes and errors, redirects after a create,
safe `next` URLs, and how a constraint reads in a sentence."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from core.exceptions import ApplicationError
from core.http import HtmxHttpRequest
from flags.forms import OPERATOR_LABELS

FLAG_CHANGED = "flagChanged"


def form_status(request: HtmxHttpRequest, *, failed: bool) -> int:
    """htmx only swaps 2xx answers; a plain form that failed answers 400."""
    return 400 if failed and not request.htmx else 200


def form_error(form: Any, exc: ApplicationError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def created_redirect(request: HtmxHttpRequest, url: str, message: str) -> HttpResponse:
    """After a create: go to the new object's page (htmx follows with a client redirect)."""
    messages.success(request, message)
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def next_url(request: HtmxHttpRequest, default: str) -> str:
    url = request.POST.get("next") or ""
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}):
        return url
    return default


def constraint_text(constraint: dict[str, Any]) -> str:
    values = constraint.get("values")
    shown = ", ".join(values) if values is not None else str(constraint.get("value", ""))
    words = [
        constraint.get("contextName", "?"),
        ("not " if constraint.get("inverted") else "")
        + OPERATOR_LABELS.get(constraint.get("operator", ""), constraint.get("operator", "?")),
        f"[{shown}]" if values is not None else shown,
    ]
    if constraint.get("caseInsensitive"):
        words.append("(ignoring case)")
    return " ".join(words)
