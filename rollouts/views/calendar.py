"""The rollout calendar: month and week pages, and the iCalendar feed people subscribe to
with their personal token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core import services as core_services
from core.http import AuthenticatedHttpRequest, done, render_page
from core.models import FeedToken
from core.roles import require
from core.selectors import feed_token_get, feed_token_user
from core.when import format_date, format_month
from rollouts import selectors
from rollouts.forms import CalendarQuery
from rollouts.views.common import htmx_target


@dataclass
class CalendarDay:
    date: Any
    entries: list[tuple[selectors.CalendarEntry, bool]]
    in_month: bool
    is_today: bool
    more: int = 0  # entries of the day not shown (the week view shows more of them)


# The page renders a bounded window: at most this many entries per day (the rest are counted
# and linked), and at most UPCOMING_LIMIT planned changes in the list below.
MONTH_ENTRIES_PER_DAY = 4
WEEK_ENTRIES_PER_DAY = 25
UPCOMING_LIMIT = 50


def _calendar_range(query: CalendarQuery) -> tuple[Any, Any]:
    if query.view == "week":
        first = query.date - timedelta(days=query.date.weekday())
        return first, first + timedelta(days=7)
    month_start = query.date.replace(day=1)
    first = month_start - timedelta(days=month_start.weekday())
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    last = next_month + timedelta(days=(7 - next_month.weekday()) % 7)
    return first, last


@require("rollouts.view_rollout")
def calendar(request: AuthenticatedHttpRequest) -> HttpResponse:
    query = CalendarQuery(request.GET)
    if query.error:
        return render(request, "400.html", {"message": query.error}, status=400)
    first, last = _calendar_range(query)
    tz = query.tz
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(last, datetime.min.time(), tzinfo=tz)
    per_day = WEEK_ENTRIES_PER_DAY if query.view == "week" else MONTH_ENTRIES_PER_DAY
    entries = selectors.calendar_entries(
        start=start, end=end, environment=query.environment, per_day=per_day, tz=tz
    )
    # (entry, continued from an earlier day) per day; a window spanning days shows on each.
    by_day: dict[Any, list[tuple[selectors.CalendarEntry, bool]]] = {}
    for entry in entries:
        day = entry.start.astimezone(tz).date()
        by_day.setdefault(day, []).append((entry, False))
        if entry.end is not None:
            current = max(day + timedelta(days=1), first)
            end_day = (entry.end - timedelta(seconds=1)).astimezone(tz).date()
            while current <= end_day and current < last:
                by_day.setdefault(current, []).append((entry, True))
                current += timedelta(days=1)
    more: dict[Any, int] = {}
    for day, day_entries in by_day.items():
        # Continuations first: they are what is going on when the day begins.
        day_entries.sort(key=lambda pair: (not pair[1], pair[0].start))
        done = [e for e, continued in day_entries if e.kind == "done" and not continued]
        unread = max((e.day_done_total for e in done), default=0) - len(done)
        more[day] = max(len(day_entries) - per_day, 0) + max(unread, 0)
        del day_entries[per_day:]
    days = []
    current = first
    while current < last:
        days.append(
            CalendarDay(
                date=current,
                entries=by_day.get(current, []),
                in_month=query.view == "week" or current.month == query.date.month,
                is_today=current == query.today,
                more=more.get(current, 0),
            )
        )
        current += timedelta(days=1)
    weeks = [days[i : i + 7] for i in range(0, len(days), 7)]
    if query.view == "week":
        previous, following = query.date - timedelta(days=7), query.date + timedelta(days=7)
    else:
        previous = (query.date.replace(day=1) - timedelta(days=1)).replace(day=1)
        following = (query.date.replace(day=1) + timedelta(days=32)).replace(day=1)
    feed_url = _calendar_feed_url(request, query)
    upcoming = [e for e in entries if e.kind == "planned"]
    context = {
        "query": query,
        "weeks": weeks,
        "days": days,
        "entries": entries,
        "upcoming": upcoming[:UPCOMING_LIMIT],
        "upcoming_more": max(len(upcoming) - UPCOMING_LIMIT, 0),
        "previous": previous,
        "following": following,
        "environments": selectors.filter_choices()["environment"],
        "feed_url": feed_url,
        "title": (
            f"Week of {format_date(first)}" if query.view == "week" else format_month(query.date)
        ),
    }
    partial = "calendar-body" if htmx_target(request) == "calendar-body" else None
    return render_page(request, "rollouts/calendar.html", context, partial=partial)


def _calendar_feed_url(request: HttpRequest, query: CalendarQuery) -> Any:
    """A callable: the template asks for the URL only when shown. "" until the person creates
    a calendar feed link (a POST to calendar_feed_token); a GET never writes."""

    def url() -> str:
        token = feed_token_get(user=request.user, scope=FeedToken.Scope.CALENDAR)
        if token is None:
            return ""
        path = reverse("rollouts:calendar_feed", args=[token.token])
        if query.environment:
            path += f"?environment={query.environment}"
        return request.build_absolute_uri(path)

    return url


@require("rollouts.view_rollout", "subscribe to the rollout calendar")
@require_POST
def calendar_feed_token(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Create, reset (op=reset) or revoke (op=revoke) the person's calendar feed link."""
    scope = FeedToken.Scope.CALENDAR
    if request.POST.get("op") == "revoke":
        core_services.feed_token_revoke(user=request.user, scope=scope)
        message = "Your calendar link was revoked; it no longer works."
    else:
        had = feed_token_get(user=request.user, scope=scope) is not None
        core_services.feed_token_create(user=request.user, scope=scope)
        message = (
            "Your calendar link was replaced; the old one no longer works."
            if had
            else "Your personal calendar link was created."
        )
    return done(request, message=message, redirect_to=reverse("rollouts:calendar"))


def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The calendar as iCalendar for subscriptions; the personal token is the only auth."""
    import icalendar

    user = feed_token_user(token=token, scope=FeedToken.Scope.CALENDAR)
    if user is None or not user.has_perm("rollouts.view_rollout"):
        raise Http404("No such calendar.")
    now = timezone.now()
    environment = str(request.GET.get("environment", ""))[:64]
    entries = selectors.calendar_entries(
        start=now - timedelta(days=30), end=now + timedelta(days=120), environment=environment,
        now=now,
    )  # fmt: skip
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Rollcall//rollout calendar//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "Rollcall rollouts" + (f" ({environment})" if environment else ""))
    for entry in entries:
        event = icalendar.Event()
        event.add("uid", entry.uid)
        event.add("dtstamp", now)
        event.add("dtstart", entry.start)
        event.add("dtend", entry.end or entry.start + timedelta(minutes=15))
        prefix = {"planned": "Planned", "freeze": "Freeze", "allow": "Allowed", "done": "Done"}
        event.add("summary", f"{prefix[entry.kind]}: {entry.title}")
        if entry.note:
            event.add("description", entry.note)
        if entry.rollout is not None:
            event.add(
                "url",
                request.build_absolute_uri(
                    reverse("rollouts:detail", kwargs={"key": entry.rollout.key})
                ),
            )
        if entry.kind == "freeze":
            event.add("transp", "OPAQUE")
        cal.add_component(event)
    response = HttpResponse(cal.to_ical(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="rollcall.ics"'
    return response
