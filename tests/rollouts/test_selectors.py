"""rollouts.selectors: what pages show, and query counts that do not grow with the data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from flags.models import Flag
from rollouts import selectors
from rollouts.models import Phase, Rollout, RolloutEvent
from tests.rollouts.factories import (
    EnvironmentFactory,
    PhaseFactory,
    ReleaseFactory,
    RolloutEventFactory,
    RolloutFactory,
    rollout_with_phases,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
State = Rollout.State


def queries(fn) -> int:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


def many_rollouts(n: int, release=None) -> list[Rollout]:
    """n rollouts in every interesting state, each with 3 phases (bulk inserts: fast)."""
    states = [State.DRAFT, State.SCHEDULED, State.RUNNING, State.PAUSED, State.HELD,
              State.COMPLETED, State.ROLLED_BACK]  # fmt: skip
    start = Rollout.objects.count()
    release = release or ReleaseFactory()
    environments = [EnvironmentFactory(key=f"bulk{i}") for i in range(3)]
    flags = Flag.objects.bulk_create(
        [Flag(key=f"bulk-flag-{start + i}", name=f"Bulk {start + i}") for i in range(n)]
    )
    rollouts = []
    for i in range(n):
        state = states[i % len(states)]
        rollouts.append(
            Rollout(
                key=f"bulk-{start + i}",
                release=release,
                environment=environments[i % 3],
                strategy=Rollout.Strategy.FEATURE_FLAG,
                flag=flags[i],
                state=state,
                current_phase_index=-1 if state in (State.DRAFT, State.SCHEDULED) else 1,
                started_at=NOW - timedelta(hours=2),
                next_due_at=NOW + timedelta(hours=i + 1),
            )
        )
    rollouts = Rollout.objects.bulk_create(rollouts)
    phases = []
    for r in rollouts:
        for order, pct in enumerate((10, 50, 100)):
            applied = NOW - timedelta(hours=2 - order) if order <= r.current_phase_index else None
            phases.append(
                Phase(
                    rollout=r,
                    order=order,
                    name=f"{pct}%",
                    percentage=pct,
                    soak=timedelta(hours=1) if order else None,
                    applied_at=applied,
                )
            )
    Phase.objects.bulk_create(phases)
    return rollouts


# --------------------------------------------------------------------------------------------
# Words


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(hours=3), "in 3 hours"),
        (timedelta(minutes=1), "in 1 minute"),
        (timedelta(days=3), "in 3 days"),
        (timedelta(hours=-2), "2 hours ago"),
        (timedelta(seconds=20), "now"),
    ],
)
def test_relative_in_words__offsets__human_words(delta, words):
    assert selectors.relative_in_words(NOW + delta, NOW) == words


def test_next_change__running_with_due_time__in_words():
    rollout = rollout_with_phases(10, 50, state=State.RUNNING, current=0)
    rollout.next_due_at = NOW + timedelta(hours=3)
    phases = list(rollout.phases.order_by("order"))
    change = selectors.next_change(rollout, phases, NOW)
    assert (change.kind, change.words) == ("time", "in 3 hours")
    assert change.phase == phases[1]


def test_next_change__manual_gate__waits_for_a_person():
    rollout = rollout_with_phases(10, 50, state=State.RUNNING, current=0)
    Phase.objects.filter(rollout=rollout, order=1).update(gate=Phase.Gate.MANUAL)
    rollout.next_due_at = NOW - timedelta(minutes=5)
    change = selectors.next_change(rollout, list(rollout.phases.order_by("order")), NOW)
    assert (change.kind, change.words) == ("person", "waits for a person")


def test_next_change__manual_gate_still_soaking__soak_end_then_a_person():
    rollout = rollout_with_phases(10, 50, state=State.RUNNING, current=0)
    Phase.objects.filter(rollout=rollout, order=1).update(gate=Phase.Gate.MANUAL)
    rollout.next_due_at = NOW + timedelta(hours=2)
    change = selectors.next_change(rollout, list(rollout.phases.order_by("order")), NOW)
    assert change.words == "soak ends in 2 hours, then waits for a person"


def test_next_change__scheduled__starts_in_words():
    rollout = rollout_with_phases(10, 50, state=State.SCHEDULED)
    rollout.next_due_at = NOW + timedelta(days=2)
    change = selectors.next_change(rollout, list(rollout.phases.order_by("order")), NOW)
    assert change.words == "starts in 2 days"
    assert change.phase.order == 0


def test_next_change__paused__waits_for_resume():
    rollout = rollout_with_phases(10, 50, state=State.PAUSED, current=0)
    change = selectors.next_change(rollout, list(rollout.phases.all()), NOW)
    assert change.kind == "paused"
    assert "resume" in change.words


def test_next_change__overdue__due_on_the_next_tick():
    rollout = rollout_with_phases(10, 50, state=State.RUNNING, current=0)
    rollout.next_due_at = NOW - timedelta(minutes=1)
    change = selectors.next_change(rollout, list(rollout.phases.order_by("order")), NOW)
    assert change.kind == "overdue"


def test_current_exposure__rolled_back__zero_though_a_phase_was_applied():
    rollout = rollout_with_phases(10, 50, state=State.ROLLED_BACK, current=1)
    pct, words, phase = selectors.current_exposure(rollout, list(rollout.phases.order_by("order")))
    assert (pct, words) == (0, "0%")
    assert phase is not None and phase.order == 1


def test_current_exposure__segment_and_percentage__both_named():
    rollout = RolloutFactory(state=State.RUNNING, current_phase_index=0)
    from tests.flags.factories import SegmentFactory

    PhaseFactory(rollout=rollout, order=0, percentage=5, segment=SegmentFactory(name="Beta"))
    pct, words, _ = selectors.current_exposure(rollout, list(rollout.phases.all()))
    assert (pct, words) == (5, "Beta + 5%")


def test_rollout_row__phase_position__n_of_total():
    rollout = rollout_with_phases(10, 25, 50, 75, 100, state=State.RUNNING, current=1)
    row = selectors.rollout_row(rollout, list(rollout.phases.order_by("order")), NOW)
    assert row.phase_position == "2 of 5"
    assert row.exposure == 25


def test_rollout_list__filters__state_strategy_environment():
    running = rollout_with_phases(10, state=State.RUNNING, current=0)
    draft = rollout_with_phases(10, strategy=Rollout.Strategy.CANARY)
    keys = lambda rows: {r.rollout.key for r in rows}  # noqa: E731
    assert keys(selectors.rollout_list(filters={"state": "running"}, now=NOW)) == {running.key}
    assert keys(selectors.rollout_list(filters={"state": "active"}, now=NOW)) == {running.key}
    assert keys(selectors.rollout_list(filters={"strategy": "canary"}, now=NOW)) == {draft.key}
    env_key = draft.environment.key
    assert keys(selectors.rollout_list(filters={"environment": env_key}, now=NOW)) == {draft.key}
    # Unknown values are ignored rather than failing.
    assert len(selectors.rollout_list(filters={"state": "bogus"}, now=NOW)) == 2


def test_rollout_detail__events__newest_first_and_capped():
    rollout = rollout_with_phases(10, 50, state=State.RUNNING, current=0)
    for i in range(selectors.EVENT_LOG_LIMIT + 5):
        RolloutEventFactory(rollout=rollout, kind="note", at=NOW + timedelta(minutes=i))
    detail = selectors.rollout_detail(key=rollout.key, now=NOW)
    assert detail.event_count == selectors.EVENT_LOG_LIMIT + 5
    assert len(detail.events) == selectors.EVENT_LOG_LIMIT
    assert detail.events[0].at > detail.events[-1].at


def test_upcoming_changes__soonest_first_only_clock_driven():
    later = rollout_with_phases(10, 50, state=State.RUNNING, current=0)
    sooner = rollout_with_phases(10, 50, state=State.RUNNING, current=0)
    paused = rollout_with_phases(10, 50, state=State.PAUSED, current=0)
    for rollout, hours in ((later, 5), (sooner, 1), (paused, 2)):
        rollout.next_due_at = NOW + timedelta(hours=hours)
        rollout.save(update_fields=["next_due_at"])
    changes = selectors.upcoming_changes(now=NOW)
    assert [c.row.rollout.key for c in changes] == [sooner.key, later.key]
    assert changes[0].words == "in 1 hour"
    assert changes[0].phase.order == 1


def test_active_rollouts__live_states_only_with_total():
    many_rollouts(7)
    rows, total = selectors.active_rollouts(now=NOW, limit=2)
    assert total == 3  # running, paused, held
    assert len(rows) == 2
    assert {r.rollout.state for r in rows} <= {State.RUNNING, State.PAUSED, State.HELD}


# --------------------------------------------------------------------------------------------
# Query counts: the same with 10 and with 200 rollouts


@pytest.mark.parametrize(
    "read",
    [
        lambda: selectors.rollout_list(filters={}, now=NOW),
        lambda: selectors.release_list(now=NOW),
        lambda: selectors.active_rollouts(now=NOW),
        lambda: selectors.upcoming_changes(now=NOW),
        lambda: selectors.filter_choices(),
    ],
    ids=["rollout_list", "release_list", "active_rollouts", "upcoming_changes", "filters"],
)
def test_selector__10_and_200_rollouts__same_number_of_queries(read):
    many_rollouts(10)
    small = queries(read)
    many_rollouts(190)
    assert queries(read) == small


def test_release_detail__10_and_200_rollouts__same_number_of_queries():
    release = ReleaseFactory()
    many_rollouts(10, release=release)
    small = queries(lambda: selectors.release_detail(pk=release.pk, now=NOW))
    many_rollouts(190, release=release)
    assert queries(lambda: selectors.release_detail(pk=release.pk, now=NOW)) == small


def test_rollout_detail__10_and_200_events__same_number_of_queries():
    rollout = rollout_with_phases(10, 50, 100, state=State.RUNNING, current=1)
    many_rollouts(10)

    def add_events(n: int) -> None:
        for i in range(n):
            RolloutEventFactory(
                rollout=rollout,
                kind=RolloutEvent.Kind.PAUSED if i % 2 else RolloutEvent.Kind.RESUMED,
                at=NOW - timedelta(minutes=n - i),
            )

    add_events(10)
    small = queries(lambda: selectors.rollout_detail(key=rollout.key, now=NOW))
    # 4 for the rollout, phases and events; up to 6 more for its safety facts since rollout
    # safety (holds, checklists, policy, the next phase's approval and its decisions, windows).
    assert small <= 10
    add_events(190)
    many_rollouts(190)
    assert queries(lambda: selectors.rollout_detail(key=rollout.key, now=NOW)) == small


def page_queries(client, url: str, **headers) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **headers)
    assert response.status_code in (200, 286), response.status_code
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "url", ["rollouts:list", "rollouts:releases", "dashboard"], ids=["list", "releases", "dash"]
)
def test_page__10_and_200_rollouts__same_number_of_queries(rm_client, url):
    many_rollouts(10)
    small = page_queries(rm_client, reverse(url))
    many_rollouts(190)
    assert page_queries(rm_client, reverse(url)) == small


def test_rollout_page_and_progress_poll__10_and_200_rollouts__same_number_of_queries(
    rm_client,
):
    rollout = rollout_with_phases(10, 50, 100, state=State.RUNNING, current=1)
    url = reverse("rollouts:detail", kwargs={"key": rollout.key})
    poll = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "progress"}
    many_rollouts(10)
    small_page, small_poll = page_queries(rm_client, url), page_queries(rm_client, url, **poll)
    many_rollouts(190)
    for i in range(200):
        RolloutEventFactory(rollout=rollout, kind="note", at=NOW - timedelta(minutes=i))
    assert page_queries(rm_client, url) == small_page
    assert page_queries(rm_client, url, **poll) == small_poll


def test_plan_editor_page__3_and_30_phases__same_number_of_queries(rm_client):
    small = rollout_with_phases(*range(0, 30, 10))
    big = rollout_with_phases(*range(0, 30))

    def url(r: Rollout) -> str:
        return reverse("rollouts:plan", kwargs={"key": r.key})

    assert page_queries(rm_client, url(big)) == page_queries(rm_client, url(small))


def test_rollout_list_page__60_rollouts__pages_of_50_in_constant_queries():
    many_rollouts(10)
    small = queries(lambda: selectors.rollout_list_page(page=1))
    many_rollouts(50)
    rows, page = selectors.rollout_list_page(page=1)
    assert len(rows) == 50
    assert page.paginator.count == 60
    rows2, page2 = selectors.rollout_list_page(page=2)
    assert page2.number == 2
    assert len(rows2) == 10
    assert {r.rollout.pk for r in rows}.isdisjoint({r.rollout.pk for r in rows2})
    assert queries(lambda: selectors.rollout_list_page(page=2)) == small
    # A page number out of range or not a number gives a real page, never an error.
    assert selectors.rollout_list_page(page="99")[1].number == 2
    assert selectors.rollout_list_page(page="x")[1].number == 1


def test_rollout_list_view__second_page__links_back_and_keeps_filters(rm_client):
    release = many_rollouts(55)[0].release
    url = reverse("rollouts:list") + f"?release={release.pk}&page=2"
    html = rm_client.get(url).content.decode()
    assert "55 rollouts · page 2 of 2" in html
    assert f'href="?release={release.pk}&amp;page=1"' in html


def test_releases_page__4_and_60_releases_with_rollouts__same_queries_bounded_rows(rm_client):
    def releases_with_rollouts(count: int, rollouts_each: int) -> None:
        for _ in range(count):
            many_rollouts(rollouts_each, release=ReleaseFactory())

    url = reverse("rollouts:releases")
    releases_with_rollouts(4, 3)
    small = page_queries(rm_client, url)
    releases_with_rollouts(56, 2)
    releases_with_rollouts(1, selectors.ROLLOUTS_PER_RELEASE + 4)  # the newest: many rollouts

    assert page_queries(rm_client, url) == small
    response = rm_client.get(url)
    rows = response.context["releases"]
    assert len(rows) == selectors.RELEASES_PER_PAGE
    assert response.context["page"].paginator.count == 61
    newest = rows[0]
    assert len(newest.rollouts) == selectors.ROLLOUTS_PER_RELEASE and newest.more_rollouts == 4
    assert all(row.rollouts for row in rows)  # each shows its rollouts (with phases)
    body = response.content.decode()
    assert "and 4 more rollouts" in body and "page=2" in body
    last = rm_client.get(url, {"page": 3}).context["releases"]
    assert len(last) == 61 - 2 * selectors.RELEASES_PER_PAGE


def test_rollout_page__event_log_pages__older_events_on_page_two_same_queries(rm_client):
    rollout = rollout_with_phases(10, 50, 100, state=State.RUNNING, current=1)
    url = reverse("rollouts:detail", kwargs={"key": rollout.key})
    for i in range(selectors.EVENT_LOG_LIMIT + 5):
        RolloutEventFactory(
            rollout=rollout, kind="note", reason=f"note {i:03d}", at=NOW + timedelta(minutes=i)
        )
    first = page_queries(rm_client, url)
    assert page_queries(rm_client, url + "?events=2") == first

    newest = rm_client.get(url).content.decode()
    older = rm_client.get(url, {"events": 2})
    body = older.content.decode()
    assert "note 204" in newest and "note 004" not in newest and "?events=2" in newest
    assert "note 004" in body and "note 000" in body and "note 204" not in body
    assert "?events=1" in body and older.context["detail"].event_page == 2
    # A page past the last (or not a number) shows the last (or the first) page.
    assert rm_client.get(url, {"events": 99}).context["detail"].event_page == 2
    assert rm_client.get(url, {"events": "x"}).context["detail"].event_page == 1
