"""Communication pages on the release manager's path: back to the rollout, notices that read
as they will be sent, and the list in the order of the times it shows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from comms.models import Notice
from tests.comms.factories import AudienceFactory, NoticeFactory, started_rollout

pytestmark = pytest.mark.django_db


def test_plan_page__links_back_to_its_rollout(rm_client):
    rollout = started_rollout(10, 100, now=timezone.now())
    html = rm_client.get(reverse("comms:plan", args=[rollout.key])).content.decode()
    detail = reverse("rollouts:detail", args=[rollout.key])
    assert f'<a class="btn" href="{detail}">Back to the rollout</a>' in html
    crumbs = html.split('class="crumbs"', 1)[1].split("</nav>", 1)[0]
    assert f'href="{detail}"' in crumbs


def test_notice_detail__scheduled__shows_the_filled_in_text_not_the_template(rm_client):
    audience = AudienceFactory(name="Customer support")
    notice = NoticeFactory(
        audience=audience,
        state=Notice.State.SCHEDULED,
        send_at=timezone.now() + timedelta(days=1),
        subject="Hello {{ audience.name }}",
        body="A message for {{ audience.name }}.",
    )
    html = rm_client.get(reverse("comms:notice", args=[notice.pk])).content.decode()
    message = html.split('id="content-title"', 1)[1]
    shown = message.split("<details>", 1)[0]
    assert "Hello Customer support" in shown and "A message for Customer support." in shown
    assert "{{" not in shown
    assert "{{ audience.name }}" in message.split("<details>", 1)[1]  # the template, folded


def test_notice_list__newest_first_says_by_what_and_shows_it(rm_client):
    now = timezone.now()
    audience = AudienceFactory(name="Ops")
    # Written in this order, due or sent at other times: the list is by the time written,
    # and shows that time next to the due/sent one (so the order is visible).
    for subject, days in (("note A", 1), ("note B", -7), ("note C", 7)):
        NoticeFactory(audience=audience, subject=subject, state=Notice.State.SCHEDULED,
                      send_at=now + timedelta(days=days))  # fmt: skip
    html = rm_client.get(reverse("comms:notices")).content.decode()
    order = [html.index(s) for s in ("note C", "note B", "note A")]
    assert order == sorted(order)
    assert "Newest written first" in html
    assert '<th scope="col">Written</th><th scope="col">Due or sent</th>' in html
