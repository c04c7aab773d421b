from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from core.dashboard import panels
from core.http import HtmxHttpRequest, render_page
from core.roles import SUPPORT, user_roles
from core.selectors import scheduler_status

logger = logging.getLogger(__name__)


def _dashboard_context(request: HttpRequest) -> dict[str, Any]:
    context: dict[str, Any] = {"scheduler": scheduler_status(), "dashboard_panels": []}
    htmx = getattr(request, "htmx", None)
    if htmx and htmx.target == "scheduler-status":
        return context  # the status poll needs no panel data
    for panel in panels():
        result = panel(request)
        if result is not None:
            template_name, panel_context = result
            context["dashboard_panels"].append(template_name)
            context.update(panel_context)
    return context


@login_required
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    return render_page(
        request, "core/dashboard.html", _dashboard_context(request), partial="scheduler-status"
    )


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Where people land after logging in: Support reads the changelog, others the dashboard."""
    from django.shortcuts import redirect
    from django.urls import NoReverseMatch, reverse

    if user_roles(request.user) == [SUPPORT]:
        try:
            return redirect(reverse("support:changelog"))
        except NoReverseMatch:
            pass
    return redirect("dashboard")


class LoginView(auth_views.LoginView):
    """Log in; without an explicit destination people land where their role starts (Support
    on the changelog). In demo mode the page names the demo users."""

    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:
        url = super().get_redirect_url()
        return "" if url == "/" else url  # "/" is where an anonymous visit started, not a choice

    def get_default_redirect_url(self) -> str:
        from django.urls import reverse

        return reverse("home")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from core.demo import DEMO_PASSWORD, DEMO_USERS

        context = super().get_context_data(**kwargs)
        if getattr(settings, "DEMO_MODE", False):
            names = [u[0] for u in DEMO_USERS]
            present = set(
                get_user_model()
                .objects.filter(username__in=names)
                .values_list("username", flat=True)
            )
            context["demo_users"] = [(u[0], u[2]) for u in DEMO_USERS if u[0] in present]
            context["demo_password"] = DEMO_PASSWORD
        return context


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(("/api/", "/ofrep/", "/hooks/")):
        return JsonResponse({"error": "not_found", "message": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


def _check_broker() -> str | None:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    checks = {"database": _check_database(), "broker": _check_broker()}
    failed = {name: error for name, error in checks.items() if error}
    body = {
        "status": "ready" if not failed else "not ready",
        "checks": {name: ("ok" if not error else "failed") for name, error in checks.items()},
        "errors": failed,
    }
    if failed:
        logger.warning("readyz.failed checks=%s", ",".join(failed))
    return JsonResponse(body, status=503 if failed else 200)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = (
        str(exception)
        if exception and str(exception)
        else ("You do not have permission to do this. Ask an admin if you need the role.")
    )
    if request.path.startswith(("/api/", "/ofrep/")):
        return JsonResponse({"error": "permission_denied", "message": message}, status=403)
    return render(request, "403.html", {"message": message}, status=403)
