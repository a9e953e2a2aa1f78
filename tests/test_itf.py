"""ITF (Apalache ADR-015) encoding of TLA+ values and traces: fixed examples,
round trips both ways, and hypothesis over arbitrary nested values. No TLC."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resumespec.report.itf import (
    ItfError,
    ItfTuple,
    trace_from_itf,
    trace_to_itf,
    value_from_itf,
    value_to_itf,
)
from resumespec.spec import tla_values as tv
from resumespec.spec.counterexample import ActionLabel, Trace, TraceState


@pytest.mark.parametrize("value, itf", [
    (42, {"#bigint": "42"}),
    (-7, {"#bigint": "-7"}),
    (2 ** 80, {"#bigint": str(2 ** 80)}),
    (True, True),
    ("queued", "queued"),
    ((), []),
    ((1, (2, 3)), [{"#bigint": "1"}, [{"#bigint": "2"}, {"#bigint": "3"}]]),
    (ItfTuple((1, "a")), {"#tup": [{"#bigint": "1"}, "a"]}),
    (tv.TlaSet([]), {"#set": []}),
    (tv.TlaSet([1, 2]), {"#set": [{"#bigint": "1"}, {"#bigint": "2"}]}),
    (tv.Record([("b", 3), ("r", 1)]), {"b": {"#bigint": "3"}, "r": {"#bigint": "1"}}),
    (tv.TlaFunction([((1, 2), True)]), {"#map": [[[{"#bigint": "1"}, {"#bigint": "2"}], True]]}),
    (tv.ModelValue("r1"), "r1_OF_MODEL"),
    (tv.Opaque("[x \\in {1} |-> x]"), {"#unserializable": "[x \\in {1} |-> x]"}),
])
def test_examples(value, itf):
    assert value_to_itf(value) == itf
    back = value_from_itf(itf)
    assert back == value and type(back) is type(value)


def test_plain_json_numbers_of_older_writers_are_read():
    assert value_from_itf([1, {"#bigint": "2"}]) == (1, 2)


@pytest.mark.parametrize("itf, where", [
    ({"#bigint": "12a"}, "value"),
    ({"#set": 3}, "value"),
    ({"#map": [[1]]}, "value.#map[0]"),
    ({"#tup": [1], "x": 2}, "value"),
    ({"#what": []}, "value"),
    ({"a": [{"#bigint": 1}]}, "value.a[0]"),
    (None, "value"),
    (1.5, "value"),
])
def test_bad_itf_is_located(itf, where):
    with pytest.raises(ItfError) as e:
        value_from_itf(itf)
    assert str(e.value).startswith(where)


# ---------------------------------------------------------------------------
# Hypothesis: any value survives value -> ITF -> JSON text -> value, and any
# ITF we write survives ITF -> value -> ITF.

names = st.from_regex(r"[a-z][A-Za-z0-9]{0,6}", fullmatch=True)
strings = st.text(max_size=8).filter(lambda s: not s.endswith("_OF_MODEL") and "_OF_" not in s)
scalars = st.one_of(st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.booleans(), strings,
                    names.map(tv.ModelValue))


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=4).map(tuple),
        st.lists(children, max_size=3).map(ItfTuple),
        st.lists(children, max_size=4).map(lambda xs: tv.TlaSet(dict.fromkeys(xs))),
        st.dictionaries(names, children, max_size=4).map(lambda d: tv.Record(d.items())),
        st.lists(st.tuples(scalars, children), max_size=3).map(
            lambda ps: tv.TlaFunction(dict(ps).items())),
    )


values = st.recursive(scalars, _containers, max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(values)
def test_value_round_trip(value):
    itf = value_to_itf(value)
    text = json.dumps(itf)
    back = value_from_itf(json.loads(text))
    assert back == value
    assert value_to_itf(back) == itf


@settings(max_examples=200, deadline=None)
@given(values)
def test_itf_round_trip(value):
    itf = json.loads(json.dumps(value_to_itf(value)))
    assert value_to_itf(value_from_itf(itf)) == itf


@settings(max_examples=50, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["x", "y", "q"]), values, min_size=3, max_size=3),
                min_size=1, max_size=5),
       st.one_of(st.none(), st.integers(min_value=0, max_value=4)))
def test_trace_round_trip(states, loop):
    actions = [ActionLabel("Initial predicate")] + [ActionLabel(f"Step{i}") for i in range(1, len(states))]
    trace = Trace([TraceState(i + 1, actions[i], dict(s)) for i, s in enumerate(states)])
    if loop is not None and loop < len(states):
        if loop == len(states) - 1:
            trace.stuttering = True
        else:
            trace.loop_to = loop + 1
    doc = json.loads(json.dumps(trace_to_itf(trace, source="test")))
    assert set(doc["vars"]) == {"x", "y", "q"}
    assert [s["#meta"]["index"] for s in doc["states"]] == list(range(len(states)))
    assert [s["#meta"]["action"] for s in doc["states"]] == ["Init"] + [f"Step{i}" for i in range(1, len(states))]
    back = trace_from_itf(doc)
    assert [s.values for s in back.states] == [s.values for s in trace.states]
    assert (back.loop_to, back.stuttering) == (trace.loop_to, trace.stuttering)
    again = trace_to_itf(back, source="test")
    assert [{k: v for k, v in s.items() if k != "#meta"} for s in again["states"]] == \
        [{k: v for k, v in s.items() if k != "#meta"} for s in doc["states"]]
    assert again.get("loop") == doc.get("loop")


def test_trace_meta_is_flat_strings():
    """itf-rs reads extra #meta keys as strings: keep every top-level meta value a string."""
    trace = Trace([TraceState(1, ActionLabel("Initial predicate"), {"x": 1})])
    doc = trace_to_itf(trace, source="MC.tla", extra_meta={"model": "m", "property": "P"})
    assert all(isinstance(v, str) for v in doc["#meta"].values())
    assert doc["#meta"]["format"] == "ITF" and "loop" not in doc


def test_bad_trace_documents():
    with pytest.raises(ItfError, match="states"):
        trace_from_itf({"vars": []})
    with pytest.raises(ItfError, match="loop"):
        trace_from_itf({"states": [{"x": 1}], "loop": 3})
    with pytest.raises(ItfError, match=r"states\[0\]\.x"):
        trace_from_itf({"states": [{"x": {"#bigint": "one"}}]})
