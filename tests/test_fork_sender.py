"""The engine fork's sender after a failed write (the spec's ForkSender).

The fork's transfer_worker (the same in all five historical commits) marks a
session dead after a failed write, tells only that session Failed, and fails
every later round that meets a dead session without writing it.  Here: the
core's steps for it, the reference implementation, both checkers on traces
recorded from the fork (conformance/corpus/sglang/*/dead_session.jsonl and
mainline's two-rank traces), and the trace grouping of TLC trace validation.
The spec models themselves run in tests/test_models.py (their manifest
entries) and are compared with the core state by state in
tests/test_core_equivalence.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import pytest

from resumespec.conformance.checker_native import check_native
from resumespec.conformance.tlc_trace import check_tlc, steps_of
from resumespec.conformance.trace import read_trace
from resumespec.reference.protocol import Ctl, Params, SendStatus, TxRoom
from resumespec.reference.protocol import sender as tx
from resumespec.reference.protocol.designs import design_of_commit
from resumespec.reference.protocol.spechost import World

ROOT = Path(__file__).resolve().parents[1]
SGLANG = ROOT / "conformance" / "corpus" / "sglang"
COMMITS = ("d1bceb411", "7a7a71977", "caff70bd5", "2141e0842", "cca20b094")


def writing_room(fork: bool, n: int = 2) -> TxRoom:
    """A room of ``n`` sessions whose first round is being written."""
    room = TxRoom.initial(Params("once", n_sessions=n, fork_sender=fork), 1, 3)
    for s in range(1, n + 1):
        step = tx.sender_recv_init(room, s, Ctl("init", (s,), 0, 1, 0))
        assert step is not None
        room = step.state
    step = tx.sender_start_round(room)
    assert step is not None
    return step.state


def statuses(step: tx.TxStep) -> dict[int, int]:
    return {e.session: int(e.msg.status) for e in step.effects if isinstance(e, SendStatus)}


# ---------------------------------------------------------------------------
# the protocol core
# ---------------------------------------------------------------------------
def test_write_error_tells_every_session_without_fork_sender():
    step = tx.write_error(writing_room(False))
    assert step is not None and step.state.phase == tx.FAILED
    assert statuses(step) == {1: 0, 2: 0} and step.dead is None


@pytest.mark.parametrize("d", [1, 2])
def test_fork_write_error_tells_only_the_failing_session_and_marks_it_dead(d):
    step = tx.write_error(writing_room(True), d)
    assert step is not None and step.state.phase == tx.FAILED
    assert statuses(step) == {d: 0}
    assert step.dead == d


def test_fork_write_error_needs_the_session():
    with pytest.raises(ValueError, match="names the session"):
        tx.write_error(writing_room(True))


def test_a_dead_session_fails_the_next_round_instead_of_starting_it():
    room = TxRoom.initial(Params("once", n_sessions=2, fork_sender=True), 2, 3)
    assert tx.sender_fail_dead(room, {2}) is None            # no init yet: no round either
    for s in (1, 2):
        room = tx.sender_recv_init(room, s, Ctl("init", (s,), 0, 1, 0)).state
    assert tx.sender_start_round(room, dead={2}) is None
    step = tx.sender_fail_dead(room, {2, 1})
    assert step is not None and step.action == "SenderFailDead"
    assert step.state.phase == tx.FAILED and step.state.round == 0
    assert statuses(step) == {1: 0}                          # the loop stops at the first
    assert not any(type(e).__name__ == "WriteBlock" for e in step.effects)
    assert tx.sender_fail_dead(room, set()) is None
    assert tx.sender_start_round(room) is not None           # nothing dead: the round starts


def test_the_live_sessions_before_the_dead_one_are_written_within_the_step():
    room = TxRoom.initial(Params("once", n_sessions=2, fork_sender=True), 2, 3)
    for s in (1, 2):
        room = tx.sender_recv_init(room, s, Ctl("init", (s,), 0, 1, 0)).state
    step = tx.sender_fail_dead(room, {2}, 2, {1})
    assert step is not None and statuses(step) == {2: 0}
    writes = [e for e in step.effects if type(e).__name__ == "WriteBlock"]
    assert [(w.session, w.block, w.first, w.count) for w in writes] == [(1, 1, 1, 1)]
    assert [x.sent for x in step.state.sessions] == [1, 0]
    # choices the spec does not allow: a live session told, a dead one written
    assert tx.sender_fail_dead(room, {2}, 1, ()) is None
    assert tx.sender_fail_dead(room, {2}, 2, {2}) is None


def test_without_fork_sender_no_round_fails_for_a_dead_session():
    room = TxRoom.initial(Params("once", n_sessions=1), 1, 3)
    room = tx.sender_recv_init(room, 1, Ctl("init", (1,), 0, 1, 0)).state
    assert tx.sender_fail_dead(room, {1}) is None


def test_spec_host_reads_fork_sender_from_the_model_constants():
    entry = next(m for m in json.loads((ROOT / "spec" / "manifest.json").read_text())["models"]
                 if m["name"] == "once_fork_dead_session")
    w = World.from_model(entry["variant"], entry["constants"])
    assert w.params.fork_sender and w.to_spec()["txDead"] == frozenset()
    plain = World.from_model("once", entry["constants"].replace(" ForkSender=True", ""))
    assert not plain.params.fork_sender


# ---------------------------------------------------------------------------
# the reference implementation
# ---------------------------------------------------------------------------
def test_reference_fails_the_second_request_on_a_dead_session():
    from resumespec.reference.scheduler import run
    from resumespec.reference.world import Config
    steps = [{"step": "ReceiverInit", "req": 1}, {"step": "SenderRecvInit", "req": 1, "session": 1},
             {"step": "ReceiverInit", "req": 2}, {"step": "SenderRecvInit", "req": 2, "session": 1},
             {"step": "SenderStartRound", "req": 1},
             {"step": "WriteError", "req": 1, "session": 1},
             {"step": "SenderFailDead", "req": 2}]
    props = ("NoDoubleFree", "EachFailureHasAFault")
    cfg = dict(variant="once", tokens=[2, 1], block_size=1, pool=3, faults=("write_error",),
               props=props)
    res = run(Config(fork_sender=True, **cfg), steps)
    assert (res.outcome, res.prop) == ("fault_spread", "EachFailureHasAFault"), res.where
    assert res.world.sender.dead == {1}
    # the corrected design's own rule: the write error fails only its room
    fixed = run(Config(**dict(cfg, variant="corrected")),
                steps[:5] + [{"step": "WriteError", "req": 1}])
    assert fixed.outcome == "ok", fixed.where
    assert fixed.world.receiver.rx.requests[2].phase == "done"


# ---------------------------------------------------------------------------
# the checkers, on traces recorded from the fork
# ---------------------------------------------------------------------------
def without_fork_sender(src: Path, dst: Path) -> Path:
    lines = [json.loads(x) for x in src.read_text().splitlines()]
    for ev in lines:
        ev.pop("fork_sender", None)
    dst.write_text("".join(json.dumps(ev) + "\n" for ev in lines))
    return dst


@pytest.mark.parametrize("commit", COMMITS)
def test_dead_session_trace_conforms_with_fork_sender_declared(commit, tmp_path):
    path = SGLANG / commit / "dead_session.jsonl"
    v = check_native([str(path)])
    assert v.verdict == "conforms", v.message
    assert v.coverage["WriteError"] == 1
    if design_of_commit(commit).barrier:
        assert v.coverage["SenderFailDead"] == 1
    else:    # the fork's sender without the barrier: QueuedRounds (test_queued_rounds.py)
        assert v.coverage["SenderFailDead"] == 0 and v.coverage["SenderQueuedRound"] >= 1
    # the same trace under the spec's other rule: a Failed no step sends
    old = check_native([str(without_fork_sender(path, tmp_path / "t.jsonl"))])
    assert (old.verdict, old.prop) == ("violates", "SpecStep"), old.message
    assert "Failed for req 2" in old.message


def test_two_rank_write_error_tells_one_rank_the_other_learns_by_all_reduce():
    path = SGLANG / "cca20b094" / "tp2_write_error.jsonl"
    events = [ev for _, ev in read_trace(str(path))]
    failed = [ev for ev in events if ev["event"] == "status_sent" and ev["status"] == "Failed"]
    assert [ev["session"] for ev in failed] == [1]
    fails = {ev["proc"] for ev in events if ev["event"] == "fail"}
    assert fails == {"language/1", "language/2"}
    v = check_native([str(path)])
    assert v.verdict == "conforms", v.message
    assert v.coverage["WriteError"] == 1


def test_a_round_on_a_dead_session_is_a_violation_with_fork_sender(tmp_path):
    """A sender that writes a round of a room after one of its sessions was
    marked dead is not the fork's sender: the checker names the rule."""
    path = SGLANG / "cca20b094" / "dead_session.jsonl"
    lines = path.read_text().splitlines()
    k = next(i for i, x in enumerate(lines)
             if '"status_sent"' in x and '"req":2' in x)
    ev = json.loads(lines[k])
    start = dict(ev, event="round_start", sent_tokens=0, tokens=3, total=3, src_blocks=[0],
                 dst_blocks=[3], partial=False, aux_written=True)
    del start["status"]
    lines[k] = json.dumps(start)
    bad = tmp_path / "round_on_dead.jsonl"
    bad.write_text("\n".join(lines[:k + 1]) + "\n")
    v = check_native([str(bad)])
    assert (v.verdict, v.prop) == ("violates", "SpecStep"), v.message
    assert "for session 1, which it counts as dead" in v.message


def test_dead_session_second_in_the_loop(tmp_path):
    """The loop writes rank 1, then meets dead session 2: conforms; the
    same trace with rank 1 written into a block it never allocated does not."""
    path = SGLANG / "cca20b094" / "tp2_dead_second_session.jsonl"
    v = check_native([str(path)])
    assert v.verdict == "conforms", v.message
    assert v.coverage["SenderFailDead"] == 1
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    k = max(i for i, ev in enumerate(lines) if ev["event"] == "round_start")
    assert lines[k]["req"] == 2 and lines[k]["session"] == 1
    lines[k]["dst_blocks"] = [b + 1 for b in lines[k]["dst_blocks"]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(ev) + "\n" for ev in lines))
    assert check_native([str(bad)]).verdict == "violates"


def test_tlc_grouping_of_the_fork_steps():
    model = steps_of(list(read_trace(str(SGLANG / "cca20b094" / "tp2_dead_session.jsonl"))))
    assert model.constants["ForkSender"] is True
    acts = [(s.action, s.req, s.session) for s in model.steps
            if s.action in ("WriteError", "SenderFailDead")]
    assert acts == [("WriteError", 1, 1), ("SenderFailDead", 2, 1)]
    # the round the write error stopped (rank 2 never written) is not a log cut short
    assert not model.cut_at_end and not model.unlogged_writes


def test_second_rank_write_error_after_the_first_rank_was_written():
    """The fork writes the room's sessions in turn: rank 1's batch returned 0
    (round_end ok), then rank 2's failed; only session 2 is told."""
    path = SGLANG / "cca20b094" / "tp2_write_error_rank2.jsonl"
    events = [ev for _, ev in read_trace(str(path))]
    ends = [(ev["session"], ev["ok"]) for ev in events if ev["event"] == "round_end"]
    assert ends == [(1, True), (2, True), (1, True), (2, False)]     # two rounds
    v = check_native([str(path)])
    assert v.verdict == "conforms", v.message
    model = steps_of(list(read_trace(str(path))))
    # rank 1's second round_end began a SenderEndRound that never happens: no step
    assert [s.action for s in model.steps].count("SenderEndRound") == 1
    assert ("WriteError", 2) in [(s.action, s.session) for s in model.steps]


def test_tlc_trace_validation_agrees(tmp_path):
    dead = SGLANG / "cca20b094" / "dead_session.jsonl"
    assert check_tlc([str(dead)]).verdict == "conforms"
    old = check_tlc([str(without_fork_sender(dead, tmp_path / "t.jsonl"))])
    assert old.verdict == "violates", old.message
    for name in ("tp2_write_error_rank2", "tp2_dead_second_session"):
        v = check_tlc([str(SGLANG / "cca20b094" / f"{name}.jsonl")])
        assert v.verdict == "conforms", (name, v.message)
