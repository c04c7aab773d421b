"""Services of the flags UI and management API: validation, conflicts, history, versions."""

from __future__ import annotations

import pytest

from core.exceptions import ApplicationError, ConflictError
from flags import services
from flags.models import Environment, Flag, FlagState, Segment
from tests.flags.factories import EnvironmentFactory


@pytest.fixture
def envs(db):
    return [
        EnvironmentFactory(key="development", name="Development", order=0),
        EnvironmentFactory(key="staging", name="Staging", order=1),
        EnvironmentFactory(key="production", name="Production", order=2, is_production=True),
    ]


@pytest.fixture
def flag(envs, release_manager):
    return services.flag_create(key="new-checkout", name="New checkout", actor=release_manager)


def _rollout(pct: int, **extra):
    return {
        "name": "flexibleRollout",
        "parameters": {"rollout": str(pct), "stickiness": "default", "groupId": "new-checkout"},
        **extra,
    }


def _state(flag, key):
    return FlagState.objects.get(flag=flag, environment__key=key)


# --------------------------------------------------------------------------------------------
# flag_create


def test_flag_create__new_key__state_in_every_environment_and_history_user(envs, release_manager):
    flag = services.flag_create(key="dark-mode", name="Dark mode", actor=release_manager)

    states = FlagState.objects.filter(flag=flag)
    assert sorted(s.environment.key for s in states) == ["development", "production", "staging"]
    assert not any(s.enabled for s in states)
    assert flag.history.get().history_user == release_manager
    assert FlagState.history.filter(flag_id=flag.pk).count() == 3
    assert flag.owner == release_manager


@pytest.mark.parametrize("key", ["settings", "new", "Segments"])
def test_flag_create__reserved_key__refused(envs, key):
    with pytest.raises(ApplicationError) as exc:
        services.flag_create(key=key, name="x", actor=None)

    assert exc.value.field == "key"
    assert "reserved" in exc.value.message
    assert not Flag.objects.exists()


def test_flag_create__string_flag_with_variant_without_payload__refused(envs):
    with pytest.raises(ApplicationError, match="needs one"):
        services.flag_create(
            key="banner", name="Banner", type="string", actor=None, variants=[{"name": "a"}]
        )


def test_flag_create__tags__trimmed_sorted_unique(envs):
    flag = services.flag_create(key="t", name="T", actor=None, tags=[" web", "api", "web", ""])

    assert flag.tags == ["api", "web"]


# --------------------------------------------------------------------------------------------
# flag_update


def test_flag_update__details__saved_version_bumped_history_with_user(flag, approver):
    updated = services.flag_update(
        flag=flag,
        actor=approver,
        expected_version=flag.version,
        name="One-page checkout",
        description="Faster",
        tags=["checkout"],
    )

    assert updated.version == flag.version + 1
    flag.refresh_from_db()
    assert (flag.name, flag.description, flag.tags) == ("One-page checkout", "Faster", ["checkout"])
    latest = flag.history.order_by("-history_date", "-history_id").first()
    assert latest.history_user == approver
    assert latest.name == "One-page checkout"


def test_flag_update__stale_version__conflict_and_nothing_saved(flag):
    services.flag_update(flag=flag, actor=None, expected_version=flag.version, name="First")

    with pytest.raises(ConflictError, match="changed by someone else"):
        services.flag_update(flag=flag, actor=None, expected_version=flag.version, name="Second")

    flag.refresh_from_db()
    assert flag.name == "First"


def test_flag_update__nothing_changed__version_kept(flag):
    updated = services.flag_update(
        flag=flag, actor=None, expected_version=flag.version, name=flag.name
    )

    assert updated.version == flag.version


def test_flag_update__variants__bumps_every_environment_config_version(flag, envs):
    before = dict(Environment.objects.values_list("key", "config_version"))

    services.flag_update(
        flag=flag,
        actor=None,
        expected_version=flag.version,
        variants=[{"name": "a"}, {"name": "b"}],
    )

    after = dict(Environment.objects.values_list("key", "config_version"))
    assert all(after[key] > before[key] for key in before)


def test_flag_update__type_number_with_string_payloads__refused(flag):
    services.flag_update(
        flag=flag,
        actor=None,
        expected_version=1,
        variants=[{"name": "a", "payload": {"type": "string", "value": "x"}}],
    )

    with pytest.raises(ApplicationError, match="number payloads"):
        services.flag_update(flag=flag, actor=None, expected_version=2, type="number")


def test_flag_update__unknown_lifecycle__refused(flag):
    with pytest.raises(ApplicationError) as exc:
        services.flag_update(flag=flag, actor=None, expected_version=1, lifecycle="gone")

    assert exc.value.field == "lifecycle"


def test_flag_archive__enabled_somewhere__off_everywhere_and_archived(flag, envs):
    services.flag_toggle(flag=flag, environment=envs[1], enabled=True, actor=None)

    archived = services.flag_archive(flag=flag, actor=None)

    assert archived.lifecycle == Flag.Lifecycle.ARCHIVED
    assert not FlagState.objects.filter(flag=flag, enabled=True).exists()
    assert _state(flag, "staging").history.order_by(
        "-history_id"
    ).first().history_change_reason == ("archived")


# --------------------------------------------------------------------------------------------
# validate_variants


def test_validate_variants__variable_weights__share_what_fixed_ones_leave():
    variants = services.validate_variants(
        [
            {"name": "a", "weightType": "fix", "weight": 100},
            {"name": "b"},
            {"name": "c"},
            {"name": "d"},
        ]
    )

    assert [v["weight"] for v in variants] == [100, 300, 300, 300]


def test_validate_variants__remainder__goes_to_first_variable_variants():
    variants = services.validate_variants([{"name": "a"}, {"name": "b"}, {"name": "c"}])

    assert [v["weight"] for v in variants] == [334, 333, 333]
    assert sum(v["weight"] for v in variants) == 1000


def test_validate_variants__given_variable_weights__kept_for_stable_buckets():
    variants = services.validate_variants(
        [{"name": "a", "weight": 50, "weightType": "variable"}, {"name": "b", "weight": 50}]
    )

    assert [v["weight"] for v in variants] == [50, 50]


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([{"name": "a", "weightType": "fix", "weight": 600}], "add up to 100%"),
        (
            [
                {"name": "a", "weightType": "fix", "weight": 700},
                {"name": "b", "weightType": "fix", "weight": 700},
            ],
            "more than 100%",
        ),
        ([{"name": "a"}, {"name": "a"}], "used twice"),
        ([{"name": ""}], "give the variant a name"),
        ([{"name": "a", "weight": 1001}], "between 0 and 1000"),
        ([{"name": "a", "payload": {"type": "json", "value": "{nope"}}], "not valid JSON"),
        ([{"name": "a", "payload": {"type": "number", "value": "ten"}}], "not a number"),
        ([{"name": "a", "payload": {"type": "xml", "value": "<a/>"}}], "payload type"),
    ],
)
def test_validate_variants__bad_input__clear_message(variants, message):
    with pytest.raises(ApplicationError, match=message):
        services.validate_variants(variants)


# --------------------------------------------------------------------------------------------
# Rules


def test_rule_add__appends_in_order_and_bumps_state_version(flag, release_manager):
    state = _state(flag, "staging")
    services.rule_add(
        flag=flag,
        environment=state.environment,
        rule=_rollout(100, segments=[]),
        actor=release_manager,
        expected_version=state.version,
    )
    second = services.rule_add(
        flag=flag,
        environment=state.environment,
        rule=_rollout(10, title="Ten percent"),
        actor=release_manager,
        expected_version=state.version + 1,
    )

    assert [r["parameters"]["rollout"] for r in second.rules] == ["100", "10"]
    assert second.rules[1]["title"] == "Ten percent"
    assert second.version == state.version + 2
    latest = second.history.order_by("-history_id").first()
    assert latest.history_user == release_manager


def test_rule_add__stale_version__conflict_and_rules_unchanged(flag):
    state = _state(flag, "staging")
    services.rule_add(
        flag=flag, environment=state.environment, rule=_rollout(5), actor=None, expected_version=1
    )

    with pytest.raises(ConflictError, match="changed by someone else"):
        services.rule_add(
            flag=flag,
            environment=state.environment,
            rule=_rollout(50),
            actor=None,
            expected_version=1,
        )

    assert len(_state(flag, "staging").rules) == 1


def test_rule_add__invalid_rule__refused_with_rule_number(flag):
    state = _state(flag, "staging")

    with pytest.raises(ApplicationError, match="Rule 1: rollout must be between 0 and 100"):
        services.rule_add(
            flag=flag,
            environment=state.environment,
            rule=_rollout(120),
            actor=None,
            expected_version=state.version,
        )


def _with_rules(flag, env_key, rules):
    state = _state(flag, env_key)
    return services.flag_state_update(
        flag=flag, environment=state.environment, rules=rules, actor=None
    )


def test_rule_update__keeps_strategy_variants_when_not_sent(flag):
    variants = [{"name": "blue", "weight": 1000, "stickiness": "default"}]
    state = _with_rules(flag, "staging", [_rollout(10, variants=variants)])

    updated = services.rule_update(
        flag=flag,
        environment=state.environment,
        index=0,
        rule=_rollout(20),
        actor=None,
        expected_version=state.version,
    )

    assert updated.rules[0]["parameters"]["rollout"] == "20"
    assert updated.rules[0]["variants"] == variants


def test_rule_move__up_and_down__swaps_neighbours(flag):
    state = _with_rules(flag, "staging", [_rollout(1), _rollout(2), _rollout(3)])

    moved = services.rule_move(
        flag=flag,
        environment=state.environment,
        index=2,
        direction="up",
        actor=None,
        expected_version=state.version,
    )
    assert [r["parameters"]["rollout"] for r in moved.rules] == ["1", "3", "2"]

    moved = services.rule_move(
        flag=flag,
        environment=state.environment,
        index=0,
        direction="down",
        actor=None,
        expected_version=moved.version,
    )
    assert [r["parameters"]["rollout"] for r in moved.rules] == ["3", "1", "2"]


def test_rule_move__first_rule_up__does_nothing(flag):
    state = _with_rules(flag, "staging", [_rollout(1), _rollout(2)])

    moved = services.rule_move(
        flag=flag,
        environment=state.environment,
        index=0,
        direction="up",
        actor=None,
        expected_version=state.version,
    )

    assert moved.version == state.version
    assert [r["parameters"]["rollout"] for r in moved.rules] == ["1", "2"]


def test_rule_delete__removes_only_that_rule(flag):
    state = _with_rules(flag, "staging", [_rollout(1), _rollout(2), _rollout(3)])

    after = services.rule_delete(
        flag=flag, environment=state.environment, index=1, actor=None, expected_version=None
    )

    assert [r["parameters"]["rollout"] for r in after.rules] == ["1", "3"]


def test_rule_delete__index_out_of_range__clear_error(flag):
    state = _with_rules(flag, "staging", [_rollout(1)])

    with pytest.raises(ApplicationError, match="There is no rule 3"):
        services.rule_delete(
            flag=flag, environment=state.environment, index=2, actor=None, expected_version=None
        )


def test_flag_state_update__rules__bump_only_that_environment(flag, envs):
    before = dict(Environment.objects.values_list("key", "config_version"))

    _with_rules(flag, "staging", [_rollout(50)])

    after = dict(Environment.objects.values_list("key", "config_version"))
    assert after["staging"] == before["staging"] + 1
    assert after["production"] == before["production"]


def test_flag_state_apply__locked_state__one_write_no_savepoint_no_segment_read(flag, envs):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    env = envs[1]
    # As a rollout's step writes (its gates passed: no direct-write check reads the policy).
    with transaction.atomic(), services.through_rollout():
        state = services.lock_state(flag, env)
        with CaptureQueriesContext(connection) as ctx:
            applied = services.flag_state_apply(
                state=state, flag=flag, environment=env, actor=None, enabled=True,
                rules=[_rollout(20)], segment_ids=set(),
            )  # fmt: skip
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert [sql.split()[0] for sql in sqls] == ["UPDATE", "INSERT", "UPDATE"]  # state, history, env
    assert applied.version == _state(flag, "staging").version
    assert _state(flag, "staging").rules[0]["parameters"]["rollout"] == "20"


def test_flag_state_apply__unknown_segment__refused(flag, envs):
    from django.db import transaction

    with pytest.raises(ApplicationError, match="unknown segment"), transaction.atomic():
        state = services.lock_state(flag, envs[1])
        services.flag_state_apply(
            state=state, flag=flag, environment=envs[1], actor=None, enabled=True,
            rules=[_rollout(20, segments=[999])], segment_ids=set(),
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Segments

BETA = [{"contextName": "userId", "operator": "IN", "values": ["beta-1", "beta-2"]}]


def test_segment_create__valid__saved_normalised_with_history_user(db, release_manager):
    segment = services.segment_create(
        name=" Beta testers ", constraints=BETA, actor=release_manager
    )

    assert segment.name == "Beta testers"
    assert segment.constraints[0] == {
        "contextName": "userId",
        "operator": "IN",
        "values": ["beta-1", "beta-2"],
        "inverted": False,
        "caseInsensitive": False,
    }
    assert segment.history.get().history_user == release_manager


def test_segment_create__same_name_other_case__refused(db):
    services.segment_create(name="Beta testers", constraints=BETA, actor=None)

    with pytest.raises(ApplicationError, match="already exists") as exc:
        services.segment_create(name="beta TESTERS", constraints=[], actor=None)
    assert exc.value.field == "name"


def test_segment_create__unknown_operator__refused(db):
    with pytest.raises(ApplicationError, match="unknown operator 'LIKE'"):
        services.segment_create(
            name="x",
            constraints=[{"contextName": "email", "operator": "LIKE", "values": ["%"]}],
            actor=None,
        )
    assert not Segment.objects.exists()


def test_segment_update__stale_version__conflict(db):
    segment = services.segment_create(name="Beta", constraints=BETA, actor=None)
    services.segment_update(segment=segment, actor=None, expected_version=1, description="v2")

    with pytest.raises(ConflictError):
        services.segment_update(segment=segment, actor=None, expected_version=1, description="v3")

    segment.refresh_from_db()
    assert (segment.description, segment.version) == ("v2", 2)


def test_segment_update__constraints__bumps_every_environment(envs):
    segment = services.segment_create(name="Beta", constraints=BETA, actor=None)
    before = dict(Environment.objects.values_list("key", "config_version"))

    services.segment_update(segment=segment, actor=None, constraints=[])

    after = dict(Environment.objects.values_list("key", "config_version"))
    assert all(after[k] == before[k] + 1 for k in before)


def test_segment_delete__used_by_a_rule__refused_naming_the_flag(flag):
    segment = services.segment_create(name="Beta testers", constraints=BETA, actor=None)
    _with_rules(flag, "staging", [_rollout(100, segments=[segment.pk])])

    with pytest.raises(ApplicationError) as exc:
        services.segment_delete(segment=segment, actor=None)

    assert exc.value.code == "in_use"
    assert "new-checkout (Staging, rule 1)" in exc.value.message
    assert "Remove it from those rules first" in exc.value.message
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_segment_delete__unused__deleted_with_history(db, release_manager):
    segment = services.segment_create(name="Beta testers", constraints=BETA, actor=None)

    services.segment_delete(segment=segment, actor=release_manager)

    assert not Segment.objects.exists()
    deleted = Segment.history.filter(id=segment.pk, history_type="-").get()
    assert deleted.history_user == release_manager


# --------------------------------------------------------------------------------------------
# Environments


def test_environment_create__existing_flags__get_an_off_state(flag, admin_user_role):
    env = services.environment_create(key="qa", name="QA", actor=admin_user_role)

    state = FlagState.objects.get(flag=flag, environment=env)
    assert (state.enabled, state.rules) == (False, [])
    assert env.order == 3
    assert env.history.get().history_user == admin_user_role


@pytest.mark.parametrize(
    ("key", "message"), [("no spaces", "letters, digits"), ("staging", "exists")]
)
def test_environment_create__bad_key__refused(envs, key, message):
    with pytest.raises(ApplicationError, match=message):
        services.environment_create(key=key, name="X", actor=None)


def test_environment_move__down__swaps_with_next(envs):
    services.environment_move(environment=envs[0], direction="down", actor=None)

    assert list(Environment.objects.values_list("key", flat=True)) == [
        "staging",
        "development",
        "production",
    ]


def test_environment_update__rename_and_production_marker__saved(envs):
    env = services.environment_update(
        environment=envs[1], name="Pre-production", is_production=True, actor=None
    )

    env.refresh_from_db()
    assert (env.name, env.is_production) == ("Pre-production", True)


# --------------------------------------------------------------------------------------------
# Demo data (flags/demo.py, through the services)


def _snapshot_of_flags():
    return (
        sorted(Environment.objects.values_list("key", "name", "order", "is_production")),
        sorted(Segment.objects.values_list("name", "version")),
        sorted(Flag.objects.values_list("key", "version", "type")),
        sorted(FlagState.objects.values_list("flag__key", "environment__key", "version")),
        Flag.history.count() + FlagState.history.count() + Segment.history.count(),
    )


def test_demo_load__twice__changes_nothing(db):
    import io

    from core import demo as core_demo
    from flags import demo

    core_demo.load(stdout=io.StringIO())
    demo.load(stdout=io.StringIO())
    first = _snapshot_of_flags()
    out = io.StringIO()
    demo.load(stdout=out)

    assert _snapshot_of_flags() == first
    assert out.getvalue() == ""
    assert len(first[2]) >= 8
    assert Environment.objects.get(key="production").is_production
    staging = FlagState.objects.get(flag__key="new-checkout", environment__key="staging")
    beta = Segment.objects.get(name="Beta testers")
    assert staging.enabled
    assert [r["segments"] for r in staging.rules] == [[beta.pk], []]
    assert staging.rules[1]["parameters"]["rollout"] == "10"
    assert Flag.objects.get(key="max-upload-mb").type == Flag.Type.NUMBER
    assert FlagState.history.filter(history_user__username="release").exists()
