"""The flag list (filters, pages of 50, kill switches) and creating a flag."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done, render_page, toast
from core.roles import require
from flags import services, ui_selectors
from flags.forms import FlagCreateForm, FlagFilterForm, parse_tags
from flags.models import Environment, Flag, FlagState
from flags.views.common import FLAG_CHANGED, created_redirect, form_error, form_status, next_url
from flags.views.flag_page import env_section_response

PAGE_SIZE = 50


@require_GET
@require("flags.view_flag")
def flag_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    envs = ui_selectors.environments()
    form = FlagFilterForm(request.GET or None, environments=envs, tags=ui_selectors.flag_tags())
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    flags = ui_selectors.flag_list(**filters)
    page = Paginator(flags, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filter_form": form,
        "environments": envs,
        "page": page,
        "rows": ui_selectors.flag_rows(page.object_list, envs),
        "query": query.urlencode(),
        "filtered": any(filters.values()),
    }
    return render_page(request, "flags/list.html", context, partial="flag-table")


@require("flags.add_flag")
def flag_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = FlagCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            flag = services.flag_create(
                key=data["key"],
                name=data["name"],
                description=data["description"],
                type=data["type"],
                tags=parse_tags(data["tags"]),
                actor=request.user,
            )
        except ApplicationError as exc:
            form_error(form, exc)
        else:
            return created_redirect(
                request,
                reverse("flags:detail", args=[flag.key]),
                f"Flag {flag.key} created: it is off in every environment.",
            )
    failed = request.method == "POST"
    return render(
        request, "flags/create.html", {"form": form}, status=form_status(request, failed=failed)
    )


@require_POST
@require("flags.change_flagstate")
def flag_toggle(request: AuthenticatedHttpRequest, key: str, env: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=key)
    environment = get_object_or_404(Environment, key=env)
    enabled = request.POST.get("enabled") == "on"
    try:
        state = services.flag_toggle(
            flag=flag, environment=environment, enabled=enabled, actor=request.user
        )
    except ApplicationError as exc:  # e.g. the environment's approval policy
        return _toggle_refused(request, flag, environment, exc.message)
    response = None
    if request.htmx:
        if request.POST.get("view") == "detail":
            response = env_section_response(request, flag.key, environment.key)
        else:
            response = render(
                request,
                "flags/list.html#toggle",
                {"flag": flag, "env": environment, "state": state},
            )
    word = "on" if state.enabled else "off"
    return done(
        request,
        message=f"{flag.key} is {word} in {environment.name}.",
        redirect_to=next_url(request, reverse("flags:list")),
        events=[FLAG_CHANGED],
        response=response,
    )


def _toggle_refused(
    request: AuthenticatedHttpRequest, flag: Flag, environment: Environment, message: str
) -> HttpResponse:
    """The toggle as it still is, with the reason it did not change."""
    if request.htmx:
        if request.POST.get("view") == "detail":
            response = env_section_response(request, flag.key, environment.key)
        else:
            state = FlagState.objects.get(flag=flag, environment=environment)
            response = render(
                request,
                "flags/list.html#toggle",
                {"flag": flag, "env": environment, "state": state},
            )
        return toast(response, message, level="error")
    messages.error(request, message)
    return redirect(next_url(request, reverse("flags:list")))
