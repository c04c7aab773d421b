"""Communications pages: notices, the composer, audiences and channels, templates, plans."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from comms import channels as senders
from comms import selectors, services, templating
from comms.forms import (
    AudienceForm,
    ChannelForm,
    ComposeForm,
    NoticeFilterForm,
    PlanRuleForm,
    TemplateForm,
)
from comms.models import Audience, Channel, Delivery, Notice, NoticeTemplate, PlanRule
from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, done, render_page
from core.roles import require
from rollouts.models import Rollout

ADMIN_WHAT = "manage audiences and channels"


def _form_error(form: Any, exc: ApplicationError) -> None:
    """Show a service error on its field when the form has it, else on the form."""
    field = (exc.field or "").split(".")[0]
    form.add_error(field if field in form.fields else None, exc.message)


def _fail(request: HttpRequest, exc: ApplicationError, redirect_to: str) -> HttpResponse:
    """A refused mutation: htmx gets a 400 toast, a plain POST a message and a redirect."""
    if getattr(request, "htmx", None):
        response = HttpResponse(status=400)
        response["HX-Trigger"] = json.dumps({"toast": {"message": exc.message, "level": "error"}})
        response["HX-Reswap"] = "none"
        return response
    messages.error(request, exc.message)
    return redirect(redirect_to)


# --------------------------------------------------------------------------------------------
# Notices


@require("comms.view_notice", "see notices")
@require_GET
def notices(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = NoticeFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_valid():
        data = form.cleaned_data
        filters = {
            "state": data.get("state") or None,
            "audience_id": data["audience"].id if data.get("audience") else None,
            "rollout_id": data["rollout"].id if data.get("rollout") else None,
        }
    page = selectors.notice_page(**filters, page=request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "notices": page.object_list,
        "page": page,
        "page_query": query.urlencode(),
        "failures": selectors.failed_deliveries(limit=20),
        "filtered": any(filters.values()),
    }
    target = request.htmx.target if request.htmx else None
    partial = target if target in ("notice-table", "failures") else "notice-table"
    return render_page(request, "comms/notices.html", context, partial=partial)


@require("comms.view_notice", "see notices")
@require_GET
def notice_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    try:
        notice = selectors.notice_detail(notice_id=pk)
    except Notice.DoesNotExist as exc:
        raise Http404("No such notice.") from exc
    context = {
        "notice": notice,
        "deliveries": list(notice.deliveries.all()),
        "preview": _notice_preview(notice) if not notice.rendered_html else None,
    }
    return render_page(request, "comms/notice_detail.html", context, partial="notice-status")


def _notice_preview(notice: Notice) -> Any:
    """A notice not sent yet, filled in with today's facts (the template is shown as well)."""
    try:
        context, _facts = services.notice_context(notice, now=timezone.now())
        return templating.render(subject=notice.subject, body=notice.body, context=context)
    except ApplicationError:
        return None


def _compose_initial(request: HttpRequest) -> dict[str, Any]:
    initial: dict[str, Any] = {"when": "draft"}
    template_id = request.GET.get("template")
    if template_id and template_id.isdigit():
        template = NoticeTemplate.objects.filter(pk=int(template_id)).first()
        if template is not None:
            initial.update(subject=template.subject, body=template.body)
    for name in ("audience", "rollout", "release"):
        value = request.GET.get(name)
        if value and value.isdigit():
            initial[name] = int(value)
    return initial


def _preview(form: ComposeForm, *, now: Any) -> dict[str, Any]:
    """Per channel kind, what the notice would send (rendered with the real context)."""
    data = form.cleaned_data if form.is_bound and hasattr(form, "cleaned_data") else {}
    audience = data.get("audience")
    subject, body = form.data.get("subject", ""), form.data.get("body", "")
    if audience is None:
        return {"error": "Choose an audience to see the preview."}
    draft = Notice(
        audience=audience,
        rollout=data.get("rollout"),
        release=data.get("release") or (data["rollout"].release if data.get("rollout") else None),
        subject=subject,
        body=body,
    )
    try:
        context, _facts = services.notice_context(draft, now=now)
        rendered = templating.render(subject=subject, body=body, context=context)
    except ApplicationError as exc:
        return {"error": exc.message}
    kinds = {c.kind for c in audience.channels.all() if c.is_enabled}
    empty = [
        name
        for name in rendered.variables
        if context.get(name) in ("", None) and name != "doc_links"
    ]
    message = senders.Message(
        delivery_id="00000000-0000-0000-0000-000000000000",
        channel_kind="email",
        url="",
        signing_secret="",
        recipient="",
        event="custom",
        subject=rendered.subject,
        text=rendered.text,
        markdown=rendered.markdown,
        html=rendered.html,
        slack=rendered.slack,
        payload={},
    )
    previews = []
    for kind, label in Channel.Kind.choices:
        shaped = senders.preview(senders.Message(**{**message.__dict__, "channel_kind": kind}))
        previews.append(
            {
                "kind": kind,
                "label": label,
                "used": kind in kinds,
                "html": rendered.html if kind == Channel.Kind.EMAIL else "",
                "text": rendered.text if kind == Channel.Kind.EMAIL else "",
                "json": "" if kind == Channel.Kind.EMAIL else json.dumps(shaped, indent=2),
            }
        )
    return {"subject": rendered.subject, "previews": previews, "kinds": kinds, "empty": empty}


def _compose_response(
    request: AuthenticatedHttpRequest, form: ComposeForm, notice: Notice | None, preview: Any = None
) -> HttpResponse:
    context = {
        "form": form,
        "notice": notice,
        "preview": preview,
        "variables": templating.VARIABLES,
        "templates": selectors.template_list(),
    }
    return render_page(request, "comms/compose.html", context, status=400 if form.errors else 200)


def _save_composed(
    request: AuthenticatedHttpRequest, form: ComposeForm, notice: Notice | None
) -> Notice:
    data = form.cleaned_data
    when = data["when"]
    now = timezone.now()
    if notice is None:
        return services.notice_create(
            audience=data["audience"],
            subject=data["subject"],
            body=data["body"],
            actor=request.user,
            rollout=data.get("rollout"),
            release=data.get("release"),
            send_at=data.get("send_at") if when == "schedule" else None,
            send_now=when == "now",
            now=now,
        )
    notice = services.notice_update(
        notice=notice,
        actor=request.user,
        subject=data["subject"],
        body=data["body"],
        audience=data["audience"],
        send_at=data.get("send_at") if when == "schedule" else None,
        now=now,
    )
    if when == "now":
        notice = services.notice_send_now(notice=notice, actor=request.user, now=now)
    return notice


def _compose(request: AuthenticatedHttpRequest, notice: Notice | None) -> HttpResponse:
    if request.method == "POST":
        form = ComposeForm(request.POST)
        if not form.is_valid():
            return _compose_response(request, form, notice)
        if request.POST.get("action") == "preview":
            return _compose_response(request, form, notice, _preview(form, now=timezone.now()))
        try:
            saved = _save_composed(request, form, notice)
        except ApplicationError as exc:
            _form_error(form, exc)
            return _compose_response(request, form, notice)
        words = {
            Notice.State.DRAFT: "saved as a draft",
            Notice.State.SCHEDULED: "scheduled",
        }.get(Notice.State(saved.state), "on its way")
        messages.success(request, f"The notice to {saved.audience.name} is {words}.")
        return redirect("comms:notice", pk=saved.pk)
    if notice is not None:
        local = (
            timezone.localtime(notice.send_at, templating.zone(notice.audience.timezone))
            if notice.send_at
            else None
        )
        initial = {
            "audience": notice.audience_id,
            "rollout": notice.rollout_id,
            "release": notice.release_id,
            "subject": notice.subject,
            "body": notice.body,
            "when": "schedule" if notice.send_at else "draft",
            "send_at": local.replace(tzinfo=None) if local else None,
        }
    else:
        initial = _compose_initial(request)
    return _compose_response(request, ComposeForm(initial=initial), notice)


@require("comms.add_notice", "write notices")
def compose(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _compose(request, None)


@require("comms.change_notice", "edit notices")
def notice_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    notice = get_object_or_404(Notice.objects.select_related("audience"), pk=pk)
    if not notice.is_editable:
        messages.error(request, "Only drafts and scheduled notices can be edited.")
        return redirect("comms:notice", pk=pk)
    return _compose(request, notice)


@require("comms.add_notice", "write notices")
@require_POST
def compose_preview(request: AuthenticatedHttpRequest) -> HttpResponse:
    """htmx: the per-channel preview of the composer's current text."""
    form = ComposeForm(request.POST)
    form.is_valid()  # partial input still previews; errors show in the form on submit
    preview = _preview(form, now=timezone.now())
    return render_page(
        request, "comms/compose.html", {"preview": preview, "form": form}, partial="preview"
    )


def _notice_action(request: AuthenticatedHttpRequest, pk: int, action: str) -> HttpResponse:
    notice = get_object_or_404(Notice, pk=pk)
    back = reverse("comms:notice", args=[pk])
    try:
        if action == "send":
            services.notice_send_now(notice=notice, actor=request.user)
            message = "Sending the notice now."
        elif action == "cancel":
            services.notice_cancel(
                notice=notice, actor=request.user, reason=request.POST.get("reason", "")[:200]
            )
            message = "The notice is cancelled."
        else:
            count = services.notice_retry(notice=notice, actor=request.user)
            message = f"Retrying {count} failed deliver{'y' if count == 1 else 'ies'}."
    except ApplicationError as exc:
        return _fail(request, exc, back)
    return done(request, message=message, redirect_to=back, events=["noticeChanged"])


@require("comms.change_notice", "send notices")
@require_POST
def notice_send(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _notice_action(request, pk, "send")


@require("comms.change_notice", "cancel notices")
@require_POST
def notice_cancel(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _notice_action(request, pk, "cancel")


@require("comms.change_notice", "retry notices")
@require_POST
def notice_retry(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _notice_action(request, pk, "retry")


@require("comms.change_notice", "retry deliveries")
@require_POST
def delivery_retry(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("notice"), pk=pk)
    back = request.POST.get("next") or reverse("comms:notice", args=[delivery.notice_id])
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("comms:notice", args=[delivery.notice_id])
    try:
        services.delivery_retry(delivery=delivery, actor=request.user)
    except ApplicationError as exc:
        return _fail(request, exc, back)
    return done(
        request, message="Retrying the delivery.", redirect_to=back, events=["noticeChanged"]
    )


# --------------------------------------------------------------------------------------------
# Templates (release managers)


@require("comms.view_noticetemplate", "see notice templates")
@require_GET
def templates(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render_page(
        request,
        "comms/templates.html",
        {"templates": selectors.template_list(), "variables": templating.VARIABLES},
    )


def _template_preview(subject: str, body: str) -> dict[str, Any]:
    try:
        rendered = templating.render(
            subject=subject, body=body, context=templating.sample_context(now=timezone.now())
        )
    except ApplicationError as exc:
        return {"error": exc.message}
    return {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}


def _template_form(
    request: AuthenticatedHttpRequest, template: NoticeTemplate | None
) -> HttpResponse:
    if request.method == "POST":
        form = TemplateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                if template is None:
                    template = services.template_create(actor=request.user, **data)
                else:
                    template = services.template_update(
                        template=template, actor=request.user, **data
                    )
            except ApplicationError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Template {template.name!r} saved.")
                return redirect("comms:templates")
    elif template is not None:
        form = TemplateForm(
            initial={
                "name": template.name,
                "event": template.event,
                "subject": template.subject,
                "body": template.body,
                "is_default": template.is_default,
            }
        )
    else:
        event = request.GET.get("event", "custom")
        subject, body = templating.BUILTIN_TEMPLATES.get(
            event, templating.BUILTIN_TEMPLATES["custom"]
        )
        form = TemplateForm(initial={"event": event, "subject": subject, "body": body})
    return render_page(
        request,
        "comms/template_form.html",
        {"form": form, "template": template, "variables": templating.VARIABLES},
        status=400 if form.errors else 200,
    )


@require("comms.add_noticetemplate", "write notice templates")
def template_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _template_form(request, None)


@require("comms.change_noticetemplate", "edit notice templates")
def template_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _template_form(request, get_object_or_404(NoticeTemplate, pk=pk))


@require("comms.view_noticetemplate", "see notice templates")
@require_POST
def template_preview(request: AuthenticatedHttpRequest) -> HttpResponse:
    preview = _template_preview(request.POST.get("subject", ""), request.POST.get("body", ""))
    return render_page(
        request, "comms/template_form.html", {"preview": preview}, partial="template-preview"
    )


@require("comms.delete_noticetemplate", "delete notice templates")
@require_POST
def template_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(NoticeTemplate, pk=pk)
    services.template_delete(template=template, actor=request.user)
    return done(
        request,
        message=f"Template {template.name!r} deleted.",
        redirect_to=reverse("comms:templates"),
        events=["templatesChanged"],
    )


# --------------------------------------------------------------------------------------------
# Audiences and channels (admins change them; channels are secrets)


@require("comms.view_audience", "see audiences")
@require_GET
def audiences(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render_page(request, "comms/audiences.html", {"audiences": selectors.audience_list()})


@require("comms.view_audience", "see audiences")
@require_GET
def audience_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    try:
        audience = selectors.audience_detail(audience_id=pk)
    except Audience.DoesNotExist as exc:
        raise Http404("No such audience.") from exc
    can_see_channels = request.user.has_perm("comms.view_channel")
    context = {
        "audience": audience,
        "channels": list(audience.channels.all()) if can_see_channels else None,
        "channel_count": len(audience.channels.all()),
        "new_secret": request.session.pop("comms_new_secret", None),
    }
    return render_page(request, "comms/audience_detail.html", context)


def _audience_form(request: AuthenticatedHttpRequest, audience: Audience | None) -> HttpResponse:
    if request.method == "POST":
        form = AudienceForm(request.POST)
        if form.is_valid():
            try:
                if audience is None:
                    audience = services.audience_create(actor=request.user, **form.cleaned_data)
                else:
                    audience = services.audience_update(
                        audience=audience, actor=request.user, **form.cleaned_data
                    )
            except ApplicationError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Audience {audience.name!r} saved.")
                return redirect("comms:audience", pk=audience.pk)
    elif audience is not None:
        form = AudienceForm(
            initial={
                "name": audience.name,
                "kind": audience.kind,
                "timezone": audience.timezone,
                "description": audience.description,
                "contacts": "\n".join(
                    f"{c['name']} <{c['email']}>" if c.get("name") else c["email"]
                    for c in audience.contacts
                ),
            }
        )
    else:
        form = AudienceForm()
    return render_page(
        request,
        "comms/audience_form.html",
        {"form": form, "audience": audience},
        status=400 if form.errors else 200,
    )


@require("comms.add_channel", ADMIN_WHAT)
def audience_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _audience_form(request, None)


@require("comms.change_channel", ADMIN_WHAT)
def audience_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _audience_form(request, get_object_or_404(Audience, pk=pk))


@require("comms.delete_channel", ADMIN_WHAT)
@require_POST
def audience_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    audience = get_object_or_404(Audience, pk=pk)
    try:
        services.audience_delete(audience=audience, actor=request.user)
    except ApplicationError as exc:
        return _fail(request, exc, reverse("comms:audience", args=[pk]))
    return done(
        request, message=f"Audience {audience.name!r} deleted.",
        redirect_to=reverse("comms:audiences"),
    )  # fmt: skip


def _channel_form(
    request: AuthenticatedHttpRequest, audience: Audience, channel: Channel | None
) -> HttpResponse:
    if request.method == "POST":
        posted: QueryDict = request.POST
        if channel is not None and "kind" not in posted:
            # The kind of a saved channel never changes: its select is disabled when editing.
            posted = posted.copy()
            posted["kind"] = channel.kind
        form = ChannelForm(posted)
        if form.is_valid():
            data = form.cleaned_data
            try:
                if channel is None:
                    channel = services.channel_create(audience=audience, actor=request.user, **data)
                    if channel.signing_secret:
                        request.session["comms_new_secret"] = {
                            "channel": channel.name,
                            "secret": channel.signing_secret,
                        }
                else:
                    data.pop("kind")
                    channel = services.channel_update(channel=channel, actor=request.user, **data)
            except ApplicationError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, f"Channel {channel.name!r} saved.")
                return redirect("comms:audience", pk=audience.pk)
    elif channel is not None:
        form = ChannelForm(
            initial={
                "kind": channel.kind,
                "name": channel.name,
                "recipients": "\n".join(channel.recipients),
                "is_enabled": channel.is_enabled,
            }
        )
        form.fields["kind"].disabled = True
    else:
        form = ChannelForm(initial={"kind": request.GET.get("kind", Channel.Kind.EMAIL)})
    return render_page(
        request,
        "comms/channel_form.html",
        {"form": form, "audience": audience, "channel": channel},
        status=400 if form.errors else 200,
    )


@require("comms.add_channel", ADMIN_WHAT)
def channel_create(request: AuthenticatedHttpRequest, audience_pk: int) -> HttpResponse:
    return _channel_form(request, get_object_or_404(Audience, pk=audience_pk), None)


@require("comms.change_channel", ADMIN_WHAT)
def channel_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(Channel.objects.select_related("audience"), pk=pk)
    return _channel_form(request, channel.audience, channel)


@require("comms.change_channel", ADMIN_WHAT)
@require_POST
def channel_rotate(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=pk)
    back = reverse("comms:audience", args=[channel.audience_id])
    try:
        secret = services.channel_rotate_secret(channel=channel, actor=request.user)
    except ApplicationError as exc:
        return _fail(request, exc, back)
    request.session["comms_new_secret"] = {"channel": channel.name, "secret": secret}
    messages.success(request, "New signing secret: copy it now, it is shown only once.")
    return redirect(back)


@require("comms.delete_channel", ADMIN_WHAT)
@require_POST
def channel_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=pk)
    back = reverse("comms:audience", args=[channel.audience_id])
    services.channel_delete(channel=channel, actor=request.user)
    return done(request, message=f"Channel {channel.name!r} deleted.", redirect_to=back)


# --------------------------------------------------------------------------------------------
# Communication plan of a rollout


@require("comms.view_communicationplan", "see communication plans")
def plan(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout = get_object_or_404(Rollout.objects.select_related("release", "environment"), key=key)
    form = PlanRuleForm()
    if request.method == "POST":
        if not request.user.has_perm("comms.change_communicationplan"):
            from django.core.exceptions import PermissionDenied

            from core.roles import permission_denied_message

            raise PermissionDenied(
                permission_denied_message("comms.change_communicationplan", "change plans")
            )
        form = PlanRuleForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.plan_rule_create(
                    rollout=rollout,
                    audience=data["audience"],
                    event=data["event"],
                    phases=data["phases"],
                    lead_time=form.lead_time(),
                    template=data.get("template"),
                    is_enabled=data.get("is_enabled", False),
                    actor=request.user,
                )
            except ApplicationError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, "Rule added to the communication plan.")
                return redirect("comms:plan", key=key)
    stored, rules = selectors.plan_rules(rollout)
    context = {
        "rollout": rollout,
        "plan": stored,
        "rules": rules,
        "planned": selectors.planned_notices(rollout, timezone.now()),
        "form": form,
    }
    return render_page(request, "comms/plan.html", context, status=400 if form.errors else 200)


@require("comms.change_communicationplan", "change plans")
def plan_rule_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(PlanRule.objects.select_related("plan__rollout", "audience"), pk=pk)
    rollout = rule.plan.rollout
    if request.method == "POST":
        form = PlanRuleForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.plan_rule_update(
                    rule=rule,
                    actor=request.user,
                    audience=data["audience"],
                    event=data["event"],
                    phases=data["phases"],
                    lead_time=form.lead_time(),
                    template=data.get("template"),
                    is_enabled=data.get("is_enabled", False),
                )
            except ApplicationError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, "Plan rule saved.")
                return redirect("comms:plan", key=rollout.key)
    else:
        form = PlanRuleForm(initial=PlanRuleForm.initial_for(rule))
    return render_page(
        request,
        "comms/plan_rule_form.html",
        {"form": form, "rule": rule, "rollout": rollout},
        status=400 if form.errors else 200,
    )


@require("comms.change_communicationplan", "change plans")
@require_POST
def plan_rule_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(PlanRule.objects.select_related("plan__rollout"), pk=pk)
    key = rule.plan.rollout.key
    services.plan_rule_delete(rule=rule, actor=request.user)
    return done(request, message="Rule removed.", redirect_to=reverse("comms:plan", args=[key]))


@require("comms.change_communicationplan", "change plans")
@require_POST
def plan_reset(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    rollout = get_object_or_404(Rollout, key=key)
    services.plan_reset(rollout=rollout, actor=request.user)
    return done(
        request,
        message="The plan is back to the strategy's defaults.",
        redirect_to=reverse("comms:plan", args=[key]),
    )
