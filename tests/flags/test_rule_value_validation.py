"""Rule values are checked when rules and segments are saved in Rollcall (UI and API): a value
the operator can never compare is refused with a message. The Unleash import stays tolerant.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.exceptions import ApplicationError
from flags import services
from flags.importexport import flags_import
from flags.models import FlagState, Segment
from tests.flags.factories import EnvironmentFactory


def _single(operator: str, value: str, **extra: object) -> dict[str, object]:
    return {"contextName": "appVersion", "operator": operator, "value": value, **extra}


INVALID = [
    (_single("NUM_GT", "ten"), "'ten' is not a number"),
    (_single("NUM_EQ", "nan"), "'nan' is not a number"),
    (_single("NUM_LT", "inf"), "'inf' is not a number"),
    (_single("DATE_AFTER", "next tuesday"), "'next tuesday' is not a date"),
    (_single("DATE_BEFORE", "2026-13-01"), "'2026-13-01' is not a date"),
    (_single("SEMVER_GT", "v1.2.3"), "'v1.2.3' is not a semantic version"),
    (_single("SEMVER_EQ", "1.2"), "'1.2' is not a semantic version"),
    (_single("SEMVER_LT", "01.2.3"), "'01.2.3' is not a semantic version"),
    (_single("REGEX", "^(?=a)b$"), "not a regular expression Rollcall can run"),
    (_single("REGEX", "a{5000}"), "invalid repetition size"),
    (
        {"contextName": "remoteAddress", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "10.0/x"]},
        "'10.0/x' is not an IP address or network",
    ),
    ({"contextName": "remoteAddress", "operator": "IN_CIDR", "values": []}, "at least one"),
]
VALID = [
    _single("NUM_GTE", "3.5"),
    _single("NUM_EQ", "-2"),
    _single("DATE_AFTER", "2026-01-31T09:00:00Z"),
    _single("DATE_BEFORE", "2026-01-31"),
    _single("SEMVER_GTE", "2.0.0-beta.1+build.7"),
    _single("REGEX", "^[[:alpha:]]+\\d{3}$"),
    _single("REGEX", "(a+)+$"),  # harmless on RE2: accepted
    {"contextName": "remoteAddress", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "::1"]},
]


@pytest.mark.parametrize(("constraint", "message"), INVALID)
def test_validate_rules__invalid_value__refused_naming_rule_and_constraint(constraint, message):
    with pytest.raises(ApplicationError) as caught:
        services.validate_rules(
            [{"name": "default", "constraints": [constraint]}], segment_ids=set(), check_values=True
        )
    assert caught.value.message.startswith("Rule 1, constraint 1: ")
    assert message in caught.value.message


@pytest.mark.parametrize("constraint", VALID)
def test_validate_rules__valid_value__accepted(constraint):
    rules = services.validate_rules(
        [{"name": "default", "constraints": [constraint]}], segment_ids=set(), check_values=True
    )
    assert rules[0]["constraints"][0]["operator"] == constraint["operator"]


@pytest.fixture
def flag(db):
    EnvironmentFactory(key="staging", name="Staging")
    return services.flag_create(key="checkout", name="Checkout", actor=None)


def test_flag_state_api__semver_with_v__400_with_message_nothing_saved(rm_client, flag):
    response = rm_client.put(
        f"/api/v1/flags/{flag.key}/environments/staging/",
        {
            "rules": [{"name": "default", "constraints": [_single("SEMVER_GT", "v1.2.3")]}],
            "version": 1,
        },
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    assert "'v1.2.3' is not a semantic version" in str(response.json())
    assert "write '1.2.3'" in str(response.json())
    assert FlagState.objects.get(flag=flag).rules == []


def test_segment_api__invalid_cidr__400_with_message(rm_client, db):
    response = rm_client.post(
        "/api/v1/segments/",
        {
            "name": "Office",
            "constraints": [
                {"contextName": "remoteAddress", "operator": "IN_CIDR", "values": ["300.1.2.3"]}
            ],
        },
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "'300.1.2.3' is not an IP address or network" in str(response.json())
    assert not Segment.objects.exists()


def test_segment_form__invalid_date__field_error_nothing_saved(rm_client, db):
    data = {
        "name": "Late",
        "description": "",
        "expected_version": "",
        "seg-c-TOTAL_FORMS": "1",
        "seg-c-INITIAL_FORMS": "1",
        "seg-c-MIN_NUM_FORMS": "0",
        "seg-c-MAX_NUM_FORMS": "50",
        "seg-c-0-context_name": "currentTime",
        "seg-c-0-operator": "DATE_AFTER",
        "seg-c-0-values": "31/01/2026",
    }

    response = rm_client.post(reverse("flags:segment_create"), data)

    assert response.status_code == 400
    assert "is not a date and time" in response.content.decode()
    assert not Segment.objects.exists()


def test_import__values_unleash_serves__kept_even_when_they_never_match(db):
    production = EnvironmentFactory(key="production")
    constraints = [
        _single("SEMVER_GT", "v1.2.3"),
        _single("NUM_GT", "ten"),
        _single("DATE_AFTER", "someday"),
        {"contextName": "remoteAddress", "operator": "IN_CIDR", "values": ["bad"]},
    ]
    document = {
        "version": 2,
        "features": [
            {
                "name": "f",
                "enabled": True,
                "strategies": [{"name": "default", "constraints": constraints}],
            }
        ],
    }

    flags_import(environment=production, data=document, actor=None)

    saved = FlagState.objects.get(flag__key="f", environment=production).rules[0]["constraints"]
    assert [c.get("value", c.get("values")) for c in saved] == [
        "v1.2.3",
        "ten",
        "someday",
        ["bad"],
    ]
