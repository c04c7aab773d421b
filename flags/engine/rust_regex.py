"""Rust ``regex`` dialect -> RE2: what the ``REGEX`` constraint operator compiles.

The Unleash client specification assumes Rust's ``regex`` crate. ``translate_rust_regex``
translates its syntax to an equivalent RE2 pattern (``google-re2``, module ``re2``): POSIX
classes, inline flags anywhere, nested classes and ``&&``/``--``/``~~`` (computed as explicit
code-point ranges), Unicode ``\\d``/``\\w``/``\\s``. Look-around and back-references are
rejected, as Rust does; ``\\p{..}``, ``\\b{start}``-style boundaries, ``\\<``/``\\>`` and
multi-line anchors in CRLF mode (``(?Rm)``) are rejected because we do not emulate them.

RE2, like Rust's engine, runs in time linear in the text: no pattern can make evaluation
backtrack (``(a+)+$`` on ``"aaa…a!"`` answers at once), so rule authors cannot stall a worker.
Known difference: ``\\b`` is ASCII-only in RE2 (Unicode in Rust), and ``(?i-u)`` folds case
with Unicode rules.
"""

from __future__ import annotations

import bisect
import itertools
import re
from functools import lru_cache
from typing import Any

import re2


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
# Unicode Perl classes as RE2 class fragments (RE2's own \d, \w, \s are ASCII-only):
# \d is Nd; \w is Alphabetic, marks, Nd, Pc and the joiners; \s is White_Space.
_UNICODE_PERL = {
    "d": r"\p{Nd}",
    "w": r"\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\x{200c}\x{200d}\x{24b6}-\x{24e9}",
    "s": r"\t\n\x0b\x0c\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
    r"\x{205f}\x{3000}",
}
_SIMPLE_ESCAPES = {"a": "\x07", "f": "\x0c", "t": "\t", "n": "\n", "r": "\r", "v": "\x0b"}
_HEX = frozenset("0123456789abcdefABCDEF")
_FLAG_LETTERS = frozenset("imsUxRu")


def _class_char(ch: str) -> str:
    """A character as a literal RE2 item, inside a character class or outside."""
    if ch.isascii() and ch.isalnum():
        return ch
    return f"\\x{{{ord(ch):x}}}"


_MAX_CODE_POINT = 0x10FFFF
_NEVER = r"[^\x{0}-\x{10ffff}]"
_ANY = r"[\x{0}-\x{10ffff}]"
_Ranges = list[tuple[int, int]]  # sorted, disjoint, inclusive code-point ranges


@lru_cache(maxsize=1)
def _every_character() -> str:
    """Every code point but the surrogates (which no text can hold), in order."""
    return "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))


@lru_cache(maxsize=256)
def _fragment_ranges(fragment: str, case_insensitive: bool) -> tuple[tuple[int, int], ...]:
    """The code points of the RE2 class ``[fragment]``, found by scanning every character."""
    options = re2.Options()
    options.case_sensitive = not case_insensitive
    options.log_errors = False
    try:
        runs = re2.compile("[" + fragment + "]+", options).finditer(_every_character())
    except re2.error as exc:
        raise _RegexError(_re2_message(exc)) from exc
    ranges: _Ranges = []
    for run in runs:
        low, high = run.start(), run.end() - 1
        # Indexes past the surrogate gap are 0x800 below their code point.
        if low >= 0xD800:
            ranges.append((low + 0x800, high + 0x800))
        elif high >= 0xD800:
            ranges += [(low, 0xD7FF), (0xE000, high + 0x800)]
        else:
            ranges.append((low, high))
    return tuple(ranges)


def _combine_ranges(left: _Ranges, right: _Ranges, keep: Any) -> _Ranges:
    """The ranges of code points ``c`` with ``keep(c in left, c in right)``."""
    points = sorted({0, _MAX_CODE_POINT + 1} | {p for lo, hi in left + right for p in (lo, hi + 1)})

    def inside(ranges: _Ranges, point: int) -> bool:
        at = bisect.bisect_right(ranges, (point, _MAX_CODE_POINT + 1)) - 1
        return at >= 0 and ranges[at][0] <= point <= ranges[at][1]

    out: _Ranges = []
    for start, end in itertools.pairwise(points):
        if keep(inside(left, start), inside(right, start)):
            if out and out[-1][1] == start - 1:
                out[-1] = (out[-1][0], end - 1)
            else:
                out.append((start, end - 1))
    return out


def _class_ranges(node: Any, case_insensitive: bool) -> _Ranges:
    kind = node[0]
    if kind == "atom":
        return list(_fragment_ranges(node[1], case_insensitive))
    if kind == "not":
        return _combine_ranges(_class_ranges(node[1], case_insensitive), [], lambda a, _: not a)
    if kind == "union":
        out: _Ranges = []
        for child in node[1]:
            out = _combine_ranges(out, _class_ranges(child, case_insensitive), lambda a, b: a or b)
        return out
    left = _class_ranges(node[1], case_insensitive)
    right = _class_ranges(node[2], case_insensitive)
    keep = {
        "and": lambda a, b: a and b,
        "diff": lambda a, b: a and not b,
        "xor": lambda a, b: a != b,
    }[kind]
    return _combine_ranges(left, right, keep)


def _re2_message(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)


# Character-class expression nodes: ("atom", fragment) | ("not", node) | ("union", [nodes])
# | ("and"|"diff"|"xor", left, right). An atom is a positive RE2 class fragment.
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


def _emit_class(node: _ClassNode, case_insensitive: bool) -> str:
    """An RE2 regex matching exactly one character of the class expression ``node``.

    Set operations (and negations of them) have no RE2 syntax: their code points are computed
    (with the case folding in effect) and written out as ranges.
    """
    kind = node[0]
    frags = _class_atoms(node)
    if frags is not None:
        return "[" + "".join(frags) + "]" if frags else _NEVER
    if kind == "not":
        inner = _class_atoms(node[1])
        if inner is not None:
            return "[^" + "".join(inner) + "]" if inner else _ANY
    if kind != "union":
        ranges = _class_ranges(node, case_insensitive)
        if not ranges:
            return _NEVER
        items = (rf"\x{{{lo:x}}}" + ("" if lo == hi else rf"-\x{{{hi:x}}}") for lo, hi in ranges)
        return "[" + "".join(items) + "]"
    if kind == "union":
        atoms: list[str] = []
        others: list[str] = []
        for child in node[1]:
            sub = _class_atoms(child)
            if sub is not None:
                atoms.extend(sub)
            else:
                others.append(_emit_class(child, case_insensitive))
        if atoms:
            others.insert(0, "[" + "".join(atoms) + "]")
        return "(?:" + "|".join(others) + ")"
    raise AssertionError(kind)  # pragma: no cover - every kind is handled above


class _RustRegex:
    """A recursive-descent translator from Rust ``regex`` syntax to an equivalent RE2 pattern.

    Flags are tracked by the translator rather than handed to RE2 so that inline flags may
    appear anywhere (Rust scopes them to the rest of the enclosing group, across ``|``): ``i``
    wraps each affected atom in ``(?i:..)``/``(?-i:..)``; ``-u`` makes ``\\d``, ``\\w``, ``\\s``
    ASCII; ``m``, ``s``, ``R`` rewrite ``^``, ``$`` and ``.``; ``x`` drops whitespace and
    comments; ``U`` swaps greediness.
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
                node = self._class(flags)
                items.append((self._wrap(_emit_class(node, flags["i"]), flags), True))
            elif ch == "\\":
                items.append(self._escape(flags))
            elif ch == ".":
                self.i += 1
                if flags["s"]:
                    items.append((_ANY, True))
                else:
                    items.append((r"[^\r\n]" if flags["R"] else r"[^\n]", True))
            elif ch == "^":
                self.i += 1
                if not flags["m"]:
                    items.append((r"\A", False))
                elif flags["R"]:
                    raise _RegexError("multi-line ^ in CRLF mode (?R) is not supported")
                else:
                    items.append((r"(?m:^)", False))
            elif ch == "$":
                self.i += 1
                if not flags["m"]:
                    items.append((r"\z", False))
                elif flags["R"]:
                    raise _RegexError("multi-line $ in CRLF mode (?R) is not supported")
                else:
                    items.append((r"(?m:$)", False))
            else:
                self.i += 1
                items.append((self._wrap(_class_char(ch), flags), True))
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
            # Rust rejects stacked repetitions.
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
            frag, negated = _perl_class(ch, flags)
            return ("[^" if negated else "[") + frag + "]", True
        if ch in "bB":
            if ch == "b" and self._peek() == "{":
                close = self.p.find("}", self.i)
                kind = self.p[self.i + 1 : close] if close > 0 else ""
                if kind not in ("start", "end", "start-half", "end-half"):
                    raise _RegexError("invalid word boundary")
                raise _RegexError(f"the word boundary \\b{{{kind}}} is not supported")
            return "\\" + ch, False
        if ch in "<>":
            raise _RegexError(f"the word boundary \\{ch} is not supported")
        if ch == "A":
            return r"\A", False
        if ch == "z":
            return r"\z", False
        literal = self._literal_escape(ch)
        return self._wrap(_class_char(literal), flags), True

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
            frag, negated = _perl_class(esc, flags)
            return ("not", ("atom", frag)) if negated else ("atom", frag)
        return self._literal_escape(esc)


def _perl_class(letter: str, flags: dict[str, bool]) -> tuple[str, bool]:
    """``\\d``, ``\\w``, ``\\s`` and their negations: (class fragment, negated)."""
    if not flags["u"]:
        return _ASCII_PERL[letter]
    return _UNICODE_PERL[letter.lower()], letter.isupper()


class RustRegex:
    """A compiled Rust-dialect regex, evaluated by RE2 in linear time."""

    __slots__ = ("_set", "pattern", "translated")

    def __init__(self, pattern: str, translated: str, options: Any) -> None:
        self.pattern = pattern
        self.translated = translated
        self._set = re2.Set.SearchSet(options)
        self._set.Add(translated)
        self._set.Compile()

    def search(self, text: str) -> bool | None:
        """True when the pattern matches somewhere in ``text``, else None (like ``re``)."""
        # Encoded here so that a lone surrogate (no valid UTF-8) simply does not match.
        return True if self._set.Match(text.encode("utf-8", "surrogatepass")) else None


def translate_rust_regex(pattern: str, case_insensitive: bool = False) -> RustRegex:
    """Compile a pattern written in Rust's ``regex`` dialect for RE2 (linear-time matching).

    Raises ``ValueError`` for anything Rust rejects (look-around, back-references, bad
    syntax), for what RE2 cannot run (repetition counts above 1000, too large a program) and
    for the few Rust features not emulated (``\\p{..}``, ``\\b{start}``, ``(?Rm)`` anchors).
    """
    translated = _RustRegex(pattern, case_insensitive).translate()
    options = re2.Options()
    options.case_sensitive = not case_insensitive
    options.never_capture = True
    options.log_errors = False
    try:
        re2.compile(translated, options)  # for RE2's reason when the pattern is refused
        return RustRegex(pattern, translated, options)
    except re2.error as exc:
        raise _RegexError(_re2_message(exc)) from exc
