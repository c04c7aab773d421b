"""Rollcall's flag evaluation engine: Unleash semantics, compiled once, evaluated many times.

Pure Python, no Django. The input is exactly Unleash's client API document
(``GET /api/client/features``: ``{"version": 2, "features": [...], "segments": [...]}``), which
is also what Rollcall serves and imports. ``compile_snapshot`` turns it into a ``Snapshot``:
constraints become closures, regexes are pre-compiled, each strategy's group id, percentage,
stickiness and ``"<groupId>:"`` hash prefix are computed once, and every possible
``Evaluation`` is built up front so that evaluating allocates nothing in the steady state.
Compatibility is defined by the Unleash client specification (npm
``@unleash/client-specification``), which ``tests/flags/test_client_specification.py`` runs in
full.

Public API::

    compile_snapshot(state) -> Snapshot
    Snapshot.evaluate(flag_key, context=None) -> Evaluation     # like Unleash is_enabled
    Snapshot.is_enabled(flag_key, context=None) -> bool         # fast path, no variant
    Snapshot.get_variant(flag_key, context=None) -> dict        # Unleash getVariant shape
    Snapshot.evaluate_all(context=None) -> dict[str, Evaluation]
    Snapshot.flag_keys -> tuple[str, ...]
    apply_delta(state, events) -> dict                          # Unleash delta API events
    context_from_ofrep(ctx) -> dict                             # OFREP context -> Unleash
    bucket(group_id, value) / variant_bucket(group_id, value, total_weight)

Context
    A mapping with Unleash's field names: ``userId``, ``sessionId``, ``remoteAddress``,
    ``environment``, ``appName``, ``currentTime`` at the top level and everything else in
    ``properties`` (a dict). Constraints on those six names read the top level; any other name
    reads ``properties``. Values should be strings (``context_from_ofrep`` makes them so);
    non-strings are stringified like Unleash SDKs do (``true``/``false``, ``str(number)``).
    ``None`` means "absent".

Bucketing (exactly Unleash's)
    rollout: ``mmh3.hash(f"{group_id}:{value}", seed=0, signed=False) % 100 + 1`` and on when
    ``percentage > 0 and bucket <= percentage``; group id defaults to the flag key.
    variants: the same hash with seed 86028157, ``% total_weight + 1``, then the first variant
    whose cumulative weight reaches the target (weight-0 variants are skipped).
    Rollout stickiness ``default`` is ``userId``, then ``sessionId``, then random; ``random`` is
    random; a named field that is missing makes the rollout false. Variant stickiness
    ``default`` is ``userId``, ``sessionId``, ``remoteAddress``, then random; a named field that
    is missing falls back to random (as Unleash SDKs do). Strategy variants take stickiness and
    group id from their strategy's parameters; feature variants use the first variant's
    ``stickiness`` and the flag key. Feature-variant ``overrides`` win over hashing (first
    matching variant in list order).

Strategies
    ``default``, ``userWithId`` (``userIds``), ``gradualRolloutUserId``,
    ``gradualRolloutSessionId``, ``gradualRolloutRandom`` (``percentage``, ``groupId``),
    ``remoteAddress`` (``IPs``: exact addresses and CIDR ranges, invalid entries ignored),
    ``flexibleRollout`` (``rollout``, ``stickiness``, ``groupId``) and
    ``applicationHostname`` (``hostNames``, case-insensitive). Rollcall evaluates for remote
    callers, so the host name is the context property ``hostname`` when given and otherwise
    the evaluating server's ``socket.gethostname()`` (what a server-side Unleash SDK would
    use). Unknown strategy names are false. A flag that is enabled and has no strategies is on.

Constraints
    ANDed per strategy, together with the constraints of every referenced segment. A strategy
    that references a missing segment is false; an empty segment is true. Operators: ``IN``,
    ``NOT_IN`` (case-sensitive, like Unleash), ``STR_CONTAINS``, ``STR_STARTS_WITH``,
    ``STR_ENDS_WITH`` (``caseInsensitive``), ``NUM_EQ/GT/GTE/LT/LTE`` (numbers parsed from
    strings; an unparsable context value is false), ``DATE_AFTER/DATE_BEFORE`` (strict;
    ``currentTime`` defaults to now, naive times are UTC), ``SEMVER_EQ/GT/GTE/LT/LTE`` (strict
    SemVer 2.0.0 with pre-release precedence; ``v1.2.3`` is not valid), ``REGEX`` (the Rust
    ``regex`` dialect the specification assumes, translated to Python ``re``: POSIX classes,
    inline flags anywhere, nested classes and ``&&``/``--``/``~~``; look-around,
    back-references and ``\\p{..}`` are rejected, as Rust does or we cannot emulate) and
    ``IN_CIDR`` (invalid entries ignored). ``inverted`` negates the result, including for an
    absent context value. A constraint that cannot be compiled (unknown operator, invalid
    regex, unparsable number/date/version in the rule) is false even when inverted.

Dependencies
    ``dependencies: [{feature, enabled=True, variants=[]}]``: every parent must be satisfied.
    Parents are evaluated without side effects (this engine has none: no metrics, no
    impressions). A parent that itself has dependencies (transitive chains and cycles) or does
    not exist makes the child false, as in Unleash.

Reasons (OFREP)
    ``found`` is False for an unknown flag (``enabled`` False, reason ``DEFAULT``; callers
    answer FLAG_NOT_FOUND). Otherwise:

    - ``DISABLED``: the flag is disabled in this environment.
    - ``DEFAULT``: the flag is enabled but no strategy matched (or a dependency failed).
    - ``SPLIT``: the matched strategy rolls out to a percentage below 100 (hashed or random),
      or the variant was chosen by hashing among two or more weighted variants.
    - ``TARGETING_MATCH``: the matched strategy has constraints or segments or is a targeting
      strategy (``userWithId``, ``remoteAddress``, ``applicationHostname``), or a variant
      override matched.
    - ``STATIC``: the matched strategy is unconditional (``default``, a 100% rollout with no
      constraints, or no strategies at all) and any variant was fixed.

    SPLIT takes precedence over TARGETING_MATCH, which takes precedence over STATIC.
    ``rule_index`` is the index of the matched strategy in the flag's ``strategies`` list
    (``None`` when nothing matched or the flag has no strategies).

Evaluations and their payload dicts are shared between calls: treat them as read-only.

Regexes run on Python's backtracking ``re`` rather than Rust's linear-time engine: patterns
come from release managers, not from callers, but a pathological pattern (``(a+)+$``) fed a
long context value can be slow. Validate patterns when rules are saved.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import random
import re
import socket
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import mmh3

__all__ = [
    "DEFAULT",
    "DISABLED",
    "DISABLED_VARIANT",
    "REASONS",
    "SPLIT",
    "STATIC",
    "TARGETING_MATCH",
    "Evaluation",
    "Snapshot",
    "apply_delta",
    "bucket",
    "compile_snapshot",
    "context_from_ofrep",
    "translate_rust_regex",
    "variant_bucket",
]

STATIC = "STATIC"
TARGETING_MATCH = "TARGETING_MATCH"
SPLIT = "SPLIT"
DISABLED = "DISABLED"
DEFAULT = "DEFAULT"
REASONS = (STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT)
_REASON_RANK = {STATIC: 0, TARGETING_MATCH: 1, SPLIT: 2}

DISABLED_VARIANT = "disabled"
ROLLOUT_SEED = 0
VARIANT_SEED = 86028157

#: Context fields Unleash keeps at the top level; every other name is a custom property.
TOP_LEVEL_FIELDS = frozenset(
    ("userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime")
)

Context = Mapping[str, Any]
_EMPTY: Context = {}

_hash = mmh3.hash
_random = random.random


class Evaluation(NamedTuple):
    """The outcome of evaluating one flag for one context (immutable, shared)."""

    key: str
    enabled: bool
    #: Unleash variant name; ``"disabled"`` when no variant applies.
    variant: str
    #: The variant's payload ``{"type": ..., "value": ...}`` or ``None``.
    payload: dict[str, Any] | None
    #: True when a real variant was selected (Unleash's variant ``enabled``).
    variant_enabled: bool
    reason: str
    rule_index: int | None
    found: bool

    def as_unleash_variant(self) -> dict[str, Any]:
        """The Unleash ``getVariant`` shape: name, payload (when any), enabled, feature_enabled."""
        result: dict[str, Any] = {"name": self.variant}
        if self.payload is not None:
            result["payload"] = self.payload
        result["enabled"] = self.variant_enabled
        result["feature_enabled"] = self.enabled
        return result


# --------------------------------------------------------------------------------------------
# Hashing


def bucket(group_id: str, value: str) -> int:
    """Unleash's rollout bucket (1..100) of ``value`` in ``group_id``."""
    return _hash(f"{group_id}:{value}", ROLLOUT_SEED, False) % 100 + 1


def variant_bucket(group_id: str, value: str, total_weight: int) -> int:
    """Unleash's variant target (1..total_weight) of ``value`` in ``group_id``."""
    return _hash(f"{group_id}:{value}", VARIANT_SEED, False) % total_weight + 1


# --------------------------------------------------------------------------------------------
# Context helpers


def _as_str(value: Any) -> str:
    """Stringify a context value the way Unleash SDKs do."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def context_from_ofrep(ctx: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map an OpenFeature (OFREP) evaluation context to an Unleash context.

    ``targetingKey`` is ``userId`` (and wins when both are given); ``sessionId``,
    ``remoteAddress``, ``appName``, ``environment``, ``currentTime`` and ``userId`` keep their
    names; every other key is a custom property. Values are stringified like Unleash SDKs do
    (booleans ``"true"``/``"false"``, numbers with ``str``); ``None`` values are dropped; a
    ``datetime`` ``currentTime`` is kept as is.
    """
    out: dict[str, Any] = {}
    props: dict[str, str] = {}
    if not ctx:
        return out
    for name, value in ctx.items():
        if value is None or name == "targetingKey":
            continue
        if name in TOP_LEVEL_FIELDS:
            if name == "currentTime" and isinstance(value, dt.datetime):
                out[name] = value
            else:
                out[name] = _as_str(value)
        else:
            props[name] = _as_str(value)
    targeting_key = ctx.get("targetingKey")
    if targeting_key is not None:
        out["userId"] = _as_str(targeting_key)
    if props:
        out["properties"] = props
    return out


def _getter(field: str) -> Callable[[Context], Any]:
    """A function reading ``field`` from a context (top level or properties)."""
    if field in TOP_LEVEL_FIELDS:

        def get_top(ctx: Context) -> Any:
            return ctx.get(field)

        return get_top

    def get_prop(ctx: Context) -> Any:
        props = ctx.get("properties")
        return props.get(field) if props else None

    return get_prop


# --------------------------------------------------------------------------------------------
# Value parsing


class _Invalid(ValueError):
    """A rule value that cannot be compiled; the constraint is then false."""


def _parse_number(value: Any) -> float | None:
    if value is None or value is True or value is False:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = value if isinstance(value, str) else str(value)
        if "_" in text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    return None if math.isnan(number) else number


def _parse_date(value: Any) -> float | None:
    """A timestamp from an ISO-8601 string or datetime; naive times are UTC."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


_SEMVER_RE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)

_SemverKey = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


@lru_cache(maxsize=4096)
def _semver_key(value: str) -> _SemverKey | None:
    """A sort key with SemVer 2.0.0 precedence, or None when ``value`` is not strict SemVer."""
    match = _SEMVER_RE.fullmatch(value)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        # A release sorts after every pre-release of the same version.
        return (int(major), int(minor), int(patch), 1, ())
    ids = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split("."))
    return (int(major), int(minor), int(patch), 0, ids)


@lru_cache(maxsize=4096)
def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _networks(entries: Iterable[Any]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            continue
    return tuple(nets)


# --------------------------------------------------------------------------------------------
# Rust regex dialect -> Python re


class _RegexError(ValueError):
    pass


_POSIX_CLASSES = {
    "alnum": r"0-9A-Za-z",
    "alpha": r"A-Za-z",
    "ascii": r"\x00-\x7f",
    "blank": r"\t ",
    "cntrl": r"\x00-\x1f\x7f",
    "digit": r"0-9",
    "graph": r"!-~",
    "lower": r"a-z",
    "print": r" -~",
    "punct": r"!-/:-@\[-`{-~",
    "space": r"\t\n\x0b\x0c\r ",
    "upper": r"A-Z",
    "word": r"0-9A-Za-z_",
    "xdigit": r"0-9A-Fa-f",
}
# Perl classes when Unicode mode is off, (ASCII set, negated).
_ASCII_PERL = {
    "d": (r"0-9", False),
    "D": (r"0-9", True),
    "w": (r"0-9A-Za-z_", False),
    "W": (r"0-9A-Za-z_", True),
    "s": (r"\t\n\x0b\x0c\r ", False),
    "S": (r"\t\n\x0b\x0c\r ", True),
}
_SIMPLE_ESCAPES = {"a": "\x07", "f": "\x0c", "t": "\t", "n": "\n", "r": "\r", "v": "\x0b"}
_HEX = frozenset("0123456789abcdefABCDEF")
_FLAG_LETTERS = frozenset("imsUxRu")


def _class_char(ch: str) -> str:
    """A character as a safe item inside a Python character class."""
    if ch.isascii() and ch.isalnum():
        return ch
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# Character-class expression nodes: ("atom", fragment) | ("not", node) | ("union", [nodes])
# | ("and"|"diff"|"xor", left, right). An atom is a positive Python class fragment.
_ClassNode = tuple[Any, ...]


def _class_atoms(node: _ClassNode) -> list[str] | None:
    """The fragments of a union made only of atoms, else None."""
    if node[0] == "atom":
        return [node[1]]
    if node[0] == "union":
        frags: list[str] = []
        for child in node[1]:
            sub = _class_atoms(child)
            if sub is None:
                return None
            frags.extend(sub)
        return frags
    return None


def _emit_class(node: _ClassNode) -> str:
    """A Python regex matching exactly one character of the class expression ``node``."""
    kind = node[0]
    frags = _class_atoms(node)
    if frags is not None:
        return "[" + "".join(frags) + "]" if frags else "(?:(?!))"
    if kind == "not":
        inner = _class_atoms(node[1])
        if inner is not None:
            return "[^" + "".join(inner) + "]" if inner else r"[\s\S]"
        return r"(?:(?!" + _emit_class(node[1]) + r")[\s\S])"
    if kind == "union":
        atoms: list[str] = []
        others: list[str] = []
        for child in node[1]:
            sub = _class_atoms(child)
            if sub is not None:
                atoms.extend(sub)
            else:
                others.append(_emit_class(child))
        if atoms:
            others.insert(0, "[" + "".join(atoms) + "]")
        return "(?:" + "|".join(others) + ")"
    left, right = _emit_class(node[1]), _emit_class(node[2])
    if kind == "and":
        return f"(?:(?={left}){right})"
    if kind == "diff":
        return f"(?:(?!{right}){left})"
    return f"(?:(?!{right}){left}|(?!{left}){right})"  # xor


class _RustRegex:
    """A recursive-descent translator from Rust ``regex`` syntax to an equivalent ``re`` pattern.

    Flags are tracked by the translator rather than handed to ``re`` so that inline flags may
    appear anywhere (Rust scopes them to the rest of the enclosing group, across ``|``): ``i``
    and ``-u`` wrap each affected atom in ``(?i:..)``/``(?a:..)``; ``m``, ``s``, ``R`` rewrite
    ``^``, ``$`` and ``.``; ``x`` drops whitespace and comments; ``U`` swaps greediness.
    """

    def __init__(self, pattern: str, case_insensitive: bool) -> None:
        self.p = pattern
        self.i = 0
        self.base_i = case_insensitive

    def translate(self) -> str:
        flags = {"i": self.base_i, "m": False, "s": False, "U": False, "x": False}
        flags.update({"R": False, "u": True})
        out = self._alternation(flags, depth=0)
        if self.i < len(self.p):  # pragma: no cover - _alternation stops only at ')' or end
            raise _RegexError("unbalanced ')'")
        return out

    # -- helpers
    def _peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.p[j] if j < len(self.p) else ""

    def _skip_trivia(self, flags: dict[str, bool]) -> None:
        if not flags["x"]:
            return
        while self.i < len(self.p):
            ch = self.p[self.i]
            if ch.isspace():
                self.i += 1
            elif ch == "#":
                end = self.p.find("\n", self.i)
                self.i = len(self.p) if end < 0 else end + 1
            else:
                return

    def _wrap(self, atom: str, flags: dict[str, bool], case: bool = True) -> str:
        on = ""
        off = ""
        if case and flags["i"] != self.base_i:
            if flags["i"]:
                on += "i"
            else:
                off += "i"
        if not flags["u"]:
            on = "a" + on
        if not on and not off:
            return atom
        return f"(?{on}{'-' + off if off else ''}:{atom})"

    # -- grammar
    def _alternation(self, flags: dict[str, bool], depth: int) -> str:
        flags = dict(flags)
        branches: list[str] = []
        # (text, unit): `unit` says whether a quantifier may follow the text directly.
        items: list[tuple[str, bool]] = []
        can_repeat = False
        while True:
            self._skip_trivia(flags)
            if self.i >= len(self.p):
                if depth:
                    raise _RegexError("unclosed group")
                break
            ch = self.p[self.i]
            if ch == ")":
                if not depth:
                    raise _RegexError("unopened group")
                break
            if ch == "|":
                self.i += 1
                branches.append("".join(text for text, _ in items))
                items = []
                can_repeat = False
                continue
            if ch in "*+?{":
                if not can_repeat:
                    raise _RegexError("repetition operator missing expression")
                text, unit = items[-1]
                items[-1] = (self._quantify(text if unit else f"(?:{text})", flags), True)
                can_repeat = False
                continue
            if ch == "(":
                group = self._group(flags, depth)
                if group is None:  # a bare flag group changed `flags` in place
                    continue
                items.append((group, True))
            elif ch == "[":
                self.i += 1
                items.append((self._wrap(_emit_class(self._class(flags)), flags), True))
            elif ch == "\\":
                items.append(self._escape(flags))
            elif ch == ".":
                self.i += 1
                if flags["s"]:
                    items.append((r"[\s\S]", True))
                else:
                    items.append((r"[^\r\n]" if flags["R"] else r"[^\n]", True))
            elif ch == "^":
                self.i += 1
                if not flags["m"]:
                    items.append((r"\A", False))
                elif flags["R"]:
                    items.append((r"(?:\A|(?<=\n)|(?<=\r)(?!\n))", True))
                else:
                    items.append((r"(?:\A|(?<=\n))", True))
            elif ch == "$":
                self.i += 1
                if not flags["m"]:
                    items.append((r"\Z", False))
                elif flags["R"]:
                    items.append((r"(?:\Z|(?=\r)|(?<!\r)(?=\n))", True))
                else:
                    items.append((r"(?=\n|\Z)", False))
            else:
                self.i += 1
                items.append((self._wrap(re.escape(ch), flags), True))
            can_repeat = True
        branches.append("".join(text for text, _ in items))
        return "|".join(branches)

    def _quantify(self, atom: str, flags: dict[str, bool]) -> str:
        ch = self.p[self.i]
        self.i += 1
        if ch == "{":
            close = self.p.find("}", self.i)
            if close < 0:
                raise _RegexError("unclosed repetition")
            body = self.p[self.i : close]
            if flags["x"]:
                body = "".join(body.split())
            match = re.fullmatch(r"([0-9]+)(?:(,)([0-9]*))?", body)
            if match is None:
                raise _RegexError("invalid repetition")
            low, comma, high = match.groups()
            if high and int(high) < int(low):
                raise _RegexError("invalid repetition range")
            quant = "{" + low + ("," + high if comma else "") + "}"
            self.i = close + 1
        else:
            quant = ch
        self._skip_trivia(flags)
        lazy = False
        if self._peek() == "?":
            self.i += 1
            lazy = True
        if flags["U"]:
            lazy = not lazy
        self._skip_trivia(flags)
        if self._peek() and self._peek() in "*+?{":
            # Rust rejects stacked repetitions; Python would read them as possessive.
            raise _RegexError("nested repetition")
        return atom + quant + ("?" if lazy else "")

    def _group(self, flags: dict[str, bool], depth: int) -> str | None:
        self.i += 1  # '('
        if self._peek() != "?":
            inner = self._alternation(flags, depth + 1)
            self.i += 1
            return "(" + inner + ")"
        self.i += 1
        head = self._peek()
        if (head == "P" and self._peek(1) == "<") or (head == "<" and self._peek(1) not in "=!"):
            # Named capture group; names do not matter for matching.
            self.i = self.p.find(">", self.i)
            if self.i < 0:
                raise _RegexError("unclosed group name")
            self.i += 1
            inner = self._alternation(flags, depth + 1)
            self.i += 1
            return "(" + inner + ")"
        if head in ("=", "!", "<", "#"):
            raise _RegexError("look-around and comments are not supported")
        new_flags = dict(flags)
        negate = False
        seen: set[str] = set()
        dangling = False
        while True:
            ch = self._peek()
            if not ch:
                raise _RegexError("unclosed flag group")
            self.i += 1
            if ch == "-":
                if negate:
                    raise _RegexError("repeated negation")
                negate = True
                dangling = True
                continue
            if ch in (")", ":"):
                if dangling or (not seen and not negate and ch == ")"):
                    raise _RegexError("empty flag group")
                break
            if ch not in _FLAG_LETTERS or ch in seen:
                raise _RegexError("invalid flag")
            seen.add(ch)
            dangling = False
            new_flags[ch] = not negate
        if ch == ")":
            flags.update(new_flags)
            return None
        inner = self._alternation(new_flags, depth + 1)
        self.i += 1
        return "(?:" + inner + ")"

    def _escape(self, flags: dict[str, bool]) -> tuple[str, bool]:
        self.i += 1
        ch = self._peek()
        if not ch:
            raise _RegexError("trailing backslash")
        self.i += 1
        if ch in "dDwWsS":
            if flags["u"]:
                return "\\" + ch, True
            frag, negated = _ASCII_PERL[ch]
            return ("[^" if negated else "[") + frag + "]", True
        if ch in "bB":
            if ch == "b" and self._peek() == "{":
                close = self.p.find("}", self.i)
                kind = self.p[self.i + 1 : close] if close > 0 else ""
                boundary = {
                    "start": r"\b(?=\w)",
                    "end": r"\b(?<=\w)",
                    "start-half": r"(?<!\w)",
                    "end-half": r"(?!\w)",
                }.get(kind)
                if boundary is None:
                    raise _RegexError("invalid word boundary")
                self.i = close + 1
                return self._wrap(f"(?:{boundary})", flags, case=False), False
            return self._wrap("\\" + ch, flags, case=False), False
        if ch == "<":
            return self._wrap(r"(?:\b(?=\w))", flags, case=False), False
        if ch == ">":
            return self._wrap(r"(?:\b(?<=\w))", flags, case=False), False
        if ch == "A":
            return r"\A", False
        if ch == "z":
            return r"\Z", False
        literal = self._literal_escape(ch)
        return self._wrap(re.escape(literal), flags), True

    def _literal_escape(self, ch: str) -> str:
        """The character of an escape that denotes a literal (``self.i`` is past ``ch``)."""
        if ch in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[ch]
        if ch in "xuU":
            if self._peek() == "{":
                close = self.p.find("}", self.i)
                digits = self.p[self.i + 1 : close] if close > 0 else ""
                if not 1 <= len(digits) <= 8:
                    raise _RegexError("invalid hex escape")
                self.i = close + 1
            else:
                width = {"x": 2, "u": 4, "U": 8}[ch]
                digits = self.p[self.i : self.i + width]
                if len(digits) != width:
                    raise _RegexError("invalid hex escape")
                self.i += width
            if not set(digits) <= _HEX:
                raise _RegexError("invalid hex escape")
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _RegexError("invalid code point")
            return chr(code)
        if ch.isascii() and not ch.isalnum():
            return ch
        # \p{..}, back-references, octal and unknown letters.
        raise _RegexError(f"unsupported escape \\{ch}")

    def _class(self, flags: dict[str, bool]) -> _ClassNode:
        """Parse a bracketed class; ``self.i`` is just past ``[``."""
        negated = False
        if self._peek() == "^":
            negated = True
            self.i += 1
        expr: _ClassNode | None = None
        pending_op: str | None = None
        items: list[_ClassNode] = []
        first = True
        while True:
            self._skip_class_space(flags)
            ch = self._peek()
            if not ch:
                raise _RegexError("unclosed class")
            if ch == "]" and not first:
                self.i += 1
                break
            op = self.p[self.i : self.i + 2]
            if op in ("&&", "--", "~~"):
                self.i += 2
                expr = self._combine(expr, pending_op, items)
                pending_op = {"&&": "and", "--": "diff", "~~": "xor"}[op]
                items = []
                first = False
                continue
            first = False
            if ch == "[":
                posix = self._posix_class()
                if posix is not None:
                    items.append(posix)
                    continue
                self.i += 1
                items.append(self._class(flags))
                continue
            low = self._class_literal_or_set(flags)
            if isinstance(low, tuple):
                items.append(low)
                continue
            # A range needs '-' followed by something other than ']'.
            self._skip_class_space(flags)
            if self._peek() == "-" and self._peek(1) not in ("]", "-", ""):
                self.i += 1
                self._skip_class_space(flags)
                high = self._class_literal_or_set(flags)
                if isinstance(high, tuple) or ord(high) < ord(low):
                    raise _RegexError("invalid class range")
                items.append(("atom", _class_char(low) + "-" + _class_char(high)))
            else:
                items.append(("atom", _class_char(low)))
        node = self._combine(expr, pending_op, items)
        return ("not", node) if negated else node

    @staticmethod
    def _combine(expr: _ClassNode | None, op: str | None, items: list[_ClassNode]) -> _ClassNode:
        right: _ClassNode = items[0] if len(items) == 1 else ("union", items)
        if expr is None or op is None:
            return right
        return (op, expr, right)

    def _skip_class_space(self, flags: dict[str, bool]) -> None:
        if flags["x"]:
            while self._peek() and self._peek().isspace():
                self.i += 1

    def _posix_class(self) -> _ClassNode | None:
        if self.p[self.i : self.i + 2] != "[:":
            return None
        close = self.p.find(":]", self.i + 2)
        if close < 0:
            return None
        name = self.p[self.i + 2 : close]
        negated = name.startswith("^")
        frag = _POSIX_CLASSES.get(name[1:] if negated else name)
        if frag is None:
            return None
        self.i = close + 2
        atom: _ClassNode = ("atom", frag)
        return ("not", atom) if negated else atom

    def _class_literal_or_set(self, flags: dict[str, bool]) -> str | _ClassNode:
        """One class member: a literal character, or a set (Perl class) as a node."""
        ch = self.p[self.i]
        self.i += 1
        if ch != "\\":
            return ch
        esc = self._peek()
        if not esc:
            raise _RegexError("trailing backslash")
        self.i += 1
        if esc in "dDwWsS":
            if flags["u"]:
                return ("atom", "\\" + esc)
            frag, negated = _ASCII_PERL[esc]
            return ("not", ("atom", frag)) if negated else ("atom", frag)
        return self._literal_escape(esc)


def translate_rust_regex(pattern: str, case_insensitive: bool = False) -> re.Pattern[str]:
    """Compile a pattern written in Rust's ``regex`` dialect into an equivalent Python pattern.

    Raises ``ValueError`` for anything Rust rejects (look-around, back-references, bad
    syntax) and for ``\\p{..}`` Unicode classes, which Python's ``re`` cannot express.
    """
    translated = _RustRegex(pattern, case_insensitive).translate()
    try:
        return re.compile(translated, re.IGNORECASE if case_insensitive else 0)
    except re.error as exc:
        raise _RegexError(str(exc)) from exc


# --------------------------------------------------------------------------------------------
# Constraints

# A compiled constraint is a predicate, or True (always) / False (never).
Predicate = Callable[[Context], bool]
_Compiled = Predicate | bool


def _compile_constraint(constraint: Mapping[str, Any]) -> _Compiled:
    operator = constraint.get("operator")
    field = constraint.get("contextName") or ""
    inverted = bool(constraint.get("inverted"))
    case_insensitive = bool(constraint.get("caseInsensitive"))
    values = constraint.get("values") or []
    value = constraint.get("value")

    if operator in ("IN", "NOT_IN"):
        base = _compile_in(field, values)
        if operator == "NOT_IN":
            inverted = not inverted
        return _invert(base) if inverted else base

    try:
        test = _value_test(operator, field, values, value, case_insensitive)
    except _Invalid:
        return False
    if test is None:
        return False  # unknown operator
    if isinstance(test, bool):
        return test != inverted
    if operator in ("DATE_AFTER", "DATE_BEFORE") and field == "currentTime":

        def check_now(ctx: Context) -> bool:
            current = ctx.get("currentTime")
            return test(dt.datetime.now(dt.UTC) if current is None else current)

        predicate: Predicate = check_now
    elif field in TOP_LEVEL_FIELDS:

        def check_top(ctx: Context) -> bool:
            current = ctx.get(field)
            return False if current is None else test(current)

        predicate = check_top
    else:

        def check_prop(ctx: Context) -> bool:
            props = ctx.get("properties")
            current = props.get(field) if props else None
            return False if current is None else test(current)

        predicate = check_prop
    return _invert(predicate) if inverted else predicate


def _invert(compiled: _Compiled) -> _Compiled:
    if isinstance(compiled, bool):
        return not compiled

    def inverted(ctx: Context) -> bool:
        return not compiled(ctx)

    return inverted


def _compile_in(field: str, values: Iterable[Any]) -> _Compiled:
    allowed = frozenset(_as_str(v) for v in values)
    if not allowed:
        return False
    if field in TOP_LEVEL_FIELDS:

        def in_top(ctx: Context) -> bool:
            current = ctx.get(field)
            if current.__class__ is str:
                return current in allowed
            return current is not None and _as_str(current) in allowed

        return in_top

    def in_prop(ctx: Context) -> bool:
        props = ctx.get("properties")
        if not props:
            return False
        current = props.get(field)
        if current.__class__ is str:
            return current in allowed
        return current is not None and _as_str(current) in allowed

    return in_prop


def _value_test(
    operator: Any,
    field: str,
    values: list[Any],
    value: Any,
    case_insensitive: bool,
) -> Callable[[Any], bool] | bool | None:
    """A test on a present context value for the non-list operators (None: unknown operator)."""
    if operator in ("STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH"):
        needles = tuple(_as_str(v) for v in values)
        if case_insensitive:
            needles = tuple(n.lower() for n in needles)
        if not needles:
            return False
        lower = case_insensitive

        def text(current: Any) -> str:
            s = current if current.__class__ is str else _as_str(current)
            return s.lower() if lower else s

        if operator == "STR_STARTS_WITH":
            return lambda current: text(current).startswith(needles)
        if operator == "STR_ENDS_WITH":
            return lambda current: text(current).endswith(needles)

        def contains(current: Any) -> bool:
            s = text(current)
            return any(n in s for n in needles)

        return contains

    if operator in ("NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE"):
        target = _parse_number(value)
        if target is None:
            raise _Invalid(value)
        compare = _COMPARATORS[operator[4:]]

        def number(current: Any) -> bool:
            parsed = _parse_number(current)
            return parsed is not None and compare(parsed, target)

        return number

    if operator in ("DATE_AFTER", "DATE_BEFORE"):
        moment = _parse_date(value)
        if moment is None:
            raise _Invalid(value)
        after = operator == "DATE_AFTER"

        def date(current: Any) -> bool:
            parsed = _parse_date(current)
            if parsed is None:
                return False
            return parsed > moment if after else parsed < moment

        return date

    if operator in ("SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE"):
        version = _semver_key(value) if isinstance(value, str) else None
        if version is None:
            raise _Invalid(value)
        compare = _COMPARATORS[operator[7:]]

        def semver(current: Any) -> bool:
            parsed = _semver_key(current if current.__class__ is str else _as_str(current))
            return parsed is not None and compare(parsed, version)

        return semver

    if operator == "REGEX":
        source = value if value is not None else (values[0] if values else None)
        if not isinstance(source, str):
            raise _Invalid(source)
        try:
            search = translate_rust_regex(source, case_insensitive).search
        except ValueError as exc:
            raise _Invalid(source) from exc

        def regex(current: Any) -> bool:
            return search(current if current.__class__ is str else _as_str(current)) is not None

        return regex

    if operator == "IN_CIDR":
        nets = _networks(values if values else ([value] if value is not None else []))
        if not nets:
            return False

        def cidr(current: Any) -> bool:
            address = _ip(current if current.__class__ is str else _as_str(current))
            return address is not None and any(address in net for net in nets)

        return cidr

    return None


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": lambda a, b: a == b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
}


# --------------------------------------------------------------------------------------------
# Strategies


def _percentage(value: Any) -> float:
    parsed = _parse_number(value)
    return parsed if parsed is not None else 0.0


def _split_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [_as_str(v).strip() for v in value if _as_str(v).strip()]
    if value is None:
        return []
    return [part.strip() for part in _as_str(value).split(",") if part.strip()]


def _hostname() -> str:
    return socket.gethostname().lower()


class _Activation(NamedTuple):
    """A strategy's own check (after constraints) and how it classifies the reason."""

    check: _Compiled
    split: bool  # a percentage below 100
    targeting: bool


def _rollout_check(percentage: float, group_id: str, stickiness: str) -> _Compiled:
    """The rollout predicate for a stickiness: ``default``, ``random``, ``userId``, a property."""
    if percentage <= 0:
        return False
    p = percentage
    prefix = f"{group_id}:"
    rand = _random
    h = _hash
    if stickiness == "random":

        def random_rollout(ctx: Context) -> bool:
            return int(rand() * 100) + 1 <= p

        return True if p >= 100 else random_rollout

    if stickiness == "default":

        def default_rollout(ctx: Context) -> bool:
            value = ctx.get("userId") or ctx.get("sessionId")
            if not value:
                return int(rand() * 100) + 1 <= p
            if value.__class__ is not str:
                value = _as_str(value)
            return h(prefix + value, 0, False) % 100 + 1 <= p

        return True if p >= 100 else default_rollout

    if stickiness in TOP_LEVEL_FIELDS:
        field = stickiness

        def top_rollout(ctx: Context) -> bool:
            value = ctx.get(field)
            if not value:
                return False
            if value.__class__ is not str:
                value = _as_str(value)
            return h(prefix + value, 0, False) % 100 + 1 <= p

        return top_rollout

    def prop_rollout(ctx: Context) -> bool:
        props = ctx.get("properties")
        value = props.get(stickiness) if props else None
        if not value:
            return False
        if value.__class__ is not str:
            value = _as_str(value)
        return h(prefix + value, 0, False) % 100 + 1 <= p

    return prop_rollout


def _compile_activation(flag_key: str, name: Any, params: Mapping[str, Any]) -> _Activation:
    if name == "default":
        return _Activation(True, False, False)

    if name == "flexibleRollout":
        percentage = _percentage(params.get("rollout"))
        group_id = _as_str(params.get("groupId") or flag_key)
        stickiness = _as_str(params.get("stickiness") or "default")
        check = _rollout_check(percentage, group_id, stickiness)
        return _Activation(check, 0 < percentage < 100, False)

    if name in ("gradualRolloutUserId", "gradualRolloutSessionId"):
        percentage = _percentage(params.get("percentage"))
        group_id = _as_str(params.get("groupId") or flag_key)
        field = "userId" if name == "gradualRolloutUserId" else "sessionId"
        check = _rollout_check(percentage, group_id, field)
        return _Activation(check, 0 < percentage < 100, False)

    if name == "gradualRolloutRandom":
        percentage = _percentage(params.get("percentage"))
        check = _rollout_check(percentage, flag_key, "random")
        return _Activation(check, 0 < percentage < 100, False)

    if name == "userWithId":
        user_ids = frozenset(_split_list(params.get("userIds")))
        if not user_ids:
            return _Activation(False, False, True)

        def user_with_id(ctx: Context) -> bool:
            user = ctx.get("userId")
            if user.__class__ is str:
                return user in user_ids
            return user is not None and _as_str(user) in user_ids

        return _Activation(user_with_id, False, True)

    if name == "remoteAddress":
        entries = _split_list(params.get("IPs"))
        exact = frozenset(entries)
        nets = _networks(e for e in entries if "/" in e)

        def remote_address(ctx: Context) -> bool:
            address = ctx.get("remoteAddress")
            if not address:
                return False
            if address.__class__ is not str:
                address = _as_str(address)
            if address in exact:
                return True
            if not nets:
                return False
            parsed = _ip(address)
            return parsed is not None and any(parsed in net for net in nets)

        return _Activation(remote_address if entries else False, False, True)

    if name == "applicationHostname":
        hosts = frozenset(h.lower() for h in _split_list(params.get("hostNames")))
        server_host = _hostname()

        def application_hostname(ctx: Context) -> bool:
            props = ctx.get("properties")
            host = props.get("hostname") if props else None
            if host is None:
                return server_host in hosts
            return _as_str(host).lower() in hosts

        return _Activation(application_hostname if hosts else False, False, True)

    return _Activation(False, False, False)  # unknown strategy


# --------------------------------------------------------------------------------------------
# Variants

_EvalFn = Callable[[Context], Evaluation]


class _VariantSet(NamedTuple):
    """Weighted variants, prepared for selection."""

    variants: tuple[Mapping[str, Any], ...]
    cumulative: tuple[int, ...]  # cumulative weights of the positive-weight variants
    positive: tuple[int, ...]  # indexes (in `variants`) of the positive-weight variants
    total: int
    overrides: tuple[tuple[int, tuple[tuple[str, frozenset[str]], ...]], ...]


def _variant_set(variants: Iterable[Mapping[str, Any]], with_overrides: bool) -> _VariantSet:
    items = tuple(v for v in variants if isinstance(v, Mapping) and v.get("name"))
    cumulative: list[int] = []
    positive: list[int] = []
    total = 0
    for index, variant in enumerate(items):
        weight = int(_percentage(variant.get("weight")))
        if weight <= 0:
            continue
        total += weight
        cumulative.append(total)
        positive.append(index)
    overrides: list[tuple[int, tuple[tuple[str, frozenset[str]], ...]]] = []
    if with_overrides:
        for index, variant in enumerate(items):
            rules = tuple(
                (_as_str(o.get("contextName") or ""), frozenset(_as_str(v) for v in o["values"]))
                for o in variant.get("overrides") or ()
                if o.get("values")
            )
            if rules:
                overrides.append((index, rules))
    return _VariantSet(items, tuple(cumulative), tuple(positive), total, tuple(overrides))


def _seed_getter(stickiness: str) -> Callable[[Context], str | None]:
    """How a variant finds its stickiness value (None: use a random target)."""
    if stickiness == "random":
        return lambda ctx: None
    if stickiness == "default":

        def default_seed(ctx: Context) -> str | None:
            value = ctx.get("userId") or ctx.get("sessionId") or ctx.get("remoteAddress")
            if not value:
                return None
            return value if value.__class__ is str else _as_str(value)

        return default_seed
    get = _getter(stickiness)

    def field_seed(ctx: Context) -> str | None:
        value = get(ctx)
        if value is None or value == "":
            return None
        return value if value.__class__ is str else _as_str(value)

    return field_seed


def _variant_picker(
    flag_key: str,
    vset: _VariantSet,
    group_id: str,
    stickiness: str,
    fallback: Evaluation,
) -> _EvalFn | Evaluation:
    """A function choosing the variant's Evaluation, or the Evaluation when it is fixed.

    ``fallback`` is the matched rule's Evaluation without a variant: it is the answer when
    the variants' total weight is 0 and no override matches.
    """
    base_reason = fallback.reason
    multi = len(vset.positive) > 1
    hash_reason = SPLIT if multi else base_reason
    override_reason = (
        base_reason
        if _REASON_RANK[base_reason] >= _REASON_RANK[TARGETING_MATCH]
        else TARGETING_MATCH
    )

    def make(index: int, reason: str) -> Evaluation:
        variant = vset.variants[index]
        payload = variant.get("payload")
        return Evaluation(
            flag_key,
            True,
            _as_str(variant["name"]),
            dict(payload) if isinstance(payload, Mapping) else None,
            True,
            reason,
            fallback.rule_index,
            True,
        )

    hashed = tuple(make(i, hash_reason) for i in vset.positive)
    unhashed = hashed[0] if len(hashed) == 1 else fallback
    overridden = tuple(
        (make(index, override_reason), tuple((_getter(f), vals) for f, vals in rules))
        for index, rules in vset.overrides
    )
    if not overridden and not multi:
        return unhashed

    cumulative = vset.cumulative
    total = vset.total
    prefix = f"{group_id}:"
    seed_of = _seed_getter(stickiness)
    h = _hash
    rand = _random

    def pick(ctx: Context) -> Evaluation:
        for evaluation, rules in overridden:
            for get, allowed in rules:
                value = get(ctx)
                if (
                    value is not None
                    and (value if value.__class__ is str else _as_str(value)) in allowed
                ):
                    return evaluation
        if not multi:
            return unhashed
        seed = seed_of(ctx)
        if seed is None:
            target = int(rand() * total) + 1
        else:
            target = h(prefix + seed, VARIANT_SEED, False) % total + 1
        return hashed[bisect_left(cumulative, target)]

    return pick


# --------------------------------------------------------------------------------------------
# Rules and flags

_RuleFn = Callable[[Context], Evaluation | None]


def _make_rule(checks: tuple[Predicate, ...], result: Evaluation | _EvalFn) -> _RuleFn:
    """A rule: None unless every check passes, then the (possibly picked) Evaluation."""
    if isinstance(result, Evaluation):
        const = result
        if len(checks) == 1:
            (c0,) = checks

            def rule1(ctx: Context) -> Evaluation | None:
                return const if c0(ctx) else None

            return rule1
        if len(checks) == 2:
            c0, c1 = checks

            def rule2(ctx: Context) -> Evaluation | None:
                return const if c0(ctx) and c1(ctx) else None

            return rule2

        def rule_n(ctx: Context) -> Evaluation | None:
            for check in checks:
                if not check(ctx):
                    return None
            return const

        return rule_n

    pick = result

    def rule_pick(ctx: Context) -> Evaluation | None:
        for check in checks:
            if not check(ctx):
                return None
        return pick(ctx)

    return rule_pick


def _constant(evaluation: Evaluation) -> _EvalFn:
    return lambda ctx: evaluation


def _make_flag(
    rules: list[tuple[tuple[Predicate, ...], Evaluation | _EvalFn]], default: Evaluation
) -> _EvalFn:
    """Combine rules (OR, first match wins) into one evaluator."""
    compiled: list[_RuleFn] = []
    for checks, result in rules:
        if not checks:
            # Unconditional: later rules can never be reached.
            always = _constant(result) if isinstance(result, Evaluation) else result
            if not compiled:
                return always
            compiled.append(always)
            break
        compiled.append(_make_rule(checks, result))
    if not compiled:
        return _constant(default)
    if len(compiled) == 1:
        (only,) = compiled

        def single(ctx: Context) -> Evaluation:
            found = only(ctx)
            return default if found is None else found

        return single
    rule_fns = tuple(compiled)

    def first_match(ctx: Context) -> Evaluation:
        for rule in rule_fns:
            found = rule(ctx)
            if found is not None:
                return found
        return default

    return first_match


class _Flag:
    """A compiled flag: ``evaluate`` picks the variant, ``decide`` only decides on/off."""

    __slots__ = ("decide", "dependencies", "enabled", "evaluate", "key")

    def __init__(
        self,
        key: str,
        enabled: bool,
        evaluate: _EvalFn,
        decide: _EvalFn,
        dependencies: list[Mapping[str, Any]],
    ) -> None:
        self.key = key
        self.enabled = enabled
        self.evaluate = evaluate
        self.decide = decide
        self.dependencies = dependencies


def _compile_segments(
    segments: Iterable[Mapping[str, Any]],
) -> dict[Any, tuple[Predicate, ...] | bool]:
    """Segment id -> its compiled constraints (False when one can never match)."""
    compiled: dict[Any, tuple[Predicate, ...] | bool] = {}
    for segment in segments or ():
        checks: list[Predicate] = []
        never = False
        for constraint in segment.get("constraints") or ():
            c = _compile_constraint(constraint)
            if c is False:
                never = True
                break
            if c is not True:
                checks.append(c)
        compiled[segment.get("id")] = False if never else tuple(checks)
        # Ids may arrive as numbers or strings depending on the producer.
        compiled[_as_str(segment.get("id"))] = compiled[segment.get("id")]
    return compiled


def _compile_flag(
    feature: Mapping[str, Any], segments: Mapping[Any, tuple[Predicate, ...] | bool]
) -> _Flag:
    key = _as_str(feature.get("name"))
    dependencies = [d for d in feature.get("dependencies") or () if isinstance(d, Mapping)]
    default = Evaluation(key, False, DISABLED_VARIANT, None, False, DEFAULT, None, True)
    if not feature.get("enabled"):
        off = Evaluation(key, False, DISABLED_VARIANT, None, False, DISABLED, None, True)
        return _Flag(key, False, lambda ctx: off, lambda ctx: off, dependencies)

    feature_vset = _variant_set(feature.get("variants") or (), with_overrides=True)
    feature_stickiness = "default"
    if feature_vset.variants:
        feature_stickiness = _as_str(feature_vset.variants[0].get("stickiness") or "default")

    full: list[tuple[tuple[Predicate, ...], Evaluation | _EvalFn]] = []
    bool_rules: list[tuple[tuple[Predicate, ...], Evaluation | _EvalFn]] = []
    strategies = feature.get("strategies") or []
    if not strategies:
        on = Evaluation(key, True, DISABLED_VARIANT, None, False, STATIC, None, True)
        full.append(((), _feature_variant_result(key, feature_vset, feature_stickiness, on)))
        bool_rules.append(((), on))

    for index, strategy in enumerate(strategies):
        params = strategy.get("parameters") or {}
        checks: list[Predicate] = []
        never = False
        constraints = list(strategy.get("constraints") or ())
        for constraint in constraints:
            c = _compile_constraint(constraint)
            if c is False:
                never = True
            elif c is not True:
                checks.append(c)
        segment_ids = list(strategy.get("segments") or ())
        for segment_id in segment_ids:
            seg = segments.get(segment_id, segments.get(_as_str(segment_id)))
            if seg is None or seg is False:
                never = True
            elif seg is not True:
                checks.extend(seg)
        activation = _compile_activation(key, strategy.get("name"), params)
        if activation.check is False or never:
            continue
        if activation.check is not True:
            checks.append(activation.check)  # after constraints: hashing is the costliest

        if activation.split:
            reason = SPLIT
        elif constraints or segment_ids or activation.targeting:
            reason = TARGETING_MATCH
        else:
            reason = STATIC
        plain = Evaluation(key, True, DISABLED_VARIANT, None, False, reason, index, True)
        strategy_vset = _variant_set(strategy.get("variants") or (), with_overrides=False)
        result: Evaluation | _EvalFn
        if strategy_vset.total > 0:
            result = _variant_picker(
                key,
                strategy_vset,
                _as_str(params.get("groupId") or key),
                _as_str(params.get("stickiness") or "default"),
                plain,
            )
        else:
            result = _feature_variant_result(key, feature_vset, feature_stickiness, plain)
        full.append((tuple(checks), result))
        bool_rules.append((tuple(checks), plain))

    return _Flag(
        key, True, _make_flag(full, default), _make_flag(bool_rules, default), dependencies
    )


def _feature_variant_result(
    key: str, vset: _VariantSet, stickiness: str, plain: Evaluation
) -> Evaluation | _EvalFn:
    if vset.total <= 0 and not vset.overrides:
        return plain
    return _variant_picker(key, vset, key, stickiness, plain)


def _with_dependencies(flag: _Flag, flags: Mapping[str, _Flag]) -> _Flag:
    """Wrap a flag's evaluators so that they first check the flag's parents."""
    if not flag.dependencies or not flag.enabled:
        return flag  # a disabled flag answers DISABLED whatever its parents say
    failed = Evaluation(flag.key, False, DISABLED_VARIANT, None, False, DEFAULT, None, True)
    checks: list[Predicate] = []
    for dependency in flag.dependencies:
        parent = flags.get(_as_str(dependency.get("feature")))
        if parent is None or parent.dependencies:
            # Missing parent, transitive chain or cycle: never satisfied.
            return _Flag(flag.key, True, lambda ctx: failed, lambda ctx: failed, flag.dependencies)
        expect_enabled = dependency.get("enabled", True) is not False
        variants = frozenset(_as_str(v) for v in dependency.get("variants") or ())
        checks.append(_dependency_check(parent, expect_enabled, variants))
    evaluate, decide = flag.evaluate, flag.decide
    deps = tuple(checks)

    def evaluate_with_parents(ctx: Context) -> Evaluation:
        for check in deps:
            if not check(ctx):
                return failed
        return evaluate(ctx)

    def decide_with_parents(ctx: Context) -> Evaluation:
        for check in deps:
            if not check(ctx):
                return failed
        return decide(ctx)

    return _Flag(flag.key, True, evaluate_with_parents, decide_with_parents, flag.dependencies)


def _dependency_check(parent: _Flag, expect_enabled: bool, variants: frozenset[str]) -> Predicate:
    parent_decide = parent.decide
    if not expect_enabled:
        return lambda ctx: not parent_decide(ctx).enabled
    if variants:
        parent_evaluate = parent.evaluate

        def variant_matches(ctx: Context) -> bool:
            result = parent_evaluate(ctx)
            return result.enabled and result.variant in variants

        return variant_matches
    return lambda ctx: parent_decide(ctx).enabled


# --------------------------------------------------------------------------------------------
# Snapshot


class Snapshot:
    """A compiled, immutable set of flags for one environment. Thread-safe."""

    __slots__ = ("_deciders", "_evaluators", "flag_keys")

    def __init__(self, flags: Mapping[str, _Flag]) -> None:
        self._evaluators: dict[str, _EvalFn] = {k: f.evaluate for k, f in flags.items()}
        self._deciders: dict[str, _EvalFn] = {k: f.decide for k, f in flags.items()}
        self.flag_keys: tuple[str, ...] = tuple(flags)

    def __contains__(self, flag_key: object) -> bool:
        return flag_key in self._evaluators

    def __len__(self) -> int:
        return len(self.flag_keys)

    def evaluate(self, flag_key: str, context: Context | None = None) -> Evaluation:
        """Evaluate one flag (Unleash ``isEnabled`` plus variant and reason)."""
        evaluator = self._evaluators.get(flag_key)
        if evaluator is None:
            return Evaluation(flag_key, False, DISABLED_VARIANT, None, False, DEFAULT, None, False)
        return evaluator(_EMPTY if context is None else context)

    def is_enabled(self, flag_key: str, context: Context | None = None) -> bool:
        """Unleash ``isEnabled``: on/off only, without choosing a variant."""
        decide = self._deciders.get(flag_key)
        if decide is None:
            return False
        return decide(_EMPTY if context is None else context).enabled

    def get_variant(self, flag_key: str, context: Context | None = None) -> dict[str, Any]:
        """Unleash ``getVariant``: ``{"name", "payload"?, "enabled", "feature_enabled"}``."""
        return self.evaluate(flag_key, context).as_unleash_variant()

    def evaluate_all(self, context: Context | None = None) -> dict[str, Evaluation]:
        """Evaluate every flag, in document order."""
        ctx = _EMPTY if context is None else context
        return {key: evaluator(ctx) for key, evaluator in self._evaluators.items()}


def compile_snapshot(state: Mapping[str, Any]) -> Snapshot:
    """Compile an Unleash client-features document into a Snapshot (once per config version)."""
    segments = _compile_segments(state.get("segments") or ())
    flags: dict[str, _Flag] = {}
    for feature in state.get("features") or ():
        flag = _compile_flag(feature, segments)
        flags[flag.key] = flag
    resolved = {key: _with_dependencies(flag, flags) for key, flag in flags.items()}
    return Snapshot(resolved)


def apply_delta(
    state: Mapping[str, Any] | None, events: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """Apply Unleash delta-API events in order and return a client-features document.

    Events: ``hydration`` (replaces features and segments), ``feature-updated``,
    ``feature-removed`` (``featureName``), ``segment-updated``, ``segment-removed``
    (``segmentId``). Unknown event types are ignored, as Unleash SDKs do.
    """
    state = state or {}
    features: dict[str, Any] = {f["name"]: f for f in state.get("features") or ()}
    segments: dict[Any, Any] = {s["id"]: s for s in state.get("segments") or ()}
    for event in events:
        kind = event.get("type")
        if kind == "hydration":
            features = {f["name"]: f for f in event.get("features") or ()}
            segments = {s["id"]: s for s in event.get("segments") or ()}
        elif kind == "feature-updated":
            feature = event["feature"]
            features[feature["name"]] = feature
        elif kind == "feature-removed":
            features.pop(_as_str(event.get("featureName")), None)
        elif kind == "segment-updated":
            segment = event["segment"]
            segments[segment["id"]] = segment
        elif kind == "segment-removed":
            segments.pop(event.get("segmentId"), None)
    return {
        "version": state.get("version", 2),
        "features": list(features.values()),
        "segments": list(segments.values()),
    }
