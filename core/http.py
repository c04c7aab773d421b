"""Shared HTTP helpers: htmx-aware rendering, toasts and the API error shape."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.exceptions import ApplicationError, ConflictError
from core.parsers import too_large_message


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    partial: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render the whole page, or only `partial` for an htmx request that targets it."""
    htmx = getattr(request, "htmx", None)
    if partial and htmx and not htmx.boosted:
        return render(request, f"{template}#{partial}", context, status=status)
    return render(request, template, context, status=status)


def toast(response: HttpResponse, message: str, level: str = "success") -> HttpResponse:
    """Show a toast on htmx responses (the page listens for `toast` events)."""
    return trigger_client_event(response, "toast", {"message": message, "level": level})


def done(
    request: HttpRequest,
    *,
    message: str,
    redirect_to: str,
    events: list[str] | None = None,
    response: HttpResponse | None = None,
) -> HttpResponse:
    """Finish a successful mutation: htmx gets events + toast, plain POSTs a redirect."""
    if getattr(request, "htmx", None):
        resp = response or HttpResponse(status=204)
        payload: dict[str, Any] = {name: None for name in events or []}
        payload["toast"] = {"message": message, "level": "success"}
        resp["HX-Trigger"] = json.dumps(payload)
        return resp
    messages.success(request, message)
    return redirect(redirect_to)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """JSON errors with one stable shape: {"error": code, "message": text, "fields": {...}}."""
    if isinstance(exc, ConflictError):
        return Response(
            {"error": "conflict", "message": exc.message}, status=status.HTTP_409_CONFLICT
        )
    if isinstance(exc, DjangoValidationError):
        # A model's own validation (full_clean) caught what the serializer let through.
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        messages_ = exc.messages
        return Response(
            {
                "error": "invalid",
                "message": " ".join(messages_) or "The request has invalid fields.",
                **({"fields": fields} if fields else {}),
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, RequestDataTooBig):
        # Django's own limit on request bodies (DATA_UPLOAD_MAX_MEMORY_SIZE), met by DRF.
        return Response(
            {"error": "too_large", "message": too_large_message()},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"error": exc.code, "message": exc.message}
        if exc.field:
            body["fields"] = {exc.field: [exc.message]}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    code = getattr(exc, "default_code", "error")
    if isinstance(data, dict) and "detail" in data and len(data) == 1:
        response.data = {"error": code, "message": str(data["detail"])}
    else:
        response.data = {
            "error": code,
            "message": "The request has invalid fields; see `fields`.",
            "fields": data,
        }
    return response


class HtmxHttpRequest(HttpRequest):
    """django-htmx's documented request type: `request.htmx` is set by its middleware."""

    htmx: HtmxDetails


class AuthenticatedHttpRequest(HtmxHttpRequest):
    """A request that passed `login_required` (or a role check): `user` is a real User.

    Views behind a login type their request with this so services receive a `User`,
    not `User | AnonymousUser`.
    """

    user: User


class AuthenticatedApiRequest(Request):
    """A DRF request that passed authentication and the permission check (the API's default
    permission class requires a login): `user` is a real User."""

    user: User
