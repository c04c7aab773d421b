"""Release pages: the list, one release with its pipeline across environments, create and
edit.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import messages
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest
from core.markdown import render_markdown
from core.roles import require
from rollouts import selectors, services
from rollouts.forms import ReleaseForm
from rollouts.models import Release


@require("rollouts.view_release")
def release_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    rows, page = selectors.release_list_page(page=request.GET.get("page"))
    context = {
        "releases": rows,
        "page": page,
        "can_add": request.user.has_perm("rollouts.add_release"),
    }
    return render(request, "rollouts/releases.html", context)


@require("rollouts.view_release")
def release_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    try:
        row = selectors.release_detail(pk=pk)
    except Release.DoesNotExist:
        raise Http404("No such release.") from None
    context = {
        "row": row,
        "pipeline": selectors.release_pipeline(row),
        "release": row.release,
        "changelog_html": render_markdown(row.release.changelog),
        "known_issues_html": render_markdown(row.release.known_issues),
        "can_change": request.user.has_perm("rollouts.change_release"),
        "can_add_rollout": request.user.has_perm("rollouts.add_rollout"),
    }
    return render(request, "rollouts/release_detail.html", context)


@require("rollouts.add_release", "create releases")
@require_http_methods(["GET", "POST"])
def release_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ReleaseForm(request.POST or None)
    # Opened from the New rollout form: go back to it with the new release chosen.
    back = request.POST.get("next") or request.GET.get("next") or ""
    back = back if back.startswith(reverse("rollouts:new")) else ""
    if request.method == "POST" and form.is_valid():
        try:
            release = services.release_create(**form.cleaned_data, actor=request.user)
        except ApplicationError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Release {release} created.")
            if back:
                query = QueryDict(mutable=True)
                query.update(QueryDict(urlsplit(back).query))
                query["release"] = str(release.pk)
                return redirect(f"{reverse('rollouts:new')}?{query.urlencode()}")
            return redirect("rollouts:release_detail", pk=release.pk)
    return render(
        request, "rollouts/release_form.html", {"form": form, "release": None, "next": back}
    )


@require("rollouts.change_release", "edit releases")
@require_http_methods(["GET", "POST"])
def release_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    release = Release.objects.prefetch_related("flags").filter(pk=pk).first()
    if release is None:
        raise Http404("No such release.")
    if request.method == "POST":
        form = ReleaseForm(request.POST)
        if form.is_valid():
            try:
                release = services.release_update(
                    release=release, actor=request.user, **form.cleaned_data
                )
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Release {release} saved.")
                return redirect("rollouts:release_detail", pk=release.pk)
    else:
        form = ReleaseForm(initial=ReleaseForm.initial_for(release))
    return render(request, "rollouts/release_form.html", {"form": form, "release": release})
