"""rollouts.windows: pure window arithmetic (no database), including DST and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.windows import (
    ALLOW,
    DENY,
    WindowSpec,
    blocking,
    next_allowed,
    occurrence_at,
    occurrences,
    valid_cron,
)

H = timedelta(hours=1)
NIGHTS_BERLIN = WindowSpec("Nights", DENY, "Europe/Berlin", cron="0 22 * * *", duration=10 * H)
OFFICE_NY = WindowSpec("Office", ALLOW, "America/New_York", cron="0 9 * * 1-5", duration=8 * H)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_occurrence_at__one_off__half_open():
    w = WindowSpec("X", starts_at=utc(2030, 1, 1, 10), ends_at=utc(2030, 1, 1, 12))
    assert occurrence_at(w, utc(2030, 1, 1, 10)) is not None
    assert occurrence_at(w, utc(2030, 1, 1, 11, 59)) is not None
    assert occurrence_at(w, utc(2030, 1, 1, 12)) is None


def test_occurrence_at__nightly_across_spring_forward__ends_8_local():
    start, end = occurrence_at(NIGHTS_BERLIN, utc(2030, 3, 31, 1))
    assert (start, end) == (utc(2030, 3, 30, 21), utc(2030, 3, 31, 6))  # 22:00 CET, 08:00 CEST


def test_occurrence_at__nightly_across_fall_back__ends_8_local():
    start, end = occurrence_at(NIGHTS_BERLIN, utc(2030, 10, 27, 1))
    assert (start, end) == (utc(2030, 10, 26, 20), utc(2030, 10, 27, 7))  # 22:00 CEST, 08:00 CET


def test_occurrences__a_week_of_office_hours__five_across_the_us_dst_change():
    # The US moves to summer time on Sunday 2030-03-10.
    found = occurrences(OFFICE_NY, utc(2030, 3, 9), utc(2030, 3, 16))
    assert [s.hour for s, _ in found] == [13] * 5  # 09:00 EDT = 13:00 UTC
    before = occurrences(OFFICE_NY, utc(2030, 3, 4), utc(2030, 3, 9))
    assert [s.hour for s, _ in before] == [14] * 5  # 09:00 EST = 14:00 UTC


def test_next_allowed__deny_inside_allow__pushed_to_the_end_of_the_deny():
    lunch = WindowSpec("Lunch", DENY, "America/New_York", cron="0 12 * * *", duration=H)
    t = utc(2030, 3, 5, 16, 30)  # 11:30 EST Tuesday
    assert next_allowed(t, [OFFICE_NY, lunch]) == t
    assert next_allowed(utc(2030, 3, 5, 17, 15), [OFFICE_NY, lunch]) == utc(2030, 3, 5, 18)


def test_next_allowed__friday_evening__monday_morning():
    assert next_allowed(utc(2030, 3, 8, 23), [OFFICE_NY]) == utc(2030, 3, 11, 13)


def test_next_allowed__chained_windows__end_of_the_last():
    a = WindowSpec("A", starts_at=utc(2030, 1, 1, 10), ends_at=utc(2030, 1, 1, 12))
    b = WindowSpec("B", starts_at=utc(2030, 1, 1, 12), ends_at=utc(2030, 1, 1, 13))
    assert next_allowed(utc(2030, 1, 1, 11), [b, a]) == utc(2030, 1, 1, 13)


def test_next_allowed__no_allowed_moment__none():
    always = WindowSpec("Always", DENY, cron="* * * * *", duration=timedelta(days=2))
    assert next_allowed(utc(2030, 1, 1), [always]) is None


def test_blocking__names_the_window_and_until():
    block = blocking(utc(2030, 3, 31, 1), [NIGHTS_BERLIN])
    assert block is not None and block.window is NIGHTS_BERLIN
    assert block.until == utc(2030, 3, 31, 6)
    outside = blocking(utc(2030, 3, 9, 12), [OFFICE_NY])  # Saturday
    assert outside is not None and outside.window is None
    assert "allowed hours" in outside.words


def test_valid_cron__five_fields_only():
    assert valid_cron("0 9 * * 1-5")
    assert not valid_cron("0 0 9 * * 1-5")
    assert not valid_cron("daily")


ZONES = st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
)
CRONS = st.sampled_from(["0 22 * * *", "30 2 * * *", "0 9 * * 1-5", "*/20 * * * *", "0 0 1 * *"])


@st.composite
def window_sets(draw):
    specs = []
    for i in range(draw(st.integers(1, 3))):
        specs.append(
            WindowSpec(
                f"w{i}",
                draw(st.sampled_from([DENY, ALLOW])),
                draw(ZONES),
                cron=draw(CRONS),
                duration=timedelta(minutes=draw(st.integers(10, 60 * 30))),
            )
        )
    return specs


@settings(max_examples=100, deadline=None)
@given(
    windows=window_sets(),
    t=st.datetimes(
        min_value=datetime(2030, 1, 1), max_value=datetime(2031, 1, 1), timezones=st.just(UTC)
    ),
)
def test_next_allowed__property__allowed_not_earlier_and_nothing_allowed_skipped(windows, t):
    result = next_allowed(t, windows)
    if result is None:
        return
    assert result >= t
    assert blocking(result, windows) is None
    # Nothing between t and the result was allowed (checked at a few points).
    span = result - t
    for k in range(1, 6):
        probe = t + span * k / 6
        if probe < result:
            assert blocking(probe, windows) is not None
