"""The flag page: details, variants, archive, history, the evaluate panel, and each
environment's section (state and rules) that the rules editor re-renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from core.dashboard import render_sections
from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done, render_page
from core.roles import require
from flags import services, ui_selectors
from flags.forms import (
    CONTEXT_FIELDS,
    EDITABLE_STRATEGIES,
    EvaluateForm,
    FlagDetailsForm,
    RuleEditor,
    parse_tags,
    variants_forms,
    variants_from_forms,
    weight_percent,
)
from flags.models import Environment, Flag, FlagState, Segment
from flags.views.common import (
    FLAG_CHANGED,
    constraint_text,
    created_redirect,
    form_error,
    form_status,
)


@dataclass
class RuleView:
    number: int
    rule: dict[str, Any]
    summary: list[str]
    editable: bool
    # (segment id, name or "" when the segment is missing)
    segments: list[tuple[int, str]] = field(default_factory=list)
    editor: RuleEditor | None = None


@dataclass
class EnvSection:
    environment: Environment
    state: FlagState
    rules: list[RuleView]
    add_editor: RuleEditor | None = None
    add_open: bool = False
    editors: dict[Any, RuleEditor] = field(default_factory=dict)


def _rule_summary(rule: dict[str, Any], flag_key: str) -> list[str]:
    name = rule.get("name")
    params = rule.get("parameters") or {}
    lines = []
    if name == "flexibleRollout":
        stickiness = params.get("stickiness") or "default"
        group = params.get("groupId") or flag_key
        lines.append(
            f"{params.get('rollout', '100')}% of users (stickiness {stickiness}, group {group})"
        )
    elif name == "default":
        lines.append("Everyone (100%)")
    else:
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "no parameters"
        lines.append(f"Imported strategy {name}: {shown}")
    for constraint in rule.get("constraints") or []:
        lines.append(f"If {constraint_text(constraint)}")
    if rule.get("variants"):
        names = ", ".join(v.get("name", "?") for v in rule["variants"])
        lines.append(f"Variants: {names}")
    if rule.get("disabled"):
        lines.append("Disabled: not evaluated")
    return lines


def env_section(
    flag: Flag,
    state: FlagState,
    segments: list[Segment],
    *,
    can_edit: bool,
    editors: dict[Any, RuleEditor] | None = None,
) -> EnvSection:
    env = state.environment
    editors = editors or {}
    names = {s.pk: s.name for s in segments}
    choices = [(str(s.pk), s.name) for s in segments]
    rules = []
    for number, rule in enumerate(state.rules or [], start=1):
        editable = rule.get("name", "flexibleRollout") in EDITABLE_STRATEGIES
        editor = None
        if can_edit and editable:
            editor = editors.get(number) or RuleEditor(
                prefix=f"{env.key}-r{number}",
                flag_key=flag.key,
                segment_choices=choices,
                version=state.version,
                rule=rule,
            )
        rules.append(
            RuleView(
                number,
                rule,
                _rule_summary(rule, flag.key),
                editable,
                [(sid, names.get(sid, "")) for sid in rule.get("segments") or []],
                editor,
            )
        )
    add_editor = None
    if can_edit:
        add_editor = editors.get("new") or RuleEditor(
            prefix=f"{env.key}-new",
            flag_key=flag.key,
            segment_choices=choices,
            version=state.version,
        )
    return EnvSection(env, state, rules, add_editor, add_open="new" in editors, editors=editors)


def sorted_states(flag: Flag) -> list[FlagState]:
    return sorted(flag.states.all(), key=lambda s: (s.environment.order, s.environment.key))


def flag_page_or_404(key: str) -> Flag:
    flag = ui_selectors.flag_with_states(key=key)
    if flag is None:
        raise Http404(f"No flag with the key {key!r}.")
    return flag


def can_edit_rules(request: AuthenticatedHttpRequest) -> bool:
    return request.user.has_perm("flags.change_flagstate")


def _variant_rows(flag: Flag) -> list[dict[str, Any]]:
    return [
        {
            "name": v.get("name"),
            "weight": weight_percent(v.get("weight")),
            "fixed": v.get("weightType") == "fix",
            "payload": v.get("payload"),
        }
        for v in flag.variants
    ]


def _meta_context(
    request: AuthenticatedHttpRequest,
    flag: Flag,
    *,
    details_form: FlagDetailsForm | None = None,
    variants: tuple[Any, Any] | None = None,
    environments: list[Environment] | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "flag": flag,
        "variant_rows": _variant_rows(flag),
        "environments": ui_selectors.environments() if environments is None else environments,
    }
    if request.user.has_perm("flags.change_flag"):
        context["details_form"] = details_form or FlagDetailsForm.for_flag(flag)
        if variants is None:
            form, rows, _ = variants_forms(flag)
            variants = (form, rows)
        context["variants_form"], context["variant_formset"] = variants
    return context


def detail_context(
    request: AuthenticatedHttpRequest,
    flag: Flag,
    *,
    editors: dict[str, dict[Any, RuleEditor]] | None = None,
    evaluate_form: EvaluateForm | None = None,
    evaluation: ui_selectors.EvaluationResult | None = None,
    details_form: FlagDetailsForm | None = None,
    variants: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    states = sorted_states(flag)
    segments = ui_selectors.segments()
    can_edit = can_edit_rules(request)
    editors = editors or {}
    sections = [
        env_section(
            flag, state, segments, can_edit=can_edit, editors=editors.get(state.environment.key)
        )
        for state in states
    ]
    envs = [s.environment for s in states]
    if evaluate_form is None:
        default_env = next(
            (e.key for e in envs if not e.is_production), envs[0].key if envs else ""
        )
        evaluate_form = EvaluateForm(environments=envs, initial={"environment": default_env})
    context = _meta_context(
        request, flag, details_form=details_form, variants=variants, environments=envs
    )
    context.update(
        {
            "sections": sections,
            "segments": segments,
            "context_fields": CONTEXT_FIELDS,
            "evaluate_form": evaluate_form,
            "evaluation": evaluation,
            **_history_page(request, flag),
            "can_edit_rules": can_edit,
        }
    )
    return context


HISTORY_PER_PAGE = 50


def _history_page(request: AuthenticatedHttpRequest, flag: Flag) -> dict[str, Any]:
    """A page of the flag's history: the newest, or those before `?history_before=`; with
    the moment the next (older) page starts when there may be one."""
    raw = str(request.GET.get("history_before", ""))[:64]
    try:
        before = parse_datetime(raw) if raw else None
    except ValueError:
        before = None
    if before is not None and timezone.is_naive(before):
        before = timezone.make_aware(before, UTC)
    history = ui_selectors.flag_history(flag=flag, limit=HISTORY_PER_PAGE, before=before)
    return {
        "history": history,
        "history_before": before,
        "history_older": history[-1].when if len(history) == HISTORY_PER_PAGE else None,
    }


@require_GET
@require("flags.view_flag")
def flag_detail(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    flag = flag_page_or_404(key)
    context = detail_context(request, flag)
    context["extra_sections"] = render_sections("flag_detail", request, flag=flag)
    return render_page(request, "flags/detail.html", context)


@require_GET
@require("flags.view_flag")
def flag_history(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=key)
    context = {"flag": flag, "history": ui_selectors.flag_history(flag=flag)}
    if not request.htmx:
        return redirect(reverse("flags:detail", args=[key]) + "#flag-history")
    return render(request, "flags/detail.html#flag-history", context)


@require_GET
@require("flags.view_flag")
def flag_evaluate(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    flag = flag_page_or_404(key)
    states = sorted_states(flag)
    envs = [s.environment for s in states]
    form = EvaluateForm(request.GET, environments=envs)
    evaluation = None
    if form.is_valid():
        state = next(s for s in states if s.environment.key == form.cleaned_data["environment"])
        evaluation = ui_selectors.flag_evaluate(
            flag=flag, environment=state.environment, rules=state.rules, context=form.context()
        )
    context = {"flag": flag, "evaluate_form": form, "evaluation": evaluation}
    if request.htmx:
        return render(request, "flags/detail.html#evaluate-panel", context)
    return render(
        request,
        "flags/detail.html",
        detail_context(request, flag, evaluate_form=form, evaluation=evaluation),
        status=form_status(request, failed=not form.is_valid()),
    )


def _meta_response(
    request: AuthenticatedHttpRequest,
    flag: Flag,
    *,
    details_form: FlagDetailsForm | None = None,
    variants: tuple[Any, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    if request.htmx:
        context = _meta_context(request, flag, details_form=details_form, variants=variants)
        return render(request, "flags/detail.html#flag-meta", context, status=status)
    flag = flag_page_or_404(flag.key)
    context = detail_context(request, flag, details_form=details_form, variants=variants)
    return render(request, "flags/detail.html", context, status=status)


def _meta_done(request: AuthenticatedHttpRequest, flag: Flag, message: str) -> HttpResponse:
    response = _meta_response(request, flag) if request.htmx else None
    return done(
        request,
        message=message,
        redirect_to=reverse("flags:detail", args=[flag.key]),
        events=[FLAG_CHANGED],
        response=response,
    )


@require_POST
@require("flags.change_flag")
def flag_update(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=key)
    form = FlagDetailsForm(request.POST, prefix="details")
    if form.is_valid():
        data = form.cleaned_data
        try:
            flag = services.flag_update(
                flag=flag,
                actor=request.user,
                expected_version=data["expected_version"],
                name=data["name"],
                description=data["description"],
                type=data["type"],
                tags=parse_tags(data["tags"]),
                lifecycle=data["lifecycle"],
            )
        except ApplicationError as exc:
            form_error(form, exc)
        else:
            return _meta_done(request, flag, f"Flag {flag.key} saved.")
    return _meta_response(
        request, flag, details_form=form, status=form_status(request, failed=True)
    )


@require_POST
@require("flags.change_flag")
def flag_variants(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=key)
    form, rows, final = variants_forms(flag, request.POST)
    if final and form.is_valid() and rows.is_valid():
        try:
            flag = services.flag_update(
                flag=flag,
                actor=request.user,
                expected_version=form.cleaned_data["expected_version"],
                variants=variants_from_forms(flag, form, rows),
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return _meta_done(request, flag, f"Variants of {flag.key} saved.")
    return _meta_response(
        request, flag, variants=(form, rows), status=form_status(request, failed=final)
    )


@require_POST
@require("flags.change_flag")
def flag_archive(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=key)
    services.flag_archive(flag=flag, actor=request.user)
    return created_redirect(
        request, reverse("flags:list"), f"Flag {flag.key} archived: it is off everywhere."
    )


def env_section_response(
    request: AuthenticatedHttpRequest,
    key: str,
    env: str,
    *,
    editors: dict[Any, RuleEditor] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The environment's section (htmx) or the whole flag page with the section's forms."""
    flag = flag_page_or_404(key)
    if not request.htmx:
        context = detail_context(request, flag, editors={env: editors or {}})
        return render(request, "flags/detail.html", context, status=status)
    state = next((s for s in sorted_states(flag) if s.environment.key == env), None)
    if state is None:
        raise Http404(f"No environment {env!r}.")
    section = env_section(
        flag, state, ui_selectors.segments(), can_edit=can_edit_rules(request), editors=editors
    )
    context = {"flag": flag, "section": section, "context_fields": CONTEXT_FIELDS}
    return render(request, "flags/detail.html#env-section", context, status=status)
