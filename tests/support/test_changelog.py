"""The support changelog: live exposure in every rollout state, search, filters, pages, queries."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.urls import reverse

from comms.models import DocLink
from flags import snapshot
from rollouts.models import Release, Rollout
from support import selectors as sel
from tests.support.factories import (
    DocLinkFactory,
    EnvironmentFactory,
    ReleaseFactory,
    aware,
    make_rollout,
    rollout_in_state,
)

NOW = aware(2026, 11, 24, 10, 42)
REASON = "error rate above 2%"
S = Rollout.State

# What each state must show: (percentage, live, problem, words in the sentence).
EXPECTED = {
    S.DRAFT: (0, False, False, ["not scheduled yet", "nobody has it"]),
    S.SCHEDULED: (
        0,
        False,
        False,
        ["Scheduled for Wed 25 Nov 2026, 10:42 UTC", "nobody has it yet"],
    ),
    S.RUNNING: (25, True, False, ["Live to 25% of traffic to the canary", "phase 2 of 4"]),
    S.PAUSED: (25, True, False, [f"Paused since 10:42 UTC ({REASON})", "stays at 25%"]),
    S.HELD: (25, True, True, [f"Held since 10:42 UTC ({REASON})", "phase 2 of 4"]),
    S.COMPLETED: (100, True, False, ["Completed at 10:42 UTC", "100% of traffic"]),
    S.ROLLED_BACK: (0, False, True, [f"Rolled back at 10:42 UTC ({REASON})", "nobody new"]),
    S.CANCELLED: (25, True, False, [f"Cancelled at 10:42 UTC ({REASON})", "stays at 25%"]),
}


@pytest.fixture
def production(db):
    return EnvironmentFactory(key="production", name="Production", order=10)


def _share_on(environment, flag_key: str, n: int = 2000) -> float:
    """The share of n users for whom the flag is on, from the snapshot OFREP serves."""
    snapshot.invalidate_local()
    snap = snapshot.get_snapshot(environment.id)
    return sum(snap.evaluate(flag_key, {"userId": f"user-{i}"}).enabled for i in range(n)) / n


def test_every_rollout_state_is_covered():
    assert set(EXPECTED) == set(Rollout.State.values)


@pytest.mark.parametrize("state", Rollout.State.values)
def test_changelog__every_rollout_state__exposure_matches_the_rollout(production, state):
    rollout = rollout_in_state(state, environment=production, now=NOW, reason=REASON)
    rollout.refresh_from_db()
    pct, live, problem, words = EXPECTED[state]

    page = sel.changelog(filters=sel.ChangelogFilters(), now=NOW)

    (view,) = page.releases
    (row,) = view.rollouts
    exposure = row.exposure
    assert exposure.state == rollout.state == state
    assert exposure.percentage == pct
    assert (exposure.is_live, exposure.is_problem) == (live, problem)
    for text in words:
        assert text in exposure.text
    if rollout.current_phase_index >= 0:
        assert exposure.phase_number == rollout.current_phase_index + 1
    # The sentence must agree with what services actually get from the flag right now.
    share = _share_on(production, rollout.flag.key)
    assert share == pytest.approx(pct / 100, abs=0.04)


@pytest.mark.parametrize("state", Rollout.State.values)
def test_changelog_page__every_rollout_state__shows_the_same_sentence(
    support_client, production, state
):
    rollout = rollout_in_state(state, environment=production, now=NOW, reason=REASON)

    response = support_client.get(reverse("support:changelog"))

    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-state="{state}"' in body
    assert f'data-rollout="{rollout.key}"' in body
    expected = sel.changelog(filters=sel.ChangelogFilters()).releases[0].rollouts[0].exposure
    assert html.escape(expected.text, quote=False).replace("'", "&#x27;") in body


def test_rollout_exposure__held__reason_and_time_from_the_latest_held_event(production):
    rollout = rollout_in_state(S.HELD, environment=production, now=NOW, reason="first alert")
    # Released and held again later: the page must show the newer hold.
    from rollouts import services
    from tests.support.factories import hold

    services.rollout_resume(rollout=rollout, actor=None, source="ui", now=NOW + timedelta(hours=1))
    hold(rollout, reason="second alert", now=NOW + timedelta(hours=2))

    view = sel.release_for_support(release_id=rollout.release_id, now=NOW + timedelta(hours=3))

    exposure = view.rollouts[0].exposure
    assert exposure.text.startswith("Held since 12:42 UTC (second alert)")
    assert exposure.reason == "second alert"


def test_rollout_exposure__blue_green__names_the_live_slot(production):
    from tests.support.factories import phase

    rollout = make_rollout(
        environment=production,
        strategy=Rollout.Strategy.BLUE_GREEN,
        phases=[phase("Switch", 100)],
    )
    from rollouts import services

    services.rollout_start(rollout=rollout, actor=None, source="ui", now=NOW)
    rollout.refresh_from_db()

    view = sel.release_for_support(release_id=rollout.release_id, now=NOW)

    assert "everyone on green" in view.rollouts[0].exposure.audience


def test_phase_audience__segment_and_percentage__reads_as_or(production):
    from rollouts.models import Phase

    rollout = Rollout(strategy=Rollout.Strategy.FEATURE_FLAG)
    segment = type("Seg", (), {"name": "Beta testers"})()
    both = Phase(name="x", percentage=5, segment_id=1)
    both.__dict__["_state"].fields_cache["segment"] = segment
    only = Phase(name="y", percentage=None, segment_id=1)
    only.__dict__["_state"].fields_cache["segment"] = segment

    assert sel.phase_audience(rollout, both) == "Beta testers and 5% of users"
    assert sel.phase_audience(rollout, only) == "everyone in Beta testers"
    assert sel.phase_audience(rollout, Phase(name="z", percentage=50)) == "50% of users"


# --------------------------------------------------------------------------------------------
# Search, filters, pagination


def test_changelog__search__matches_name_version_summary_and_changelog(production):
    ReleaseFactory(name="Checkout redesign", version="3.1", summary="", changelog="")
    ReleaseFactory(name="Other", version="7.7.7", summary="", changelog="")
    ReleaseFactory(name="Third", summary="Faster invoices", changelog="")
    ReleaseFactory(name="Fourth", summary="", changelog="Fixes the **PDF export**")

    def names(q):
        return {v.release.name for v in sel.changelog(filters=sel.ChangelogFilters(q=q)).releases}

    assert names("checkout") == {"Checkout redesign"}
    assert names("7.7.7") == {"Other"}
    assert names("INVOICES") == {"Third"}
    assert names("pdf export") == {"Fourth"}
    assert names("nothing-like-this") == set()


def test_changelog__filters__environment_label_status_and_dates(production):
    staging = EnvironmentFactory(key="staging", name="Staging", order=1)
    fix = ReleaseFactory(name="A fix", label=Release.Label.FIX)
    new = ReleaseFactory(name="A feature", label=Release.Label.NEW)
    rollout_in_state(S.RUNNING, environment=production, now=NOW, release=fix)
    rollout_in_state(S.HELD, environment=staging, now=NOW, release=new, reason="x")
    old = ReleaseFactory(name="Old one", label=Release.Label.DEPRECATION)
    Release.objects.filter(pk=old.pk).update(created_at=NOW - timedelta(days=60))

    def names(**kw):
        return {v.release.name for v in sel.changelog(filters=sel.ChangelogFilters(**kw)).releases}

    assert names(environment="production") == {"A fix"}
    assert names(label=Release.Label.NEW) == {"A feature"}
    assert names(status=S.HELD) == {"A feature"}
    assert names(environment="production", status=S.HELD) == set()
    day = (NOW - timedelta(days=60)).date()
    assert names(date_from=day, date_to=day) == {"Old one"}
    # An old release whose rollout moved in the range counts as changed then.
    Release.objects.filter(pk=fix.pk).update(created_at=NOW - timedelta(days=60))
    assert names(date_from=NOW.date() - timedelta(days=1)) >= {"A fix", "A feature"}


def test_changelog__environment_filter__shows_only_that_environments_exposure(production):
    staging = EnvironmentFactory(key="staging", name="Staging", order=1)
    release = ReleaseFactory()
    rollout_in_state(S.RUNNING, environment=production, now=NOW, release=release)
    rollout_in_state(S.COMPLETED, environment=staging, now=NOW, release=release)

    both = sel.changelog(filters=sel.ChangelogFilters()).releases[0]
    prod_only = sel.changelog(filters=sel.ChangelogFilters(environment="production")).releases[0]

    assert [r.rollout.environment.key for r in both.rollouts] == ["staging", "production"]
    assert [r.rollout.environment.key for r in prod_only.rollouts] == ["production"]


def test_changelog__newest_first_and_paginated(production):
    releases = [ReleaseFactory(name=f"R{i:02d}") for i in range(sel.PAGE_SIZE + 3)]
    for i, release in enumerate(releases):
        Release.objects.filter(pk=release.pk).update(created_at=NOW - timedelta(hours=i))

    first = sel.changelog(filters=sel.ChangelogFilters(page=1))
    second = sel.changelog(filters=sel.ChangelogFilters(page=2))

    assert [v.release.name for v in first.releases][:2] == ["R00", "R01"]
    assert len(first.releases) == sel.PAGE_SIZE
    assert [v.release.name for v in second.releases] == ["R20", "R21", "R22"]
    assert first.page.paginator.count == sel.PAGE_SIZE + 3


QUERY_BUDGET = 16


def test_changelog__query_count__same_for_10_and_200_releases(support_client, production):
    staging = EnvironmentFactory(key="staging", name="Staging", order=1)
    _bulk_releases(10, [staging, production])
    url = reverse("support:changelog")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    support_client.get(url)  # creates the personal feed token once
    with CaptureQueriesContext(connection) as small:
        support_client.get(url)
    _bulk_releases(190, [staging, production], offset=10)
    with CaptureQueriesContext(connection) as large:
        response = support_client.get(url)

    assert response.status_code == 200
    assert len(small.captured_queries) == len(large.captured_queries)
    assert len(large.captured_queries) <= QUERY_BUDGET


def _bulk_releases(count: int, environments, offset: int = 0) -> None:
    """Releases with rollouts (phases applied, events), doc links and flag links, fast."""
    from flags.models import Flag
    from rollouts.models import Phase, RolloutEvent

    releases = Release.objects.bulk_create(
        [
            Release(name=f"Bulk {offset + i}", version="1.0", summary="s", changelog="*c*",
                    known_issues="k")
            for i in range(count)
        ]
    )  # fmt: skip
    flags = Flag.objects.bulk_create(
        [Flag(key=f"bulk-{offset + i}-{env.key}", name="f") for i in range(count)
         for env in environments]
    )  # fmt: skip
    rollouts = []
    flag_iter = iter(flags)
    for i, release in enumerate(releases):
        for env in environments:
            rollouts.append(
                Rollout(
                    key=f"bulk-{offset + i}-{env.key}",
                    release=release,
                    environment=env,
                    strategy=Rollout.Strategy.CANARY,
                    flag=next(flag_iter),
                    state=S.HELD if i % 3 == 0 else S.RUNNING,
                    current_phase_index=1,
                    phase_started_at=NOW,
                    started_at=NOW,
                )
            )
    rollouts = Rollout.objects.bulk_create(rollouts)
    Phase.objects.bulk_create(
        [
            Phase(
                rollout=r, order=o, name=f"P{o}", percentage=p, applied_at=NOW if o <= 1 else None
            )
            for r in rollouts
            for o, p in enumerate((1, 25, 100))
        ]
    )
    RolloutEvent.objects.bulk_create(
        [
            RolloutEvent(rollout=r, kind="held", source="alert", at=NOW, reason="alert")
            for r in rollouts
            if r.state == S.HELD
        ]
    )
    DocLink.objects.bulk_create(
        [
            DocLink(release=release, title=f"Guide {release.pk}", url="https://d.example/g",
                    kind=kind, visibility=vis, status=DocLink.Status.BROKEN)
            for release in releases
            for kind, vis in (("user_guide", "public"), ("runbook", "internal"))
        ]
    )  # fmt: skip
    DocLink.objects.bulk_create(
        [DocLink(flag=f, title="Flag doc", url="https://d.example/f") for f in flags]
    )
    Flag.releases.through.objects.bulk_create(
        [Flag.releases.through(release_id=r.release_id, flag_id=r.flag_id) for r in rollouts]
    )


# --------------------------------------------------------------------------------------------
# Release detail


def test_release_detail__support__shows_exposure_links_known_issues_and_timeline(
    support_client, production
):
    release = ReleaseFactory(known_issues="Exports **may** be slow", changelog="## Big change")
    rollout_in_state(S.HELD, environment=production, now=NOW, release=release, reason=REASON)
    DocLinkFactory(release=release, title="User guide", kind=DocLink.Kind.USER_GUIDE)
    DocLinkFactory(
        release=release,
        title="On-call runbook",
        kind=DocLink.Kind.RUNBOOK,
        visibility=DocLink.Visibility.INTERNAL,
        status=DocLink.Status.BROKEN,
        status_code=404,
    )

    response = support_client.get(reverse("support:release", args=[release.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Held since" in body and REASON in body
    assert "<strong>may</strong>" in body  # known issues rendered as Markdown
    assert "<h2>Big change</h2>" in body
    assert "On-call runbook" in body and "User guide" in body
    assert "Broken" in body and "(404)" in body
    assert "Canary 50%" in body  # an upcoming phase of the timeline


def test_release_detail__unknown_release__404(support_client, production):
    assert support_client.get(reverse("support:release", args=[999])).status_code == 404


def test_release_exposure__all_rollouts_final__stops_polling(support_client, production):
    release = ReleaseFactory()
    rollout_in_state(S.COMPLETED, environment=production, now=NOW, release=release)
    url = reverse("support:release_exposure", args=[release.pk])

    response = support_client.get(url, headers={"HX-Request": "true"})

    assert response.status_code == 286
    assert 'id="exposure"' in response.content.decode()


def test_release_exposure__running__keeps_polling_and_renders_partial_only(
    support_client, production
):
    release = ReleaseFactory()
    rollout_in_state(S.RUNNING, environment=production, now=NOW, release=release)

    response = support_client.get(
        reverse("support:release_exposure", args=[release.pk]), headers={"HX-Request": "true"}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="exposure"')
    assert "<html" not in body


def test_release_detail__query_count_constant_and_events_capped(support_client, production):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rollouts.models import RolloutEvent

    release = ReleaseFactory()
    rollout = rollout_in_state(S.RUNNING, environment=production, now=NOW, release=release)
    url = reverse("support:release", args=[release.pk])
    support_client.get(url)
    with CaptureQueriesContext(connection) as few:
        support_client.get(url)
    RolloutEvent.objects.bulk_create(
        [
            RolloutEvent(rollout=rollout, kind="note", source="ui", at=NOW, reason=f"n{i}")
            for i in range(40)
        ]
    )
    with CaptureQueriesContext(connection) as many:
        response = support_client.get(url)

    assert len(many.captured_queries) == len(few.captured_queries)
    assert response.content.decode().count("<li><time datetime=") == sel.EVENTS_PER_ROLLOUT


def test_changelog_page__htmx_search__results_partial_only(support_client, production):
    ReleaseFactory(name="Checkout redesign")
    ReleaseFactory(name="Billing")

    response = support_client.get(
        reverse("support:changelog"), {"q": "checkout"}, headers={"HX-Request": "true"}
    )

    body = response.content.decode()
    assert body.lstrip().startswith('<section id="changelog-results"')
    assert "Checkout redesign" in body and "Billing" not in body
    assert "<form" not in body


def test_changelog_page__dates_reversed__error_shown_and_other_filters_kept(
    support_client, production
):
    fix = ReleaseFactory(name="Checkout redesign", label=Release.Label.FIX)
    old_fix = ReleaseFactory(name="Old fix", label=Release.Label.FIX)
    ReleaseFactory(name="Billing", label=Release.Label.NEW)
    Release.objects.filter(pk=fix.pk).update(created_at=aware(2026, 11, 22, 9, 0))
    Release.objects.filter(pk=old_fix.pk).update(created_at=aware(2026, 10, 1, 9, 0))

    response = support_client.get(
        reverse("support:changelog"),
        {"label": "fix", "date_from": "2026-11-20", "date_to": "2026-11-01"},
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "The end date must be on or after the start date." in body
    # The invalid end date is ignored; the label and the start date still filter.
    assert "Checkout redesign" in body
    assert "Old fix" not in body
    assert "Billing" not in body
