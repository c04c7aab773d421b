from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils import timezone
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


CONFIRM_FIELD = "_confirm"
CONFIRMED_FIELD = "_confirmed"


class ConfirmMiddleware:
    """A destructive form carries its question in a hidden `_confirm` field (the
    `_partials/confirm_field.html` include). With JavaScript the browser asks it
    (`data-confirm` / `hx-confirm`) and sends `_confirmed=1`; without JavaScript this
    answers the POST with an "Are you sure?" page whose second submit sends the same fields
    with `_confirmed=1`. Nothing happens on the first click either way.

    It runs after the CSRF and login checks, so a refused request is refused as before.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., HttpResponse], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if request.method != "POST" or getattr(request, "htmx", None):
            return None  # htmx asked with hx-confirm before sending
        if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return None  # machines (the API, hooks) never get a confirmation page
        question = request.POST.get(CONFIRM_FIELD, "").strip()
        if not question or request.POST.get(CONFIRMED_FIELD) == "1":
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None  # the view sends the person to log in
        from django.shortcuts import render
        from django.utils.http import url_has_allowed_host_and_scheme

        back = request.headers.get("Referer", "")
        if not url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            back = "/"
        fields = [
            (name, value)
            for name, values in request.POST.lists()
            for value in values
            if name not in ("csrfmiddlewaretoken", CONFIRMED_FIELD)
        ]
        return render(
            request,
            "core/confirm.html",
            {
                "question": question,
                "label": request.POST.get("_confirm_label", "").strip() or "Yes, go ahead",
                "action": request.get_full_path(),
                "fields": fields,
                "back": back,
            },
        )


class FriendlyNotFoundMiddleware:
    """With DEBUG on, Django answers an unknown address with its technical "Page not found"
    page (the URL patterns, the settings hint). People see Rollcall's own 404 page instead;
    the API keeps its JSON."""

    MARK = b"<title>Page not found at "

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and settings.DEBUG
            and not getattr(response, "streaming", False)
            and self.MARK in response.content[:2000]
        ):
            from core.views import page_not_found

            return page_not_found(request)
        return response


TIME_ZONE_SESSION_KEY = "rollcall_time_zone"


def remember_time_zone(request: HttpRequest, name: str) -> None:
    """Keep the person's zone in their session: pages then need no query to find it."""
    request.session[TIME_ZONE_SESSION_KEY] = name


def remember_time_zone_at_login(
    sender: Any, request: HttpRequest | None, user: Any, **_: Any
) -> None:
    """`user_logged_in` receiver: one query at login instead of one on every page."""
    if request is None or not hasattr(request, "session"):
        return
    from core.selectors import user_time_zone

    remember_time_zone(request, user_time_zone(user=user))


class ViewerTimeZoneMiddleware:
    """Every time on a page is shown in the viewer's zone: activate it for the request.

    The zone comes from the session (stored at login and when the person saves it on the
    "Your settings" page); a session from before that (or one the login did not see) looks
    it up once and keeps it. Anonymous visitors and machines get settings.TIME_ZONE, and so
    does the API even with a session: its JSON must not change with who is looking.
    """

    MACHINE_PATHS = ("/api/", "/ofrep/", "/hooks/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from core.when import zone

        name = self._zone_name(request)
        if name:
            timezone.activate(zone(name))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

    @staticmethod
    def _zone_name(request: HttpRequest) -> str | None:
        if request.path.startswith(ViewerTimeZoneMiddleware.MACHINE_PATHS):
            return None
        session = getattr(request, "session", None)
        if session is None or settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None  # machines and first visits: no session read (no `Vary: Cookie`)
        name = session.get(TIME_ZONE_SESSION_KEY)
        if name:
            return str(name)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        from core.selectors import user_time_zone

        name = user_time_zone(user=user)
        remember_time_zone(request, name)
        return name
