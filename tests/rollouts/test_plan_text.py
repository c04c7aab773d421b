"""Phases typed in one line at creation: "5,25,50,75,100 every 24h"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.exceptions import ApplicationError
from rollouts.plan_text import phases_from_text


def test_phases_from_text__percentages_every_24h__five_phases_a_day_apart():
    phases = phases_from_text("5,25,50,75,100 every 24h")
    assert [p["percentage"] for p in phases] == [5, 25, 50, 75, 100]
    assert [p["soak"] for p in phases] == [None] + [timedelta(hours=24)] * 4
    assert phases[-1]["name"] == "Everyone" and phases[0]["name"] == "5%"


@pytest.mark.parametrize(
    ("text", "soak"),
    [
        ("1, 5, 25 every 30 minutes", timedelta(minutes=30)),
        ("1 5 25 every 2 days", timedelta(days=2)),
        ("1,5,25", None),
        ("1,5,25 every 3 hours", timedelta(hours=3)),
    ],
)
def test_phases_from_text__units_and_separators(text, soak):
    phases = phases_from_text(text)
    assert [p["percentage"] for p in phases] == [1, 5, 25]
    assert phases[1]["soak"] == soak


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("five then ten", "e.g. “5,25,50,75,100 every 24h”"),
        ("5,150", "at most 100"),
        ("50,25,100", "more than the one before"),
        ("", "e.g."),
    ],
)
def test_phases_from_text__not_understood__error_with_an_example(text, words):
    with pytest.raises(ApplicationError) as exc:
        phases_from_text(text)
    assert words in exc.value.message and exc.value.field == "phases_text"
