"""Rust ``regex`` dialect -> Python ``re``: what the ``REGEX`` constraint operator compiles.

The Unleash client specification assumes Rust's ``regex`` crate. ``translate_rust_regex``
translates its syntax to an equivalent Python pattern: POSIX classes, inline flags anywhere,
nested classes and ``&&``/``--``/``~~``; look-around, back-references and ``\\p{..}`` are
rejected, as Rust does or we cannot emulate.

Regexes run on Python's backtracking ``re`` rather than Rust's linear-time engine: patterns
come from release managers, not from callers, but a pathological pattern (``(a+)+$``) fed a
long context value can be slow. Validate patterns when rules are saved.
"""

from __future__ import annotations

import re
from typing import Any


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
