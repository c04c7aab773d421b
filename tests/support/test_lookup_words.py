"""Customer lookup in plain words: why yes or no, the deciding rule, links to the flags, and
rolling deploys described as what they are (hosts, not customers)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from flags import engine
from flags import services as flag_services
from rollouts import services
from rollouts.models import Rollout
from support import selectors as sel
from tests.support.factories import UI, EnvironmentFactory, make_rollout, phase

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(db):
    return EnvironmentFactory(key="production", name="Production", order=2)


def _split_flag(env, pct: int):
    flag = flag_services.flag_create(key="split-flag", name="Split flag", actor=None)
    flag_services.flag_state_update(
        flag=flag,
        environment=env,
        actor=None,
        enabled=True,
        rules=[{"name": "flexibleRollout", "parameters": {"rollout": str(pct)}}],
    )
    return flag


def _user_with_bucket(low: bool, pct: int) -> tuple[str, int]:
    for n in range(1000):
        b = engine.bucket("split-flag", f"user-{n}")
        if (b <= pct) == low:
            return f"user-{n}", b
    raise AssertionError("no such user")


def test_lookup__in_the_split__yes_with_bucket_and_rule(production):
    _split_flag(production, 25)
    user, b = _user_with_bucket(True, 25)
    answer = sel.customer_lookup(context={"targetingKey": user}).environments[0]
    flag = next(f for f in answer.flags if f.key == "split-flag")
    assert flag.words == f"yes — rule 1: 25% split on user id, bucket {b} ≤ 25"
    assert flag.rule_number == 1
    assert flag.shown_variant == ""  # never "disabled" next to true


def test_lookup__outside_the_split__no_with_bucket(production):
    _split_flag(production, 25)
    user, b = _user_with_bucket(False, 25)
    answer = sel.customer_lookup(context={"targetingKey": user}).environments[0]
    flag = next(f for f in answer.flags if f.key == "split-flag")
    assert flag.words == f"no — no rule matched (25% split on user id, bucket {b} > 25)"


def test_lookup__flag_off__says_so(production):
    flag_services.flag_create(key="off-flag", name="Off", actor=None)
    answer = sel.customer_lookup(context={"targetingKey": "u1"}).environments[0]
    flag = next(f for f in answer.flags if f.key == "off-flag")
    assert flag.words == "no — the flag is off in this environment"
    assert flag.reason_words == "the flag is off here"


def test_lookup_page__words_linked_flags_and_no_disabled_variant(rm_client, production):
    _split_flag(production, 25)
    user, b = _user_with_bucket(True, 25)
    html = rm_client.get(reverse("support:lookup"), {"user_id": user}).content.decode()
    row = html.split('data-flag="split-flag"', 1)[1].split("</tr>", 1)[0]
    assert f"yes — rule 1: 25% split on user id, bucket {b} ≤ 25" in row
    assert 'href="/flags/split-flag/"' in row
    assert ">disabled<" not in row


def test_lookup__completed_rolling_deploy__about_hosts_not_not_in(production):
    rolling = make_rollout(
        environment=production,
        strategy=Rollout.Strategy.ROLLING,
        phases=[phase("Half", 50), phase("All", 100)],
    )
    services.rollout_start(rollout=rolling, actor=None, source=UI)
    services.rollout_complete(rollout=rolling, actor=None, source=UI)
    answer = sel.customer_lookup(context={"targetingKey": "u1"}).environments[0]
    membership = next(m for m in answer.memberships if m.rollout.pk == rolling.pk)
    assert membership.hosts and "Not in" not in membership.text
    assert membership.text == (
        "A rolling deploy moves hosts, not customers; completed: every host runs the new version."
    )
