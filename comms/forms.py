"""Forms parse input for the HTML views; the services validate the domain rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from comms.models import Audience, Channel, Notice, NoticeEvent, NoticeTemplate, PlanRule
from comms.templating import zone
from rollouts.models import Release, Rollout

TEXTAREA = {"rows": 10, "spellcheck": "true"}


class NoticeFilterForm(forms.Form):
    state = forms.ChoiceField(
        required=False, choices=[("", "Any state"), *Notice.State.choices], label="State"
    )
    audience = forms.ModelChoiceField(
        required=False, queryset=Audience.objects.order_by("name"), empty_label="Any audience"
    )
    rollout = forms.ModelChoiceField(
        required=False,
        queryset=Rollout.objects.select_related("release", "environment").order_by("-created_at"),
        empty_label="Any rollout",
        to_field_name="key",
    )

    # The rollout menu lists the newest rollouts (any key still filters: a link from a
    # rollout's page names its own).
    ROLLOUT_CHOICES = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["rollout"]
        assert isinstance(field, forms.ModelChoiceField)
        newest = list(field.queryset[: self.ROLLOUT_CHOICES]) if field.queryset is not None else []
        selected = str(self.data.get("rollout") or "")
        choices = [("", "Any rollout"), *((r.key, str(r)) for r in newest)]
        if selected and all(r.key != selected for r in newest):
            choices.append((selected, selected))
        field.widget.choices = choices


def local_to_aware(value: datetime | None, tz_name: str) -> datetime | None:
    """A datetime-local value read as wall time in the audience's time zone (Django's form
    field has already attached the current time zone: keep the wall time, change the zone)."""
    if value is None:
        return None
    if timezone.is_aware(value):
        value = timezone.make_naive(value)
    return value.replace(tzinfo=zone(tz_name))


class ComposeForm(forms.Form):
    WHEN_CHOICES = [
        ("draft", "Save as draft"),
        ("schedule", "Schedule"),
        ("now", "Send now"),
    ]

    audience = forms.ModelChoiceField(queryset=Audience.objects.order_by("name"))
    rollout = forms.ModelChoiceField(
        required=False,
        queryset=Rollout.objects.select_related("release", "environment").order_by("-created_at"),
        empty_label="No rollout",
        help_text="Fills rollout, phase and environment variables.",
    )
    release = forms.ModelChoiceField(
        required=False,
        queryset=Release.objects.order_by("-created_at"),
        empty_label="The rollout's release (or none)",
    )
    subject = forms.CharField(max_length=300)
    body = forms.CharField(
        label="Message (Markdown)", widget=forms.Textarea(attrs=TEXTAREA), max_length=20000
    )
    when = forms.ChoiceField(choices=WHEN_CHOICES, widget=forms.RadioSelect, initial="draft")
    send_at = forms.DateTimeField(
        required=False,
        label="Send at (audience's time zone)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("when") == "schedule" and not data.get("send_at"):
            self.add_error("send_at", "Choose when to send it.")
        audience = data.get("audience")
        if data.get("send_at") and audience is not None:
            data["send_at"] = local_to_aware(data["send_at"], audience.timezone)
        return data


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=100)
    event = forms.ChoiceField(choices=NoticeEvent.choices, label="Used for")
    subject = forms.CharField(max_length=300)
    body = forms.CharField(
        label="Message (Markdown)", widget=forms.Textarea(attrs=TEXTAREA), max_length=20000
    )
    is_default = forms.BooleanField(
        required=False, label="Default for this event (plan rules without a template use it)"
    )


class AudienceForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Audience.Kind.choices)
    timezone = forms.CharField(
        max_length=64, initial="UTC", help_text="IANA name, e.g. Europe/Berlin or America/New_York."
    )
    contacts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line: Name <email@example.com>. Email channels send to these.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(choices=Channel.Kind.choices)
    name = forms.CharField(max_length=100)
    url = forms.CharField(
        required=False,
        max_length=1000,
        label="Webhook address",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Secret. Leave blank to keep the stored address.",
    )
    recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Email recipients",
        help_text="One address per line; empty sends to the audience's contacts.",
    )
    is_enabled = forms.BooleanField(required=False, initial=True, label="Enabled")


LEAD_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}


class PlanRuleForm(forms.Form):
    audience = forms.ModelChoiceField(queryset=Audience.objects.order_by("name"))
    event = forms.ChoiceField(
        choices=[c for c in NoticeEvent.choices if c[0] != NoticeEvent.CUSTOM], label="Hears about"
    )
    phases = forms.ChoiceField(
        choices=PlanRule.Phases.choices, initial=PlanRule.Phases.ALL, label="Which phases"
    )
    lead_amount = forms.IntegerField(
        required=False, min_value=1, max_value=43200, label="Lead time", initial=24
    )
    lead_unit = forms.ChoiceField(
        choices=[(u, u) for u in LEAD_UNITS], initial="hours", label="Unit"
    )
    template = forms.ModelChoiceField(
        required=False,
        queryset=NoticeTemplate.objects.order_by("event", "name"),
        empty_label="Default for the event",
    )
    is_enabled = forms.BooleanField(required=False, initial=True, label="Enabled")

    def lead_time(self) -> timedelta | None:
        amount = self.cleaned_data.get("lead_amount")
        if not amount:
            return None
        return timedelta(seconds=amount * LEAD_UNITS[self.cleaned_data.get("lead_unit", "hours")])

    @staticmethod
    def initial_for(rule: PlanRule) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "audience": rule.audience_id,
            "event": rule.event,
            "phases": rule.phases,
            "template": rule.template_id,
            "is_enabled": rule.is_enabled,
        }
        if rule.lead_time:
            seconds = int(rule.lead_time.total_seconds())
            for unit, size in reversed(LEAD_UNITS.items()):
                if seconds % size == 0:
                    initial.update(lead_amount=seconds // size, lead_unit=unit)
                    break
        return initial
