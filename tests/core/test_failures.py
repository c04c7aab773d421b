"""The Failures page (Admins): stuck and dead items from every app, Retry and Discard without
JavaScript, Discard confirmed and recorded with who and why; a dashboard panel counts them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import DiscardedFailure
from rollouts import services as rollout_services
from rollouts.models import AdvanceFailure, Hold, Rollout, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, make_rollout, soak_plan

pytestmark = pytest.mark.django_db

MIN = timedelta(minutes=1)


@pytest.fixture
def failing_rollout(settings):
    """A running rollout whose scheduled step failed once (its strategy no longer exists)."""
    settings.ROLLCALL_RETRY_MAX_ATTEMPTS = 3
    now = timezone.now()
    rollout = make_rollout(
        environment=EnvironmentFactory(), phases=soak_plan(10, 100, soak=10 * MIN)
    )
    rollout_services.rollout_start(
        rollout=rollout, actor=None, source=RolloutEvent.Source.UI, now=now - 20 * MIN
    )
    Rollout.objects.filter(pk=rollout.pk).update(strategy="retired-strategy")
    rollout_services.rollouts_advance_due(now=now)
    return Rollout.objects.get(pk=rollout.pk)


def test_failures_page__release_manager__403_naming_the_role(rm_client):
    response = rm_client.get(reverse("failures"))
    assert response.status_code == 403
    assert "Admins" in response.content.decode()


def test_failures_page__nothing_failing__says_so(admin_client_role):
    response = admin_client_role.get(reverse("failures"))
    assert response.status_code == 200
    assert "Nothing is failing" in response.content.decode()


def test_failures_page__failing_step__listed_with_error_and_actions(
    admin_client_role, failing_rollout
):
    response = admin_client_role.get(reverse("failures"))
    html = response.content.decode()
    assert f"Rollout {failing_rollout.key}: phase 2" in html
    assert "Unknown strategy &#x27;retired-strategy&#x27;" in html
    assert "Stuck" in html
    source, key = "rollouts-advance", str(failing_rollout.pk)
    assert reverse("failure-retry", args=[source, key]) in html
    assert reverse("failure-discard", args=[source, key]) in html


def test_failure_discard__get__confirmation_page_asks_why(admin_client_role, failing_rollout):
    url = reverse("failure-discard", args=["rollouts-advance", failing_rollout.pk])
    response = admin_client_role.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Discard a failed item?" in html
    assert 'name="reason"' in html
    assert AdvanceFailure.objects.filter(rollout=failing_rollout).exists()  # nothing done yet


def test_failure_discard__no_reason__form_error_nothing_discarded(
    admin_client_role, failing_rollout
):
    url = reverse("failure-discard", args=["rollouts-advance", failing_rollout.pk])
    response = admin_client_role.post(url, {"reason": "  "})
    assert response.status_code == 400
    assert "Say why this item is discarded." in response.content.decode()
    assert not DiscardedFailure.objects.exists()


def test_failure_discard__with_reason__recorded_who_and_why_rollout_held(
    admin_client_role, admin_user_role, failing_rollout
):
    url = reverse("failure-discard", args=["rollouts-advance", failing_rollout.pk])
    response = admin_client_role.post(url, {"reason": "Strategy retired; rolling back by hand."})

    assert response.status_code == 302
    assert response.url == reverse("failures")
    record = DiscardedFailure.objects.get()
    assert record.discarded_by == admin_user_role
    assert record.reason == "Strategy retired; rolling back by hand."
    assert "retired-strategy" in record.error
    assert Rollout.objects.get(pk=failing_rollout.pk).state == Rollout.State.HELD
    page = admin_client_role.get(reverse("failures")).content.decode()
    assert "Strategy retired; rolling back by hand." in page
    assert "Nothing is failing" in page


def test_failure_retry__plain_post__redirects_and_step_retried_next_tick(
    admin_client_role, failing_rollout
):
    Rollout.objects.filter(pk=failing_rollout.pk).update(strategy=Rollout.Strategy.FEATURE_FLAG)
    url = reverse("failure-retry", args=["rollouts-advance", failing_rollout.pk])

    response = admin_client_role.post(url)

    assert response.status_code == 302
    assert not AdvanceFailure.objects.filter(rollout=failing_rollout).exists()
    assert rollout_services.rollouts_advance_due() == 1


def test_failure_retry__get__not_allowed(admin_client_role, failing_rollout):
    url = reverse("failure-retry", args=["rollouts-advance", failing_rollout.pk])
    assert admin_client_role.get(url).status_code == 405


def test_failure_retry__unknown_source__message_not_500(admin_client_role):
    response = admin_client_role.post(reverse("failure-retry", args=["nope", "1"]), follow=True)
    assert response.status_code == 200
    assert "unknown" in response.content.decode()


def test_dashboard__admin__failures_panel_counts_held_rollout(admin_client_role, settings):
    settings.ROLLCALL_RETRY_MAX_ATTEMPTS = 1
    now = timezone.now()
    rollout = make_rollout(environment=EnvironmentFactory(), phases=soak_plan(10, 100, soak=MIN))
    rollout_services.rollout_start(
        rollout=rollout, actor=None, source=RolloutEvent.Source.UI, now=now - 5 * MIN
    )
    Rollout.objects.filter(pk=rollout.pk).update(strategy="retired-strategy")
    rollout_services.rollouts_advance_due(now=now)

    html = admin_client_role.get(reverse("dashboard")).content.decode()

    assert "1 dead" in html
    assert Hold.objects.get(rollout=rollout).kind == Hold.Kind.FAILING
    detail = admin_client_role.get(reverse("rollouts:detail", args=[rollout.key]))
    assert "The scheduler could not start phase 2" in detail.content.decode()
