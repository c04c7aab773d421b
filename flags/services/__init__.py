"""Every write to flags goes through here (UI, API, import, rollouts, admin).

Any change that affects evaluation bumps the environment's `config_version` in the same
transaction, so cached snapshots are rebuilt (see `flags.snapshot`).

Modules, by concern (import from here: `from flags.services import flag_toggle`):

- `flags`: flags (create, details, variants, archive) and a flag's state in an environment.
- `rules`: the ordered rules of one flag in one environment.
- `segments`: reusable constraint sets.
- `environments`: environments and SDK keys (admins).
- `validation`: the vocabulary (operators, strategies, payload types) and `validate_*`.
- `common`: the actor type, history authorship, state locks, `environments_bump`.
- `guards`: checks direct state writes pass (higher apps register them, e.g. approval policy).
"""

from flags.services.common import Actor, environments_bump, lock_state
from flags.services.environments import (
    environment_create,
    environment_move,
    environment_update,
    sdk_key_create,
    sdk_key_revoke,
)
from flags.services.flags import (
    RESERVED_FLAG_KEYS,
    flag_archive,
    flag_create,
    flag_state_apply,
    flag_state_update,
    flag_toggle,
    flag_update,
)
from flags.services.guards import (
    StateChange,
    check_state_change,
    register_state_check,
    through_rollout,
)
from flags.services.rules import rule_add, rule_delete, rule_move, rule_update
from flags.services.segments import (
    SegmentUse,
    segment_create,
    segment_delete,
    segment_update,
    segment_usage,
)
from flags.services.validation import (
    MAX_TAG_LENGTH,
    OPERATORS,
    PAYLOAD_TYPES,
    PAYLOAD_TYPES_BY_FLAG_TYPE,
    SINGLE_VALUE_OPERATORS,
    STRATEGIES,
    TOTAL_WEIGHT,
    validate_constraints,
    validate_rules,
    validate_tags,
    validate_variants,
)

__all__ = [
    "MAX_TAG_LENGTH",
    "OPERATORS",
    "PAYLOAD_TYPES",
    "PAYLOAD_TYPES_BY_FLAG_TYPE",
    "RESERVED_FLAG_KEYS",
    "SINGLE_VALUE_OPERATORS",
    "STRATEGIES",
    "TOTAL_WEIGHT",
    "Actor",
    "SegmentUse",
    "StateChange",
    "check_state_change",
    "environment_create",
    "environment_move",
    "environment_update",
    "environments_bump",
    "flag_archive",
    "flag_create",
    "flag_state_apply",
    "flag_state_update",
    "flag_toggle",
    "flag_update",
    "lock_state",
    "register_state_check",
    "rule_add",
    "rule_delete",
    "rule_move",
    "rule_update",
    "sdk_key_create",
    "sdk_key_revoke",
    "segment_create",
    "segment_delete",
    "segment_update",
    "segment_usage",
    "through_rollout",
    "validate_constraints",
    "validate_rules",
    "validate_tags",
    "validate_variants",
]
