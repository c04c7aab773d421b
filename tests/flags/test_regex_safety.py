"""REGEX constraints run on RE2: linear time whatever the pattern, Rust's semantics kept."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flags.engine import translate_rust_regex

EVIL_TEXT = "a" * 30 + "!"


def test_catastrophic_pattern_answers_instead_of_backtracking() -> None:
    # Python's backtracking `re` needs hours for this (the time doubles with every extra "a");
    # the subprocess timeout makes the test fail instead of hanging if that ever comes back.
    script = (
        "from flags.engine import compile_snapshot\n"
        "snap = compile_snapshot({'version': 2, 'features': [{'name': 'f', 'enabled': True,"
        " 'strategies': [{'name': 'default', 'constraints': [{'contextName': 'userId',"
        " 'operator': 'REGEX', 'value': '(a+)+$'}]}]}]})\n"
        f"print(snap.is_enabled('f', {{'userId': {EVIL_TEXT!r}}}),"
        " snap.is_enabled('f', {'userId': 'baaa'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^(a+)+$", "aaaa", True),
        ("^(a|aa)*b$", "a" * 40, False),
        (r"^\w+$", "héllo", True),  # Unicode \w, as in Rust (RE2's own \w is ASCII)
        (r"^\d+$", "١٢٣", True),  # Unicode \d
        (r"^\s$", "\u3000", True),  # Unicode \s
        (r"(?-u:\d)", "١", False),
        (r"^[\w&&[^\d]]+$", "héllo", True),  # class intersection, computed as ranges
        (r"^[\w&&[^\d]]+$", "h3", False),
        (r"(?i)^[a-z--[aeiou]]+$", "RHYTHM", True),
        (r"(?i)^[a-z--[aeiou]]+$", "rAt", False),
        (r"^[a-c~~b-d]+$", "ad", True),
        (r"^[a-c~~b-d]+$", "b", False),
        (r"^[^\Wa]$", "b", True),
        (r"^[^\Wa]$", "a", False),
        ("(?i)straße", "STRASSE", False),  # simple case folding only, as in Rust
        ("(?i)k", "\u212a", True),  # KELVIN SIGN folds to k
        ("^.$", "\U0001f600", True),  # one character, not one UTF-16 unit
        ("^a+$", "a\ud800", False),  # a lone surrogate never matches, and never raises
    ],
)
def test_rust_semantics_on_re2(pattern: str, text: str, expected: bool) -> None:
    assert (translate_rust_regex(pattern).search(text) is not None) is expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("a{1001}", "invalid repetition size"),  # RE2's limit (Rust's is larger)
        (r"\b{start}x", "not supported"),
        (r"\<x", "not supported"),
        ("(?Rm)^x", "CRLF mode"),
        ("(?=a)", "look-around"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_a_reason(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        translate_rust_regex(pattern)
