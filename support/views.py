"""Support pages: the changelog with live exposure, release detail with doc links, customer
lookup and the public release notes (the dashboard panel is in support/apps.py).

Support staff only read here; doc-link forms are for release managers (comms.*_doclink).
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from comms.models import DocLink
from core import services as core_services
from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, HtmxHttpRequest, done, render_page
from core.models import FeedToken
from core.roles import require
from core.selectors import feed_token_get
from flags.models import Flag
from rollouts.models import Release
from support import selectors, services
from support.forms import ChangelogFilterForm, CustomerLookupForm, DocLinkForm

CHANGELOG_PERM = "rollouts.view_release"
LOOKUP_PERM = "flags.view_flag"
DOCLINKS_CHANGED = "docLinksChanged"


def _feed_url(request: AuthenticatedHttpRequest) -> str:
    """The changelog feed address, or "" until the person creates one (POST)."""
    token = feed_token_get(user=request.user, scope=FeedToken.Scope.CHANGELOG)
    if token is None:
        return ""
    return request.build_absolute_uri(reverse("support:changelog_feed", args=[token.token]))


def _link_perms(request: HttpRequest) -> dict[str, bool]:
    user = request.user
    return {
        "can_add_link": user.has_perm("comms.add_doclink"),
        "can_change_link": user.has_perm("comms.change_doclink"),
        "can_delete_link": user.has_perm("comms.delete_doclink"),
    }


# --------------------------------------------------------------------------------------------
# Changelog


@require(CHANGELOG_PERM, "read the changelog")
def changelog(request: AuthenticatedHttpRequest) -> HttpResponse:
    environments = selectors.environments()
    form = ChangelogFilterForm(request.GET or None, environments=environments)
    filters = form.filters(page=request.GET.get("page", 1)) if request.GET else None
    result = selectors.changelog(filters=filters or selectors.ChangelogFilters())
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "result": result,
        "query": query.urlencode(),
        # Templates call callables: the token is only read (or made) when the page shows it,
        # not for htmx requests that swap the results alone.
        "feed_url": lambda: _feed_url(request),
        "label_choices": Release.Label.choices,
        **_link_perms(request),
    }
    return render_page(request, "support/changelog.html", context, partial="changelog-results")


@require(CHANGELOG_PERM, "read the changelog")
def release_detail(request: AuthenticatedHttpRequest, release_id: int) -> HttpResponse:
    view = selectors.release_for_support(release_id=release_id)
    if view is None:
        raise Http404("No such release.")
    context = {"item": view, **_link_perms(request)}
    return render_page(request, "support/release.html", context, partial="doc-links")


@require(CHANGELOG_PERM, "read the changelog")
def release_exposure(request: AuthenticatedHttpRequest, release_id: int) -> HttpResponse:
    """The live exposure region of a release, polled while any rollout can still move."""
    view = selectors.release_for_support(release_id=release_id)
    if view is None:
        raise Http404("No such release.")
    context = {"item": view, **_link_perms(request)}
    response = render_page(request, "support/release.html#exposure", context)
    if all(r.rollout.is_final for r in view.rollouts):
        # Nothing can move any more: htmx stops polling on 286.
        return HttpResponseStopPolling(response.content)
    return response


# --------------------------------------------------------------------------------------------
# Doc links (release managers)


def _doclink_form_page(
    request: HttpRequest,
    form: DocLinkForm,
    *,
    owner_name: str,
    back_url: str,
    link: DocLink | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {"form": form, "owner_name": owner_name, "back_url": back_url, "link": link}
    return render_page(request, "support/doclink_form.html", context, status=status)


def _apply_error(form: DocLinkForm, exc: ApplicationError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


def _doclink_create(
    request: AuthenticatedHttpRequest, *, release: Release | None, flag: Flag | None, back_url: str
) -> HttpResponse:
    owner_name = str(release) if release is not None else f"flag {flag}"
    if request.method == "POST":
        form = DocLinkForm(request.POST)
        if form.is_valid():
            try:
                services.doclink_create(
                    release=release, flag=flag, actor=request.user, **form.cleaned_data
                )
            except ApplicationError as exc:
                _apply_error(form, exc)
            else:
                return done(
                    request,
                    message=f"Link “{form.cleaned_data['title']}” added.",
                    redirect_to=back_url,
                    events=[DOCLINKS_CHANGED],
                )
        return _doclink_form_page(
            request, form, owner_name=owner_name, back_url=back_url, status=400
        )
    return _doclink_form_page(request, DocLinkForm(), owner_name=owner_name, back_url=back_url)


@require("comms.add_doclink", "add doc links")
@require_http_methods(["GET", "POST"])
def release_doclink_create(request: AuthenticatedHttpRequest, release_id: int) -> HttpResponse:
    release = get_object_or_404(Release, pk=release_id)
    back = reverse("support:release", args=[release.pk])
    return _doclink_create(request, release=release, flag=None, back_url=back)


@require("comms.add_doclink", "add doc links")
@require_http_methods(["GET", "POST"])
def flag_doclink_create(request: AuthenticatedHttpRequest, flag_key: str) -> HttpResponse:
    flag = get_object_or_404(Flag, key=flag_key)
    back = request.GET.get("next") or request.POST.get("next") or ""
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("support:changelog")
    return _doclink_create(request, release=None, flag=flag, back_url=back)


def _back_url(link: DocLink) -> str:
    if link.release_id:
        return reverse("support:release", args=[link.release_id])
    return reverse("support:changelog")


@require("comms.change_doclink", "edit doc links")
@require_http_methods(["GET", "POST"])
def doclink_edit(request: AuthenticatedHttpRequest, link_id: int) -> HttpResponse:
    link = get_object_or_404(DocLink.objects.select_related("release", "flag"), pk=link_id)
    owner_name = str(link.release) if link.release_id else f"flag {link.flag}"
    back = _back_url(link)
    if request.method == "POST":
        form = DocLinkForm(request.POST)
        if form.is_valid():
            try:
                services.doclink_update(doclink=link, actor=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                _apply_error(form, exc)
            else:
                return done(
                    request,
                    message=f"Link “{form.cleaned_data['title']}” saved.",
                    redirect_to=back,
                    events=[DOCLINKS_CHANGED],
                )
        return _doclink_form_page(
            request, form, owner_name=owner_name, back_url=back, link=link, status=400
        )
    form = DocLinkForm(
        initial={
            "title": link.title,
            "url": link.url,
            "kind": link.kind,
            "visibility": link.visibility,
        }
    )
    return _doclink_form_page(request, form, owner_name=owner_name, back_url=back, link=link)


@require("comms.delete_doclink", "delete doc links")
@require_http_methods(["GET", "POST"])
def doclink_delete(request: AuthenticatedHttpRequest, link_id: int) -> HttpResponse:
    link = get_object_or_404(DocLink.objects.select_related("release", "flag"), pk=link_id)
    back = _back_url(link)
    if request.method == "POST":
        title = link.title
        services.doclink_delete(doclink=link, actor=request.user)
        return done(
            request,
            message=f"Link “{title}” deleted.",
            redirect_to=back,
            events=[DOCLINKS_CHANGED],
        )
    # The confirmation page: the no-JavaScript path of the delete button.
    return render_page(request, "support/doclink_delete.html", {"link": link, "back_url": back})


@require("comms.change_doclink", "check doc links")
@require_POST
def doclink_check(request: AuthenticatedHttpRequest, link_id: int) -> HttpResponse:
    link = get_object_or_404(DocLink, pk=link_id)
    checked = services.doclink_check(doclink_id=link.pk, timeout=3.0)
    if checked is None:
        raise Http404("No such link.")
    message = (
        f"“{checked.title}” works (HTTP {checked.status_code})."
        if checked.status == DocLink.Status.OK
        else f"“{checked.title}” is broken: {checked.last_error}"
    )
    return done(request, message=message, redirect_to=_back_url(link), events=[DOCLINKS_CHANGED])


# --------------------------------------------------------------------------------------------
# Customer lookup


@require(LOOKUP_PERM, "look up what a customer sees")
def customer_lookup(request: AuthenticatedHttpRequest) -> HttpResponse:
    environments = selectors.environments()
    form = CustomerLookupForm(request.GET or None, environments=environments)
    result = None
    if request.GET and form.is_valid():
        result = selectors.customer_lookup(
            context=form.ofrep_context(),
            environment_key=form.cleaned_data.get("environment") or "",
            flag_filter=form.cleaned_data.get("q") or "",
            page=request.GET.get("page"),
        )
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "result": result, "query": query.urlencode()}
    return render_page(request, "support/lookup.html", context, partial="lookup-results")


# --------------------------------------------------------------------------------------------
# Feed token


@require(CHANGELOG_PERM, "subscribe to the changelog")
@require_POST
def feed_token_reset(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Create the changelog feed link, reset it (op=reset, the default) or revoke it."""
    scope = FeedToken.Scope.CHANGELOG
    op = request.POST.get("op", "reset")
    if op == "revoke":
        core_services.feed_token_revoke(user=request.user, scope=scope)
        message = "Your feed address was revoked; it no longer works."
    else:
        had = feed_token_get(user=request.user, scope=scope) is not None
        core_services.feed_token_create(user=request.user, scope=scope)
        message = (
            "Your feed address was replaced; the old one no longer works."
            if had
            else "Your personal feed address was created."
        )
    return done(
        request,
        message=message,
        redirect_to=reverse("support:changelog") + "#subscribe",
        events=["feedTokenChanged"],
    )


# --------------------------------------------------------------------------------------------
# Public release notes (no login)


def release_notes(request: HtmxHttpRequest) -> HttpResponse:
    label = request.GET.get("label", "")
    if label not in Release.Label.values:
        label = ""
    page, releases = selectors.public_releases(page=request.GET.get("page", 1), label=label)
    context = {
        "page": page,
        "releases": releases,
        "label": label,
        "label_choices": Release.Label.choices,
    }
    return render_page(request, "support/release_notes.html", context)


def public_release_detail(request: HttpRequest, release_id: int) -> HttpResponse:
    item = selectors.public_release(release_id=release_id)
    if item is None:
        raise Http404("No such release notes.")
    return render_page(request, "support/public_release.html", {"item": item})
