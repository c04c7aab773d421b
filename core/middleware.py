from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect


class HtmxLoginRedirectMiddleware:
    """An htmx request whose session expired gets a full-page redirect to the login page,
    instead of the login form being swapped into a small region of the page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.login_url = resolve_url(settings.LOGIN_URL)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        location = response.get("Location", "") if response.status_code == 302 else ""
        if htmx and location.startswith(self.login_url):
            return HttpResponseClientRedirect(location)
        return response


class DataErrorMiddleware:
    """Input the database refuses (NUL characters, out-of-range numbers) is the sender's
    mistake: answer 400 with a message, never a 500. The transaction was rolled back."""

    MESSAGE = (
        "The request contains a value the database cannot store (for example a NUL character "
        "or a number out of range). Nothing was changed."
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.db import DataError
        from django.http import JsonResponse
        from django.shortcuts import render

        if not isinstance(exception, DataError):
            return None
        if request.path.startswith(("/api/", "/ofrep/", "/hooks/")):
            return JsonResponse({"error": "invalid", "message": self.MESSAGE}, status=400)
        return render(request, "400.html", {"message": self.MESSAGE}, status=400)
