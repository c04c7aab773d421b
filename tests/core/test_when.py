"""One time format (core/when.py) and no way back to ad-hoc formats or per-object zones."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.template import Context, Template
from django.utils import timezone

from core import when

ROOT = Path(__file__).resolve().parents[2]
WINTER = datetime(2030, 3, 4, 9, 5, tzinfo=UTC)  # Monday, before any DST change
SUMMER = datetime(2030, 7, 2, 21, 30, tzinfo=UTC)  # Tuesday; 23:30 in Paris, 17:30 in New York


def test_format_datetime__given_zone__one_format_with_abbreviation():
    assert when.format_datetime(WINTER, ZoneInfo("Europe/Paris")) == "Mon 4 Mar 2030, 10:05 CET"
    assert when.format_datetime(SUMMER, ZoneInfo("Europe/Paris")) == "Tue 2 Jul 2030, 23:30 CEST"
    assert when.format_datetime(WINTER, ZoneInfo("UTC")) == "Mon 4 Mar 2030, 09:05 UTC"


def test_format_datetime__no_zone__follows_the_activated_viewer_zone():
    with timezone.override(ZoneInfo("America/New_York")):
        assert when.format_datetime(SUMMER) == "Tue 2 Jul 2030, 17:30 EDT"
        assert when.format_date(SUMMER) == "Tue 2 Jul 2030"
        assert when.format_time(SUMMER) == "17:30"
        assert when.viewer_zone_name() == "America/New_York"
    with timezone.override(ZoneInfo("Asia/Tokyo")):
        assert when.format_date(SUMMER) == "Wed 3 Jul 2030"  # already tomorrow there


def test_format_datetime__none__empty():
    assert when.format_datetime(None) == ""
    assert when.format_date(None) == ""
    assert when.iso(None) == ""


def test_iso__utc_with_offset_for_times_and_plain_for_days():
    paris = WINTER.astimezone(ZoneInfo("Europe/Paris"))
    assert when.iso(paris) == "2030-03-04T09:05:00+00:00"
    assert when.iso(date(2030, 3, 4)) == "2030-03-04"


def test_zone__unknown_or_empty__falls_back_to_utc():
    assert when.zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert when.zone("Mars/Olympus") == ZoneInfo("UTC")
    assert when.zone("") == ZoneInfo("UTC")
    assert when.zone("../../etc/passwd") == ZoneInfo("UTC")


def test_zone_choices__common_first_then_every_iana_zone_sorted():
    names = [value for value, _ in when.zone_choices()]
    assert names[: len(when.COMMON_ZONES)] == list(when.COMMON_ZONES)
    rest = names[len(when.COMMON_ZONES) :]
    assert rest == sorted(rest)
    assert set(names) == when.available_zones()
    assert len(names) == len(set(names))


def test_template_filters__viewer_zone_and_time_element():
    template = Template('<time datetime="{{ at|iso }}">{{ at|when }}</time> {{ day|when_date }}')
    with timezone.override(ZoneInfo("Europe/Paris")):
        html = template.render(Context({"at": WINTER, "day": date(2030, 3, 5)}))
    assert (
        html
        == '<time datetime="2030-03-04T09:05:00+00:00">Mon 4 Mar 2030, 10:05 CET</time> '
        + ("Tue 5 Mar 2030")
    )


def test_template_filters__not_a_time__empty_not_an_error():
    html = Template("[{{ x|when }}][{{ x|when_date }}][{{ x|iso }}]").render(Context({"x": "no"}))
    assert html == "[][][]"


def test_notice_format__same_format_in_the_audience_zone():
    from comms.templating import format_time

    assert format_time(WINTER, "America/New_York") == "Mon 4 Mar 2030, 04:05 EST"
    assert format_time(WINTER, "America/New_York") == when.format_datetime(
        WINTER, ZoneInfo("America/New_York")
    )


# --------------------------------------------------------------------------------------------
# No way back: every template shows times through |when / |when_date / |when_time / |iso.


def _templates() -> list[Path]:
    found = [p for p in (ROOT / "templates").rglob("*.html")]
    for app in ("core", "flags", "rollouts", "comms", "support"):
        found += list((ROOT / app / "templates").rglob("*.html"))
    return found


# `|date:"..."` / `|time:"..."` (ad-hoc formats), `|timezone:x` and `{% timezone %}` (a zone
# other than the viewer's), `{% load tz %}`, and the removed per-audience `|in_zone`.
FORBIDDEN_IN_TEMPLATES = re.compile(
    r"\|\s*(date|time)\s*(:|\}|\|)|\|\s*timezone\s*:|\{%\s*(timezone|localtime)\b|"
    r"\{%\s*load\b[^%]*\btz\b|\|\s*in_zone\b"
)


def test_templates__no_ad_hoc_date_formats_or_other_zones():
    templates = _templates()
    assert len(templates) > 50  # the scan really reads the templates
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}"
        for path in templates
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if FORBIDDEN_IN_TEMPLATES.search(line)
    ]
    assert not offenders, (
        "Show times with {{ value|when }} (or |when_date, |when_time, |iso), in the viewer's "
        "zone; see core/when.py:\n" + "\n".join(offenders)
    )


@pytest.mark.parametrize(
    "line",
    [
        '{{ x|date:"D j M" }}',
        "{{ x|date:'c' }}",
        "{{ x|date }}",
        "{{ x|time:'H:i' }}",
        "{{ x|timezone:rollout.timezone|when }}",
        "{% load tz %}",
        "{% load static tz %}",
        "{% timezone 'UTC' %}",
        "{{ x|in_zone:'UTC' }}",
    ],
)
def test_templates__scan_catches(line):
    assert FORBIDDEN_IN_TEMPLATES.search(line)


# Python that formats a time for people: strftime and f-string date formats stay in
# core/when.py. Allowed: machine formats (datetime-local inputs, admin __str__).
PY_FORMAT = re.compile(r"strftime\(|\{[\w.()]+:%[aAbBdHIMmpYyZz]|\.tzname\(\)")
PY_ALLOWED = {
    "core/when.py",
    "rollouts/forms.py",  # the value of a datetime-local <input> (a machine format)
    "flags/models.py",  # UsageBucket.__str__ (admin)
}


def test_python__no_ad_hoc_time_formats_outside_core_when():
    offenders = []
    for app in ("core", "flags", "rollouts", "comms", "support"):
        for path in (ROOT / app).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if "migrations" in rel or rel in PY_ALLOWED:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if PY_FORMAT.search(line):
                    offenders.append(f"{rel}:{number}: {line.strip()[:120]}")
    assert not offenders, "Format times with core.when:\n" + "\n".join(offenders)
