"""Forms of the rollouts UI: releases, a new rollout, and the phase plan editor.

The plan editor works on *rows* (the raw strings of each phase's inputs) so that adding,
moving and deleting phases, and filling in a template, re-render what a person typed even
when it is not valid yet; rows become bound PhaseForms for validation and display.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from django import forms
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from core.exceptions import ApplicationError
from flags.models import FLAG_KEY_PATTERN, Environment, Flag
from rollouts.models import FreezeWindow, Phase, Release, Rollout
from rollouts.plan_text import phases_from_text
from rollouts.strategies import STRATEGIES, TEMPLATES

MAX_PHASES = 50
PHASE_FIELDS = (
    "name",
    "percentage",
    "segment",
    "start_rule",
    "start_at",
    "soak_value",
    "soak_unit",
    "gate",
    "notes",
    "requires_approval",
    "checklist",
)
SOAK_UNITS = (("minutes", "minutes"), ("hours", "hours"), ("days", "days"))
SOAK_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400}
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


@lru_cache(maxsize=1)
def timezone_choices() -> list[tuple[str, str]]:
    names = sorted(n for n in zoneinfo.available_timezones() if "/" in n or n == "UTC")
    return [(n, n.replace("_", " ")) for n in names]


def template_choices(strategy: str | None = None) -> list[tuple[str, Any]]:
    """Templates grouped by strategy (or of one strategy), for a <select> with optgroups."""
    groups: list[tuple[str, Any]] = [("", "Default: the strategy's first template")]
    for key, spec in STRATEGIES.items():
        if strategy and key != strategy:
            continue
        groups.append((spec.label, [(t.key, t.name) for t in spec.templates]))
    return groups


class FastSelect(forms.Select):
    """A <select> rendered in Python: Django renders each <option> through a template, which
    costs ~0.3 ms an option; pages offering 1,000 flags or ~600 time zones cannot afford it.
    Flat choices only (no optgroups)."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        final = self.build_attrs(self.attrs, attrs)
        final["name"] = name
        if self.allow_multiple_selected:
            final["multiple"] = True
        values = value if isinstance(value, list | tuple) else [value]
        chosen = {"" if v is None else str(v) for v in values}
        parts = [f"<select{flatatt(final)}>"]
        for option_value, label in self.choices:
            key = "" if option_value is None else str(option_value)
            selected = " selected" if key in chosen else ""
            parts.append(f'<option value="{escape(key)}"{selected}>{escape(label)}</option>')
        parts.append("</select>")
        return mark_safe("".join(parts))  # noqa: S308 - values and labels escaped above


class FastSelectMultiple(FastSelect):
    allow_multiple_selected = True

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        getter = getattr(data, "getlist", None)
        return getter(name) if getter else data.get(name)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return False


# ---------------------------------------------------------------------------------------------
# Releases


class ReleaseForm(forms.Form):
    name = forms.CharField(max_length=200)
    version = forms.CharField(max_length=50, required=False, help_text="e.g. 2.4.0")
    summary = forms.CharField(
        max_length=500, required=False, help_text="One sentence: what users get."
    )
    label = forms.ChoiceField(choices=Release.Label.choices, initial=Release.Label.NEW)
    changelog = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Markdown (headings, lists, links, tables). Raw HTML is not rendered.",
    )
    known_issues = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Markdown; shown to support staff.",
    )
    flags = forms.ModelMultipleChoiceField(
        queryset=Flag.objects.exclude(lifecycle=Flag.Lifecycle.ARCHIVED).order_by("key"),
        required=False,
        widget=FastSelectMultiple(attrs={"size": 6}),
        help_text="Flags this release ships behind (Ctrl/Cmd-click to pick several).",
    )
    is_public = forms.BooleanField(
        required=False,
        label="Public",
        help_text="Show on the public release notes page and feed.",
    )

    @classmethod
    def initial_for(cls, release: Release) -> dict[str, Any]:
        return {
            "name": release.name,
            "version": release.version,
            "summary": release.summary,
            "label": release.label,
            "changelog": release.changelog,
            "known_issues": release.known_issues,
            "flags": list(release.flags.all()),
            "is_public": release.is_public,
        }


# ---------------------------------------------------------------------------------------------
# New rollout


class RolloutCreateForm(forms.Form):
    release = forms.ModelChoiceField(
        queryset=Release.objects.order_by("-created_at"), widget=FastSelect
    )
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), widget=FastSelect)
    strategy = forms.ChoiceField(
        choices=Rollout.Strategy.choices, initial=Rollout.Strategy.FEATURE_FLAG
    )
    flag_choice = forms.ChoiceField(
        label="Flag",
        choices=(
            ("new", "Create a new flag shaped for the strategy"),
            ("existing", "Use an existing flag"),
        ),
        initial="new",
        widget=forms.RadioSelect,
    )
    flag_key = forms.RegexField(
        regex=FLAG_KEY_PATTERN,
        max_length=100,
        required=False,
        label="New flag key",
        help_text="Leave empty to derive it from the release.",
        error_messages={
            "invalid": "Use letters, digits, '.', '_' or '-', starting with a letter or digit."
        },
    )
    flag = forms.ModelChoiceField(
        queryset=Flag.objects.exclude(lifecycle=Flag.Lifecycle.ARCHIVED).order_by("key"),
        required=False,
        label="Existing flag",
        widget=FastSelect,
    )
    timezone = forms.ChoiceField(
        choices=timezone_choices,
        initial=timezone.get_current_timezone_name,  # the viewer's own zone
        widget=FastSelect,
        label="Time zone",
        help_text="Dates and times of the plan are in this time zone.",
    )
    template = forms.ChoiceField(
        choices=template_choices,
        required=False,
        label="Plan template",
        help_text="Fills the plan; you can change every phase afterwards.",
    )
    phases_text = forms.CharField(
        max_length=300,
        required=False,
        label="Phases (instead of a template)",
        help_text="Percentages and the soak between them, e.g. “5,25,50,75,100 every 24h”.",
    )
    key = forms.SlugField(
        max_length=100,
        required=False,
        label="Rollout key",
        help_text="Optional stable id (e.g. for alert routing); derived when empty.",
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("flag_choice") == "existing" and not data.get("flag"):
            self.add_error("flag", "Choose the flag this rollout drives.")
        if data.get("phases_text"):
            try:
                data["phases"] = phases_from_text(data["phases_text"])
            except ApplicationError as exc:
                self.add_error("phases_text", exc.message)
        template = data.get("template")
        strategy = data.get("strategy")
        if template and strategy:
            spec = STRATEGIES.get(strategy)
            if spec and template not in {t.key for t in spec.templates}:
                self.add_error(
                    "template",
                    f"{TEMPLATES[template].name!r} is not a {spec.label} template; "
                    f"pick one from the {spec.label} group.",
                )
        return data


# ---------------------------------------------------------------------------------------------
# Actions


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, required=False, strip=True)


# ---------------------------------------------------------------------------------------------
# Plan editor


class PhaseForm(forms.Form):
    name = forms.CharField(max_length=100)
    percentage = forms.IntegerField(min_value=0, max_value=100, required=False, label="Exposure %")
    segment = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Segment")
    start_rule = forms.ChoiceField(choices=Phase.StartRule.choices, label="Starts")
    start_at = forms.DateTimeField(
        required=False,
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        label="Start at",
    )
    soak_value = forms.IntegerField(min_value=0, required=False, label="Soak")
    soak_unit = forms.ChoiceField(choices=SOAK_UNITS, initial="hours", label="Soak unit")
    gate = forms.ChoiceField(choices=Phase.Gate.choices, label="Gate")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    requires_approval = forms.BooleanField(
        required=False,
        label="Needs approval",
        help_text="Someone other than the requester approves before it starts.",
    )
    checklist = forms.CharField(
        required=False,
        label="Checklist",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Steps a person ticks before it starts, one a line (e.g. Staging sign-off).",
    )

    def __init__(self, *args: Any, segment_choices: Sequence[tuple[Any, str]] = (), **kw: Any):
        super().__init__(*args, **kw)
        cast(forms.ChoiceField, self.fields["segment"]).choices = [
            ("", "None (percentage only)"),
            *segment_choices,
        ]

    def to_phase(self) -> dict[str, Any]:
        """The service's phase dict (call after is_valid())."""
        d = self.cleaned_data
        soak = None
        if d.get("soak_value") is not None:
            soak = timedelta(seconds=d["soak_value"] * SOAK_SECONDS[d["soak_unit"]])
        return {
            "name": d["name"],
            "percentage": d.get("percentage"),
            "segment": d.get("segment"),
            "start_rule": d["start_rule"],
            "start_at": d.get("start_at"),
            "soak": soak,
            "gate": d["gate"],
            "notes": d.get("notes", ""),
            "requires_approval": bool(d.get("requires_approval")),
            "checklist": [line.strip() for line in (d.get("checklist") or "").splitlines()],
        }


def soak_split(soak: timedelta | None) -> tuple[str, str]:
    if soak is None:
        return "", "hours"
    seconds = int(soak.total_seconds())
    if seconds and seconds % 86400 == 0:
        return str(seconds // 86400), "days"
    if seconds % 3600 == 0:
        return str(seconds // 3600), "hours"
    return str(round(seconds / 60)), "minutes"


def _local(at: datetime | None, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime(DATETIME_LOCAL) if at else ""


def row_from_phase(phase: Phase | Mapping[str, Any], tz: ZoneInfo) -> dict[str, str]:
    """A phase (model or service/template dict) as the raw strings of the editor's inputs."""

    def get(name: str) -> Any:
        return phase.get(name) if isinstance(phase, Mapping) else getattr(phase, name)

    segment = get("segment_id") if not isinstance(phase, Mapping) else phase.get("segment")
    soak_value, soak_unit = soak_split(get("soak"))
    pct = get("percentage")
    if isinstance(phase, Mapping):
        steps = phase.get("checklist") or []
        checklist = steps if isinstance(steps, str) else "\n".join(str(x) for x in steps)
        approval = phase.get("requires_approval")
    else:
        checklist = "\n".join(item.label for item in phase.checklist.all()) if phase.pk else ""
        approval = phase.requires_approval
    return {
        "name": get("name") or "",
        "percentage": "" if pct is None else str(pct),
        "segment": "" if segment is None else str(segment),
        "start_rule": get("start_rule") or Phase.StartRule.AFTER_SOAK,
        "start_at": _local(get("start_at"), tz),
        "soak_value": soak_value,
        "soak_unit": soak_unit,
        "gate": get("gate") or Phase.Gate.AUTOMATIC,
        "notes": get("notes") or "",
        "requires_approval": "on" if approval else "",
        "checklist": checklist,
    }


def blank_row(previous: Mapping[str, str] | None = None) -> dict[str, str]:
    pct = ""
    if previous and previous.get("percentage", "").isdigit():
        pct = str(min(100, int(previous["percentage"]) * 2 or 10))
    return {
        "name": "",
        "percentage": pct,
        "segment": "",
        "start_rule": Phase.StartRule.AFTER_SOAK,
        "start_at": "",
        "soak_value": "1",
        "soak_unit": "days",
        "gate": Phase.Gate.AUTOMATIC,
        "notes": "",
        "requires_approval": "",
        "checklist": "",
    }


def rows_from_post(data: Mapping[str, Any]) -> list[dict[str, str]]:
    try:
        count = int(data.get("phases-TOTAL", 0))
    except (TypeError, ValueError):
        count = 0
    count = max(0, min(count, MAX_PHASES))
    return [{f: str(data.get(f"phases-{i}-{f}", "")) for f in PHASE_FIELDS} for i in range(count)]


def apply_op(rows: list[dict[str, str]], op: str) -> list[dict[str, str]]:
    """Editor operations: "add", "up:<i>", "down:<i>", "delete:<i>" (others: no change)."""
    rows = [dict(r) for r in rows]
    name, _, arg = op.partition(":")
    if name == "add" and len(rows) < MAX_PHASES:
        rows.append(blank_row(rows[-1] if rows else None))
        return rows
    if not arg.isdigit():
        return rows
    i = int(arg)
    if not 0 <= i < len(rows):
        return rows
    if name == "delete":
        del rows[i]
    elif name == "up" and i > 0:
        rows[i - 1], rows[i] = rows[i], rows[i - 1]
    elif name == "down" and i + 1 < len(rows):
        rows[i + 1], rows[i] = rows[i], rows[i + 1]
    return rows


def bind_rows(
    rows: Iterable[Mapping[str, str]],
    *,
    offset: int = 0,
    segment_choices: Sequence[tuple[Any, str]] = (),
) -> list[PhaseForm]:
    """Bound PhaseForms for editable rows; `offset` is the number of phases already applied
    (so form i edits phase offset+i, and the service's "phases.<offset+i>.x" errors land on it).
    """
    forms_: list[PhaseForm] = []
    for i, row in enumerate(rows):
        data = {f"phases-{i}-{k}": v for k, v in row.items()}
        form = PhaseForm(data, prefix=f"phases-{i}", segment_choices=segment_choices)
        form.phase_index = offset + i  # type: ignore[attr-defined]
        forms_.append(form)
    return forms_


def validate_forms(forms_: Sequence[PhaseForm], tz: ZoneInfo) -> bool:
    """Validate rows, reading date-times in the rollout's time zone."""
    with timezone.override(tz):
        return all([f.is_valid() for f in forms_])


def add_service_error(forms_: Sequence[PhaseForm], *, field: str | None, message: str) -> bool:
    """Put an ApplicationError on the field named by its path "phases.<i>.<field>".

    Returns False when the path names no editable field (the caller shows it above the form).
    """
    if not field or not field.startswith("phases."):
        return False
    parts = field.split(".")
    if len(parts) < 2 or not parts[1].isdigit():
        return False
    index = int(parts[1])
    name = parts[2] if len(parts) > 2 else None
    if name == "soak":
        name = "soak_value"
    for form in forms_:
        if form.phase_index == index:  # type: ignore[attr-defined]
            if name in form.fields:
                form.add_error(name, message)
            else:
                form.add_error(None, message)
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Rollout safety


class DecisionForm(forms.Form):
    comment = forms.CharField(
        max_length=2000, required=False, strip=True, widget=forms.Textarea(attrs={"rows": 2})
    )


class AlertSettingsForm(forms.Form):
    alert_policy = forms.ChoiceField(
        choices=Rollout.AlertPolicy.choices, label="When an alert fires"
    )
    alert_matchers = forms.CharField(
        required=False,
        label="Label matchers",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='One a line, like Alertmanager: service="checkout", severity=~"page|critical". '
        "Alerts labelled rollout=<this key> always count.",
    )
    alert_auto_resume = forms.BooleanField(
        required=False,
        label="Resume on its own when the alerts resolve",
        help_text="Otherwise a person resumes it.",
    )
    rotate_secret = forms.BooleanField(required=False, label="Make a new webhook secret")


DURATION_UNITS = (("minutes", "minutes"), ("hours", "hours"), ("days", "days"))


class WindowForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=FreezeWindow.Kind.choices, initial=FreezeWindow.Kind.DENY)
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.all(),
        required=False,
        empty_label="Every environment",
        widget=FastSelect,
    )
    timezone = forms.ChoiceField(
        choices=timezone_choices,
        initial=timezone.get_current_timezone_name,  # the viewer's own zone
        widget=FastSelect,
        label="Time zone",
    )
    schedule = forms.ChoiceField(
        choices=(("once", "Once: from a date to a date"), ("cron", "Recurring: cron + duration")),
        initial="once",
        widget=forms.RadioSelect,
        label="When",
    )
    starts_at = forms.DateTimeField(
        required=False,
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        label="Starts",
    )
    ends_at = forms.DateTimeField(
        required=False,
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        label="Ends",
    )
    cron = forms.CharField(
        required=False,
        max_length=100,
        label="Cron",
        help_text="minute hour day month weekday, in the time zone: 0 9 * * 1-5 is 09:00 "
        "Monday to Friday.",
    )
    duration_value = forms.IntegerField(required=False, min_value=1, label="Lasts")
    duration_unit = forms.ChoiceField(choices=DURATION_UNITS, initial="hours", label="Unit")
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def service_kwargs(self) -> dict[str, Any]:
        d = self.cleaned_data
        recurring = d["schedule"] == "cron"
        duration = None
        if recurring and d.get("duration_value"):
            duration = timedelta(seconds=d["duration_value"] * SOAK_SECONDS[d["duration_unit"]])
        return {
            "name": d["name"],
            "kind": d["kind"],
            "environment": d.get("environment"),
            "timezone_name": d["timezone"],
            "starts_at": None if recurring else d.get("starts_at"),
            "ends_at": None if recurring else d.get("ends_at"),
            "cron": d.get("cron", "") if recurring else "",
            "duration": duration,
            "reason": d.get("reason", ""),
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        tz = data.get("timezone") or "UTC"
        # Date-times are wall-clock times in the window's own time zone.
        for name in ("starts_at", "ends_at"):
            value = data.get(name)
            if value is not None:
                naive = timezone.make_naive(value) if timezone.is_aware(value) else value
                data[name] = naive.replace(tzinfo=ZoneInfo(tz))
        return data


class PolicyForm(forms.Form):
    min_percentage = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=100,
        label="Approval from",
        help_text="Phases reaching this exposure (%) need approval; 0: every phase; empty: "
        "only phases marked in the plan.",
    )
    approvals_required = forms.IntegerField(
        min_value=1, max_value=10, initial=1, label="Approvers needed"
    )
    allow_self_approval = forms.BooleanField(
        required=False, label="The requester may approve their own request"
    )
    requires_completed_in = forms.ModelChoiceField(
        queryset=Environment.objects.all(),
        required=False,
        empty_label="No promotion required",
        label="Release must complete first in",
    )


CALENDAR_FIRST_DATE = date(1900, 1, 1)
CALENDAR_LAST_DATE = date(2999, 12, 31)


class CalendarQuery:
    """The calendar's view, date and environment, from the query string. Days and times are
    the viewer's (their time zone, activated for the request: core/when.py)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.view = data.get("view") if data.get("view") in ("month", "week") else "month"
        self.tz = timezone.get_current_timezone()
        self.environment = str(data.get("environment") or "")[:64]
        today = timezone.localdate(timezone=self.tz)
        raw = str(data.get("date") or "")
        try:
            self.date = datetime.strptime(raw, "%Y-%m-%d").date() if raw else today
        except ValueError:
            self.date = today
        self.today = today
        # Set when the date is outside what the calendar shows (the view answers 400).
        self.error = ""
        if not CALENDAR_FIRST_DATE <= self.date <= CALENDAR_LAST_DATE:
            self.error = (
                f"The calendar shows dates from {CALENDAR_FIRST_DATE.isoformat()} to "
                f"{CALENDAR_LAST_DATE.isoformat()}; {self.date.isoformat()} is outside that range."
            )
            self.date = today
