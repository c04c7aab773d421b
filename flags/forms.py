"""Forms of the flags UI: they parse input and turn it into what the services take.

Repeating rows (constraints, variants) are plain formsets rebuilt on the server: "Add" and
"Remove" are submit buttons that re-render the form with one row more or less, so the editor
works without JavaScript and with htmx alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.core.validators import RegexValidator

from flags import engine
from flags.engine import rule_value_problem
from flags.models import Environment, Flag, SdkKey, flag_key_validator
from flags.services import OPERATORS, RESERVED_FLAG_KEYS, SINGLE_VALUE_OPERATORS, TOTAL_WEIGHT


def _choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """A form's choice field, typed as one (its choices are set per request)."""
    return cast(forms.ChoiceField, form.fields[name])


MAX_ROWS = 50
STICKINESS_CHOICES = [
    ("default", "default"),
    ("userId", "userId"),
    ("sessionId", "sessionId"),
    ("random", "random (not sticky)"),
    ("custom", "custom field…"),
]
OPERATOR_LABELS = {
    "IN": "is one of",
    "NOT_IN": "is not one of",
    "STR_CONTAINS": "contains",
    "STR_STARTS_WITH": "starts with",
    "STR_ENDS_WITH": "ends with",
    "NUM_EQ": "number =",
    "NUM_GT": "number >",
    "NUM_GTE": "number ≥",
    "NUM_LT": "number <",
    "NUM_LTE": "number ≤",
    "DATE_AFTER": "date after",
    "DATE_BEFORE": "date before",
    "SEMVER_EQ": "version =",
    "SEMVER_GT": "version >",
    "SEMVER_GTE": "version ≥",
    "SEMVER_LT": "version <",
    "SEMVER_LTE": "version ≤",
    "REGEX": "matches regex",
    "IN_CIDR": "IP in range (CIDR)",
}
OPERATOR_CHOICES = [(op, f"{OPERATOR_LABELS[op]} ({op})") for op in OPERATOR_LABELS]
assert set(OPERATOR_LABELS) == OPERATORS
CONTEXT_FIELDS = ("userId", "sessionId", "remoteAddress", "appName", "environment", "currentTime")
PAYLOAD_CHOICES = [
    ("", "No payload"),
    ("string", "String"),
    ("number", "Number"),
    ("json", "JSON"),
    ("csv", "CSV"),
]
VARIANT_STICKINESS_CHOICES = [
    ("default", "Default (userId, sessionId, remoteAddress, then random)"),
    ("userId", "userId"),
    ("sessionId", "sessionId"),
    ("random", "Random (not sticky)"),
]


def split_values(text: str) -> list[str]:
    """One value per line; a single line may also be comma-separated."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(lines) == 1 and "," in lines[0]:
        lines = [part.strip() for part in lines[0].split(",") if part.strip()]
    return lines


def rows_from_post(data: Mapping[str, Any], prefix: str, fields: Iterable[str]) -> list[dict]:
    """The raw rows a formset posted, in order; a missing key (unticked checkbox) is None."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS", 0)), MAX_ROWS)
    except (TypeError, ValueError):
        total = 0
    rows = []
    for i in range(total):
        row: dict[str, Any] = {}
        for field in fields:
            name = f"{prefix}-{i}-{field}"
            row[field] = data.get(name) if name in data else None
        rows.append(row)
    return rows


def rows_as_data(prefix: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Formset POST data for `rows` (the inverse of rows_from_post)."""
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(len(rows)),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": str(MAX_ROWS),
    }
    for i, row in enumerate(rows):
        for field, value in row.items():
            if value is not None:
                data[f"{prefix}-{i}-{field}"] = value
    return data


def row_action(data: Mapping[str, Any], prefix: str) -> tuple[str, int | None]:
    """Which submit button was pressed: ("add", None), ("remove", i) or ("save", None)."""
    if f"{prefix}-add" in data:
        return "add", None
    if f"{prefix}-remove" in data:
        try:
            return "remove", int(data[f"{prefix}-remove"])
        except (TypeError, ValueError):
            return "save", None
    return "save", None


def edit_rows(
    formset_class: Any,
    *,
    prefix: str,
    data: Mapping[str, Any],
    fields: Iterable[str],
    booleans: Iterable[str] = (),
    is_blank: Any,
    new_row: dict[str, Any] | None = None,
) -> tuple[Any, bool]:
    """A formset from posted rows: bound (final) on save, or re-rendered with a row added or
    removed. Blank rows are dropped on save, so an unused "Add" never blocks saving."""
    action, index = row_action(data, prefix)
    rows = rows_from_post(data, prefix, fields)
    if action == "save":
        kept = [row for row in rows if not is_blank(row)]
        return formset_class(rows_as_data(prefix, kept), prefix=prefix), True
    if action == "add" and len(rows) < MAX_ROWS:
        rows.append(dict(new_row or {}))
    elif action == "remove" and index is not None and 0 <= index < len(rows):
        del rows[index]
    initial = []
    for row in rows:
        item = {k: v for k, v in row.items() if v is not None}
        for name in booleans:
            item[name] = row.get(name) not in (None, "", "off", "false", False)
        initial.append(item)
    return formset_class(prefix=prefix, initial=initial), False


# --------------------------------------------------------------------------------------------
# Constraints (rules and segments)


class ConstraintForm(forms.Form):
    context_name = forms.CharField(
        label="Context field",
        max_length=100,
        widget=forms.TextInput(attrs={"list": "context-fields", "autocomplete": "off"}),
    )
    operator = forms.ChoiceField(label="Operator", choices=OPERATOR_CHOICES)
    values = forms.CharField(
        label="Values",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line, or separated by commas.",
    )
    inverted = forms.BooleanField(label="Not (invert)", required=False)
    case_insensitive = forms.BooleanField(label="Ignore case", required=False)

    FIELDS = ("context_name", "operator", "values", "inverted", "case_insensitive")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        operator = data.get("operator")
        values = split_values(data.get("values", ""))
        if operator and not values:
            self.add_error("values", "Give at least one value.")
        elif operator in SINGLE_VALUE_OPERATORS and len(values) > 1:
            self.add_error("values", f"{operator} compares with one value.")
        else:
            ignore_case = bool(data.get("case_insensitive"))
            for value in values:
                problem = rule_value_problem(operator, value, ignore_case)
                if problem:
                    self.add_error("values", problem[:1].upper() + problem[1:] + ".")
                    break
        data["value_list"] = values
        return data

    def to_constraint(self) -> dict[str, Any]:
        data = self.cleaned_data
        constraint: dict[str, Any] = {
            "contextName": data["context_name"].strip(),
            "operator": data["operator"],
            "inverted": data["inverted"],
            "caseInsensitive": data["case_insensitive"],
        }
        if data["operator"] in SINGLE_VALUE_OPERATORS:
            constraint["value"] = data["value_list"][0]
        else:
            constraint["values"] = data["value_list"]
        return constraint


ConstraintFormSet = forms.formset_factory(ConstraintForm, extra=0, max_num=MAX_ROWS)


def constraint_initial(constraint: Mapping[str, Any]) -> dict[str, Any]:
    values = constraint.get("values")
    if values is None:
        values = [constraint["value"]] if constraint.get("value") not in (None, "") else []
    return {
        "context_name": constraint.get("contextName", ""),
        "operator": constraint.get("operator", "IN"),
        "values": "\n".join(str(v) for v in values),
        "inverted": bool(constraint.get("inverted")),
        "case_insensitive": bool(constraint.get("caseInsensitive")),
    }


def constraint_formset(
    *, prefix: str, data: Mapping[str, Any] | None = None, constraints: list | None = None
) -> tuple[Any, bool]:
    """A constraints formset; returns (formset, is_final): is_final False means "re-render"."""
    if data is None:
        initial = [constraint_initial(c) for c in constraints or []]
        return ConstraintFormSet(prefix=prefix, initial=initial), False
    return edit_rows(
        ConstraintFormSet,
        prefix=prefix,
        data=data,
        fields=ConstraintForm.FIELDS,
        booleans=("inverted", "case_insensitive"),
        is_blank=lambda row: (
            not (row.get("context_name") or "").strip() and not (row.get("values") or "").strip()
        ),
        new_row={"operator": "IN"},
    )


def formset_constraints(formset: Any) -> list[dict[str, Any]]:
    return [form.to_constraint() for form in formset.forms]


# --------------------------------------------------------------------------------------------
# Flags


def parse_tags(text: str) -> list[str]:
    return [tag.strip() for tag in (text or "").split(",") if tag.strip()]


class FlagCreateForm(forms.Form):
    key = forms.CharField(
        label="Key",
        max_length=100,
        validators=[flag_key_validator],
        help_text="Used by code and URLs; it can never change. Letters, digits, '.', '_', '-'.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    name = forms.CharField(label="Name", max_length=200, required=False)
    description = forms.CharField(
        label="Description", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    type = forms.ChoiceField(label="Type", choices=Flag.Type.choices, initial=Flag.Type.BOOLEAN)
    tags = forms.CharField(
        label="Tags", required=False, max_length=500, help_text="Separated by commas."
    )

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"].strip()
        if key.lower() in RESERVED_FLAG_KEYS:
            raise forms.ValidationError(f"{key!r} is reserved for a page of Rollcall.")
        return key


class FlagDetailsForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(
        label="Description", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    type = forms.ChoiceField(label="Type", choices=Flag.Type.choices)
    tags = forms.CharField(
        label="Tags", required=False, max_length=500, help_text="Separated by commas."
    )
    lifecycle = forms.ChoiceField(label="Lifecycle", choices=Flag.Lifecycle.choices)
    expected_version = forms.IntegerField(widget=forms.HiddenInput)

    @classmethod
    def for_flag(cls, flag: Flag, **kwargs: Any) -> FlagDetailsForm:
        initial = {
            "name": flag.name,
            "description": flag.description,
            "type": flag.type,
            "tags": ", ".join(flag.tags),
            "lifecycle": flag.lifecycle,
            "expected_version": flag.version,
        }
        return cls(initial=initial, prefix="details", **kwargs)


class VariantForm(forms.Form):
    name = forms.CharField(label="Variant name", max_length=100)
    weight = forms.DecimalField(
        label="Weight (%)",
        required=False,
        min_value=Decimal(0),
        max_value=Decimal(100),
        decimal_places=1,
        help_text="Empty: shares the rest.",
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    payload_type = forms.ChoiceField(label="Payload type", choices=PAYLOAD_CHOICES, required=False)
    payload_value = forms.CharField(
        label="Payload value", required=False, widget=forms.Textarea(attrs={"rows": 1})
    )

    FIELDS = ("name", "weight", "payload_type", "payload_value")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("payload_type") and data.get("payload_value", "") == "":
            self.add_error("payload_value", "Give the payload a value (or choose No payload).")
        if data.get("payload_type") == "json" and data.get("payload_value"):
            try:
                json.loads(data["payload_value"])
            except ValueError as exc:
                self.add_error("payload_value", f"This is not valid JSON ({exc}).")
        if data.get("payload_type") == "number" and data.get("payload_value"):
            try:
                float(data["payload_value"])
            except ValueError:
                self.add_error("payload_value", "This is not a number.")
        return data


VariantFormSet = forms.formset_factory(VariantForm, extra=0, max_num=MAX_ROWS)


class VariantsForm(forms.Form):
    stickiness = forms.ChoiceField(
        label="Variant stickiness", choices=VARIANT_STICKINESS_CHOICES, initial="default"
    )
    expected_version = forms.IntegerField(widget=forms.HiddenInput)


def variant_initial(variant: Mapping[str, Any]) -> dict[str, Any]:
    payload = variant.get("payload") or {}
    weight = variant.get("weight")
    fixed = variant.get("weightType") == "fix"
    return {
        "name": variant.get("name", ""),
        "weight": (Decimal(int(weight)) / 10) if fixed and weight is not None else None,
        "payload_type": payload.get("type", ""),
        "payload_value": payload.get("value", ""),
    }


def variants_forms(
    flag: Flag, data: Mapping[str, Any] | None = None
) -> tuple[VariantsForm, Any, bool]:
    """(settings form, rows formset, is_final) for the variants editor of `flag`."""
    prefix = "variants"
    if data is None:
        stickiness = (flag.variants[0].get("stickiness") if flag.variants else None) or "default"
        if stickiness not in dict(VARIANT_STICKINESS_CHOICES):
            stickiness = "default"
        form = VariantsForm(
            prefix=prefix, initial={"stickiness": stickiness, "expected_version": flag.version}
        )
        rows = VariantFormSet(
            prefix=f"{prefix}-rows", initial=[variant_initial(v) for v in flag.variants]
        )
        return form, rows, False
    form = VariantsForm(data, prefix=prefix)
    rows, final = edit_rows(
        VariantFormSet,
        prefix=f"{prefix}-rows",
        data=data,
        fields=VariantForm.FIELDS,
        is_blank=lambda row: (
            not (row.get("name") or "").strip() and not (row.get("payload_value") or "").strip()
        ),
    )
    return form, rows, final


def variants_from_forms(flag: Flag, form: VariantsForm, rows: Any) -> list[dict[str, Any]]:
    """Unleash variants from the editor; overrides of variants that keep their name survive."""
    overrides = {v["name"]: v.get("overrides") for v in flag.variants if v.get("overrides")}
    stickiness = form.cleaned_data["stickiness"]
    variants = []
    for row in rows.forms:
        data = row.cleaned_data
        if not data:
            continue
        weight = data.get("weight")
        variant: dict[str, Any] = {
            "name": data["name"].strip(),
            "weightType": "fix" if weight is not None else "variable",
            "weight": round(weight * 10) if weight is not None else None,
            "stickiness": stickiness,
        }
        if data.get("payload_type"):
            variant["payload"] = {"type": data["payload_type"], "value": data["payload_value"]}
        if overrides.get(variant["name"]):
            variant["overrides"] = overrides[variant["name"]]
        variants.append(variant)
    return variants


def weight_percent(weight: int | None) -> str:
    return "–" if weight is None else f"{weight * 100 / TOTAL_WEIGHT:g}%"


# --------------------------------------------------------------------------------------------
# Rules


class RuleForm(forms.Form):
    title = forms.CharField(
        label="Title", required=False, max_length=200, help_text="Optional, e.g. “Beta testers”."
    )
    rollout = forms.IntegerField(
        label="Rollout percentage",
        min_value=0,
        max_value=100,
        initial=100,
        widget=forms.NumberInput(attrs={"type": "range", "step": "1", "class": "range"}),
    )
    stickiness = forms.ChoiceField(
        label="Stickiness",
        choices=STICKINESS_CHOICES,
        help_text="default: userId, else sessionId, else random.",
    )
    custom_stickiness = forms.CharField(
        label="Custom stickiness field",
        required=False,
        max_length=100,
        help_text="Only used when stickiness is Custom, e.g. tenantId.",
    )
    group_id = forms.CharField(
        label="Group id",
        required=False,
        max_length=100,
        help_text="Defaults to the flag key. Keep it while rolling out so nobody flips back.",
    )
    segments = forms.MultipleChoiceField(
        label="Segments", required=False, widget=forms.CheckboxSelectMultiple
    )
    expected_version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(
        self, *args: Any, segment_choices: list[tuple[str, str]], flag_key: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.flag_key = flag_key
        _choice_field(self, "segments").choices = segment_choices
        self.fields["group_id"].widget.attrs["placeholder"] = flag_key

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("stickiness") == "custom" and not (data.get("custom_stickiness") or "").strip():
            self.add_error("custom_stickiness", "Name the context field to stick to.")
        return data

    def to_rule(self, constraints: list[dict[str, Any]]) -> dict[str, Any]:
        data = self.cleaned_data
        stickiness = data["stickiness"]
        if stickiness == "custom":
            stickiness = data["custom_stickiness"].strip()
        rule: dict[str, Any] = {
            "name": "flexibleRollout",
            "parameters": {
                "rollout": str(data["rollout"]),
                "stickiness": stickiness,
                "groupId": (data.get("group_id") or "").strip() or self.flag_key,
            },
            "constraints": constraints,
            "segments": [int(s) for s in data.get("segments") or []],
        }
        if (data.get("title") or "").strip():
            rule["title"] = data["title"].strip()
        return rule


EDITABLE_STRATEGIES = {"flexibleRollout", "default"}


def rule_initial(rule: Mapping[str, Any], *, flag_key: str, version: int) -> dict[str, Any]:
    params = rule.get("parameters") or {}
    stickiness = params.get("stickiness") or "default"
    custom = ""
    if stickiness not in {"default", "userId", "sessionId", "random"}:
        custom, stickiness = stickiness, "custom"
    rollout = params.get("rollout", "100") if rule.get("name") == "flexibleRollout" else "100"
    try:
        rollout_value = int(float(rollout))
    except ValueError:
        rollout_value = 100
    return {
        "title": rule.get("title", ""),
        "rollout": rollout_value,
        "stickiness": stickiness,
        "custom_stickiness": custom,
        "group_id": params.get("groupId") or flag_key,
        "segments": [str(s) for s in rule.get("segments") or []],
        "expected_version": version,
    }


class RuleEditor:
    """A rule form with its constraints formset; `prefix` makes ids unique on the page."""

    def __init__(
        self,
        *,
        prefix: str,
        flag_key: str,
        segment_choices: list[tuple[str, str]],
        version: int,
        rule: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self.prefix = prefix
        self.bound = data is not None
        common: dict[str, Any] = {
            "segment_choices": segment_choices,
            "flag_key": flag_key,
            "prefix": prefix,
        }
        if data is None:
            initial = (
                rule_initial(rule, flag_key=flag_key, version=version)
                if rule is not None
                else {
                    "rollout": 100,
                    "stickiness": "default",
                    "group_id": flag_key,
                    "expected_version": version,
                }
            )
            self.form = RuleForm(initial=initial, **common)
            self.constraints, self.final = constraint_formset(
                prefix=f"{prefix}-c", constraints=(rule or {}).get("constraints")
            )
        else:
            self.form = RuleForm(data, **common)
            self.constraints, self.final = constraint_formset(prefix=f"{prefix}-c", data=data)

    def is_valid(self) -> bool:
        form_ok = self.form.is_valid()
        return self.final and self.constraints.is_valid() and form_ok

    def to_rule(self) -> dict[str, Any]:
        return self.form.to_rule(formset_constraints(self.constraints))

    @property
    def expected_version(self) -> int | None:
        value = self.form.cleaned_data.get("expected_version") if self.form.is_bound else None
        return value


# --------------------------------------------------------------------------------------------
# Segments


class SegmentForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100)
    description = forms.CharField(
        label="Description", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)


# --------------------------------------------------------------------------------------------
# Evaluate panel


class EvaluateForm(forms.Form):
    environment = forms.ChoiceField(label="Environment")
    user_id = forms.CharField(label="userId", required=False, max_length=200)
    session_id = forms.CharField(label="sessionId", required=False, max_length=200)
    remote_address = forms.CharField(label="remoteAddress", required=False, max_length=100)
    properties = forms.CharField(
        label="Custom properties",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "email=jo@example.com\nplan=pro"}),
        help_text="One key=value per line.",
    )

    def __init__(self, *args: Any, environments: Iterable[Environment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choice_field(self, "environment").choices = [(env.key, env.name) for env in environments]

    def clean_properties(self) -> dict[str, str]:
        props: dict[str, str] = {}
        for number, line in enumerate((self.cleaned_data["properties"] or "").splitlines(), 1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"Line {number}: write key=value, e.g. plan=pro.")
            props[key.strip()] = value.strip()
        return props

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if not self.errors:  # values the engine must not see (lone surrogates): a form error
            try:
                engine.context_from_ofrep(self.context())
            except engine.InvalidContext as exc:
                raise forms.ValidationError(exc.details) from None
        return cleaned

    def context(self) -> dict[str, Any]:
        """An OpenFeature-style context, mapped to Unleash by the same function OFREP uses."""
        data = self.cleaned_data
        ctx: dict[str, Any] = dict(data["properties"])
        for field, name in (
            ("user_id", "userId"),
            ("session_id", "sessionId"),
            ("remote_address", "remoteAddress"),
        ):
            if data.get(field):
                ctx[name] = data[field].strip()
        return ctx


# --------------------------------------------------------------------------------------------
# Flag list filters


class FlagFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200)
    environment = forms.ChoiceField(label="Environment", required=False)
    tag = forms.ChoiceField(label="Tag", required=False)
    lifecycle = forms.ChoiceField(
        label="Lifecycle",
        required=False,
        choices=[("", "Not archived"), *Flag.Lifecycle.choices, ("all", "All")],
    )
    enabled = forms.ChoiceField(
        label="State",
        required=False,
        choices=[("", "On or off"), ("on", "On"), ("off", "Off")],
    )

    def __init__(
        self, *args: Any, environments: Iterable[Environment], tags: Iterable[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        _choice_field(self, "environment").choices = [("", "Any environment")] + [
            (env.key, env.name) for env in environments
        ]
        _choice_field(self, "tag").choices = [("", "Any tag")] + [(t, t) for t in tags]


# --------------------------------------------------------------------------------------------
# Settings (admins)

environment_key_validator = RegexValidator(
    r"^[-a-zA-Z0-9_]+$", "Use letters, digits, '-' and '_' (it appears in URLs)."
)


class EnvironmentCreateForm(forms.Form):
    key = forms.CharField(label="Key", max_length=64, validators=[environment_key_validator])
    name = forms.CharField(label="Name", max_length=100)
    is_production = forms.BooleanField(
        label="Production (ask before switching flags)", required=False
    )


class EnvironmentUpdateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100)
    is_production = forms.BooleanField(label="Production", required=False)


class SdkKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Key name", max_length=100, help_text="Who uses it, e.g. “checkout-service”."
    )
    kind = forms.ChoiceField(
        label="Kind",
        choices=SdkKey.Kind.choices,
        required=False,
        initial=SdkKey.Kind.SERVER,
        help_text="Frontend keys only get evaluated answers: safe in a browser or mobile app.",
    )

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or SdkKey.Kind.SERVER
