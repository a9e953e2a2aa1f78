"""Differential tests: the native checker and TLC trace validation give the same verdict.

Kept small (TLC takes seconds per trace): a few corpus traces, one valid
synthetic run and a few mutations of it.  The full corpus comparison is
`resumespec conform --checker both conformance/corpus/*.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumespec import exitcodes
from resumespec.cli import main as cli_main
from resumespec.conformance import synth
from resumespec.conformance.checker_native import check_native
from resumespec.conformance.tlc_trace import check_tlc, render, steps_of, _load
from resumespec.conformance.trace import read_trace
from hypothesis import given, settings, strategies as hs

from test_conformance import MUTATIONS, mutate

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "conformance" / "corpus"

CORPUS_SAMPLE = [
    "valid_two_rounds.jsonl",          # conforms
    "read_during_write.jsonl",         # violates NoReadDuringWrite (a landing order)
    "write_into_freed_block.jsonl",    # violates WritesOnlyIntoOwnedBlocks
    "two_resumes_one_round.jsonl",     # violates (TLC: no spec step)
    "ends_mid_transfer.jsonl",         # incomplete
]


@pytest.mark.parametrize("name", CORPUS_SAMPLE)
def test_native_and_tlc_agree_on_corpus(name):
    path = str(CORPUS / name)
    native = check_native([path])
    tlc = check_tlc([path], timeout=120)
    assert tlc.verdict == native.verdict, (tlc.message, native.message)
    if native.prop in ("NoReadDuringWrite", "WritesOnlyIntoOwnedBlocks"):
        assert tlc.prop == native.prop


def _mutants():
    base = list(synth.generate(2, nsess=1, seed=4, block_size=2, nblocks=8, max_total=5))
    yield "valid", base
    # the first resume_recv carries another offset than the resume sent
    k = next(i for i, e in enumerate(base) if e["event"] == "resume_recv")
    altered = [dict(e) for e in base]
    altered[k]["sent_tokens"] += 1
    yield "altered_resume", altered
    # the last event (a free after prefill) is lost
    yield "dropped_last_free", base[:-1]


@pytest.mark.parametrize("label, events", list(_mutants()), ids=lambda x: x if
                         isinstance(x, str) else "")
def test_native_and_tlc_agree_on_synthetic_and_mutated(tmp_path, label, events):
    path = tmp_path / f"{label}.jsonl"
    synth.write(path, synth.renumber(events))
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=120)
    assert native.verdict == tlc.verdict, (label, native.message, tlc.message)
    assert native.verdict == {"valid": "conforms", "altered_resume": "violates",
                              "dropped_last_free": "incomplete"}[label]


def test_generated_module_extends_the_spec_and_numbers_blocks_from_one():
    model = steps_of(_load([str(CORPUS / "valid_two_rounds.jsonl")]))
    module, cfg = render(model)
    assert "EXTENDS ResumeProtocol" in module
    assert '[a |-> "ReceiverInit", r |-> 1, s |-> 1, blocks |-> <<1>>' in module
    assert "INVARIANTS" in cfg and "NoReadDuringWrite" in cfg
    assert model.constants["BlockSize"] == 2 and model.constants["Total"] == [3]


def test_tlc_refuses_wide_traces_clearly():
    v = check_tlc([str(CORPUS / "valid_two_sessions.jsonl")])
    assert v.verdict == "error" and "NSess = 1" in v.message


def test_cli_checker_both(capsys):
    code = cli_main(["conform", "--quiet", "--checker", "both", "--json",
                     str(CORPUS / "valid_write_error.jsonl")])
    doc = json.loads(capsys.readouterr().out)
    assert code == exitcodes.OK
    assert doc["traces"][0]["verdict"] == "conforms"
    assert doc["traces"][0]["tlc"]["verdict"] == "conforms"


@settings(max_examples=4, deadline=None, derandomize=True)
@given(base=hs.sampled_from(["ref_once", "ref_corrected", "ref_cached_sent"]),
       kind=hs.sampled_from(MUTATIONS), i=hs.integers(0, 10_000), pick=hs.integers(0, 100))
def test_native_and_tlc_agree_on_mutated_reference_traces(tmp_path_factory, base, kind, i,
                                                          pick):
    events = [e for _, e in read_trace(CORPUS / f"{base}.jsonl")]
    path = tmp_path_factory.mktemp("mut") / "t.jsonl"
    synth.write(path, mutate(events, kind, i, pick))
    native = check_native([str(path)])
    tlc = check_tlc([str(path)], timeout=120)
    assert native.verdict == tlc.verdict, (base, kind, i, pick, native.message, tlc.message)
