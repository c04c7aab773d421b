"""Segments: the list with where each is used, create, edit, delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.exceptions import ApplicationError
from core.http import AuthenticatedHttpRequest, render_page
from core.roles import permission_denied_message, require
from flags import services, ui_selectors
from flags.forms import CONTEXT_FIELDS, SegmentForm, constraint_formset, formset_constraints
from flags.models import Segment
from flags.views.common import constraint_text, created_redirect, form_error, form_status


@require_GET
@require("flags.view_segment")
def segment_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    segments = ui_selectors.segments()
    usage = services.segment_usage()
    rows = [(segment, usage.get(segment.pk, [])) for segment in segments]
    return render(request, "flags/segments.html", {"rows": rows})


def _segment_page(
    request: AuthenticatedHttpRequest,
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
        context["constraint_lines"] = [constraint_text(c) for c in segment.constraints]
    return render_page(
        request, "flags/segment.html", context, partial="segment-form", status=status
    )


@require("flags.add_segment")
def segment_create(request: AuthenticatedHttpRequest) -> HttpResponse:
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
            form_error(form, exc)
        else:
            return created_redirect(
                request,
                reverse("flags:segment", args=[segment.pk]),
                f"Segment {segment.name} created.",
            )
    return _segment_page(
        request, None, form, constraints, status=form_status(request, failed=final)
    )


@require("flags.view_segment")
def segment_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
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
            form_error(form, exc)
        else:
            return created_redirect(
                request,
                reverse("flags:segment", args=[segment.pk]),
                f"Segment {segment.name} saved.",
            )
    return _segment_page(
        request, segment, form, constraints, status=form_status(request, failed=final)
    )


@require_POST
@require("flags.delete_segment")
def segment_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    try:
        services.segment_delete(segment=segment, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        url = reverse("flags:segment", args=[pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return created_redirect(request, reverse("flags:segments"), f"Segment {segment.name} deleted.")
