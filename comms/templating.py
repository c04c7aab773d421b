"""Notice templates: Markdown with `{{ variables }}` from a fixed whitelist.

Deliberately not the Django template engine: a template is written by release managers and
rendered for customers, so it may only name known variables (checked when it is saved, so a
typo never surfaces at send time) and has no tags, filters or attribute access.

Rendering substitutes each variable for the target it is rendered into ("flavour"):
- text: the value as is (plain-text email part, subjects);
- markdown: every ASCII punctuation character backslash-escaped, so a release called
  `**[pay](javascript:x)**<script>` stays literal text; the HTML is then made from that
  Markdown by `core.markdown.render_markdown` (raw HTML off, nh3-sanitized);
- slack: Slack's mrkdwn, with `&`, `<` and `>` escaped as Slack asks.
Only the template's own text (written by a release manager) can carry formatting, and only
safe formatting, in every flavour (email, Teams, Slack, webhooks): links whose target is not
http(s)/mailto lose their target, images become their alt text and raw HTML is never a tag
(shown as text in Markdown and HTML, dropped from plain text; `_safe_template_source`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.html import escape

from core.exceptions import ApplicationError
from core.markdown import render_markdown
from core.when import format_datetime

# name -> what it is (shown next to template editors).
VARIABLES: dict[str, str] = {
    "release.name": "Release name",
    "release.version": "Release version",
    "release.summary": "One-line summary of the release",
    "release.label": "New, improvement, fix or deprecation",
    "release.known_issues": "Known issues (text)",
    "rollout.key": "Rollout key",
    "rollout.strategy": "Strategy (feature flag, canary, ...)",
    "rollout.state": "Rollout state",
    "rollout.url": "Link to the rollout in Rollcall",
    "environment": "Environment name, e.g. Production",
    "phase.name": "Phase name",
    "phase.number": "Phase number (1, 2, ...)",
    "phase.count": "Number of phases",
    "phase.percentage": "Phase percentage (number)",
    "exposure": "Who gets it in this phase, e.g. '25% of users'",
    "previous_exposure": "Exposure before this change",
    "start_time": "When the phase starts, in the audience's time zone",
    "starts_in": "How soon the phase starts, e.g. 'in 3 hours'",
    "audience.name": "Audience name",
    "audience.timezone": "Audience time zone",
    "doc_links": "List of documentation links (public ones only for customers)",
    "owner": "Owner contact, 'Name <email>'",
    "owner.name": "Owner name",
    "owner.email": "Owner email",
    "reason": "Reason given for a hold or rollback",
    "event": "What happened, e.g. 'Phase started'",
    "now": "Time of sending, in the audience's time zone",
}

_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+)?$")
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_PLACEHOLDER = "\x00{}\x00"
_PLACEHOLDER_RE = re.compile("\x00(\\d+)\x00")
MAX_SUBJECT = 300


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class LinkList:
    """A structured value (doc_links): each flavour renders it as a list, titles escaped."""

    links: tuple[Link, ...] = ()
    empty_text: str = "No documentation links."


@dataclass
class Rendered:
    subject: str
    text: str
    markdown: str
    html: str
    slack: str
    variables: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Validation (at save time)


def _line_of(source: str, index: int) -> int:
    return source.count("\n", 0, index) + 1


def template_variables(source: str, *, field_name: str = "body", label: str = "") -> list[str]:
    """The variables a template uses; ApplicationError(field=field_name) when it is invalid."""
    where = label or field_name
    if "{%" in source or "%}" in source:
        raise ApplicationError(
            f"The {where} uses template tags ({{% ... %}}), which are not allowed; "
            "use {{ variables }} only.",
            field=field_name,
        )
    names: list[str] = []
    for match in _TAG.finditer(source):
        raw = match.group(1).strip()
        line = _line_of(source, match.start())
        if not raw:
            raise ApplicationError(
                f"The {where} has an empty {{{{ }}}} on line {line}; write a variable inside, "
                "e.g. {{ release.name }}.",
                field=field_name,
            )
        if "|" in raw:
            raise ApplicationError(
                f"Filters are not supported ({{{{ {raw} }}}} on line {line} of the {where}); "
                "use the variable alone.",
                field=field_name,
            )
        if not _NAME.match(raw) or raw not in VARIABLES:
            close = difflib.get_close_matches(raw, VARIABLES, n=1, cutoff=0.6)
            hint = f" Did you mean {{{{ {close[0]} }}}}?" if close else ""
            raise ApplicationError(
                f"Unknown variable {{{{ {raw} }}}} on line {line} of the {where}.{hint} "
                f"Known variables: {', '.join(VARIABLES)}.",
                field=field_name,
            )
        names.append(raw)
    rest = _TAG.sub("", source)
    for token in ("{{", "}}"):
        if token in rest:
            line = _line_of(rest, rest.index(token))
            raise ApplicationError(
                f"The {where} has a '{token}' without its pair (around line {line}); "
                "variables are written {{ name }}.",
                field=field_name,
            )
    return names


def validate_template(*, subject: str, body: str) -> list[str]:
    """Check a subject and body; returns the variables they use, in order, once each."""
    if not (subject or "").strip():
        raise ApplicationError("Write a subject.", field="subject")
    if len(subject) > MAX_SUBJECT:
        raise ApplicationError(
            f"The subject is {len(subject)} characters long; keep it under {MAX_SUBJECT}.",
            field="subject",
        )
    if not (body or "").strip():
        raise ApplicationError("Write the message (Markdown).", field="body")
    used = template_variables(subject, field_name="subject", label="subject")
    used += template_variables(body, field_name="body", label="message")
    return list(dict.fromkeys(used))


# --------------------------------------------------------------------------------------------
# Escaping per flavour


def escape_markdown(value: str) -> str:
    """Make any text literal in CommonMark (every ASCII punctuation backslash-escaped)."""
    return _PUNCTUATION.sub(r"\\\1", value)


def escape_slack(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _safe_url(url: str) -> str | None:
    url = (url or "").strip()
    if not re.match(r"^https?://", url, re.I):
        return None
    # Characters that would end a Markdown/Slack link are percent-encoded.
    for char, code in ((" ", "%20"), ("<", "%3C"), (">", "%3E"), ("|", "%7C"), ("\n", "")):
        url = url.replace(char, code)
    return url


def _value(value: Any, flavour: str) -> str:
    if isinstance(value, LinkList):
        return _links(value, flavour)
    text = "" if value is None else str(value)
    if flavour == "markdown":
        return escape_markdown(text)
    if flavour == "slack":
        return escape_slack(text)
    return text


def _links(value: LinkList, flavour: str) -> str:
    lines = []
    for link in value.links:
        url = _safe_url(link.url)
        if url is None:
            continue
        if flavour == "markdown":
            lines.append(f"- [{escape_markdown(link.title)}](<{url}>)")
        elif flavour == "slack":
            lines.append(f"• <{url}|{escape_slack(link.title)}>")
        else:
            lines.append(f"- {link.title}: {url}")
    if not lines:
        return _value(value.empty_text, flavour)
    return "\n".join(lines)


def _markdown_to_slack(source: str) -> str:
    """The template's own Markdown as Slack mrkdwn (values are placeholders at this point)."""
    out = escape_slack(source)
    out = re.sub(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"*\1*", out)
    out = re.sub(r"__(.+?)__", r"*\1*", out)
    out = re.sub(r"~~(.+?)~~", r"~\1~", out)
    out = re.sub(r"^#{1,6}\s+(.+)$", r"*\1*", out, flags=re.M)
    return re.sub(r"^(\s*)[-*+]\s+", r"\1• ", out, flags=re.M)


_MD_LINK = re.compile(
    r"(!?)\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)"
)
_MD_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]*<?([^\s>]*)>?.*$", re.M)
_SAFE_TARGET = re.compile(r"^(https?://|mailto:)", re.I)
_SAFE_AUTOLINK = re.compile(r"(<(?:https?://|mailto:)[^<>\s]*>)", re.I)
_RAW_HTML = re.compile(r"<[A-Za-z/!?][^>]*>|<!--.*?-->", re.S)


def _safe_template_source(source: str, flavour: str) -> str:
    """The template author's own Markdown without what a channel could run or fetch:
    `[x](javascript:...)` becomes `x`, `![alt](...)` becomes `alt` (no tracking pixels) and
    unsafe reference definitions go. Raw HTML (`<img onerror=...>`, `<script>`) never stays a
    tag: Markdown (Teams, webhooks, the HTML part) shows it as text (`&lt;b>`), plain text drops
    it, Slack's flavour escapes it anyway. `<https://...>` autolinks stay."""

    def link(match: re.Match[str]) -> str:
        bang, label, target = match.groups()
        if not bang and _SAFE_TARGET.match(target):
            return match.group(0)
        return label

    out = _MD_LINK.sub(link, source)
    out = _MD_REFERENCE.sub(lambda m: m.group(0) if _SAFE_TARGET.match(m.group(1)) else "", out)
    if flavour == "slack":
        return out

    def tag(match: re.Match[str]) -> str:
        return "" if flavour == "text" else "&lt;" + match.group(0)[1:]

    parts = _SAFE_AUTOLINK.split(out)
    return "".join(
        part if index % 2 else _RAW_HTML.sub(tag, part) for index, part in enumerate(parts)
    )


def _fill(source: str, context: Mapping[str, Any], flavour: str) -> str:
    values: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        values.append(_value(context.get(match.group(1).strip()), flavour))
        return _PLACEHOLDER.format(len(values) - 1)

    # Stray NUL characters from a writer could forge placeholders: drop them first.
    marked = _TAG.sub(placeholder, source.replace("\x00", ""))
    marked = _safe_template_source(marked, flavour)
    if flavour == "slack":
        marked = _markdown_to_slack(marked)
    return _PLACEHOLDER_RE.sub(lambda m: values[int(m.group(1))], marked)


def render(*, subject: str, body: str, context: Mapping[str, Any]) -> Rendered:
    """Render a validated template for every channel flavour."""
    used = validate_template(subject=subject, body=body)
    one_line = " ".join(_fill(subject, context, "text").split())
    markdown = _fill(body, context, "markdown")
    return Rendered(
        subject=one_line[:MAX_SUBJECT],
        text=_fill(body, context, "text"),
        markdown=markdown,
        html=str(render_markdown(markdown)),
        slack=_fill(body, context, "slack"),
        variables=used,
    )


def email_html(rendered: Rendered) -> str:
    """The HTML alternative of an email: the sanitized body in a minimal document."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(rendered.subject)}</title></head>"
        f'<body style="font-family:system-ui,sans-serif;line-height:1.5">{rendered.html}'
        '<hr><p style="color:#545d6e;font-size:12px">Sent by Rollcall.</p></body></html>'
    )


# --------------------------------------------------------------------------------------------
# Context


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_time(value: datetime | None, tz_name: str) -> str:
    """`Tue 3 Dec 2024, 09:00 CET` in the given IANA zone (the audience's: notices are read
    by their recipients); '' for no time. The one format of every page (core/when.py)."""
    return format_datetime(value, zone(tz_name))


def humanize_delta(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds <= 60:
        return "now" if seconds >= -60 else "already"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"in {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / 3600)
    if hours < 48:
        return f"in {hours} hours"
    return f"in {round(seconds / 86400)} days"


def format_duration(delta: timedelta | None) -> str:
    """`24 h`, `90 min`, `2 days`: a lead time as people say it."""
    if delta is None:
        return ""
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def exposure_text(percentage: int | None, segment_name: str | None) -> str:
    if segment_name and percentage not in (None, 100):
        return f"{percentage}% of {segment_name}"
    if segment_name:
        return f"everyone in {segment_name}"
    if percentage is None:
        return ""
    if percentage == 0:
        return "nobody"
    if percentage == 100:
        return "everyone (100%)"
    return f"{percentage}% of users"


def build_context(
    *,
    audience: Any,
    now: datetime,
    release: Any = None,
    rollout: Any = None,
    phase: Any = None,
    phase_count: int | None = None,
    phase_start: datetime | None = None,
    previous_percentage: int | None = None,
    reason: str = "",
    event_label: str = "",
    doc_links: Iterable[Any] = (),
    rollout_url: str = "",
) -> dict[str, Any]:
    """Every variable's value for one audience; unknown parts are ''. No queries."""
    tz_name = getattr(audience, "timezone", "UTC")
    owner = getattr(rollout, "owner", None) or getattr(release, "owner", None)
    owner_name = (owner.get_full_name() or owner.username) if owner else ""
    owner_email = getattr(owner, "email", "") if owner else ""
    segment = getattr(phase, "segment", None) if phase else None
    links = tuple(Link(title=d.title, url=d.url) for d in doc_links)
    context: dict[str, Any] = dict.fromkeys(VARIABLES, "")
    context.update(
        {
            "audience.name": getattr(audience, "name", ""),
            "audience.timezone": tz_name,
            "doc_links": LinkList(links),
            "owner": f"{owner_name} <{owner_email}>" if owner_email else owner_name,
            "owner.name": owner_name,
            "owner.email": owner_email,
            "reason": reason,
            "event": event_label,
            "now": format_time(now, tz_name),
        }
    )
    if release is not None:
        context.update(
            {
                "release.name": release.name,
                "release.version": release.version,
                "release.summary": release.summary,
                "release.label": release.get_label_display(),
                "release.known_issues": release.known_issues,
            }
        )
    if rollout is not None:
        context.update(
            {
                "rollout.key": rollout.key,
                "rollout.strategy": rollout.get_strategy_display(),
                "rollout.state": rollout.get_state_display(),
                "rollout.url": rollout_url,
                "environment": rollout.environment.name,
            }
        )
    if phase is not None:
        context.update(
            {
                "phase.name": phase.name,
                "phase.number": phase.order + 1,
                "phase.count": phase_count or "",
                "phase.percentage": "" if phase.percentage is None else phase.percentage,
                "exposure": exposure_text(phase.percentage, segment.name if segment else None),
            }
        )
    if previous_percentage is not None:
        context["previous_exposure"] = exposure_text(previous_percentage, None)
    if phase_start is not None:
        context["start_time"] = format_time(phase_start, tz_name)
        context["starts_in"] = humanize_delta(phase_start - now)
    return context


def sample_context(*, audience: Any = None, now: datetime) -> dict[str, Any]:
    """Plausible values for previews of templates that are not tied to a rollout yet."""
    tz_name = getattr(audience, "timezone", "UTC")
    start = now + timedelta(hours=24)
    context: dict[str, Any] = dict.fromkeys(VARIABLES, "")
    context.update(
        {
            "release.name": "Faster checkout",
            "release.version": "2.4.0",
            "release.summary": "Checkout in one step instead of three.",
            "release.label": "Improvement",
            "release.known_issues": "Saved cards from before 2019 must be entered again.",
            "rollout.key": "faster-checkout-production",
            "rollout.strategy": "Feature flag",
            "rollout.state": "Running",
            "rollout.url": "https://rollcall.example.com/rollouts/faster-checkout-production/",
            "environment": "Production",
            "phase.name": "25% of users",
            "phase.number": 3,
            "phase.count": 5,
            "phase.percentage": 25,
            "exposure": "25% of users",
            "previous_exposure": "5% of users",
            "start_time": format_time(start, tz_name),
            "starts_in": humanize_delta(start - now),
            "audience.name": getattr(audience, "name", "Customer support"),
            "audience.timezone": tz_name,
            "doc_links": LinkList(
                (
                    Link("User guide", "https://docs.example.com/checkout"),
                    Link("FAQ", "https://docs.example.com/checkout/faq"),
                )
            ),
            "owner": "Remy Release <release@example.com>",
            "owner.name": "Remy Release",
            "owner.email": "release@example.com",
            "reason": "Error rate above 2% on checkout",
            "event": "Phase starting soon",
            "now": format_time(now, tz_name),
        }
    )
    return context


# --------------------------------------------------------------------------------------------
# Built-in templates: used when no template is chosen and no default exists in the database
# (demo data stores them as editable NoticeTemplate rows).

BUILTIN_TEMPLATES: dict[str, tuple[str, str]] = {
    "scheduled": (
        "Scheduled: {{ release.name }} {{ release.version }} in {{ environment }}",
        "**{{ release.name }} {{ release.version }}** is scheduled to roll out in "
        "{{ environment }}.\n\n{{ release.summary }}\n\n"
        "The first phase ({{ phase.name }}, {{ exposure }}) starts {{ start_time }}.\n\n"
        "Documentation:\n\n{{ doc_links }}\n\nQuestions: {{ owner }}\n",
    ),
    "phase_upcoming": (
        "{{ release.name }}: {{ phase.name }} starts {{ starts_in }}",
        "Heads-up: **{{ release.name }} {{ release.version }}** moves to phase "
        "{{ phase.number }} of {{ phase.count }} (**{{ phase.name }}**, {{ exposure }}) "
        "in {{ environment }} at {{ start_time }} ({{ starts_in }}).\n\n"
        "{{ release.summary }}\n\nKnown issues: {{ release.known_issues }}\n\n"
        "Documentation:\n\n{{ doc_links }}\n\nQuestions: {{ owner }}\n",
    ),
    "phase_started": (
        "{{ release.name }} is now live for {{ exposure }}",
        "**{{ release.name }} {{ release.version }}** is now live for {{ exposure }} in "
        "{{ environment }} (phase {{ phase.number }} of {{ phase.count }}: {{ phase.name }}).\n\n"
        "{{ release.summary }}\n\nDocumentation:\n\n{{ doc_links }}\n",
    ),
    "held": (
        "On hold: {{ release.name }} in {{ environment }}",
        "The rollout of **{{ release.name }} {{ release.version }}** in {{ environment }} is "
        "on hold at {{ exposure }}.\n\nReason: {{ reason }}\n\n"
        "Nothing changes for users until it continues. Questions: {{ owner }}\n",
    ),
    "resumed": (
        "Resumed: {{ release.name }} in {{ environment }}",
        "The rollout of **{{ release.name }} {{ release.version }}** in {{ environment }} "
        "continues at {{ exposure }}.\n",
    ),
    "rolled_back": (
        "Correction: {{ release.name }} has been rolled back",
        "**Correction:** {{ release.name }} {{ release.version }} has been rolled back in "
        "{{ environment }}; users are back on the previous behaviour. Please disregard "
        "earlier announcements about it.\n\nReason: {{ reason }}\n\nQuestions: {{ owner }}\n",
    ),
    "completed": (
        "{{ release.name }} {{ release.version }} is available to everyone",
        "**{{ release.name }} {{ release.version }}** is now available to everyone in "
        "{{ environment }}.\n\n{{ release.summary }}\n\nDocumentation:\n\n{{ doc_links }}\n",
    ),
    "custom": (
        "{{ release.name }}",
        "{{ release.summary }}\n",
    ),
}
