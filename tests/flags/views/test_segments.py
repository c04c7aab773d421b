"""flags.views.segments at its boundary: create, edit, delete, read-only for support."""

from __future__ import annotations

from django.urls import reverse

from flags.models import Segment
from tests.flags.views.helpers import HTMX, main_html

# --------------------------------------------------------------------------------------------
# Segments


def _segment_data(name, constraints, **extra):
    data = {
        "name": name,
        "description": extra.pop("description", ""),
        "expected_version": extra.pop("expected_version", ""),
        "seg-c-TOTAL_FORMS": str(len(constraints)),
        "seg-c-INITIAL_FORMS": str(len(constraints)),
        "seg-c-MIN_NUM_FORMS": "0",
        "seg-c-MAX_NUM_FORMS": "50",
    }
    for i, (field, operator, values) in enumerate(constraints):
        data[f"seg-c-{i}-context_name"] = field
        data[f"seg-c-{i}-operator"] = operator
        data[f"seg-c-{i}-values"] = values
    data.update(extra)
    return data


def test_segment_create__valid__redirects_to_segment(rm_client, db):
    response = rm_client.post(
        reverse("flags:segment_create"),
        _segment_data("Beta testers", [("userId", "IN", "beta-1\nbeta-2")]),
    )

    segment = Segment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("flags:segment", args=[segment.pk])
    assert segment.constraints[0]["values"] == ["beta-1", "beta-2"]


def test_segment_create__constraint_without_values__field_error(rm_client, db):
    response = rm_client.post(
        reverse("flags:segment_create"), _segment_data("Empty", [("userId", "IN", "")])
    )

    assert response.status_code == 400
    assert "Give at least one value." in response.content.decode()
    assert not Segment.objects.exists()


def test_segment_update__htmx__saved(rm_client, beta):
    url = reverse("flags:segment", args=[beta.pk])
    data = _segment_data("Beta testers", [("userId", "IN", "beta-9")], expected_version="1")

    response = rm_client.post(url, data, **HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == url
    beta.refresh_from_db()
    assert beta.constraints[0]["values"] == ["beta-9"]


def test_segment_delete__in_use__refused_with_message(rm_client, rolled_out, beta):
    response = rm_client.post(reverse("flags:segment_delete", args=[beta.pk]), follow=True)

    assert "is used by 1 rule(s): new-checkout (Staging, rule 1)" in response.content.decode()
    assert Segment.objects.filter(pk=beta.pk).exists()


def test_segment_pages__support__read_only(support_client, beta):
    page = support_client.get(reverse("flags:segment", args=[beta.pk]))

    assert page.status_code == 200
    assert "userId is one of [beta-1, beta-2]" in main_html(page)
    assert 'method="post"' not in main_html(page)
    assert support_client.post(reverse("flags:segment", args=[beta.pk]), {}).status_code == 403
    assert support_client.get(reverse("flags:segment_create")).status_code == 403
