"""The flags UI: flag list, flag page (details, variants, rules, evaluate, history), segments
and settings (environments, SDK keys). Short function views: parse, call a service, render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from core.exceptions import ApplicationError
from core.http import done, render_page, toast
from core.roles import permission_denied_message, require
from flags import services, ui_selectors
from flags.forms import (
    CONTEXT_FIELDS,
    EDITABLE_STRATEGIES,
    OPERATOR_LABELS,
    EnvironmentCreateForm,
    EnvironmentUpdateForm,
    EvaluateForm,
    FlagCreateForm,
    FlagDetailsForm,
    FlagFilterForm,
    RuleEditor,
    SdkKeyCreateForm,
    SegmentForm,
    constraint_formset,
    formset_constraints,
    parse_tags,
    variants_forms,
    variants_from_forms,
    weight_percent,
)
from flags.models import Environment, Flag, FlagState, SdkKey, Segment

PAGE_SIZE = 50
FLAG_CHANGED = "flagChanged"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _status(request: HtmxHttpRequest, *, failed: bool) -> int:
    """htmx only swaps 2xx answers; a plain form that failed answers 400."""
    return 400 if failed and not request.htmx else 200


def _form_error(form: Any, exc: ApplicationError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _redirect(request: HtmxHttpRequest, url: str, message: str) -> HttpResponse:
    """After a create: go to the new object's page (htmx follows with a client redirect)."""
    messages.success(request, message)
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _next_url(request: HtmxHttpRequest, default: str) -> str:
    url = request.POST.get("next") or ""
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}):
        return url
    return default


# --------------------------------------------------------------------------------------------
# Flag list


@require_GET
@require("flags.view_flag")
def flag_list(request: HtmxHttpRequest) -> HttpResponse:
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
def flag_create(request: HtmxHttpRequest) -> HttpResponse:
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
            _form_error(form, exc)
        else:
            return _redirect(
                request,
                reverse("flags:detail", args=[flag.key]),
                f"Flag {flag.key} created: it is off in every environment.",
            )
    failed = request.method == "POST"
    return render(
        request, "flags/create.html", {"form": form}, status=_status(request, failed=failed)
    )


@require_POST
@require("flags.change_flagstate")
def flag_toggle(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=key)
    environment = get_object_or_404(Environment, key=env)
    enabled = request.POST.get("enabled") == "on"
    state = services.flag_toggle(
        flag=flag, environment=environment, enabled=enabled, actor=request.user
    )
    response = None
    if request.htmx:
        if request.POST.get("view") == "detail":
            response = _env_section_response(request, flag.key, environment.key)
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
        redirect_to=_next_url(request, reverse("flags:list")),
        events=[FLAG_CHANGED],
        response=response,
    )


# --------------------------------------------------------------------------------------------
# Flag page


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


def _constraint_text(constraint: dict[str, Any]) -> str:
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
        lines.append(f"If {_constraint_text(constraint)}")
    if rule.get("variants"):
        names = ", ".join(v.get("name", "?") for v in rule["variants"])
        lines.append(f"Variants: {names}")
    if rule.get("disabled"):
        lines.append("Disabled: not evaluated")
    return lines


def _env_section(
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


def _states(flag: Flag) -> list[FlagState]:
    return sorted(flag.states.all(), key=lambda s: (s.environment.order, s.environment.key))


def _flag_page_or_404(key: str) -> Flag:
    flag = ui_selectors.flag_with_states(key=key)
    if flag is None:
        raise Http404(f"No flag with the key {key!r}.")
    return flag


def _can_edit_rules(request: HttpRequest) -> bool:
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
    request: HttpRequest,
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


def _detail_context(
    request: HttpRequest,
    flag: Flag,
    *,
    editors: dict[str, dict[Any, RuleEditor]] | None = None,
    evaluate_form: EvaluateForm | None = None,
    evaluation: ui_selectors.EvaluationResult | None = None,
    details_form: FlagDetailsForm | None = None,
    variants: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    states = _states(flag)
    segments = ui_selectors.segments()
    can_edit = _can_edit_rules(request)
    editors = editors or {}
    sections = [
        _env_section(
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
            "history": ui_selectors.flag_history(flag=flag),
            "can_edit_rules": can_edit,
        }
    )
    return context


@require_GET
@require("flags.view_flag")
def flag_detail(request: HtmxHttpRequest, key: str) -> HttpResponse:
    flag = _flag_page_or_404(key)
    return render_page(request, "flags/detail.html", _detail_context(request, flag))


@require_GET
@require("flags.view_flag")
def flag_history(request: HtmxHttpRequest, key: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=key)
    context = {"flag": flag, "history": ui_selectors.flag_history(flag=flag)}
    if not request.htmx:
        return redirect(reverse("flags:detail", args=[key]) + "#flag-history")
    return render(request, "flags/detail.html#flag-history", context)


@require_GET
@require("flags.view_flag")
def flag_evaluate(request: HtmxHttpRequest, key: str) -> HttpResponse:
    flag = _flag_page_or_404(key)
    states = _states(flag)
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
        _detail_context(request, flag, evaluate_form=form, evaluation=evaluation),
        status=_status(request, failed=not form.is_valid()),
    )


def _meta_response(
    request: HtmxHttpRequest,
    flag: Flag,
    *,
    details_form: FlagDetailsForm | None = None,
    variants: tuple[Any, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    if request.htmx:
        context = _meta_context(request, flag, details_form=details_form, variants=variants)
        return render(request, "flags/detail.html#flag-meta", context, status=status)
    flag = _flag_page_or_404(flag.key)
    context = _detail_context(request, flag, details_form=details_form, variants=variants)
    return render(request, "flags/detail.html", context, status=status)


def _meta_done(request: HtmxHttpRequest, flag: Flag, message: str) -> HttpResponse:
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
def flag_update(request: HtmxHttpRequest, key: str) -> HttpResponse:
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
            _form_error(form, exc)
        else:
            return _meta_done(request, flag, f"Flag {flag.key} saved.")
    return _meta_response(request, flag, details_form=form, status=_status(request, failed=True))


@require_POST
@require("flags.change_flag")
def flag_variants(request: HtmxHttpRequest, key: str) -> HttpResponse:
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
        request, flag, variants=(form, rows), status=_status(request, failed=final)
    )


@require_POST
@require("flags.change_flag")
def flag_archive(request: HtmxHttpRequest, key: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=key)
    services.flag_archive(flag=flag, actor=request.user)
    return _redirect(
        request, reverse("flags:list"), f"Flag {flag.key} archived: it is off everywhere."
    )


# --------------------------------------------------------------------------------------------
# Rules


def _env_section_response(
    request: HtmxHttpRequest,
    key: str,
    env: str,
    *,
    editors: dict[Any, RuleEditor] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The environment's section (htmx) or the whole flag page with the section's forms."""
    flag = _flag_page_or_404(key)
    if not request.htmx:
        context = _detail_context(request, flag, editors={env: editors or {}})
        return render(request, "flags/detail.html", context, status=status)
    state = next((s for s in _states(flag) if s.environment.key == env), None)
    if state is None:
        raise Http404(f"No environment {env!r}.")
    section = _env_section(
        flag, state, ui_selectors.segments(), can_edit=_can_edit_rules(request), editors=editors
    )
    context = {"flag": flag, "section": section, "context_fields": CONTEXT_FIELDS}
    return render(request, "flags/detail.html#env-section", context, status=status)


def _rules_done(
    request: HtmxHttpRequest, flag: Flag, environment: Environment, message: str
) -> HttpResponse:
    response = _env_section_response(request, flag.key, environment.key) if request.htmx else None
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
    request: HtmxHttpRequest, flag: Flag, environment: Environment, prefix: str, version: int
) -> RuleEditor:
    choices = [(str(s.pk), s.name) for s in ui_selectors.segments()]
    return RuleEditor(
        prefix=prefix,
        flag_key=flag.key,
        segment_choices=choices,
        version=version,
        data=request.POST,
    )


def _save_rule(request: HtmxHttpRequest, key: str, env: str, number: int | None) -> HttpResponse:
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
    return _env_section_response(
        request,
        flag.key,
        environment.key,
        editors={slot: editor},
        status=_status(request, failed=editor.final),
    )


@require_POST
@require("flags.change_flagstate")
def rule_add(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    return _save_rule(request, key, env, None)


@require_POST
@require("flags.change_flagstate")
def rule_update(request: HtmxHttpRequest, key: str, env: str, number: int) -> HttpResponse:
    return _save_rule(request, key, env, number)


def _expected_version(request: HtmxHttpRequest) -> int | None:
    try:
        return int(request.POST["expected_version"])
    except (KeyError, ValueError):
        return None


def _rule_action(
    request: HtmxHttpRequest, key: str, env: str, number: int, action: str
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
            response = _env_section_response(request, flag.key, environment.key)
            return toast(response, exc.message, level="error")
        messages.error(request, exc.message)
        return redirect(reverse("flags:detail", args=[flag.key]) + f"#env-section-{env}")
    return _rules_done(request, flag, environment, message)


@require_POST
@require("flags.change_flagstate")
def rule_delete(request: HtmxHttpRequest, key: str, env: str, number: int) -> HttpResponse:
    return _rule_action(request, key, env, number, "delete")


@require_POST
@require("flags.change_flagstate")
def rule_move(request: HtmxHttpRequest, key: str, env: str, number: int) -> HttpResponse:
    return _rule_action(request, key, env, number, "move")


# --------------------------------------------------------------------------------------------
# Segments


@require_GET
@require("flags.view_segment")
def segment_list(request: HtmxHttpRequest) -> HttpResponse:
    segments = ui_selectors.segments()
    usage = services.segment_usage()
    rows = [(segment, usage.get(segment.pk, [])) for segment in segments]
    return render(request, "flags/segments.html", {"rows": rows})


def _segment_page(
    request: HtmxHttpRequest,
    segment: Segment | None,
    form: SegmentForm,
    constraints: Any,
    *,
    status: int = 200,
) -> HttpResponse:
    context: dict[str, Any] = {
        "segment": segment,
        "form": form,
        "constraints": constraints,
        "context_fields": CONTEXT_FIELDS,
        "can_edit": request.user.has_perm(
            "flags.change_segment" if segment else "flags.add_segment"
        ),
    }
    if segment is not None:
        context["uses"] = services.segment_usage(segment_ids=[segment.pk]).get(segment.pk, [])
        context["history"] = ui_selectors.segment_history(segment=segment)
        context["constraint_lines"] = [_constraint_text(c) for c in segment.constraints]
    return render_page(
        request, "flags/segment.html", context, partial="segment-form", status=status
    )


@require("flags.add_segment")
def segment_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method != "POST":
        form = SegmentForm()
        constraints, _ = constraint_formset(prefix="seg-c", constraints=[])
        return _segment_page(request, None, form, constraints)
    form = SegmentForm(request.POST)
    constraints, final = constraint_formset(prefix="seg-c", data=request.POST)
    if final and form.is_valid() and constraints.is_valid():
        try:
            segment = services.segment_create(
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                constraints=formset_constraints(constraints),
                actor=request.user,
            )
        except ApplicationError as exc:
            _form_error(form, exc)
        else:
            return _redirect(
                request,
                reverse("flags:segment", args=[segment.pk]),
                f"Segment {segment.name} created.",
            )
    return _segment_page(request, None, form, constraints, status=_status(request, failed=final))


@require("flags.view_segment")
def segment_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    if request.method != "POST":
        form = SegmentForm(
            initial={
                "name": segment.name,
                "description": segment.description,
                "expected_version": segment.version,
            }
        )
        constraints, _ = constraint_formset(prefix="seg-c", constraints=segment.constraints)
        return _segment_page(request, segment, form, constraints)
    if not request.user.has_perm("flags.change_segment"):
        raise PermissionDenied(permission_denied_message("flags.change_segment", "edit segments"))
    form = SegmentForm(request.POST)
    constraints, final = constraint_formset(prefix="seg-c", data=request.POST)
    if final and form.is_valid() and constraints.is_valid():
        try:
            segment = services.segment_update(
                segment=segment,
                actor=request.user,
                expected_version=form.cleaned_data["expected_version"],
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                constraints=formset_constraints(constraints),
            )
        except ApplicationError as exc:
            _form_error(form, exc)
        else:
            return _redirect(
                request,
                reverse("flags:segment", args=[segment.pk]),
                f"Segment {segment.name} saved.",
            )
    return _segment_page(request, segment, form, constraints, status=_status(request, failed=final))


@require_POST
@require("flags.delete_segment")
def segment_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    try:
        services.segment_delete(segment=segment, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        url = reverse("flags:segment", args=[pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return _redirect(request, reverse("flags:segments"), f"Segment {segment.name} deleted.")


# --------------------------------------------------------------------------------------------
# Settings: environments and SDK keys (admins)


def _settings_context(
    request: HttpRequest,
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
    request: HtmxHttpRequest, *, status: int = 200, **kwargs: Any
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


def _settings_done(request: HtmxHttpRequest, message: str, **kwargs: Any) -> HttpResponse:
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
def settings_page(request: HtmxHttpRequest) -> HttpResponse:
    return _settings_response(request)


@require_POST
@require("flags.add_environment", "add environments")
def environment_create(request: HtmxHttpRequest) -> HttpResponse:
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
            _form_error(form, exc)
        else:
            return _settings_done(request, f"Environment {environment.name} added.")
    return _settings_response(request, create_form=form, status=_status(request, failed=True))


@require_POST
@require("flags.change_environment", "change environments")
def environment_update(request: HtmxHttpRequest, env: str) -> HttpResponse:
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
            _form_error(form, exc)
        else:
            return _settings_done(request, f"Environment {environment.name} saved.")
    return _settings_response(request, env_forms={env: form}, status=_status(request, failed=True))


@require_POST
@require("flags.change_environment", "reorder environments")
def environment_move(request: HtmxHttpRequest, env: str) -> HttpResponse:
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
def sdk_key_create(request: HtmxHttpRequest, env: str) -> HttpResponse:
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
            _form_error(form, exc)
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
    return _settings_response(request, key_forms={env: form}, status=_status(request, failed=True))


@require_POST
@require("flags.change_sdkkey", "revoke SDK keys")
def sdk_key_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    sdk_key = get_object_or_404(SdkKey.objects.select_related("environment"), pk=pk)
    services.sdk_key_revoke(sdk_key=sdk_key, actor=request.user)
    return _settings_done(
        request, f"SDK key {sdk_key.name} ({sdk_key.masked}) of {sdk_key.environment.name} revoked."
    )
