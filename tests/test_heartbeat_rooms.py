"""A killed encode process fails every open room (spec ``Heartbeat``).

The language side's heartbeat checker fails each room on a dead peer, one
after the other: ``Heartbeat(r)`` stays enabled after it fired, each room
failing once.  Checked here in the spec (TLC, with the core's state graph
beside it), in the core's host (fault containment), and in both trace
checkers on a log of two rooms failed by one loss.
"""

from __future__ import annotations

from pathlib import Path

from test_core_equivalence import check_model

from resumespec.conformance import synth
from resumespec.conformance.checker_native import check_native
from resumespec.conformance.tlc_trace import check_tlc
from resumespec.reference.protocol.spechost import World

# Two requests of one round each on one rank, the heartbeat the only fault.
CONSTANTS = ("NReq=2 NSess=1 Total=<<1, 1>> BlockSize=1 NBlocks=2 InitTokens=1 Cap=0 "
             "Order=fifo ResumeOrder=alloc_first Barrier=True Faults={heartbeat}")


def _after(world: World, *steps: tuple[str, int]) -> World:
    for action, r in steps:
        nxt = [m.world for m in world.moves() if m.action == action and m.req == r]
        assert nxt, f"{action}({r}) not enabled"
        world = nxt[0]
    return world


def test_core_fails_every_open_room_once():
    w = World.from_model("corrected", CONSTANTS)
    w = _after(w, ("ReceiverInit", 1), ("ReceiverInit", 2), ("Heartbeat", 1))
    # the encode side is dead: the other open room may fail too, the first not again
    hb = {m.req for m in w.moves() if m.action == "Heartbeat"}
    assert hb == {2}
    w = _after(w, ("Heartbeat", 2), ("PollFailed", 1), ("PollFailed", 2))
    assert all(w.rx.requests[r].phase == "failed" for r in (1, 2))
    assert not [m for m in w.moves() if m.action == "Heartbeat"]
    # two rooms failed by one fault: each room the loss hit counts
    assert "EachFailureHasAFault" not in w.safety_violations()


def test_core_equals_tlc_with_two_rooms_and_a_heartbeat(tmp_path: Path):
    """The core's successors equal TLC's state graph where a second room
    can fail by the same heartbeat loss (no quick model has two rooms and
    the heartbeat fault)."""
    (tmp_path / "MC_hb_rooms.tla").write_text(
        "---- MODULE MC_hb_rooms ----\nEXTENDS ResumeCorrected\n"
        "MCTotal == <<1, 1>>\nMCFaults == {\"heartbeat\"}\n====\n")
    (tmp_path / "MC_hb_rooms.cfg").write_text(
        "CONSTANTS\n  NReq = 2\n  NSess = 1\n  BlockSize = 1\n  NBlocks = 2\n"
        "  InitTokens = 1\n  Cap = 0\n  Order = \"fifo\"\n  Barrier = TRUE\n"
        "  ForkSender = FALSE\n  Total <- MCTotal\n  Faults <- MCFaults\n")
    work = tmp_path / "work"
    work.mkdir()
    model = {"variant": "corrected", "constants": CONSTANTS,
             "module": str(tmp_path / "MC_hb_rooms.tla"),
             "cfg": str(tmp_path / "MC_hb_rooms.cfg")}
    out = check_model(model, work)
    assert out["problems"] == []
    assert out["states"] > 0


def _log_loss(log: synth._Log, lang: str, r: int, b: int) -> None:
    """The rank's heartbeat checker fails req ``r``, which frees block ``b``."""
    log.emit(lang, "heartbeat_fail", req=r)
    log.emit(lang, "poll", req=r, status="Failed", decision="fail")
    log.emit(lang, "free", rank=1, req=r, blocks=[b])
    log.emit(lang, "fail", req=r, reason="heartbeat lost")


def _both_checkers(path: Path, events: list[dict]):
    synth.write(path, iter(events))
    return check_native([str(path)]), check_tlc([str(path)], timeout=300)


def _two_rooms_one_loss(order: str = "fifo") -> list[dict]:
    log = synth._Log()
    lang = "language/1"
    for p in ("encode", lang):
        log.emit(p, "config", block_size=1, nblocks=2, nsess=1, init_tokens=1,
                 variant="once", order=order, faults=["heartbeat"])
    for r, b in ((1, 0), (2, 1)):
        log.emit(lang, "alloc", rank=1, req=r, tokens=1, blocks=[b])
        log.emit(lang, "init_sent", req=r, session=1, blocks=[b], allocated_tokens=1)
        log.emit("encode", "init_recv", req=r, session=1, blocks=[b], allocated_tokens=1)
    for r, b in ((1, 0), (2, 1)):
        _log_loss(log, lang, r, b)
    return log.out


def test_two_rooms_failed_by_one_heartbeat_loss_conform(tmp_path: Path):
    native, tlc = _both_checkers(tmp_path / "two_rooms.jsonl", _two_rooms_one_loss())
    assert native.verdict == "conforms", native.to_json()
    assert tlc.verdict == "conforms", tlc.to_json()


def test_heartbeat_loss_of_a_room_not_yet_open_violates(tmp_path: Path):
    """The rule is per open room: a loss logged for a request whose init the
    receiver has not sent yet is no spec step, in either checker."""
    events = _two_rooms_one_loss()
    k = next(i for i, e in enumerate(events) if e["event"] == "alloc" and e["req"] == 2)
    hb2 = next(i for i, e in enumerate(events)
               if e["event"] == "heartbeat_fail" and e["req"] == 2)
    moved = events[:k] + [events[hb2]] + [e for i, e in enumerate(events) if i >= k and i != hb2]
    native, tlc = _both_checkers(tmp_path / "early.jsonl", synth.renumber(moved))
    assert native.verdict == "violates", native.to_json()
    assert tlc.verdict == "violates", tlc.to_json()
    assert native.prop == tlc.prop == "SpecStep"


def test_core_fails_a_waiting_request_whose_room_the_sender_closed():
    """The sender ended the round with Success and closed the room; the
    status is still in flight when the encode side dies.  The receiver
    waits, so its heartbeat checker may fail the request: the room dies
    (once), the request fails, and a Success that does arrive later cannot
    raise the corrected design's Failed again."""
    w = World.from_model("corrected", CONSTANTS)
    w = _after(w, ("ReceiverInit", 1), ("SenderRecvInit", 1), ("SenderStartRound", 1))
    while w.wire[0]:
        w = next(m.world for m in w.moves() if m.action == "Next")   # WriteLand
    w = _after(w, ("SenderEndRound", 1))
    assert w.tx[1].phase == "done" and w.st[(1, 1)]          # Success in flight
    w = _after(w, ("Heartbeat", 1))
    assert w.tx[1].phase == "dead"
    assert not [m for m in w.moves() if m.action == "Heartbeat" and m.req == 1]
    w = _after(w, ("DeliverStatus", 1), ("PollFailed", 1))
    assert w.rx.requests[1].phase == "failed"
    assert "EachFailureHasAFault" not in w.safety_violations()


def _success_then_loss(order: str = "fifo") -> list[dict]:
    """One request of one round: the encode side logs Success, then dies
    before the status leaves; the rank fails the request on heartbeat loss."""
    log = synth._Log()
    lang = "language/1"
    for p in ("encode", lang):
        log.emit(p, "config", block_size=1, nblocks=2, nsess=1, init_tokens=1,
                 variant="corrected", order=order, faults=["heartbeat"])
    log.emit(lang, "alloc", rank=1, req=1, tokens=1, blocks=[0])
    log.emit(lang, "init_sent", req=1, session=1, blocks=[0], allocated_tokens=1)
    log.emit("encode", "init_recv", req=1, session=1, blocks=[0], allocated_tokens=1)
    log.emit("encode", "round_start", req=1, session=1, sent_tokens=0, tokens=1, total=1,
             src_blocks=[0], dst_blocks=[0], partial=False, aux_written=True)
    log.emit("encode", "round_end", req=1, session=1, sent_tokens=1, ok=True)
    log.emit("encode", "status_sent", req=1, session=1, status="Success")
    _log_loss(log, lang, 1, 0)
    return log.out


def test_a_success_lost_with_the_sender_then_heartbeat_loss_conforms(tmp_path: Path):
    native, tlc = _both_checkers(tmp_path / "lost_success.jsonl", _success_then_loss())
    assert native.verdict == "conforms", native.to_json()
    assert tlc.verdict == "conforms", tlc.to_json()

