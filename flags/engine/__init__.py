"""Rollcall's flag evaluation engine: Unleash semantics, compiled once, evaluated many times.

Pure Python, no Django. The input is exactly Unleash's client API document
(``GET /api/client/features``: ``{"version": 2, "features": [...], "segments": [...]}``), which
is also what Rollcall serves and imports. ``compile_snapshot`` turns it into a ``Snapshot``:
constraints become closures, regexes are pre-compiled, each strategy's group id, percentage,
stickiness and ``"<groupId>:"`` hash prefix are computed once, every possible
``Evaluation`` is built up front so that evaluating allocates nothing in the steady state, and
each flag becomes one generated function with its rollouts inlined (``evaluate.make_flag``).
Context input is validated before it reaches the engine (``context_from_ofrep``: a lone UTF-16
surrogate would crash ``mmh3``).
Compatibility is defined by the Unleash client specification (npm
``@unleash/client-specification``), which ``tests/flags/test_client_specification.py`` runs in
full.

Public API (import it from here: ``from flags.engine import compile_snapshot``)::

    compile_snapshot(state) -> Snapshot
    Snapshot.evaluate(flag_key, context=None) -> Evaluation     # like Unleash is_enabled
    Snapshot.is_enabled(flag_key, context=None) -> bool         # fast path, no variant
    Snapshot.get_variant(flag_key, context=None) -> dict        # Unleash getVariant shape
    Snapshot.evaluate_all(context=None) -> dict[str, Evaluation]
    Snapshot.flag_keys -> tuple[str, ...]
    apply_delta(state, events) -> dict                          # Unleash delta API events
    context_from_ofrep(ctx) -> dict                             # OFREP context -> Unleash
    InvalidContext                       # raised by it: a value the engine must not see
    bucket(group_id, value) / variant_bucket(group_id, value, total_weight)

Modules, in dependency order (each documents the semantics it owns):

- ``context``: the context's shape, Unleash's stringification, OFREP context mapping.
- ``rust_regex``: the Rust ``regex`` dialect translated to RE2 (linear-time matching).
- ``operators``: constraint operators and value parsing (numbers, dates, SemVer, IPs).
- ``evaluate``: ``Evaluation`` and reasons, bucketing, variants, rules, dependencies and
  ``Snapshot`` -- the per-evaluation code.
- ``strategies``: activation strategies (``default``, ``flexibleRollout``, ``userWithId``...).
- ``compile``: the document -> ``Snapshot`` compiler and ``apply_delta``.
"""

from flags.engine.compile import apply_delta, compile_snapshot
from flags.engine.context import InvalidContext, context_from_ofrep
from flags.engine.evaluate import (
    DEFAULT,
    DISABLED,
    DISABLED_VARIANT,
    REASONS,
    SPLIT,
    STATIC,
    TARGETING_MATCH,
    Evaluation,
    Snapshot,
    bucket,
    variant_bucket,
)
from flags.engine.operators import rule_value_problem
from flags.engine.rust_regex import translate_rust_regex

__all__ = [
    "DEFAULT",
    "DISABLED",
    "DISABLED_VARIANT",
    "REASONS",
    "SPLIT",
    "STATIC",
    "TARGETING_MATCH",
    "Evaluation",
    "InvalidContext",
    "Snapshot",
    "apply_delta",
    "bucket",
    "compile_snapshot",
    "context_from_ofrep",
    "rule_value_problem",
    "translate_rust_regex",
    "variant_bucket",
]
