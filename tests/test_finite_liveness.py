"""Liveness on a finite log: a trace that ends where no spec step is enabled
(a dead end) violates the liveness property its end state fails; one that
ends where some step is still possible is incomplete; one that closed
everything conforms.  Both checkers, on the same files, one class per test
(docs/conformance.md, "Liveness on a finite log")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumespec.conformance.checker_native import check_native
from resumespec.conformance.tlc_trace import check_tlc

CORPUS = Path(__file__).resolve().parents[1] / "conformance" / "corpus"


def variant_of(tmp_path: Path, name: str, drop_last: int = 0, faults=None) -> str:
    """A copy of corpus trace ``name``: its last ``drop_last`` lines cut off
    (a log that stops earlier), ``faults`` set in every config line."""
    lines = (CORPUS / name).read_text().splitlines()
    if drop_last:
        lines = lines[:-drop_last]
    out = []
    for ln in lines:
        ev = json.loads(ln)
        if ev["event"] == "config" and faults is not None:
            ev["faults"] = list(faults)
        out.append(json.dumps(ev))
    path = tmp_path / f"{Path(name).stem}-{drop_last}-{'+'.join(faults or ())}.jsonl"
    path.write_text("\n".join(out) + "\n")
    return str(path)


def both(path: str, bound: int | None = None):
    native = check_native([path], bound=bound)
    tlc = check_tlc([path], timeout=300)
    return native, tlc


# -- dead ends: violates, with the property and the state --------------------
@pytest.mark.parametrize("name", ["ref_once_hang.jsonl", "ref_flag_hang.jsonl",
                                  "waits_for_unrequested_round.jsonl"])
def test_historical_hang_at_the_end_of_the_log_violates(name):
    native, tlc = both(str(CORPUS / name))
    for v in (native, tlc):
        assert (v.verdict, v.prop) == ("violates", "NoWaitForUnrequestedRound"), v.message
        assert "no spec step is enabled" in v.message
        assert v.state["dead_end"] is True
        assert v.state["messages_in_flight"] == 0 and v.state["writes_in_flight"] == 0
        req = v.state["requests"]["1"]
        assert req["sender_phase"] == "await"
        assert req["receiver_phase"] in ("queued", {"1": "queued"})
        assert any(req["blocks_held"].values())     # the hung request keeps its blocks
    assert native.state["requests"]["1"]["sender_waits_for"] == "a resume from the receiver"
    assert native.state["faults_left"] == []
    assert native.state["requests"]["1"]["blocks_held"] == tlc.state["requests"]["1"]["blocks_held"]


def test_sender_room_left_open_after_a_local_abort_violates():
    """A historical abort frees locally and tells the sender nothing: the
    sender waits for a resume forever, the one fault allowed is used."""
    native, tlc = both(str(CORPUS / "ref_once_abort_room_open.jsonl"))
    for v in (native, tlc):
        assert (v.verdict, v.prop) == ("violates", "SenderRoomsClose"), v.message
        assert v.state["requests"]["1"]["sender_phase"] == "await"
    assert native.state["requests"]["1"]["blocks_held"] == {"1": []}


def test_a_missed_bound_does_not_hide_a_dead_end():
    path = str(CORPUS / "waits_for_unrequested_round.jsonl")
    v = check_native([path], bound=1)
    assert (v.verdict, v.prop) == ("violates", "NoWaitForUnrequestedRound")
    assert any("within 1 events" in o["message"] for o in v.unfinished)   # still told


# -- some step still enabled: incomplete -------------------------------------
def test_status_in_flight_keeps_incomplete(tmp_path):
    """The hang's last status_recv and poll cut off: the status is on its way."""
    path = variant_of(tmp_path, "waits_for_unrequested_round.jsonl", drop_last=2)
    native, tlc = both(path)
    assert native.verdict == tlc.verdict == "incomplete", (native.message, tlc.message)
    assert "can still take a step" in tlc.message


def test_poll_the_design_acts_on_keeps_incomplete():
    """The log stops after the first partial round: the next poll resumes."""
    native, tlc = both(str(CORPUS / "ends_mid_transfer.jsonl"))
    assert native.verdict == tlc.verdict == "incomplete"
    assert native.prop == "EveryRequestEnds"


def test_step_cut_off_by_the_end_keeps_incomplete(tmp_path):
    """The abort logged, its free not yet: the step is still being logged."""
    path = variant_of(tmp_path, "ref_once_abort_room_open.jsonl", drop_last=1)
    native, tlc = both(path)
    assert native.verdict == tlc.verdict == "incomplete", (native.message, tlc.message)


@pytest.mark.parametrize("fault", ["abort", "heartbeat"])
def test_allowed_fault_keeps_incomplete(tmp_path, fault):
    """The same hang, with a fault the config allows and the log has not
    used: the spec can still take that step, the trace is unfinished."""
    path = variant_of(tmp_path, "ref_once_hang.jsonl", faults=[fault])
    native, tlc = both(path)
    assert native.verdict == tlc.verdict == "incomplete", (native.message, tlc.message)
    assert native.prop == "NoWaitForUnrequestedRound"


def test_prefill_frees_not_yet_logged_keeps_incomplete():
    native, tlc = both(str(CORPUS / "blocks_never_freed.jsonl"))
    assert native.verdict == tlc.verdict == "incomplete"
    assert native.prop == "BlocksEventuallyFree"


@pytest.mark.parametrize("drop_last", [4, 2])
def test_lockstep_step_one_rank_has_not_logged_keeps_incomplete(tmp_path, drop_last):
    """Two ranks: rank 1 handed over, prefilled and freed; rank 2 has logged
    nothing of those steps (or only its handoff).  The spec took each step
    for both ranks at once, so no step is left, yet the log of them is not
    over: incomplete from both checkers (TLC said conforms before)."""
    path = variant_of(tmp_path, "valid_two_sessions.jsonl", drop_last=drop_last)
    native, tlc = both(path)
    assert native.verdict == tlc.verdict == "incomplete", (native.message, tlc.message)


# -- nothing owed: conforms ---------------------------------------------------
@pytest.mark.parametrize("name", ["valid_one_round.jsonl", "valid_two_sessions.jsonl"])
def test_everything_closed_conforms(name):
    native, tlc = both(str(CORPUS / name))
    assert native.verdict == tlc.verdict == "conforms"
