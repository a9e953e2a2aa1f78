"""QueuedRounds: the engine fork's sender without the resume barrier.

The four ``pull/13`` designs run the fork's sender with no barrier
(``ForkSender /\\ ~Barrier``, docs/model.md): every resume queues a round,
a round walks the room's sessions one after another and reads each
session's offset and blocks when it reaches it, and a failed room keeps
running its queued rounds.  The traces here are one request cut out of two
committed deployed runs (``conformance/corpus/deployed/7a7a71977/``), with
the allocator order relaxed to ``any`` (the other requests' allocations are
cut out with them).  Each needs one half of the rule; the mutations must
be rejected.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from resumespec.conformance.checker_native import check_native
from resumespec.conformance.merge import merge_files
from resumespec.reference.protocol import Ctl, Params, SendStatus, TxRoom
from resumespec.reference.protocol import sender as tx
from resumespec.reference.protocol.designs import Status

REPO = Path(__file__).resolve().parent.parent
DEPLOYED = REPO / "conformance" / "corpus" / "deployed" / "7a7a71977"


def one_request(run: str, req: int) -> list[dict]:
    """The merged events of ``req`` in a deployed run (and the configs)."""
    paths = sorted(str(p) for p in (DEPLOYED / run).glob("*.jsonl"))
    out = []
    for _, _, ev in merge_files(paths):
        if ev.get("req", req) != req:
            continue
        ev = dict(ev)
        if ev["event"] == "config":
            ev["order"] = "any"
        out.append(ev)
    return out


def write(events: list[dict], path: Path) -> str:
    """The events as one trace file, ``seq`` numbered again per process."""
    seq: Counter = Counter()
    lines = []
    for ev in events:
        ev = dict(ev, seq=seq[ev["proc"]])
        seq[ev["proc"]] += 1
        lines.append(json.dumps(ev) + "\n")
    path.write_text("".join(lines))
    return str(path)


def check(events: list[dict], tmp_path: Path):
    return check_native([write(events, tmp_path / "t.jsonl")])


def configured(events: list[dict], **kv) -> list[dict]:
    return [dict(ev, **kv) if ev["event"] == "config" else ev for ev in events]


def index(events: list[dict], event: str, nth: int = 0, **match) -> int:
    hits = [i for i, ev in enumerate(events) if ev["event"] == event
            and all(ev.get(k) == v for k, v in match.items())]
    return hits[nth]


# ---- per-session rounds (7a7a71977/tp2_lag, req 1) --------------------------

@pytest.fixture(scope="module")
def lag() -> list[dict]:
    evs = one_request("tp2_lag", 1)
    # the shape this test relies on: session 1's resume arrives while the
    # round queued by session 2's resume is writing session 2
    enc = [(ev["event"], ev["session"]) for ev in evs if ev["proc"] == "encode"
           and ev["event"] in ("resume_recv", "round_start", "round_end")]
    i = enc.index(("resume_recv", 2))
    assert enc[i:i + 5] == [("resume_recv", 2), ("round_start", 2), ("resume_recv", 1),
                            ("round_end", 2), ("round_start", 1)]
    return evs


def test_a_round_reads_each_session_when_its_walk_reaches_it(lag, tmp_path):
    v = check(lag, tmp_path)
    assert v.verdict == "conforms", v.message
    assert v.coverage["SenderQueuedRound"] == 2       # the first round, and one queued
    assert v.coverage["SenderWriteSession"] == 4
    assert v.coverage["SenderStartRound"] == 0


def test_the_same_trace_under_the_round_that_writes_every_session_at_once(lag, tmp_path):
    # fork_sender false: the spec's earlier no-barrier sender, which takes
    # session 1's offset and blocks when the round starts (the old verdict)
    v = check(configured(lag, fork_sender=False), tmp_path)
    assert (v.verdict, v.prop) == ("violates", "SenderOffsetFollowsResume"), v.message


def test_a_stale_offset_in_a_later_session_is_rejected(lag, tmp_path):
    evs = [dict(ev) for ev in lag]
    i = index(evs, "round_start", 3, proc="encode")          # round 2, session 1
    assert evs[i]["session"] == 1 and evs[i]["sent_tokens"] == 1024
    evs[i]["sent_tokens"] = 0
    v = check(evs, tmp_path)
    assert (v.verdict, v.prop) == ("violates", "SenderOffsetFollowsResume"), v.message


def test_stale_blocks_in_a_later_session_are_rejected(lag, tmp_path):
    evs = [dict(ev) for ev in lag]
    i = index(evs, "round_start", 3, proc="encode")
    evs[i]["dst_blocks"] = [0, 1, 2, 3] + evs[i]["dst_blocks"][4:]   # freed by rank 1
    v = check(evs, tmp_path)
    assert v.verdict == "violates", v.message


def test_two_batches_of_one_room_at_once_are_rejected(lag, tmp_path):
    evs = list(lag)
    end2 = index(evs, "round_end", 1, proc="encode", session=2)
    start1 = index(evs, "round_start", 3, proc="encode")
    assert end2 < start1
    evs.insert(end2, evs.pop(start1))       # session 1's batch before session 2's returned
    v = check(evs, tmp_path)
    assert (v.verdict, v.prop) == ("violates", "SpecStep"), v.message
    assert "had not returned" in v.message


def test_a_session_written_twice_in_one_round_is_rejected(lag, tmp_path):
    evs = list(lag)
    start2 = index(evs, "round_start", 2, proc="encode")
    end2 = index(evs, "round_end", 2, proc="encode")
    assert evs[start2]["session"] == evs[end2]["session"] == 2
    twice = [dict(evs[start2]), dict(evs[end2])]
    evs[end2 + 1:end2 + 1] = twice
    v = check(evs, tmp_path)
    assert v.verdict == "violates", v.message


# ---- queued rounds on a failed room (7a7a71977/tp2_write_error, req 1) -------

@pytest.fixture(scope="module")
def failed() -> list[dict]:
    evs = one_request("tp2_write_error", 1)
    tail = [(ev["event"], ev.get("session")) for ev in evs if ev["proc"] == "encode"][-4:]
    assert tail == [("round_end", 2), ("write_error", 2), ("status_sent", 2),
                    ("status_sent", 2)]
    return evs


def test_the_second_queued_round_meets_the_dead_session(failed, tmp_path):
    v = check(failed, tmp_path)
    assert v.verdict == "conforms", v.message
    assert v.coverage["WriteError"] == 1
    assert v.coverage["SenderQueuedRound"] == 3     # the first round, two queued by resumes
    assert v.coverage["SenderFailDead"] == 0


def test_without_queued_rounds_the_second_failed_has_no_step(failed, tmp_path):
    # the fork's sender with the barrier (mainline): one round per resume set
    v = check(configured(failed, barrier=True), tmp_path)
    assert v.verdict == "violates", v.message


def test_a_third_failed_is_rejected(failed, tmp_path):
    evs = list(failed)
    i = len(evs) - 1 - [ev["event"] for ev in reversed(evs)].index("status_sent")
    evs.insert(i + 1, dict(evs[i]))
    v = check(evs, tmp_path)
    assert (v.verdict, v.prop) == ("violates", "SpecStep"), v.message
    assert "no round is queued" in v.message


def test_a_round_written_to_the_dead_session_is_rejected(failed, tmp_path):
    evs = list(failed)
    last = len(evs) - 1 - [ev["event"] for ev in reversed(evs)].index("status_sent")
    start = index(evs, "round_start", -1, proc="encode")
    evs[last] = dict(evs[start], sent_tokens=1024)    # a write instead of the Failed
    v = check(evs, tmp_path)
    assert (v.verdict, v.prop) == ("violates", "SpecStep"), v.message
    assert "dead" in v.message


# ---- the core's two steps ----------------------------------------------------

P = Params("indices", n_sessions=2, block_size=1, barrier=False, fork_sender=True)


def started() -> TxRoom:
    room = TxRoom.initial(P, 1, 3)
    for s in (1, 2):
        room = tx.sender_recv_init(room, s, Ctl("init", (s,), 0, 1)).state
    return room


def test_core_first_round_then_a_walk():
    assert P.queued_rounds
    room = started()
    assert tx.sender_start_round(room) is None          # not under queued rounds
    room = tx.sender_queued_round(room, False).state
    assert room.phase == tx.WRITING and room.left == {1, 2} and room.round == 1
    assert tx.sender_queued_round(room, False) is None  # one round at a time
    assert tx.sender_write_session(room, 1, frozenset(), True) is None   # a batch in flight
    step = tx.sender_write_session(room, 2, frozenset(), False)
    assert [e.block for e in step.effects] == [2]
    room = step.state
    assert room.session(2).sent == 1 and room.left == {1}
    assert tx.sender_end_round(room, False) is None     # session 1 not written yet
    room = tx.sender_write_session(room, 1, frozenset(), False).state
    end = tx.sender_end_round(room, False)
    assert end.state.phase == tx.AWAIT and end.state.session(1).sent == 1   # not added twice


def test_core_each_resume_queues_a_round_and_a_failed_room_runs_it():
    room = tx.sender_queued_round(started(), False).state
    room = tx.sender_write_session(room, 1, frozenset(), False).state
    err = tx.write_error(tx.sender_write_session(room, 2, frozenset(), False).state, 2)
    room = err.state
    assert err.dead == 2 and room.phase == tx.FAILED and not room.left
    assert room.session(2).sent == 0                    # the failed batch did not advance
    for s in (1, 2):
        room = tx.sender_recv_resume(room, s, Ctl("resume", (9,), 1, 1)).state
    assert room.queue == 2
    room = tx.sender_queued_round(room, False).state
    assert room.phase == tx.FAILED and room.queue == 1
    step = tx.sender_write_session(room, 2, frozenset({2}), False)
    assert step.effects == (SendStatus(1, 2, step.effects[0].msg),)
    assert step.effects[0].msg.status == Status.FAILED and not step.state.left


def test_core_a_room_that_succeeded_drops_resumes():
    room = TxRoom.initial(P, 1, 1)
    for s in (1, 2):
        room = tx.sender_recv_init(room, s, Ctl("init", (s,), 0, 1)).state
    room = tx.sender_queued_round(room, False).state
    for s in (1, 2):
        room = tx.sender_write_session(room, s, frozenset(), False).state
    room = tx.sender_end_round(room, False).state
    assert room.phase == tx.DONE
    room = tx.sender_recv_resume(room, 1, Ctl("resume", (9,), 0, 1)).state
    assert room.queue == 0 and tx.sender_queued_round(room, False) is None


# ---- TLC trace validation agrees (about 1.5 min a trace here) ----------------

def test_tlc_the_queued_round_on_the_failed_room(failed, tmp_path):
    from resumespec.conformance.tlc_trace import check_tlc, steps_of
    from resumespec.conformance.trace import read_trace

    path = write(failed, tmp_path / "t.jsonl")
    actions = [st.action for st in steps_of(list(read_trace(path))).steps]
    assert actions.count("SenderWriteSession") == 3 and actions.count("SenderWriteDead") == 1
    v = check_tlc([path], timeout=600)
    assert v.verdict == "conforms", v.message
    evs = list(failed)
    i = len(evs) - 1 - [ev["event"] for ev in reversed(evs)].index("status_sent")
    evs.insert(i + 1, dict(evs[i]))                  # a third Failed: no round queued
    v = check_tlc([write(evs, tmp_path / "m.jsonl")], timeout=600)
    assert v.verdict == "violates", v.message
