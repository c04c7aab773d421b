from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core.dashboard import panels
from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, HtmxHttpRequest, done, render_page
from core.roles import ADMINS, SUPPORT, require, user_roles
from core.selectors import scheduler_status, user_time_zone

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


def _sees_readiness_details(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and ADMINS in user_roles(user))


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    """Ready or not for everyone (load balancers); which check failed and why for admins
    only: error text names hosts, ports and database names."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    failed = {name: error for name, error in checks.items() if error}
    body: dict[str, Any] = {"status": "ready" if not failed else "not ready"}
    if _sees_readiness_details(request):
        body["checks"] = {name: ("ok" if not error else "failed") for name, error in checks.items()}
        body["errors"] = failed
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


FAILURES_PERM = "core.add_discardedfailure"


@login_required
@require(FAILURES_PERM, "see and handle failed work")
def failures(request: HtmxHttpRequest) -> HttpResponse:
    """Stuck and dead items across the apps, with Retry and Discard (Admins)."""
    from core.failures import failures_discarded, failures_list

    return render(
        request,
        "core/failures.html",
        {"failures": failures_list(), "discarded": failures_discarded()},
    )


@login_required
@require(FAILURES_PERM, "retry failed work")
@require_POST
def failure_retry(request: AuthenticatedHttpRequest, source: str, key: str) -> HttpResponse:
    from core import failures as svc

    try:
        message = svc.failure_retry(source=source, key=key, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("failures")
    return done(request, message=message, redirect_to=reverse("failures"))


@login_required
@require(FAILURES_PERM, "discard failed work")
def failure_discard(request: AuthenticatedHttpRequest, source: str, key: str) -> HttpResponse:
    """GET: the confirmation page (asks why). POST: discard, recording who and why."""
    from core import failures as svc

    item = next(
        (i for i in svc.failures_list(limit=1000) if i.source == source and i.key == key), None
    )
    if item is None:
        messages.error(request, "That item is no longer failing; nothing to discard.")
        return redirect("failures")
    error = ""
    if request.method == "POST":
        try:
            svc.failure_discard(
                source=source, key=key, actor=request.user, reason=request.POST.get("reason", "")
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            return done(request, message="Discarded.", redirect_to=reverse("failures"))
    return render(
        request,
        "core/failure_discard.html",
        {"item": item, "error": error, "reason": request.POST.get("reason", "")},
        status=400 if error else 200,
    )


def failures_panel(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    """Dashboard panel: how many items are stuck or dead (Admins)."""
    if not request.user.has_perm(FAILURES_PERM):
        return None
    from core.failures import DEAD, failures_list

    items = failures_list(limit=200)
    return "core/_failures_panel.html", {
        "failures_panel": {
            "dead": sum(1 for i in items if i.state == DEAD),
            "stuck": sum(1 for i in items if i.state != DEAD),
            "top": items[:5],
        }
    }


@login_required
def user_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The "Your settings" page: the time zone every page shows times in. Each person changes
    only their own (the service checks it); GET shows the form, POST saves and goes back."""
    from core import services as core_services
    from core.forms import UserPreferenceForm
    from core.middleware import remember_time_zone
    from core.when import zone_choices

    back = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = ""
    status = 200
    if request.method == "POST":
        form = UserPreferenceForm(request.POST)
        if form.is_valid():
            try:
                saved = core_services.user_preference_set(
                    actor=request.user, user=request.user, time_zone=form.cleaned_data["time_zone"]
                )
            except ApplicationError as exc:
                form.add_error("time_zone", exc.message)
            else:
                remember_time_zone(request, saved.time_zone)  # the next page is in it
                return done(
                    request,
                    message=f"Times are now shown in {saved.time_zone}.",
                    redirect_to=back or reverse("user-settings"),
                )
        status = 400
    else:
        form = UserPreferenceForm(initial={"time_zone": user_time_zone(user=request.user)})
    chosen = form["time_zone"].value() or ""
    return render(
        request,
        "core/user_settings.html",
        {"form": form, "zones": zone_choices(), "chosen": chosen, "next": back},
        status=status,
    )
