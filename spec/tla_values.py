"""Parse and print TLA+ values in the syntax TLC uses when it prints states.

TLC prints the values of a counterexample trace as TLA+ expressions:

    42   -7   "text"   TRUE   FALSE   a_model_value
    <<1, "a">>                    tuple / sequence / function with domain 1..n
    {1, 2, 3}                     set (TLC prints it in a normal order)
    [a |-> 1, b |-> {}]           record
    (1 :> "x" @@ 2 :> "y")        function with any other domain
    [x \\in S |-> e]              function TLC did not enumerate (kept as text)

``parse_value`` turns such text into Python values and ``format_value``
prints them back the way TLC does, so that ``format_value(parse_value(t))``
gives ``t`` back up to white space. Value classes:

    int, str, bool          integers, strings, booleans
    tuple                   <<...>> (TLC cannot tell a tuple from a sequence
                            or from a function on 1..n, and neither can we)
    TlaSet                  {...}, elements in the order TLC printed them
    Record                  [field |-> value, ...]
    TlaFunction             (k :> v @@ ...), pairs in printed order
    ModelValue              a bare name (model value or a constant set name)
    Opaque                  any other expression TLC printed verbatim

``to_json`` maps a value onto plain JSON types for ``--json`` output.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any


class TlaValueError(ValueError):
    """The text is not a TLA+ value as TLC prints it."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        super().__init__(f"{message} at offset {pos}: {text[max(0, pos - 20):pos + 20]!r}")
        self.pos = pos


class TlaSet(tuple):
    """A TLA+ set; keeps TLC's printed (normalised) element order."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TlaSet) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("set", tuple(self)))

    def __repr__(self) -> str:
        return f"TlaSet({list(self)!r})"


class Record(tuple):
    """A TLA+ record: ordered (field, value) pairs with mapping access."""

    def __new__(cls, pairs=()):
        if isinstance(pairs, dict):
            pairs = pairs.items()
        return super().__new__(cls, tuple((str(k), v) for k, v in pairs))

    def __getitem__(self, key):
        if isinstance(key, str):
            for k, v in tuple.__iter__(self):
                if k == key:
                    return v
            raise KeyError(key)
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return [k for k, _ in tuple.__iter__(self)]

    def items(self) -> list[tuple[str, Any]]:
        return list(tuple.__iter__(self))

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("record", tuple(self)))

    def __repr__(self) -> str:
        return f"Record({dict(tuple.__iter__(self))!r})"


class TlaFunction(tuple):
    """A TLA+ function printed as ``(k1 :> v1 @@ k2 :> v2)``: ordered pairs."""

    def __new__(cls, pairs=()):
        return super().__new__(cls, tuple((k, v) for k, v in pairs))

    def __getitem__(self, key):
        for k, v in tuple.__iter__(self):
            if k == key:
                return v
        raise KeyError(key)

    def keys(self) -> list[Any]:
        return [k for k, _ in tuple.__iter__(self)]

    def items(self) -> list[tuple[Any, Any]]:
        return list(tuple.__iter__(self))

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TlaFunction) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("function", tuple(self)))

    def __repr__(self) -> str:
        return f"TlaFunction({list(tuple.__iter__(self))!r})"


class _TaggedStr(str):
    """A str that equals only strings of its own kind (a model value is not
    the TLA+ string with the same letters)."""

    _tag = "str"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((self._tag, str(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ModelValue(_TaggedStr):
    """A bare identifier: a TLC model value such as ``r1`` or a set name."""

    _tag = "model"


class Opaque(_TaggedStr):
    """An expression TLC printed that we keep as text (e.g. ``[x \\in S |-> e]``)."""

    _tag = "opaque"


# --------------------------------------------------------------------------
# Parser: a small recursive-descent parser over the printed text.

_INT = re.compile(r"-?\d+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "f": "\f"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- helpers
    def error(self, message: str) -> TlaValueError:
        return TlaValueError(message, self.text, self.pos)

    def skip_ws(self) -> None:
        n = len(self.text)
        while self.pos < n and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self, s: str) -> bool:
        self.skip_ws()
        return self.text.startswith(s, self.pos)

    def take(self, s: str) -> bool:
        if self.peek(s):
            self.pos += len(s)
            return True
        return False

    def expect(self, s: str) -> None:
        if not self.take(s):
            raise self.error(f"expected {s!r}")

    # -- grammar
    def value(self) -> Any:
        self.skip_ws()
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise self.error("expected a value, found the end of the text")
        c = text[pos]
        if text.startswith("<<", pos):
            self.pos += 2
            return tuple(self.items(">>"))
        if c == "{":
            self.pos += 1
            return TlaSet(self.items("}"))
        if c == "[":
            return self.bracket()
        if c == "(":
            return self.function_or_paren()
        if c == '"':
            return self.string()
        m = _INT.match(text, pos)
        if m and (c != "-" or m.end() > pos + 1):
            self.pos = m.end()
            if self.text.startswith("..", self.pos):  # an interval a..b
                self.pos += 2
                self.skip_ws()
                m2 = _INT.match(self.text, self.pos)
                if not m2:
                    raise self.error("expected an integer after '..'")
                self.pos = m2.end()
                return Opaque(text[pos:self.pos])
            return int(m.group())
        m = _IDENT.match(text, pos)
        if m:
            self.pos = m.end()
            word = m.group()
            if word == "TRUE":
                return True
            if word == "FALSE":
                return False
            if word == "SUBSET" or word == "UNION":
                inner_start = self.pos
                self.value()
                return Opaque(f"{word} {text[inner_start:self.pos].strip()}")
            return ModelValue(word)
        raise self.error(f"unexpected character {c!r}")

    def items(self, close: str) -> list[Any]:
        out: list[Any] = []
        if self.take(close):
            return out
        while True:
            out.append(self.value())
            if self.take(close):
                return out
            self.expect(",")

    def string(self) -> str:
        text = self.text
        i = self.pos + 1
        chars: list[str] = []
        while i < len(text):
            c = text[i]
            if c == '"':
                self.pos = i + 1
                return "".join(chars)
            if c == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
                chars.append(_ESCAPES[text[i + 1]])
                i += 2
                continue
            chars.append(c)
            i += 1
        raise self.error("unterminated string")

    def bracket(self) -> Any:
        """``[a |-> 1, ...]`` is a record; anything else in brackets stays text."""
        start = self.pos
        self.pos += 1
        save = self.pos
        m = _IDENT.match(self.text, self._ws_from(save))
        if m:
            after = self._ws_from(m.end())
            if self.text.startswith("|->", after):
                self.pos = save
                pairs = []
                while True:
                    self.skip_ws()
                    fm = _IDENT.match(self.text, self.pos)
                    if not fm:
                        raise self.error("expected a record field name")
                    self.pos = fm.end()
                    self.expect("|->")
                    pairs.append((fm.group(), self.value()))
                    if self.take("]"):
                        return Record(pairs)
                    self.expect(",")
        # [x \in S |-> e], [S -> T], [A EXCEPT ...]: keep the balanced text.
        end = self._balanced_end(start)
        self.pos = end
        return Opaque(_squash(self.text[start:end]))

    def function_or_paren(self) -> Any:
        start = self.pos
        self.pos += 1
        first = self.value()
        if self.take(":>"):
            pairs = [(first, self.value())]
            while self.take("@@"):
                key = self.value()
                self.expect(":>")
                pairs.append((key, self.value()))
            self.expect(")")
            return TlaFunction(pairs)
        if self.take(")"):
            return first  # a parenthesised value
        self.pos = self._balanced_end(start)
        return Opaque(_squash(self.text[start:self.pos]))

    def _ws_from(self, i: int) -> int:
        while i < len(self.text) and self.text[i] in " \t\r\n":
            i += 1
        return i

    def _balanced_end(self, start: int) -> int:
        """Index just past the bracket that closes the one at ``start``."""
        pairs = {"[": "]", "(": ")", "{": "}"}
        stack: list[str] = []
        i = start
        text = self.text
        while i < len(text):
            c = text[i]
            if c == '"':
                j = i + 1
                while j < len(text) and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                i = j + 1
                continue
            if text.startswith("<<", i):
                stack.append(">>")
                i += 2
                continue
            if text.startswith(">>", i) and stack and stack[-1] == ">>":
                stack.pop()
                i += 2
                if not stack:
                    return i
                continue
            if c in pairs:
                stack.append(pairs[c])
            elif stack and c == stack[-1]:
                stack.pop()
                if not stack:
                    return i + 1
            i += 1
        raise TlaValueError("unbalanced brackets", text, start)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def parse_value(text: str) -> Any:
    """Parse one TLA+ value as TLC prints it; raise TlaValueError if it is not one."""
    p = _Parser(text)
    value = p.value()
    p.skip_ws()
    if p.pos != len(text):
        raise p.error("unexpected text after the value")
    return value


# --------------------------------------------------------------------------
# Printer

def _format_string(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r").replace("\f", "\\f")
    return f'"{out}"'


def format_value(value: Any) -> str:
    """Print a value the way TLC prints it (on one line)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (ModelValue, Opaque)):
        return str(value)
    if isinstance(value, str):
        return _format_string(value)
    if isinstance(value, TlaSet):
        return "{" + ", ".join(format_value(v) for v in value) + "}"
    if isinstance(value, Record):
        return "[" + ", ".join(f"{k} |-> {format_value(v)}" for k, v in value.items()) + "]"
    if isinstance(value, TlaFunction):
        if not value:
            return "<<>>"
        return "(" + " @@ ".join(f"{format_value(k)} :> {format_value(v)}" for k, v in value.items()) + ")"
    if isinstance(value, tuple):
        return "<<" + ", ".join(format_value(v) for v in value) + ">>"
    raise TypeError(f"not a TLA+ value: {value!r}")


def to_json(value: Any) -> Any:
    """Map a parsed value onto JSON types.

    int/str/bool stay; tuples become lists; records become objects; sets
    become ``{"set": [...]}``; other functions ``{"function": [[k, v], ...]}``;
    model values ``{"model_value": name}``; opaque text ``{"tla": text}``.
    """
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, ModelValue):
        return {"model_value": str(value)}
    if isinstance(value, Opaque):
        return {"tla": str(value)}
    if isinstance(value, str):
        return value
    if isinstance(value, TlaSet):
        return {"set": [to_json(v) for v in value]}
    if isinstance(value, Record):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, TlaFunction):
        return {"function": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    raise TypeError(f"not a TLA+ value: {value!r}")


# --------------------------------------------------------------------------
# Access helpers for values that may be a tuple (domain 1..n) or a function.

def lookup(value: Any, key: Any) -> Any:
    """``value[key]`` with TLA+ indexing: tuples are 1-based functions."""
    if isinstance(value, (TlaFunction, Record)):
        return value[key]
    if isinstance(value, tuple) and not isinstance(value, TlaSet):
        if isinstance(key, int) and not isinstance(key, bool) and 1 <= key <= len(value):
            return value[key - 1]
        raise KeyError(key)
    raise KeyError(key)


def domain(value: Any) -> list[Any]:
    """The domain of a function-like value in printed order ([] for others)."""
    if isinstance(value, (TlaFunction, Record)):
        return list(value.keys())
    if isinstance(value, tuple) and not isinstance(value, TlaSet):
        return list(range(1, len(value) + 1))
    return []


def is_function_like(value: Any) -> bool:
    return isinstance(value, (TlaFunction, Record)) or (
        isinstance(value, tuple) and not isinstance(value, TlaSet)
    )


def iter_state_assignments(text: str) -> Iterator[tuple[str, str]]:
    """Split a printed state into (variable, value text) pairs.

    TLC prints ``/\\ var = value`` conjuncts, one per variable, a value
    possibly running over several indented lines; a single variable is
    printed without the ``/\\``.
    """
    lines = text.splitlines()
    current_name: str | None = None
    current: list[str] = []
    head = re.compile(r"^(?:/\\\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s?(.*)$")
    for line in lines:
        if not line.strip():
            continue
        m = head.match(line) if (line.startswith("/\\") or current_name is None) else None
        if m:
            if current_name is not None:
                yield current_name, "\n".join(current)
            current_name = m.group(1)
            current = [m.group(2)]
        elif current_name is not None:
            current.append(line)
        else:
            raise TlaValueError("expected 'variable = value'", text, 0)
    if current_name is not None:
        yield current_name, "\n".join(current)
