"""TLC value syntax (parser and printer) and counterexample traces, on
captured TLC output: no TLC run here."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resumespec.spec import counterexample as cx
from resumespec.spec import tla_values as tv
from resumespec.spec.tlc import ToolOutputParser

# ---------------------------------------------------------------------------
# Values


@pytest.mark.parametrize("text, value", [
    ("42", 42),
    ("-7", -7),
    ('"a \\"quoted\\" \\\\ word"', 'a "quoted" \\ word'),
    ("TRUE", True),
    ("FALSE", False),
    ("r1", tv.ModelValue("r1")),
    ("<<>>", ()),
    ("<<1, <<2, 3>>>>", (1, (2, 3))),
    ("{}", tv.TlaSet([])),
    ("{1, 2}", tv.TlaSet([1, 2])),
    ("[a |-> 1, b |-> {}]", tv.Record([("a", 1), ("b", tv.TlaSet([]))])),
    ('(1 :> "x" @@ 3 :> "y")', tv.TlaFunction([(1, "x"), (3, "y")])),
    ("(<<1, 2>> :> TRUE)", tv.TlaFunction([((1, 2), True)])),
    ("[x \\in {1, 2} |-> x * 2]", tv.Opaque("[x \\in {1, 2} |-> x * 2]")),
    ("[{1} -> BOOLEAN]", tv.Opaque("[{1} -> BOOLEAN]")),
    ("1..3", tv.Opaque("1..3")),
    ("(5)", 5),
])
def test_parse_value(text, value):
    parsed = tv.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_types_do_not_compare_equal_across_kinds():
    assert tv.TlaSet([1, 2]) != (1, 2)
    assert tv.ModelValue("a") != "a"
    assert tv.Record([("a", 1)]) != tv.TlaFunction([("a", 1)])


def test_multiline_values_as_tlc_wraps_them():
    text = '[ rxPhase |->\n      << "new",\n         "queued" >>,\n  free |-> {1,\n 2} ]'
    v = tv.parse_value(text)
    assert v["rxPhase"] == ("new", "queued") and v["free"] == tv.TlaSet([1, 2])
    assert tv.format_value(v) == '[rxPhase |-> <<"new", "queued">>, free |-> {1, 2}]'


@pytest.mark.parametrize("text", ["<<1, 2", "{1 2}", "[a |-> ]", '"open', "1 2", "<<1,>>", ")", ""])
def test_parse_errors(text):
    with pytest.raises(tv.TlaValueError):
        tv.parse_value(text)


def test_lookup_and_domain():
    seq = tv.parse_value("<<10, 20>>")
    fn = tv.parse_value("(0 :> 10 @@ 5 :> 20)")
    rec = tv.parse_value("[a |-> 1]")
    assert tv.lookup(seq, 2) == 20 and tv.domain(seq) == [1, 2]
    assert tv.lookup(fn, 5) == 20 and tv.domain(fn) == [0, 5]
    assert tv.lookup(rec, "a") == 1 and tv.domain(rec) == ["a"]
    with pytest.raises(KeyError):
        tv.lookup(seq, 3)


def test_to_json():
    v = tv.parse_value('[s |-> {a}, f |-> (2 :> <<"x">>), t |-> 1..2]')
    assert tv.to_json(v) == {"s": {"set": [{"model_value": "a"}]}, "f": {"function": [[2, ["x"]]]},
                             "t": {"tla": "1..2"}}
    json.dumps(tv.to_json(v))


_KEYWORDS = {"TRUE", "FALSE", "SUBSET", "UNION"}
idents = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in _KEYWORDS)
scalars = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12),
    st.booleans(),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
    idents.map(tv.ModelValue),
)


def _records(children):
    return st.lists(st.tuples(idents, children), max_size=4, unique_by=lambda kv: kv[0]).filter(bool).map(tv.Record)


values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(tuple),
        st.lists(children, max_size=4).map(tv.TlaSet),
        _records(children),
        st.lists(st.tuples(children, children), min_size=1, max_size=4).map(tv.TlaFunction),
    ),
    max_leaves=20,
)


@given(values)
@settings(max_examples=300, deadline=None)
def test_round_trip_printer_then_parser(value):
    text = tv.format_value(value)
    assert tv.parse_value(text) == value
    assert tv.format_value(tv.parse_value(text)) == text


@given(values)
@settings(max_examples=100, deadline=None)
def test_round_trip_survives_tlc_line_wrapping(value):
    # TLC breaks long values after commas and indents the next line.
    text = tv.format_value(value)
    wrapped = _wrap_outside_strings(text)
    assert tv.parse_value(wrapped) == value


def _wrap_outside_strings(text: str) -> str:
    out, in_string, i = [], False, 0
    while i < len(text):
        c = text[i]
        if c == '"' and (i == 0 or text[i - 1] != "\\" or (i >= 2 and text[i - 2] == "\\")):
            in_string = not in_string
        out.append(c)
        if c == "," and not in_string:
            out.append("\n     ")
        i += 1
    return "".join(out)


def test_state_assignments():
    text = '/\\ x = <<1,\n       2>>\n/\\ y = "a = b"\n'
    assert list(tv.iter_state_assignments(text)) == [("x", "<<1,\n       2>>"), ("y", '"a = b"')]
    assert list(tv.iter_state_assignments("x = 3")) == [("x", "3")]


# ---------------------------------------------------------------------------
# Traces from captured TLC 2.15 output

LASSO_OUTPUT = """@!@!@STARTMSG 2116:1 @!@!@
Temporal properties were violated.

@!@!@ENDMSG 2116 @!@!@
@!@!@STARTMSG 2264:1 @!@!@
The following behavior constitutes a counter-example:

@!@!@ENDMSG 2264 @!@!@
@!@!@STARTMSG 2217:4 @!@!@
1: <Initial predicate>
/\\ f = <<0, 0>>
/\\ x = 0

@!@!@ENDMSG 2217 @!@!@
@!@!@STARTMSG 2217:4 @!@!@
2: <Next line 5, col 12 to line 5, col 55 of module Live>
/\\ f = <<0, 0>>
/\\ x = 1

@!@!@ENDMSG 2217 @!@!@
@!@!@STARTMSG 2217:4 @!@!@
3: <Next line 5, col 12 to line 5, col 55 of module Live>
/\\ f = <<1, 0>>
/\\ x = 2

@!@!@ENDMSG 2217 @!@!@
@!@!@STARTMSG 2122:4 @!@!@
2: Back to state: <Next line 5, col 12 to line 5, col 55 of module Live>

@!@!@ENDMSG 2122 @!@!@
"""


def _trace(text: str) -> cx.Trace:
    return cx.parse_trace(ToolOutputParser().feed_all(text).messages)


def test_parse_lasso_trace():
    trace = _trace(LASSO_OUTPUT)
    assert [s.number for s in trace.states] == [1, 2, 3]
    assert trace.states[0].action.is_initial
    nxt = trace.states[1].action
    assert (nxt.name, nxt.module, nxt.line, nxt.column) == ("Next", "Live", 5, 12)
    assert trace.states[2].values == {"f": (1, 0), "x": 2}
    assert trace.loop_to == 2 and trace.loop_action.name == "Next" and trace.is_lasso


def test_render_lasso_marks_loop_and_shows_only_changes():
    text = cx.render_text(_trace(LASSO_OUTPUT), title="live model")
    lines = text.splitlines()
    assert lines[0] == "live model"
    assert lines[1] == "State 1: initial state"
    assert "State 2: after Next  (Live:5)   <- loop starts here" in lines
    step3 = lines.index("State 3: after Next  (Live:5)")
    assert lines[step3 + 1:step3 + 3] == ["    f[1]: 0 -> 1", "    x: 1 -> 2"]
    assert lines[-1].startswith("Back to state 2 by Next")


def test_action_labels_with_parameters_and_unknown_forms():
    label = cx.parse_action_label("ReceiverPoll(1, 2) line 40, col 3 to line 60, col 9 of module ResumeProtocol")
    assert (label.name, label.params, label.line) == ("ReceiverPoll", "(1, 2)", 40)
    assert label.describe() == "ReceiverPoll(1, 2)  (ResumeProtocol:40)"
    assert cx.parse_action_label("Heartbeat(3)").params == "(3)"
    assert cx.parse_action_label("Initial predicate").is_initial


def test_stuttering_trace():
    text = LASSO_OUTPUT.split("@!@!@STARTMSG 2122")[0] + "@!@!@STARTMSG 2218:4 @!@!@\n4: Stuttering\n@!@!@ENDMSG 2218 @!@!@\n"
    trace = _trace(text)
    assert trace.stuttering and trace.loop_to is None
    assert cx.render_text(trace).endswith("Stuttering: the behaviour stays in the last state forever.")


def test_unparseable_value_is_kept_as_text():
    state = cx.parse_state_message("1: <Initial predicate>\n/\\ x = <<1,\n/\\ y = 2\n")
    assert state.values["y"] == 2 and "x" in state.raw


def test_diff_descends_into_functions_but_keeps_tokens_whole():
    old = tv.parse_value("<<<<<<0, 0>>, <<1, 1>>>>>>")
    new = tv.parse_value("<<<<<<0, 0>>, <<2, 1>>>>>>")
    assert cx.diff_values(old, new, "data") == [("data[1][2]", (1, 1), (2, 1))]
    # one level up, a pair is a function of two blocks: diffed per block
    assert cx.diff_values(tv.parse_value("<<<<0, 0>>>>"), tv.parse_value("<<<<3, 0>>>>"), "aux") == [
        ("aux[1][1]", 0, 3)]
    rec_old = tv.parse_value("[a |-> 1, b |-> 2]")
    rec_new = tv.parse_value("[a |-> 1, b |-> 3]")
    assert cx.diff_values(rec_old, rec_new, "r") == [("r.b", 2, 3)]
    grown = tv.parse_value("<<1, 2, 3>>")
    assert cx.diff_values(tv.parse_value("<<1, 2>>"), grown, "q") == [("q", (1, 2), (1, 2, 3))]


POOL_STATE = """3: <Alloc line 18, col 16 to line 24, col 58 of module Pool>
/\\ rxBlocks = <<<<<<1>>, <<>>>>, <<<<1>>, <<2>>>>>>
/\\ aux = <<<<1, 0>>, <<0, 1>>>>
/\\ data = <<<<<<1, 1>>, <<0, 0>>>>, <<<<0, 0>>, <<2, 1>>>>>>
/\\ free = <<<<1, 2>>, <<1>>>>
"""


def test_draw_pools_shows_owner_and_content_per_rank():
    state = cx.parse_state_message(POOL_STATE)
    rows = cx.draw_pools(state.values)
    assert rows == [
        "rank 1: free=<1,2> [1 -r1+r2 1.1|1] [2 - _]",
        "rank 2: free=<1> [1 - _] [2 r2 2.1|1]",
    ]


SPEC_STATE = """5: <WriteLand line 306, col 5 to line 311, col 60 of module ResumeProtocol>
/\\ free = <<<<3>>>>
/\\ data = <<<<<<<<1, 1>>, <<1, 2>>>>, <<<<0, 0>>, <<0, 0>>>>, <<<<0, 0>>, <<0, 0>>>>>>>>
/\\ aux = <<<<3, 0, 0>>>>
/\\ rxPhase = <<"queued", "done">>
/\\ rxBlocks = <<<<<<1, 2>>>>, <<<<3>>>>>>
/\\ wire = <<{[r |-> 1, b |-> 2, toks |-> <<<<1, 3>>>>, aux |-> 0]}>>
"""


def test_draw_pools_with_the_specs_shapes():
    # data[s][b] is a tuple of slots; a request that is done holds nothing;
    # a block with a write on the wire is starred.
    state = cx.parse_state_message(SPEC_STATE)
    assert cx.draw_pools(state.values) == ["rank 1: free=<3> [1 r1 1.1,1.2|3] [2 r1 _,_ *] [3 - _,_]"]


def test_draw_pools_absent_variables_render_nothing():
    assert cx.draw_pools({"x": 1}) == []


def test_trace_json_is_plain_json():
    doc = _trace(LASSO_OUTPUT).to_json()
    again = json.loads(json.dumps(doc))
    assert again["loop_to"] == 2
    assert again["states"][2]["values"] == {"f": [1, 0], "x": 2}
    assert again["states"][1]["action"]["name"] == "Next"


SOURCE = """---- MODULE Proto ----
Step(r) ==
    /\\ x' = x + r
Tick == UNCHANGED x
Next == \\/ \\E r \\in 1..2 : Step(r)
        \\/ \\E s \\in Sess : \\E w \\in wire[s] : Land(s, Len(w))
====""".splitlines()


def test_unnamed_disjunct_is_named_after_the_action_it_calls():
    label = cx.parse_action_label("Next line 6, col 12 to line 6, col 61 of module Proto")
    refined = cx.refine_action_label(label, SOURCE)
    assert (refined.name, refined.params, refined.via) == ("Land", "(s, Len(w))", "Next")
    assert refined.describe() == "Land(s, Len(w))  (Proto:6, in Next)"


def test_named_action_bodies_keep_their_name():
    body = cx.parse_action_label("Step line 3, col 5 to line 3, col 18 of module Proto")
    assert cx.refine_action_label(body, SOURCE) == body
    one_line = cx.parse_action_label("Tick line 4, col 9 to line 4, col 19 of module Proto")
    assert cx.refine_action_label(one_line, SOURCE) == one_line


def test_declared_variables_and_reordering():
    source = "VARIABLES\n  free,   \\* the pool\n  (* comment *) data, rxPhase\nVARIABLE extra\nFoo == 1\n"
    assert cx.declared_variables(source) == ["free", "data", "rxPhase", "extra"]
    trace = _trace(LASSO_OUTPUT)
    cx.reorder_variables(trace, ["x", "f"])
    assert list(trace.states[0].values) == ["x", "f"]

