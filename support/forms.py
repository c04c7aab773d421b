"""Forms of the support pages: changelog filters, doc links, customer lookup."""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms

from comms.models import DocLink
from flags import engine
from flags.models import Environment
from rollouts.models import Release, Rollout
from support.selectors import ChangelogFilters

# Context names customers' apps send; shown as named fields on the lookup form.
NAMED_ATTRIBUTES = (
    ("email", "email"),
    ("plan", "plan"),
    ("country", "country"),
    ("app_version", "appVersion"),
)
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class ChangelogFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name, version, text"}),
    )
    environment = forms.ChoiceField(label="Environment", required=False)
    label = forms.ChoiceField(
        label="Label", required=False, choices=[("", "Any label"), *Release.Label.choices]
    )
    status = forms.ChoiceField(
        label="Rollout status",
        required=False,
        choices=[("", "Any status"), *Rollout.State.choices],
    )
    date_from = forms.DateField(
        label="Changed from", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="Changed until", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, environments: list[Environment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["environment"])
        field.choices = [
            ("", "All environments"),
            *((env.key, env.name) for env in environments),
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date must be on or after the start date.")
        return data

    def filters(self, page: str | int = 1) -> ChangelogFilters:
        """The valid filters; an invalid field is left out (and the form says why)."""
        self.is_valid()
        # Django drops invalid fields from cleaned_data, so what remains is usable.
        data = getattr(self, "cleaned_data", {})
        return ChangelogFilters(
            q=data.get("q") or "",
            environment=data.get("environment") or "",
            label=data.get("label") or "",
            status=data.get("status") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            page=page,
        )


class DocLinkForm(forms.Form):
    title = forms.CharField(label="Title", max_length=200)
    url = forms.CharField(
        label="Address (URL)",
        max_length=1000,
        help_text="An http:// or https:// address.",
        widget=forms.URLInput(attrs={"placeholder": "https://docs.example.com/guide"}),
    )
    kind = forms.ChoiceField(label="Kind", choices=DocLink.Kind.choices)
    visibility = forms.ChoiceField(
        label="Visibility",
        choices=DocLink.Visibility.choices,
        initial=DocLink.Visibility.INTERNAL,
        help_text="Public links appear on the public release notes page and feed.",
    )


class CustomerLookupForm(forms.Form):
    user_id = forms.CharField(
        label="User id",
        max_length=200,
        help_text="The id the apps send as targetingKey / userId.",
    )
    environment = forms.ChoiceField(label="Environment", required=False)
    email = forms.CharField(label="Email", required=False, max_length=254)
    plan = forms.CharField(label="Plan", required=False, max_length=100)
    country = forms.CharField(label="Country", required=False, max_length=100)
    app_version = forms.CharField(label="App version", required=False, max_length=100)
    extra = forms.CharField(
        label="More attributes",
        required=False,
        max_length=5000,
        help_text="One key=value per line, e.g. sessionId=abc or company=acme.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    q = forms.CharField(
        label="Flag",
        required=False,
        max_length=200,
        help_text="Only flags (and their rollouts) whose key or name contains this.",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Key or name"}),
    )

    def __init__(self, *args: Any, environments: list[Environment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["environment"])
        field.choices = [
            ("", "All environments"),
            *((env.key, env.name) for env in environments),
        ]

    def clean_user_id(self) -> str:
        value = self.cleaned_data["user_id"].strip()
        if not value:
            raise forms.ValidationError("Enter the customer's user id.")
        return value

    def clean_extra(self) -> dict[str, str]:
        attributes: dict[str, str] = {}
        for number, raw in enumerate(self.cleaned_data.get("extra", "").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key:
                raise forms.ValidationError(
                    f"Line {number} ({line[:40]!r}) is not key=value, e.g. company=acme."
                )
            if not _ATTRIBUTE_NAME.match(key):
                raise forms.ValidationError(
                    f"Line {number}: {key[:40]!r} is not a valid attribute name "
                    "(letters, digits, '_', '.', '-')."
                )
            attributes[key] = value.strip()
        return attributes

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if not self.errors:  # values the engine must not see (lone surrogates): a form error
            try:
                engine.context_from_ofrep(self.ofrep_context())
            except engine.InvalidContext as exc:
                raise forms.ValidationError(exc.details) from None
        return cleaned

    def ofrep_context(self) -> dict[str, str]:
        """The OpenFeature evaluation context a service would send for this customer."""
        data = self.cleaned_data
        context: dict[str, str] = {}
        # Free lines first, so the named fields (and the user id) win on a clash.
        context.update(data.get("extra") or {})
        for field_name, context_name in NAMED_ATTRIBUTES:
            if data.get(field_name):
                context[context_name] = data[field_name].strip()
        context.pop("userId", None)
        context["targetingKey"] = data["user_id"]
        return context
