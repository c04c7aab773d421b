"""The settings page (admins): environments (add, rename, reorder) and SDK keys (create,
revoke; a new key is shown once)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done, render_page
from core.roles import require
from flags import services, ui_selectors
from flags.forms import EnvironmentCreateForm, EnvironmentUpdateForm, SdkKeyCreateForm
from flags.models import Environment, SdkKey
from flags.views.common import form_error, form_status


def _settings_context(
    request: AuthenticatedHttpRequest,
    *,
    create_form: EnvironmentCreateForm | None = None,
    new_key: tuple[SdkKey, str] | None = None,
    key_forms: dict[str, SdkKeyCreateForm] | None = None,
    env_forms: dict[str, EnvironmentUpdateForm] | None = None,
) -> dict[str, Any]:
    envs = ui_selectors.environments()
    show_keys = request.user.has_perm("flags.view_sdkkey")
    keys_by_env: dict[int, list[SdkKey]] = {}
    if show_keys:
        for key in SdkKey.objects.select_related("created_by").order_by("-created_at"):
            keys_by_env.setdefault(key.environment_id, []).append(key)
    key_forms = key_forms or {}
    env_forms = env_forms or {}
    rows = [
        {
            "env": env,
            "form": env_forms.get(env.key)
            or EnvironmentUpdateForm(
                initial={"name": env.name, "is_production": env.is_production},
                prefix=f"env-{env.key}",
            ),
            "keys": keys_by_env.get(env.id, []),
            "key_form": key_forms.get(env.key) or SdkKeyCreateForm(prefix=f"key-{env.key}"),
            "first": i == 0,
            "last": i == len(envs) - 1,
        }
        for i, env in enumerate(envs)
    ]
    return {
        "rows": rows,
        "create_form": create_form or EnvironmentCreateForm(prefix="new-env"),
        "show_keys": show_keys,
        "new_key": new_key,
    }


def _settings_response(
    request: AuthenticatedHttpRequest, *, status: int = 200, **kwargs: Any
) -> HttpResponse:
    response = render_page(
        request,
        "flags/settings.html",
        _settings_context(request, **kwargs),
        partial="settings-body",
        status=status,
    )
    if kwargs.get("new_key"):
        response["Cache-Control"] = "no-store"
    return response


def _settings_done(request: AuthenticatedHttpRequest, message: str, **kwargs: Any) -> HttpResponse:
    response = _settings_response(request, **kwargs) if request.htmx else None
    return done(
        request,
        message=message,
        redirect_to=reverse("flags:settings"),
        events=["environmentsChanged"],
        response=response,
    )


@never_cache
@require_GET
@require("flags.change_environment", "manage environments and SDK keys")
def settings_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _settings_response(request)


@require_POST
@require("flags.add_environment", "add environments")
def environment_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = EnvironmentCreateForm(request.POST, prefix="new-env")
    if form.is_valid():
        try:
            environment = services.environment_create(
                key=form.cleaned_data["key"],
                name=form.cleaned_data["name"],
                is_production=form.cleaned_data["is_production"],
                actor=request.user,
            )
        except ApplicationError as exc:
            form_error(form, exc)
        else:
            return _settings_done(request, f"Environment {environment.name} added.")
    return _settings_response(request, create_form=form, status=form_status(request, failed=True))


@require_POST
@require("flags.change_environment", "change environments")
def environment_update(request: AuthenticatedHttpRequest, env: str) -> HttpResponse:
    environment = get_object_or_404(Environment, key=env)
    form = EnvironmentUpdateForm(request.POST, prefix=f"env-{env}")
    if form.is_valid():
        try:
            environment = services.environment_update(
                environment=environment,
                name=form.cleaned_data["name"],
                is_production=form.cleaned_data["is_production"],
                actor=request.user,
            )
        except ApplicationError as exc:
            form_error(form, exc)
        else:
            return _settings_done(request, f"Environment {environment.name} saved.")
    return _settings_response(
        request, env_forms={env: form}, status=form_status(request, failed=True)
    )


@require_POST
@require("flags.change_environment", "reorder environments")
def environment_move(request: AuthenticatedHttpRequest, env: str) -> HttpResponse:
    environment = get_object_or_404(Environment, key=env)
    direction = request.POST.get("direction", "")
    try:
        services.environment_move(environment=environment, direction=direction, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("flags:settings")
    return _settings_done(request, f"Environment {environment.name} moved {direction}.")


@require_POST
@require("flags.add_sdkkey", "create SDK keys")
def sdk_key_create(request: AuthenticatedHttpRequest, env: str) -> HttpResponse:
    environment = get_object_or_404(Environment, key=env)
    form = SdkKeyCreateForm(request.POST, prefix=f"key-{env}")
    if form.is_valid():
        try:
            sdk_key, raw = services.sdk_key_create(
                environment=environment,
                name=form.cleaned_data["name"],
                actor=request.user,
                kind=form.cleaned_data["kind"],
            )
        except ApplicationError as exc:
            form_error(form, exc)
        else:
            # The raw key is shown once, in this answer; never redirect it through a message.
            response = _settings_response(request, new_key=(sdk_key, raw))
            message = f"SDK key {sdk_key.name} created: copy it now, it is shown only once."
            if request.htmx:
                return done(
                    request,
                    message=message,
                    redirect_to="",
                    events=["environmentsChanged"],
                    response=response,
                )
            return response
    return _settings_response(
        request, key_forms={env: form}, status=form_status(request, failed=True)
    )


@require_POST
@require("flags.change_sdkkey", "revoke SDK keys")
def sdk_key_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    sdk_key = get_object_or_404(SdkKey.objects.select_related("environment"), pk=pk)
    services.sdk_key_revoke(sdk_key=sdk_key, actor=request.user)
    return _settings_done(
        request, f"SDK key {sdk_key.name} ({sdk_key.masked}) of {sdk_key.environment.name} revoked."
    )
