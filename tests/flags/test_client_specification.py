"""The Unleash client specification, run in full against flags.engine.

The cases come from the npm package ``@unleash/client-specification`` (pinned in
package.json; install with ``npm ci``). ``specifications/index.json`` is the list of files
(the package README is out of date). One pytest case per specification test, with ids like
``"01-simple-examples::Feature.A should be enabled"``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from flags.engine import Snapshot, apply_delta, compile_snapshot

SPEC_DIR = (
    Path(__file__).resolve().parents[2]
    / "node_modules"
    / "@unleash"
    / "client-specification"
    / "specifications"
)
MISSING_MESSAGE = (
    f"The Unleash client specification is not installed ({SPEC_DIR} is missing). "
    "Run `npm ci` in the repository root to install it (see package.json)."
)

#: Specification cases deliberately out of scope, id -> reason. Kept empty: Rollcall passes
#: the whole specification. `test_excluded_cases_are_exactly_the_failing_ones` proves any
#: entry added here really fails.
EXCLUDED: dict[str, str] = {}


def _load_cases() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(id, file, kind, test) for every case; kind is "toggle" or "variant"."""
    index = SPEC_DIR / "index.json"
    if not index.is_file():
        return []
    cases = []
    for file_name in json.loads(index.read_text(encoding="utf-8")):
        spec = json.loads((SPEC_DIR / file_name).read_text(encoding="utf-8"))
        stem = file_name.removesuffix(".json")
        for kind, key in (("toggle", "tests"), ("variant", "variantTests")):
            for test in spec.get(key, ()):
                cases.append((f"{stem}::{test['description']}", file_name, kind, test))
    return cases


CASES = _load_cases()


@cache
def _snapshot(file_name: str) -> Snapshot:
    spec = json.loads((SPEC_DIR / file_name).read_text(encoding="utf-8"))
    state = spec["state"]
    if "events" in state:  # files 19-20: the delta API format
        state = apply_delta(None, state["events"])
    return compile_snapshot(state)


def _check(file_name: str, kind: str, test: dict[str, Any]) -> None:
    snapshot = _snapshot(file_name)
    if kind == "toggle":
        assert snapshot.is_enabled(test["toggleName"], test["context"]) is test["expectedResult"]
        evaluation = snapshot.evaluate(test["toggleName"], test["context"])
        assert evaluation.enabled is test["expectedResult"]
        return
    expected = test["expectedResult"]
    actual = snapshot.get_variant(test["toggleName"], test["context"])
    assert actual["name"] == expected["name"]
    assert actual.get("payload") == expected.get("payload")
    assert actual["enabled"] is expected["enabled"]
    # Older files omit feature_enabled; when given it must match.
    if "feature_enabled" in expected:
        assert actual["feature_enabled"] is expected["feature_enabled"]


def _case_params() -> list[Any]:
    if not CASES:
        return [pytest.param(None, None, None, id="client-specification-not-installed")]
    return [
        pytest.param(file_name, kind, test, id=case_id)
        for case_id, file_name, kind, test in CASES
        if case_id not in EXCLUDED
    ]


def test_specification_is_installed() -> None:
    assert (SPEC_DIR / "index.json").is_file(), MISSING_MESSAGE
    # The index is the real list of files; guard against a silently truncated package.
    files = json.loads((SPEC_DIR / "index.json").read_text(encoding="utf-8"))
    assert len(files) >= 22
    assert len([c for c in CASES if c[2] == "toggle"]) >= 227
    assert len([c for c in CASES if c[2] == "variant"]) >= 52


@pytest.mark.parametrize(("file_name", "kind", "test"), _case_params())
def test_client_specification(file_name: str | None, kind: str, test: dict[str, Any]) -> None:
    if file_name is None:
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    _check(file_name, kind, test)


def test_case_ids_are_unique() -> None:
    ids = [case_id for case_id, *_ in CASES]
    assert ids, MISSING_MESSAGE
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    # Duplicated descriptions would make parametrized ids collide and hide cases.
    assert not duplicates or all(_same_case(i) for i in duplicates), duplicates


def _same_case(case_id: str) -> bool:
    tests = [(f, k, json.dumps(t, sort_keys=True)) for i, f, k, t in CASES if i == case_id]
    return len(set(tests)) == 1


def test_excluded_cases_are_exactly_the_failing_ones() -> None:
    assert CASES, MISSING_MESSAGE
    known = {case_id for case_id, *_ in CASES}
    assert set(EXCLUDED) <= known, "EXCLUDED names a case that does not exist"
    failing = set()
    for case_id, file_name, kind, test in CASES:
        try:
            _check(file_name, kind, test)
        except AssertionError:
            failing.add(case_id)
    assert failing == set(EXCLUDED)
