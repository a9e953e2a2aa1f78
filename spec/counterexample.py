"""Counterexample traces: read them from TLC's output, print them for people.

A trace is a list of states; each state but the first was reached by an
action. Liveness counterexamples are lassos: the trace ends by going back to
an earlier state (``loop_to``) or by stuttering forever in its last state.

``parse_trace`` reads the state messages of TLC's ``-tool`` output (codes
2217 state, 2218 stuttering, 2122 back to state k). ``render_text`` prints
each step as the action taken and only what changed (``path: old -> new``),
and draws the protocol state compactly when the spec has the block-pool
variables of docs/model.md (``free``, ``rxBlocks``, ``data``, ``aux``): per
language rank one row of blocks with owner request and content.
``trace_to_json`` gives the parsed trace for ``--json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resumespec.spec import tla_values as tv

MSG_BACK_TO_STATE = 2122
MSG_STATE_PRINT1 = 2216
MSG_STATE_PRINT2 = 2217
MSG_STATE_PRINT3 = 2218  # "N: Stuttering"


@dataclass(frozen=True)
class ActionLabel:
    """What TLC printed in ``<...>`` before a state.

    TLC names the operator whose body it evaluated and the source span of
    that body. When the step was taken by an unnamed disjunct of another
    operator (``\\E s \\in Sess : WriteLand(s, w)`` inside ``Next``), TLC says
    "Next"; ``refine_action_labels`` then reads the span and names the one
    action it calls (``name`` "WriteLand", ``via`` "Next", ``params`` the
    formal text "(s, w)").
    """

    name: str                        # "Initial predicate", "ReceiverPoll", ...
    params: str | None = None        # "(1, 2)" as TLC printed them, or the formal "(s, w)"
    module: str | None = None
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    end_column: int | None = None
    via: str | None = None           # the operator TLC named when ``name`` was read from source

    @property
    def is_initial(self) -> bool:
        return self.name == "Initial predicate"

    def describe(self) -> str:
        text = self.name + (self.params or "")
        if self.module and self.line:
            where = f"{self.module}:{self.line}"
            if self.via:
                where += f", in {self.via}"
            text += f"  ({where})"
        return text

    def to_json(self) -> dict:
        return {"name": self.name, "params": self.params, "module": self.module,
                "line": self.line, "column": self.column, "via": self.via}


_LABEL = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_!]*)(?P<params>\(.*\))?\s+line (?P<line>\d+), col (?P<col>\d+)"
    r" to line (?P<eline>\d+), col (?P<ecol>\d+) of module (?P<module>\w+)$"
)


def parse_action_label(text: str) -> ActionLabel:
    text = text.strip()
    m = _LABEL.match(text)
    if m:
        return ActionLabel(m.group("name"), m.group("params"), m.group("module"),
                           int(m.group("line")), int(m.group("col")),
                           int(m.group("eline")), int(m.group("ecol")))
    m = re.match(r"^(?P<name>[A-Za-z_][A-Za-z0-9_!]*)(?P<params>\(.*\))?$", text)
    if m:
        return ActionLabel(m.group("name"), m.group("params"))
    return ActionLabel(text)


# Operators of the standard modules that a disjunct may call besides the action.
_STANDARD_OPERATORS = {
    "Len", "Append", "Head", "Tail", "SubSeq", "SelectSeq", "Seq", "Cardinality", "IsFiniteSet",
    "Print", "PrintT", "Assert", "Permutations", "SortSeq", "ToString", "TLCGet", "TLCSet",
    "JavaTime", "RandomElement", "Any", "BOOLEAN", "SUBSET", "UNION", "DOMAIN", "UNCHANGED",
    "ENABLED", "CHOOSE", "EXCEPT", "LET", "IF", "CASE", "WF_", "SF_",
}
_CALL = re.compile(r"(?<![A-Za-z0-9_!])([A-Z][A-Za-z0-9_]*)\s*\(")


def _span_text(lines: list[str], label: ActionLabel) -> str | None:
    if not (label.line and label.column and label.end_line and label.end_column):
        return None
    if label.end_line > len(lines) or label.end_line < label.line:
        return None
    chunk = lines[label.line - 1:label.end_line]
    chunk[-1] = chunk[-1][:label.end_column]
    chunk[0] = chunk[0][label.column - 1:]
    return "\n".join(chunk)


def refine_action_label(label: ActionLabel, source_lines: list[str]) -> ActionLabel:
    """Name the action a short unnamed disjunct calls (see ActionLabel)."""
    span = _span_text(source_lines, label)
    if span is None or span.count("\n") > 2:
        return label
    assert label.line is not None and label.column is not None   # a span was found
    before = "\n".join(source_lines[max(0, label.line - 4):label.line - 1]
                        + [source_lines[label.line - 1][:label.column - 1]])
    if re.search(rf"(?<![A-Za-z0-9_]){re.escape(label.name)}\s*(\([^()]*\))?\s*==\s*$", before):
        return label      # the span is the named operator's whole body
    calls = [m for m in _CALL.finditer(span) if m.group(1) not in _STANDARD_OPERATORS]
    names = {m.group(1) for m in calls}
    if len(names) != 1:
        return label
    call = calls[0]
    depth, i = 0, call.end() - 1
    while i < len(span):
        depth += {"(": 1, ")": -1}.get(span[i], 0)
        if depth == 0:
            break
        i += 1
    formal = " ".join(span[call.end() - 1:i + 1].split())
    return ActionLabel(call.group(1), formal, label.module, label.line, label.column,
                       label.end_line, label.end_column, via=label.name)


def refine_action_labels(trace: Trace, find_module: Callable[[str], Path | None]) -> None:
    """Apply ``refine_action_label`` to every step, reading module sources."""
    cache: dict[str, list[str] | None] = {}

    def lines_of(module: str) -> list[str] | None:
        if module not in cache:
            path = find_module(module)
            try:
                cache[module] = path.read_text().splitlines() if path else None
            except OSError:
                cache[module] = None
        return cache[module]

    for state in trace.states:
        if state.action and state.action.module and not state.action.is_initial:
            src = lines_of(state.action.module)
            if src:
                state.action = refine_action_label(state.action, src)
    if trace.loop_action and trace.loop_action.module:
        src = lines_of(trace.loop_action.module)
        if src:
            trace.loop_action = refine_action_label(trace.loop_action, src)


@dataclass
class TraceState:
    number: int                      # TLC's 1-based state number
    action: ActionLabel | None
    values: dict[str, Any]           # variable -> parsed value
    raw: dict[str, str] = field(default_factory=dict)  # variable -> text, when it did not parse

    def to_json(self) -> dict:
        return {
            "number": self.number,
            "action": self.action.to_json() if self.action else None,
            "values": {k: tv.to_json(v) for k, v in self.values.items()},
            "unparsed": self.raw or None,
        }


@dataclass
class Trace:
    states: list[TraceState]
    loop_to: int | None = None       # liveness lasso: last state goes back to this state number
    loop_action: ActionLabel | None = None
    stuttering: bool = False         # liveness lasso: stutters forever in the last state

    @property
    def is_lasso(self) -> bool:
        return self.loop_to is not None or self.stuttering

    def to_json(self) -> dict:
        return {
            "states": [s.to_json() for s in self.states],
            "loop_to": self.loop_to,
            "loop_action": self.loop_action.to_json() if self.loop_action else None,
            "stuttering": self.stuttering,
        }


_VARIABLES = re.compile(r"(?<![A-Za-z0-9_])VARIABLES?\s+((?:[A-Za-z_][A-Za-z0-9_]*\s*,\s*)*[A-Za-z_][A-Za-z0-9_]*)")


def declared_variables(source: str) -> list[str]:
    """Variable names in the order a module's VARIABLE(S) lines declare them."""
    text = re.sub(r"\(\*.*?\*\)", " ", source, flags=re.S)
    text = re.sub(r"\\\*[^\n]*", " ", text)
    names: list[str] = []
    for m in _VARIABLES.finditer(text):
        names.extend(n.strip() for n in m.group(1).split(","))
    return names


def reorder_variables(trace: Trace, order: list[str]) -> None:
    """Put each state's variables in declaration order (TLC's is arbitrary);
    variables not in ``order`` follow in TLC's order."""
    if not order:
        return
    rank = {name: i for i, name in enumerate(order)}
    for state in trace.states:
        names = sorted(state.values, key=lambda n: rank.get(n, len(rank)))
        state.values = {n: state.values[n] for n in names}


_STATE_HEAD = re.compile(r"^\s*(\d+):\s*(?:<(.*)>)?\s*$")


def parse_state_message(text: str) -> TraceState | None:
    lines = text.strip("\n").splitlines()
    if not lines:
        return None
    m = _STATE_HEAD.match(lines[0])
    if not m:
        return None
    action = parse_action_label(m.group(2)) if m.group(2) else None
    values: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for name, value_text in tv.iter_state_assignments("\n".join(lines[1:])):
        try:
            values[name] = tv.parse_value(value_text)
        except tv.TlaValueError:
            raw[name] = value_text
            values[name] = tv.Opaque(" ".join(value_text.split()))
    return TraceState(int(m.group(1)), action, values, raw)


def parse_trace(messages: Iterable[Any]) -> Trace:
    """Build a Trace from TLC tool messages (objects with .code and .text).

    If TLC printed several traces (it does not with default options), the
    last one wins: a new initial state starts a new trace.
    """
    trace = Trace(states=[])
    for msg in messages:
        if msg.code in (MSG_STATE_PRINT1, MSG_STATE_PRINT2):
            state = parse_state_message(msg.text)
            if state is None:
                continue
            if state.number == 1 and trace.states:
                trace = Trace(states=[])
            trace.states.append(state)
        elif msg.code == MSG_STATE_PRINT3:
            trace.stuttering = True
        elif msg.code == MSG_BACK_TO_STATE:
            m = re.match(r"\s*(\d+):\s*Back to state(?::\s*<(.*)>)?", msg.text)
            if m:
                trace.loop_to = int(m.group(1))
                trace.loop_action = parse_action_label(m.group(2)) if m.group(2) else None
    return trace


# ---------------------------------------------------------------------------
# Differences between states


DIFF_DEPTH = 3


def diff_values(old: Any, new: Any, path: str, depth: int = DIFF_DEPTH) -> list[tuple[str, Any, Any]]:
    """The changed places between two values, descending into functions.

    ``[("rxBlocks[1][2]", <<>>, <<3>>), ...]``; descends ``depth`` levels into
    functions/records/tuples that keep their domain, else reports the whole
    value; tokens and block lists count as one value (``_is_leaf``).
    """
    if old == new:
        return []
    if depth > 0 and not _is_leaf(old, DIFF_DEPTH - depth) and tv.is_function_like(old) and tv.is_function_like(new) \
            and type(old) is type(new) and tv.domain(old) == tv.domain(new):
        out: list[tuple[str, Any, Any]] = []
        for key in tv.domain(old):
            sub = f"{path}.{key}" if isinstance(old, tv.Record) else f"{path}[{tv.format_value(key)}]"
            out.extend(diff_values(tv.lookup(old, key), tv.lookup(new, key), sub, depth - 1))
        return out
    return [(path, old, new)]


def _is_leaf(value: Any, level: int) -> bool:
    """Shown whole rather than element by element: a tuple of scalars two
    or more levels down, such as a block list ``rxBlocks[r][s]`` or a token
    ``data[s][b]``; higher up (``rxStatus[r]``, ``aux[s]``) it is a function
    of requests, sessions or blocks and is diffed per element."""
    if type(value) is not tuple or not value:
        return False
    return level >= 2 and all(isinstance(v, (int, str)) for v in value)


def state_changes(prev: TraceState | None, cur: TraceState) -> list[tuple[str, Any, Any]]:
    if prev is None:
        return [(name, None, value) for name, value in cur.values.items()]
    out: list[tuple[str, Any, Any]] = []
    for name, value in cur.values.items():
        if name not in prev.values:
            out.append((name, None, value))
        else:
            out.extend(diff_values(prev.values[name], value, name))
    return out


# ---------------------------------------------------------------------------
# Drawing the block pools


NO_TOKEN = (0, 0)
HOLDING_PHASES = ("queued", "aborting", "prefill")


def _is_token(value: Any) -> bool:
    return (type(value) is tuple and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value))


def _short(value: Any) -> str:
    """Compact text for a block's content: token <<1, 2>> -> 1.2, empty -> _."""
    if _is_token(value):
        return "_" if value == NO_TOKEN else f"{value[0]}.{value[1]}"
    if type(value) is tuple and value and all(_is_token(v) for v in value):
        return ",".join(_short(v) for v in value)       # the slots of a block
    if type(value) is tuple and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return ".".join(str(v) for v in value)
    if isinstance(value, str) and not isinstance(value, (tv.ModelValue, tv.Opaque)):
        return value
    return tv.format_value(value)


def _owners(values: dict[str, Any], rank: Any) -> dict[Any, list[Any]]:
    """block -> requests holding it at ``rank``, from rxBlocks[r][s].

    When the state has ``rxPhase``, only requests in a phase that holds
    blocks (queued, aborting, prefill) count, as in the spec's ``Held``.
    """
    rx_blocks = values.get("rxBlocks")
    phases = values.get("rxPhase")
    owners: dict[Any, list[Any]] = {}
    if not tv.is_function_like(rx_blocks):
        return owners
    for r in tv.domain(rx_blocks):
        if tv.is_function_like(phases):
            try:
                if tv.lookup(phases, r) not in HOLDING_PHASES:
                    continue
            except KeyError:
                pass
        try:
            held = tv.lookup(tv.lookup(rx_blocks, r), rank)
        except KeyError:
            continue
        blocks = held if type(held) is tuple else ()
        for b in blocks:
            owners.setdefault(b, []).append(r)
    return owners


def _writes_in_flight(values: dict[str, Any], rank: Any) -> set[Any]:
    """Blocks of ``rank`` with a write on the wire (wire[s]: set of [b |-> ...])."""
    wire = values.get("wire")
    if not tv.is_function_like(wire):
        return set()
    try:
        writes = tv.lookup(wire, rank)
    except KeyError:
        return set()
    out = set()
    if isinstance(writes, tv.TlaSet):
        for w in writes:
            if isinstance(w, tv.Record) and "b" in w.keys():
                out.add(w["b"])
    return out


def draw_pools(values: dict[str, Any]) -> list[str]:
    """One row per language rank: the free list, then ``[b owner content]``
    per block.

    Owner is ``rN`` for the request whose ``rxBlocks`` lists the block,
    ``-`` for a block on the free list, ``?`` for neither (leaked), and
    ``r1+r2`` or ``-r1`` when a block is held twice or held and free at
    once. Content is the block's slots (token ``r.i``, ``_`` empty), then
    ``|n`` when its aux row holds n, then ``*`` when a write to it is in
    flight. Returns [] when the state lacks ``data`` and ``free``.
    """
    data, free = values.get("data"), values.get("free")
    if not tv.is_function_like(data) or not tv.is_function_like(free):
        return []
    aux = values.get("aux")
    rows = []
    for s in tv.domain(data):
        pool = tv.lookup(data, s)
        try:
            free_list = tv.lookup(free, s)
        except KeyError:
            free_list = ()
        free_set = set(free_list) if type(free_list) is tuple else set()
        owners = _owners(values, s)
        pending = _writes_in_flight(values, s)
        cells = []
        for b in tv.domain(pool):
            who = "+".join(f"r{r}" for r in owners.get(b, []))
            if b in free_set:
                who = "-" + who
            if not who:
                who = "?"
            content = _short(tv.lookup(pool, b))
            if tv.is_function_like(aux):
                try:
                    a = tv.lookup(tv.lookup(aux, s), b)
                    if a != 0:
                        content += f"|{_short(a)}"
                except KeyError:
                    pass
            if b in pending:
                content += " *"
            cells.append(f"[{b} {who} {content}]")
        head = f"rank {s}:"
        if type(free_list) is tuple:
            head += f" free=<{','.join(_short(x) for x in free_list)}>"
        rows.append(f"{head} " + " ".join(cells))
    return rows


# ---------------------------------------------------------------------------
# Text rendering


def render_text(trace: Trace, title: str = "", draw: bool = True) -> str:
    out: list[str] = []
    if title:
        out.append(title)
    prev: TraceState | None = None
    for state in trace.states:
        if state.action is None or state.action.is_initial:
            head = f"State {state.number}: initial state"
        else:
            head = f"State {state.number}: after {state.action.describe()}"
        if trace.loop_to == state.number:
            head += "   <- loop starts here"
        out.append(head)
        changes = state_changes(prev, state)
        for path, old, new in changes:
            if prev is None:
                out.append(f"    {path} = {tv.format_value(new)}")
            elif old is None:
                out.append(f"    {path}: (new) {tv.format_value(new)}")
            else:
                out.append(f"    {path}: {tv.format_value(old)} -> {tv.format_value(new)}")
        if prev is not None and not changes:
            out.append("    (nothing changed)")
        if draw:
            for row in draw_pools(state.values):
                out.append("    | " + row)
        prev = state
    if trace.loop_to is not None:
        action = f" by {trace.loop_action.describe()}" if trace.loop_action else ""
        out.append(f"Back to state {trace.loop_to}{action}: the behaviour repeats forever from there.")
    elif trace.stuttering:
        out.append("Stuttering: the behaviour stays in the last state forever.")
    return "\n".join(out)


def trace_to_json(trace: Trace) -> dict:
    return trace.to_json()
