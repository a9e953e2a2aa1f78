"""The trace spec is a real module, spec/TraceResumeProtocol.tla: SANY parses
it, its allocator agrees with the spec's, and TLC's time follows the blocks a
trace names, not the pool (64 blocks get their verdict)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from resumespec.conformance import synth
from resumespec.conformance.checker_native import check_native
from resumespec.conformance.tlc_trace import (
    SPEC_DIR,
    TRACE_MODULE,
    _load,
    check_tlc,
    render,
    steps_of,
)
from resumespec.spec import tlc

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "conformance" / "corpus"


def _sany(folder: Path, module: str) -> str:
    jar = tlc.locate_jar()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["java", f"-DTLA-Library={SPEC_DIR}", f"-Djava.io.tmpdir={tmp}",
                              "-cp", str(jar), "tla2sany.SANY", f"{module}.tla"],
                             cwd=folder, capture_output=True, text=True, timeout=120)
    return out.stdout + out.stderr


def _parses(text: str, module: str) -> bool:
    return (f"Semantic processing of module {module}" in text
            and "*** Errors" not in text and "error" not in text.lower().replace(
                "semantic processing", ""))


def test_sany_parses_the_trace_spec():
    assert (SPEC_DIR / f"{TRACE_MODULE}.tla").is_file()
    assert _parses(_sany(SPEC_DIR, TRACE_MODULE), TRACE_MODULE)


def test_sany_parses_generated_trace_data_and_rejects_a_broken_one(tmp_path):
    module, _ = render(steps_of(_load([str(CORPUS / "valid_two_sessions.jsonl")])))
    assert "VARIABLE" not in module and "Observed" not in module   # data only
    (tmp_path / "TraceCheck.tla").write_text(module)
    assert _parses(_sany(tmp_path, "TraceCheck"), "TraceCheck")
    (tmp_path / "TraceCheck.tla").write_text(module.replace("TraceData ==", "TraceData == Nope +"))
    assert not _parses(_sany(tmp_path, "TraceCheck"), "TraceCheck")


AGREE = """---- MODULE AllocAgree ----
EXTENDS TraceResumeProtocol
Lists == {<<>>, <<1>>, <<2, 1>>, <<1, 2, 3>>, <<3, 1, 2>>, <<1, 1, 2>>, <<4, 2, 3, 1>>}
ASSUME \\A fl \\in Lists : \\A n \\in 0..9 : %s
NoTrace == <<>>
====
"""
AGREE_CFG = """INIT TraceInit
NEXT TraceNext
CONSTANTS
  NReq = 1
  NSess = 1
  BlockSize = 2
  NBlocks = 4
  InitTokens = 2
  Cap = 0
  Order = "%s"
  Variant = "once"
  ResumeOrder = "alloc_first"
  Barrier = TRUE
  ForkSender = FALSE
  Total <- Totals
  Faults = {}
  Trace <- NoTrace
  CutAtEnd = FALSE
  UnloggedWrites = {}
  ShowStateAt = 0
"""


def _assume(tmp_path, order: str, claim: str) -> str:
    (tmp_path / "AllocAgree.tla").write_text(
        (AGREE % claim).replace("NoTrace ==", "Totals == <<3>>\nNoTrace =="))
    (tmp_path / f"AllocAgree_{order}.cfg").write_text(AGREE_CFG % order)
    run = tlc.ModelRun(module=tmp_path / "AllocAgree.tla", cfg=tmp_path / f"AllocAgree_{order}.cfg",
                       label="agree", check_deadlock=False, library_dirs=(SPEC_DIR,))
    return tlc.run_tlc(run, tlc.prepare_settings(workers=1, timeout_s=120, heap="1g")).kind


@pytest.mark.parametrize("order", ["fifo", "lifo", "any"])
def test_trace_spec_allocator_is_the_spec_allocator(tmp_path, order):
    """FullAllocChoices (what the trace spec falls back on) is AllocChoices,
    written out again: if the spec's allocator changes, this fails."""
    assert _assume(tmp_path, order, "FullAllocChoices(fl, n) = AllocChoices(fl, n)") == "success"
    # the check can fail: a different allocator is told apart
    if order == "any":
        assert _assume(tmp_path, order,
                       "FullAllocChoices(fl, n) = AllocChoices(fl, n + 2)") == "assumption"


def _pool_trace(tmp_path, nblocks: int, name: str, wrong: bool = False) -> str:
    events = list(synth.generate(2, nsess=1, seed=4, block_size=2, nblocks=nblocks,
                                 max_total=4, init_tokens=4))
    if wrong:
        # the second request's init blocks: one of them is the first request's
        allocs = [e for e in events if e["event"] == "alloc" and e["req"] == 2]
        first = next(e for e in events if e["event"] == "alloc" and e["req"] == 1)
        allocs[0]["blocks"] = [first["blocks"][0]] + allocs[0]["blocks"][1:]
        for e in events:
            if e["event"] in ("init_sent", "init_recv") and e["req"] == 2:
                e["blocks"] = list(allocs[0]["blocks"])
    path = tmp_path / name
    synth.write(path, events)
    return str(path)


def test_a_64_block_pool_gets_its_verdict(tmp_path):
    path = _pool_trace(tmp_path, 64, "pool64.jsonl")
    model = steps_of(_load([path]))
    assert model.constants["NBlocks"] < 64          # unnamed blocks were folded
    assert check_tlc([path], timeout=300).verdict == "conforms"
    assert check_native([path]).verdict == "conforms"


def test_a_64_block_pool_still_catches_a_shared_block(tmp_path):
    """The allocator override offers the logged blocks; a logged choice the
    allocator cannot make (a held block) is still no step of the spec."""
    path = _pool_trace(tmp_path, 64, "pool64_shared.jsonl", wrong=True)
    v = check_tlc([path], timeout=300)
    assert v.verdict == "violates", v.message
    assert check_native([path]).verdict == "violates"


def test_a_rejected_trace_says_where_it_leaves_the_spec():
    """Not "no behaviour matches the whole trace": the longest prefix some
    behaviour matches, the first event no step explains, the state there."""
    v = check_tlc([str(CORPUS / "resume_garbled.jsonl")], timeout=300)
    assert v.verdict == "violates" and v.prop == "SpecStep"
    assert "the spec matches the trace's first 6 of 7 steps" in v.message
    assert "no spec step explains line 15 (encode resume_recv, request 1)" in v.message
    assert v.line == 15 and v.event["event"] == "resume_recv"
    spec = v.state["spec_state"]
    # the receiver resumed at offset 2; the sender was told 1
    assert spec["rxPhase"] == ["queued"] and spec["ctl"][0][0][0]["sent"] == 2
    assert v.event["sent_tokens"] == 1
    assert v.state["trace_block_of_spec_block"]["2"] == 1


def test_an_event_no_action_makes_is_named():
    v = check_tlc([str(CORPUS / "status_received_not_sent.jsonl")], timeout=300)
    assert v.prop == "SpecStep" and v.line == 6
    assert "first 2 of 3 steps" in v.message and "no spec action makes this event" in v.message


def test_the_steps_read_the_log_through_its_definition():
    """TLC evaluates the bound constant Trace anew at each reference (the whole
    log), the definition Log once: after Log's definition no step names Trace."""
    import re
    text = (SPEC_DIR / f"{TRACE_MODULE}.tla").read_text()
    body = text.split("Log == Trace\n", 1)[1]
    code = "\n".join(re.sub(r"\\\*.*", "", ln) for ln in body.splitlines()
                     if not ln.lstrip().startswith("(*"))
    assert not re.search(r"\bTrace\b", code), "a step reads the constant Trace: use Log"


def test_what_tlc_printed_is_read_back_across_lines():
    from resumespec.conformance.tlc_trace import furthest, printed_values
    lines = ['<<"trace-furthest", 1>>',
             "@!@!@STARTMSG 2190:0 @!@!@",
             "Finished computing initial states: 1 distinct state generated.",
             "@!@!@ENDMSG 2190 @!@!@",
             '<<"trace-furthest", 2>>',
             '<< "trace-end",',
             '   "closed",',
             '   [ aux |-> <<<<2, 0>>>>,',
             '     rxPhase |-> <<"done">> ] >>',
             '<<"trace-furthest", 3>>',
             "@!@!@STARTMSG 2199:0 @!@!@"]
    assert printed_values(lines, "trace-end") == [("closed", {"aux": [[2, 0]],
                                                              "rxPhase": ["done"]})]
    assert furthest(lines) == 3
    assert printed_values(lines, "trace-state") == [] and furthest(lines[6:9]) is None
