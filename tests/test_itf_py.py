"""ITF checked by someone else's reader: the PyPI package ``itf-py`` reads the
project's ITF exports (counterexamples and engine-trace reports) and writes
them back, and both readers must agree.

What differs is pinned down in ``test_known_differences`` and described in
docs/reports.md ("ITF read by itf-py").
"""

from __future__ import annotations

import json
from pathlib import Path

import itf_py
import pytest

from resumespec.cli import main
from resumespec.report.itf import trace_from_itf, value_from_itf
from resumespec.spec import tla_values as tv

ROOT = Path(__file__).resolve().parents[1]
# A lasso (liveness, `loop`), a safety violation that corrupts data, a double free.
MODELS = ["once_capped_hang", "sent_tokens_corruption", "flag_double_free"]
TRACES = sorted(p.relative_to(ROOT).as_posix()
                for p in (ROOT / "conformance/corpus/sglang").glob("*/*.jsonl"))
TRACES += ["conformance/corpus/ref_corrected.jsonl", "conformance/corpus/read_during_write.jsonl"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("itf")
    docs = {}
    for model in MODELS:
        f = out / f"{model}.itf.json"
        assert main(["report", "counterexample", model, "--itf", str(f), "-q", "--workers", "1"]) == 0
        docs[f"counterexample:{model}"] = json.loads(f.read_text())
    for trace in TRACES:
        f = out / (trace.replace("/", "_") + ".itf.json")
        assert main(["report", "trace", str(ROOT / trace), "--itf", str(f), "-q"]) == 0
        docs[f"trace:{trace}"] = json.loads(f.read_text())
    return docs


EXPORTS = [f"counterexample:{m}" for m in MODELS] + [f"trace:{t}" for t in TRACES]


def through_itf_py(doc: dict) -> dict:
    """itf-py reads the JSON and writes it again (through JSON text both ways)."""
    trace = itf_py.trace_from_json(json.loads(json.dumps(doc)))
    return json.loads(json.dumps(itf_py.trace_to_json(trace)))


def plain_ours(v):
    """A value of resumespec.report.itf as plain Python, to compare meanings."""
    if isinstance(v, tv.TlaSet):
        return frozenset(plain_ours(x) for x in v)
    if isinstance(v, tv.Record):
        return ("record", tuple((k, plain_ours(x)) for k, x in v.items()))
    if isinstance(v, tv.TlaFunction):
        return ("map", frozenset((plain_ours(k), plain_ours(x)) for k, x in v.items()))
    if isinstance(v, tv.ModelValue):
        return str(v) if str(v).count("_OF_") else f"{v}_OF_MODEL"
    if isinstance(v, tuple):
        return ("seq", tuple(plain_ours(x) for x in v))
    return v


def plain_itf_py(v):
    """A value as itf-py decodes it, as the same plain Python."""
    if isinstance(v, frozenset):
        return frozenset(plain_itf_py(x) for x in v)
    if isinstance(v, tuple) and hasattr(v, "_asdict"):
        return ("record", tuple((k, plain_itf_py(x)) for k, x in v._asdict().items()))
    if isinstance(v, dict):
        return ("map", frozenset((plain_itf_py(k), plain_itf_py(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("seq", tuple(plain_itf_py(x) for x in v))
    return v


def test_exports_exercise_the_value_forms(exports):
    text = json.dumps(list(exports.values()))
    for form in ('"#bigint"', '"#set"', '"#map"', '"loop"'):
        assert form in text, form
    assert sum(1 for k in exports if k.startswith("trace:")) >= 50


@pytest.mark.parametrize("name", EXPORTS)
def test_itf_py_writes_back_the_same_json(exports, name):
    doc = exports[name]
    back = through_itf_py(doc)
    # itf-py always writes "params" and "loop" (null when not a lasso).
    assert back.pop("params") == []
    assert back.pop("loop") == doc.get("loop")
    assert back == {k: v for k, v in doc.items() if k != "loop"}


@pytest.mark.parametrize("name", EXPORTS)
def test_both_readers_agree_on_every_value(exports, name):
    doc = exports[name]
    theirs = itf_py.trace_from_json(doc)
    assert theirs.vars == doc["vars"] and len(theirs.states) == len(doc["states"])
    for i, (raw, state) in enumerate(zip(doc["states"], theirs.states)):
        assert state.meta == raw["#meta"]
        for var, j in raw.items():
            if var == "#meta":
                continue
            assert plain_itf_py(state.values[var]) == plain_ours(value_from_itf(j)), (i, var)


@pytest.mark.parametrize("name", [e for e in EXPORTS if e.startswith("counterexample:")])
def test_our_reader_reads_what_itf_py_wrote(exports, name):
    doc = exports[name]
    ours, again = trace_from_itf(doc), trace_from_itf(through_itf_py(doc))
    assert [s.values for s in again.states] == [s.values for s in ours.states]
    assert (again.loop_to, again.stuttering) == (ours.loop_to, ours.stuttering)
    assert [s.action.name if s.action else None for s in again.states] == \
        [s.action.name if s.action else None for s in ours.states]


def test_known_differences():
    """Where itf-py and ADR-015 (and so resumespec) part ways; none occurs in our exports."""
    # 1. "#unserializable" is read, but written back as a record {"value": ...}.
    odd = {"#unserializable": "[x \\in {1} |-> x]"}
    assert itf_py.value_to_json(itf_py.value_from_json(odd)) == {"value": odd["#unserializable"]}
    assert value_from_itf(odd) == tv.Opaque(odd["#unserializable"])
    # 2. A record with exactly the fields tag and value is read as a variant.
    variant = itf_py.value_from_json({"tag": "A", "value": "x"})
    assert type(variant).__name__ == "A"
    # 3. A record field that is not a Python identifier cannot be read.
    for rec in ({"_x": 1}, {"from": 1}, {"a-b": 1}):
        with pytest.raises(ValueError):
            itf_py.value_from_json(rec)
    assert value_from_itf({"from": {"#bigint": "1"}}) == tv.Record([("from", 1)])
