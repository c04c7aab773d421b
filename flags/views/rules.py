"""The rules editor: add, edit, delete and reorder the rules of a flag in one environment.

Answers re-render the environment's section of the flag page (htmx) or the whole page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done, toast
from core.roles import require
from flags import services, ui_selectors
from flags.forms import RuleEditor
from flags.models import Environment, Flag, FlagState
from flags.views.common import FLAG_CHANGED, form_status
from flags.views.flag_page import env_section_response


def _rules_done(
    request: AuthenticatedHttpRequest, flag: Flag, environment: Environment, message: str
) -> HttpResponse:
    response = env_section_response(request, flag.key, environment.key) if request.htmx else None
    return done(
        request,
        message=message,
        redirect_to=reverse("flags:detail", args=[flag.key]) + f"#env-section-{environment.key}",
        events=[FLAG_CHANGED],
        response=response,
    )


def _flag_and_env(key: str, env: str) -> tuple[Flag, Environment, FlagState]:
    flag = get_object_or_404(Flag, key=key)
    environment = get_object_or_404(Environment, key=env)
    state = FlagState.objects.filter(flag=flag, environment=environment).first()
    if state is None:
        state = FlagState(flag=flag, environment=environment)
    return flag, environment, state


def _editor(
    request: AuthenticatedHttpRequest,
    flag: Flag,
    environment: Environment,
    prefix: str,
    version: int,
) -> RuleEditor:
    choices = [(str(s.pk), s.name) for s in ui_selectors.segments()]
    return RuleEditor(
        prefix=prefix,
        flag_key=flag.key,
        segment_choices=choices,
        version=version,
        data=request.POST,
    )


def _save_rule(
    request: AuthenticatedHttpRequest, key: str, env: str, number: int | None
) -> HttpResponse:
    flag, environment, state = _flag_and_env(key, env)
    slot: Any = "new" if number is None else number
    prefix = f"{environment.key}-new" if number is None else f"{environment.key}-r{number}"
    editor = _editor(request, flag, environment, prefix, state.version)
    if editor.is_valid():
        expected = editor.form.cleaned_data["expected_version"]
        try:
            if number is None:
                services.rule_add(
                    flag=flag,
                    environment=environment,
                    rule=editor.to_rule(),
                    actor=request.user,
                    expected_version=expected,
                )
            else:
                services.rule_update(
                    flag=flag,
                    environment=environment,
                    index=number - 1,
                    rule=editor.to_rule(),
                    actor=request.user,
                    expected_version=expected,
                )
        except ApplicationError as exc:
            editor.form.add_error(None, exc.message)
        else:
            word = "added" if number is None else f"{number} saved"
            return _rules_done(request, flag, environment, f"Rule {word} in {environment.name}.")
    return env_section_response(
        request,
        flag.key,
        environment.key,
        editors={slot: editor},
        status=form_status(request, failed=editor.final),
    )


@require_POST
@require("flags.change_flagstate")
def rule_add(request: AuthenticatedHttpRequest, key: str, env: str) -> HttpResponse:
    return _save_rule(request, key, env, None)


@require_POST
@require("flags.change_flagstate")
def rule_update(request: AuthenticatedHttpRequest, key: str, env: str, number: int) -> HttpResponse:
    return _save_rule(request, key, env, number)


def _expected_version(request: AuthenticatedHttpRequest) -> int | None:
    try:
        return int(request.POST["expected_version"])
    except (KeyError, ValueError):
        return None


def _rule_action(
    request: AuthenticatedHttpRequest, key: str, env: str, number: int, action: str
) -> HttpResponse:
    flag, environment, _ = _flag_and_env(key, env)
    try:
        if action == "delete":
            services.rule_delete(
                flag=flag,
                environment=environment,
                index=number - 1,
                actor=request.user,
                expected_version=_expected_version(request),
            )
            message = f"Rule {number} deleted in {environment.name}."
        else:
            direction = request.POST.get("direction", "")
            services.rule_move(
                flag=flag,
                environment=environment,
                index=number - 1,
                direction=direction,
                actor=request.user,
                expected_version=_expected_version(request),
            )
            message = f"Rule {number} moved {direction} in {environment.name}."
    except ApplicationError as exc:
        if request.htmx:
            response = env_section_response(request, flag.key, environment.key)
            return toast(response, exc.message, level="error")
        messages.error(request, exc.message)
        return redirect(reverse("flags:detail", args=[flag.key]) + f"#env-section-{env}")
    return _rules_done(request, flag, environment, message)


@require_POST
@require("flags.change_flagstate")
def rule_delete(request: AuthenticatedHttpRequest, key: str, env: str, number: int) -> HttpResponse:
    return _rule_action(request, key, env, number, "delete")


@require_POST
@require("flags.change_flagstate")
def rule_move(request: AuthenticatedHttpRequest, key: str, env: str, number: int) -> HttpResponse:
    return _rule_action(request, key, env, number, "move")
