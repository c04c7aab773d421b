"""rollouts.services.alerts: Alertmanager webhooks hold, roll back or clear; matchers and
the receiver configuration."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.exceptions import ApplicationError
from rollouts import services
from rollouts.models import Hold, Rollout, RolloutEvent
from tests.rollouts.factories import (
    alert,
    alert_payload,
    make_rollout,
    share_on,
)
from tests.rollouts.services.helpers import MIN, T0, reload, started

pytestmark = pytest.mark.django_db

UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind


def tick(rollout: Rollout, now: datetime) -> bool:
    """The scheduler's step for this rollout, as the sweep would take it."""
    current = reload(rollout).current_phase_index
    return services.rollout_advance(
        rollout_id=rollout.pk,
        expected_phase_index=current,
        actor=None,
        source=RolloutEvent.Source.SCHEDULER,
        now=now,
    )


# --------------------------------------------------------------------------------------------
# Alertmanager


def _receive(rollout: Rollout, *alerts: dict, now=T0 + MIN):
    parsed = services.alertmanager_parse(__import__("json").dumps(alert_payload(*alerts)))
    return services.alerts_receive(rollout=reload(rollout), alerts=parsed, now=now)


def test_alert__firing_with_rollout_label__held_and_clock_stops(staging):
    rollout = started(staging, 10, 50)
    [outcome] = _receive(rollout, alert(rollout=rollout.key))
    assert outcome.action == "held"
    rollout = reload(rollout)
    assert rollout.state == State.HELD
    hold = rollout.holds.get()
    assert hold.kind == Hold.Kind.ALERT and hold.alert_fingerprint == "f00dfeed"
    assert "HighErrorRate" in hold.reason and "5xx above 2%" in hold.reason
    held = rollout.events.get(kind=Kind.HELD)
    assert held.source == RolloutEvent.Source.ALERT
    assert tick(rollout, T0 + 60 * MIN) is False


def test_alert__firing_with_rollback_policy__rolled_back_to_the_rules_before(staging):
    rollout = started(staging, 10, 50, alert_policy=Rollout.AlertPolicy.ROLLBACK)
    assert share_on(staging, rollout.flag) > 0
    [outcome] = _receive(rollout, alert(rollout=rollout.key))
    assert outcome.action == "rolled_back"
    rollout = reload(rollout)
    assert rollout.state == State.ROLLED_BACK
    assert rollout.rollback_mode == Rollout.RollbackMode.RESTORE
    assert share_on(staging, rollout.flag) == 0
    assert rollout.events.get(kind=Kind.ROLLED_BACK).source == RolloutEvent.Source.ALERT


def test_alert__same_firing_sent_again__nothing_more_happens(staging):
    rollout = started(staging, 10, 50)
    _receive(rollout, alert(rollout=rollout.key))
    events = rollout.events.count()
    [outcome] = _receive(rollout, alert(rollout=rollout.key), now=T0 + 5 * MIN)
    assert outcome.action == "duplicate"
    assert rollout.events.count() == events
    assert rollout.holds.count() == 1


def test_alert__same_firing_after_a_person_resumed__not_held_again(staging, release_manager):
    rollout = started(staging, 10, 50)
    _receive(rollout, alert(rollout=rollout.key))
    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=T0 + 2 * MIN)
    [outcome] = _receive(rollout, alert(rollout=rollout.key), now=T0 + 3 * MIN)
    assert outcome.action == "duplicate"
    assert reload(rollout).state == State.RUNNING


def test_alert__resolved__hold_cleared_but_rollout_stays_stopped(staging):
    rollout = started(staging, 10, 50)
    _receive(rollout, alert(rollout=rollout.key))
    [outcome] = _receive(rollout, alert(rollout=rollout.key, status="resolved"), now=T0 + 9 * MIN)
    assert outcome.action == "cleared"
    rollout = reload(rollout)
    assert rollout.state == State.PAUSED
    assert rollout.next_due_at is None
    assert not rollout.holds.filter(cleared_at__isnull=True).exists()
    cleared = rollout.events.get(kind=Kind.HOLD_CLEARED)
    assert cleared.source == RolloutEvent.Source.ALERT
    assert cleared.data["to_state"] == State.PAUSED
    # Sent again: nothing more.
    [again] = _receive(rollout, alert(rollout=rollout.key, status="resolved"), now=T0 + 9 * MIN)
    assert again.action == "duplicate"
    assert rollout.events.filter(kind=Kind.HOLD_CLEARED).count() == 1


def test_alert__resolved_with_auto_resume__runs_again_with_the_soak_kept(staging):
    rollout = started(staging, 10, 50, alert_auto_resume=True)
    _receive(rollout, alert(rollout=rollout.key), now=T0 + 2 * MIN)
    _receive(rollout, alert(rollout=rollout.key, status="resolved"), now=T0 + 7 * MIN)
    rollout = reload(rollout)
    assert rollout.state == State.RUNNING
    assert rollout.next_due_at == T0 + 15 * MIN  # 5 held minutes added to the 10 min soak


def test_alert__two_alerts__held_until_both_resolved(staging):
    rollout = started(staging, 10, 50)
    _receive(rollout, alert(rollout=rollout.key, fingerprint="a1"), alert(rollout=rollout.key,
             fingerprint="b2"))  # fmt: skip
    assert reload(rollout).holds.filter(cleared_at__isnull=True).count() == 2
    _receive(rollout, alert(rollout=rollout.key, fingerprint="a1", status="resolved"))
    assert reload(rollout).state == State.HELD
    _receive(rollout, alert(rollout=rollout.key, fingerprint="b2", status="resolved"))
    assert reload(rollout).state == State.PAUSED


def test_alert__matchers_configured__matching_labels_hold_others_do_not(staging, release_manager):
    rollout = started(staging, 10, 50)
    matchers = 'service="checkout"\nseverity=~"page|critical"'
    services.rollout_alert_settings_update(
        rollout=rollout, actor=release_manager, alert_matchers=matchers
    )
    [other] = _receive(rollout, alert(service="search", fingerprint="x"))
    assert other.action == "not_matching"
    [elsewhere] = _receive(rollout, alert(service="checkout", rollout="another-rollout"))
    assert elsewhere.action == "not_matching"
    assert reload(rollout).state == State.RUNNING
    [ours] = _receive(rollout, alert(service="checkout"))
    assert ours.action == "held"


def test_alert__no_rollout_label_and_no_matchers__not_applied(staging):
    rollout = started(staging, 10, 50)
    [outcome] = _receive(rollout, alert(service="checkout"))
    assert outcome.action == "not_matching"
    assert reload(rollout).state == State.RUNNING


def test_alert__draft_or_final_rollout__ignored(staging):
    draft = make_rollout(environment=staging)
    [outcome] = _receive(draft, alert(rollout=draft.key))
    assert outcome.action == "ignored"
    assert reload(draft).state == State.DRAFT


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b'{"version": "3", "alerts": []}', "version"),
        (b'{"version": "4", "alerts": {}}', "alerts"),
        (b'{"version": "4", "alerts": [1]}', "alerts.0"),
        (b'{"version": "4", "alerts": [{"status": "on"}]}', "alerts.0.status"),
        (b'{"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]}',
         "alerts.0.labels"),
        (b'{"version": "4", "alerts": [{"status": "firing", "startsAt": "yesterday"}]}',
         "alerts.0.startsAt"),
    ],
)  # fmt: skip
def test_alertmanager_parse__bad_payload__refused_with_the_field(body, field):
    with pytest.raises(ApplicationError) as exc:
        services.alertmanager_parse(body)
    assert exc.value.field == field


def test_alertmanager_parse__unknown_keys__ignored():
    body = alert_payload(alert(rollout="x"), somethingNew={"a": 1})
    body["alerts"][0]["newField"] = [1, 2]
    [parsed] = services.alertmanager_parse(__import__("json").dumps(body))
    assert parsed.labels["rollout"] == "x" and parsed.status == "firing"


def test_parse_matchers__forms_and_errors():
    matchers = services.parse_matchers('{service="checkout", env!="dev"}\nseverity=~"page|crit"')
    assert [str(m) for m in matchers] == [
        'service="checkout"', 'env!="dev"', 'severity=~"page|crit"'
    ]  # fmt: skip
    assert matchers[2].matches({"severity": "page"})
    assert not matchers[2].matches({"severity": "pager"})  # anchored, like Alertmanager
    with pytest.raises(ApplicationError):
        services.parse_matchers('severity=~"("')
    with pytest.raises(ApplicationError):
        services.parse_matchers("just words")


def test_receiver_config__yaml_names_the_url_secret_and_matchers(staging):
    rollout = make_rollout(environment=staging)
    text = services.receiver_config(rollout, base_url="https://rollcall.example", show_secret=True)
    assert "url: https://rollcall.example/hooks/alertmanager" in text
    assert f"credentials: {rollout.alert_secret}" in text
    assert f'"rollout=\\"{rollout.key}\\""' in text
    assert "send_resolved: true" in text
    hidden = services.receiver_config(rollout, base_url="https://x", show_secret=False)
    assert rollout.alert_secret not in hidden
