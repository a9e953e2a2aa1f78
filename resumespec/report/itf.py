"""Export counterexamples and traces in ITF, the Informal Trace Format.

ITF is the JSON trace format of Apalache and Quint (Apalache ADR-015,
https://apalache-mc.org/docs/adr/015adr-trace.html). A trace is

    {"#meta": {...}, "vars": ["x", ...], "states": [{"#meta": {"index": 0}, "x": ...}, ...],
     "loop": k}                       # only for a lasso: the state the behaviour returns to

and TLA+ values are written as:

    TLA+ value                  ITF                          Python value here (spec/tla_values.py)
    integer                     {"#bigint": "42"}            int
    string, boolean             JSON string, boolean         str, bool
    sequence <<a, b>>           [a, b]                       tuple
    tuple                       {"#tup": [a, b]}             ItfTuple (a tuple subclass)
    set                         {"#set": [a, b]}             TlaSet
    record [f |-> v]            {"f": v}                     Record
    function (k :> v @@ ...)    {"#map": [[k, v], ...]}      TlaFunction
    model value r1              "r1_OF_MODEL"                ModelValue
    anything else TLC printed   {"#unserializable": "..."}   Opaque

Integers are always ``#bigint`` (the ADR's revision of 2023-09-14 forbids
plain JSON numbers); ``value_from_itf`` still accepts plain numbers from
older writers. TLC prints tuples and sequences alike (``<<...>>``); they
become ITF sequences, which is what a TLA+ sequence is. ``value_to_itf``
and ``value_from_itf`` are inverse: ITF -> value -> ITF gives the same JSON.
"""

from __future__ import annotations

import re
from typing import Any

from resumespec.spec import tla_values as tv
from resumespec.spec.counterexample import Trace

ITF_DESCRIPTION = "https://apalache-mc.org/docs/adr/015adr-trace.html"
MODEL_SUFFIX = "_OF_MODEL"
_MODEL_VALUE = re.compile(r"^[A-Za-z0-9_]+_OF_[A-Z0-9_]+$")


class ItfError(ValueError):
    """The JSON is not an ITF value or trace; the message says where."""


class ItfTuple(tuple):
    """A TLA+ tuple that ITF wrote as ``{"#tup": [...]}`` (kept to write it back)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItfTuple) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("tup", tuple(self)))

    def __repr__(self) -> str:
        return f"ItfTuple({list(self)!r})"


def value_to_itf(value: Any) -> Any:
    """A parsed TLA+ value (spec/tla_values.py) as ITF JSON."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"#bigint": str(value)}
    if isinstance(value, tv.ModelValue):
        return str(value) + ("" if _MODEL_VALUE.match(str(value)) else MODEL_SUFFIX)
    if isinstance(value, tv.Opaque):
        return {"#unserializable": str(value)}
    if isinstance(value, str):
        return value
    if isinstance(value, tv.TlaSet):
        return {"#set": [value_to_itf(v) for v in value]}
    if isinstance(value, tv.Record):
        return {k: value_to_itf(v) for k, v in value.items()}
    if isinstance(value, tv.TlaFunction):
        return {"#map": [[value_to_itf(k), value_to_itf(v)] for k, v in value.items()]}
    if isinstance(value, ItfTuple):
        return {"#tup": [value_to_itf(v) for v in value]}
    if isinstance(value, tuple):
        return [value_to_itf(v) for v in value]
    raise ItfError(f"not a TLA+ value: {value!r}")


def value_from_itf(j: Any, where: str = "value") -> Any:
    """ITF JSON as a TLA+ value; raises ItfError naming ``where``."""
    if isinstance(j, bool):
        return j
    if isinstance(j, int):
        return j
    if isinstance(j, float):
        if j.is_integer():
            return int(j)
        raise ItfError(f"{where}: expected an integer, got {j}")
    if isinstance(j, str):
        if _MODEL_VALUE.match(j):
            return tv.ModelValue(j[: -len(MODEL_SUFFIX)] if j.endswith(MODEL_SUFFIX) else j)
        return j
    if isinstance(j, list):
        return tuple(value_from_itf(x, f"{where}[{i}]") for i, x in enumerate(j))
    if isinstance(j, dict):
        special = [k for k in j if k.startswith("#")]
        if special:
            if len(j) != 1:
                raise ItfError(f"{where}: {special[0]!r} must be the object's only key")
            key, body = next(iter(j.items()))
            if key == "#bigint":
                if not isinstance(body, str) or not re.fullmatch(r"-?[0-9]+", body):
                    raise ItfError(f'{where}: expected {{"#bigint": "[-][0-9]+"}}, got {body!r}')
                return int(body)
            if key == "#unserializable":
                return tv.Opaque(str(body))
            if not isinstance(body, list):
                raise ItfError(f"{where}: {key} expects a list")
            if key == "#tup":
                return ItfTuple(value_from_itf(x, f"{where}.#tup[{i}]") for i, x in enumerate(body))
            if key == "#set":
                return tv.TlaSet(value_from_itf(x, f"{where}.#set[{i}]") for i, x in enumerate(body))
            if key == "#map":
                pairs = []
                for i, p in enumerate(body):
                    if not (isinstance(p, list) and len(p) == 2):
                        raise ItfError(f"{where}.#map[{i}]: expected a [key, value] pair")
                    pairs.append((value_from_itf(p[0], f"{where}.#map[{i}][0]"),
                                  value_from_itf(p[1], f"{where}.#map[{i}][1]")))
                return tv.TlaFunction(pairs)
            raise ItfError(f"{where}: unknown ITF form {key!r}")
        return tv.Record((k, value_from_itf(v, f"{where}.{k}")) for k, v in j.items())
    raise ItfError(f"{where}: not an ITF value: {j!r}")


def trace_to_itf(trace: Trace, *, source: str = "", description: str = "",
                 extra_meta: dict[str, str] | None = None) -> dict:
    """A TLC counterexample as an ITF trace.

    State i is TLC's state i+1; each state's ``#meta`` names the action that
    led to it (``action``: "ReceiverInit", ...; TLC's own label, with the
    source location, in ``label``). A lasso gets ``loop``: the index of the
    state the behaviour returns to; a behaviour that stutters forever loops
    on its last state.
    """
    names: list[str] = []
    for st in trace.states:
        for k in st.values:
            if k not in names:
                names.append(k)
    meta = {"format": "ITF", "format-description": ITF_DESCRIPTION,
            "source": source, "description": description or "TLC counterexample",
            "generator": "resumespec report"}
    meta.update(extra_meta or {})
    states = []
    for i, st in enumerate(trace.states):
        smeta: dict[str, Any] = {"index": i}
        if st.action is not None:
            smeta["action"] = "Init" if st.action.is_initial else st.action.name
            smeta["label"] = st.action.describe()
        state = {"#meta": smeta}
        for k in names:
            if k in st.values:
                state[k] = value_to_itf(st.values[k])
        states.append(state)
    doc: dict[str, Any] = {"#meta": {k: v for k, v in meta.items() if v != ""}, "vars": names, "states": states}
    by_number = {st.number: i for i, st in enumerate(trace.states)}
    if trace.loop_to is not None and trace.loop_to in by_number:
        doc["loop"] = by_number[trace.loop_to]
    elif trace.stuttering and trace.states:
        doc["loop"] = len(trace.states) - 1
    return doc


def trace_from_itf(doc: Any, where: str = "ITF") -> Trace:
    """An ITF trace as a Trace (the inverse of ``trace_to_itf``)."""
    from resumespec.spec.counterexample import ActionLabel, TraceState

    if not isinstance(doc, dict) or not isinstance(doc.get("states"), list):
        raise ItfError(f'{where}: expected an object with "states": [...]')
    names = doc.get("vars")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ItfError(f'{where}: "vars" must be a list of names')
    states = []
    for i, s in enumerate(doc["states"]):
        if not isinstance(s, dict):
            raise ItfError(f"{where}: states[{i}] is not an object")
        meta = s.get("#meta") or {}
        action = meta.get("action")
        label = None
        if action:
            label = ActionLabel("Initial predicate" if action == "Init" else str(action))
        values = {k: value_from_itf(v, f"{where}: states[{i}].{k}") for k, v in s.items() if k != "#meta"}
        states.append(TraceState(i + 1, label, values))
    loop = doc.get("loop")
    trace = Trace(states=states)
    if isinstance(loop, int) and not isinstance(loop, bool):
        if not 0 <= loop < len(states):
            raise ItfError(f'{where}: "loop" {loop} is not a state index')
        if loop == len(states) - 1:
            trace.stuttering = True
        else:
            trace.loop_to = loop + 1
    return trace


def timeline_to_itf(t, *, source: str = "", description: str = "") -> dict:
    """An engine trace's Timeline as ITF: what the report reconstructed.

    Every ``#meta`` value but ``index`` is a string (ITF readers such as
    itf-rs take unknown meta keys as strings). Variables: ``event`` (the step's event, its fields as a record; absent
    (null) fields are left out; state 0 has ``{"event": "start"}``) and
    ``pools`` (rank -> block -> [owners: set of requests, free: times on the
    free list, content, aux, writing]). The verdict goes into ``#meta``.
    """
    states = []
    for step in t.steps:
        event = {"event": "start"} if step.index == 0 else dict(step.event or {"event": step.action})
        event = {k: v for k, v in event.items() if v is not None and k not in ("v", "ts") and not k.startswith("x_")}
        pools = tv.TlaFunction(
            (int(lane[4:]) if lane[4:].isdigit() else lane,
             tv.TlaFunction((c.block, tv.Record([("owners", tv.TlaSet(c.owners)), ("free", c.on_free_list),
                                                 ("content", c.content), ("aux", c.aux),
                                                 ("writing", c.writing)]))
                            for c in cells))
            for lane, cells in step.pools.items())
        states.append({"#meta": {"index": step.index, "action": step.action,
                                 **({"line": str(step.line)} if step.line is not None else {})},
                       "event": value_to_itf(_json_to_value(event)),
                       "pools": value_to_itf(pools)})
    f = t.finding
    meta = {"format": "ITF", "format-description": ITF_DESCRIPTION, "source": source,
            "description": description or "engine trace, as resumespec report reconstructs it",
            "generator": "resumespec report", "verdict": f.verdict}
    if f.prop:
        meta["property"] = f.prop
    if f.step is not None:
        meta["highlight"] = str(f.step)
    return {"#meta": {k: v for k, v in meta.items() if v != ""}, "vars": ["event", "pools"], "states": states}


def _json_to_value(j: Any) -> Any:
    """Plain JSON (an engine event) as TLA+ values: lists are sequences, objects records."""
    if isinstance(j, list):
        return tuple(_json_to_value(x) for x in j)
    if isinstance(j, dict):
        return tv.Record((k, _json_to_value(v)) for k, v in j.items() if v is not None)
    if isinstance(j, float) and j.is_integer():
        return int(j)
    if isinstance(j, float):
        return tv.Opaque(repr(j))
    return j
