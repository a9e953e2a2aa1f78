"""One function per safety property of spec/ResumeBase.tla, judged on a trace.

Each ``check_<Property>`` looks at the checker's state (``conformance.
checker_native.State``) at one event and raises ``PropertyViolation`` when the
property fails there.  The names are the spec's (docs/model.md), plus a few
step conditions of the spec that the issue names as checks of their own
(``SenderOffsetFollowsResume``, ``AuxOnlyInFirstRound``, ``StatusMonotone``;
the first two compare a round_start with the writes the protocol core's
``SenderStartRound`` issued, which hold the rule).

Blocks are keyed ``(rank, block)``; a block is *held* by a request when the
allocator gave it to that request and it was not freed since.  A write is *in
flight* from ``round_start`` to its ``round_end``: when it lands in between is
not logged, so any state between is possible (the spec's ``WriteLand`` steps
freely); a property that fails in one of those states fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from resumespec.spec import properties as spec_properties

if TYPE_CHECKING:  # pragma: no cover
    from .checker_native import State


class PropertyViolation(Exception):
    """The trace reaches a state where a property of the spec is false."""

    def __init__(self, prop: str, message: str, expected: str):
        super().__init__(message)
        self.prop = prop
        self.message = message
        self.expected = expected


# The property names, in the order the report lists them: the spec's own
# (resumespec.spec.properties, less TypeOK, which a trace cannot break), then
# the step conditions of the spec that the checker reports by name.
SAFETY_PROPERTIES = tuple(p for p in spec_properties.SAFETY if p != "TypeOK") + (
    "SenderOffsetFollowsResume",
    "AuxOnlyInFirstRound",
    "StatusMonotone",
)
LIVENESS_PROPERTIES = spec_properties.LIVENESS
# Not a property: an event that no step of the spec can explain.
SPEC_STEP = "SpecStep"


def _fmt(blocks) -> str:
    return "[" + ", ".join(str(b) for b in blocks) + "]"


def check_NoSharedBlock(st: State, rank: int, req: int, blocks: list) -> None:
    """alloc returns only blocks no request holds (no block held by two requests)."""
    owner = st.owner
    for b in blocks:
        holder = owner.get((rank, b))
        if holder is not None:
            who = "itself" if holder == req else f"req {holder}"
            raise PropertyViolation(
                "NoSharedBlock",
                f"alloc on rank {rank} gave block {b} to req {req}, but {who} still holds it",
                f"alloc returns only free blocks; block {b} is held by req {holder}")
    if len(set(blocks)) != len(blocks):
        raise PropertyViolation(
            "NoSharedBlock", f"alloc on rank {rank} returned a block twice: {_fmt(blocks)}",
            "distinct free blocks")


def check_NoFreeAndHeld(st: State, rank: int, req: int, blocks: list) -> None:
    """free puts back only blocks the freeing request holds (else another holder
    keeps a block that is now also in the free list)."""
    owner = st.owner
    for b in blocks:
        holder = owner.get((rank, b))
        if holder is not None and holder != req:
            raise PropertyViolation(
                "NoFreeAndHeld",
                f"req {req} freed block {b} on rank {rank}, which req {holder} holds: "
                f"the block is now free and held at once",
                f"free only blocks req {req} holds: {_fmt(st.held_by(rank, req))}")


def check_NoDoubleFree(st: State, rank: int, req: int, blocks: list) -> None:
    """free never appends a block that is already free."""
    owner = st.owner
    seen = set()
    for b in blocks:
        if (rank, b) not in owner or b in seen:
            raise PropertyViolation(
                "NoDoubleFree",
                f"req {req} freed block {b} on rank {rank}, which is already free",
                f"free only blocks req {req} holds: {_fmt(st.held_by(rank, req))}")
        seen.add(b)


def check_WritesOnlyIntoOwnedBlocks_at_write(st: State, req: int, session: int,
                                             dst: list) -> None:
    """round_start writes only into blocks the session holds at that point."""
    owner = st.owner
    alive = st.rx_alive(req, session)
    for b in dst:
        holder = owner.get((session, b))
        if holder != req or not alive:
            if not alive:
                why = (f"req {req} has already {st.rx_phase_word(req, session)} on rank "
                       f"{session}")
            elif holder is None:
                why = f"block {b} is free on rank {session}"
            else:
                why = f"block {b} on rank {session} is held by req {holder}"
            raise PropertyViolation(
                "WritesOnlyIntoOwnedBlocks",
                f"the sender started writing req {req} into block {b} of rank {session}, "
                f"but {why}",
                f"writes only into blocks req {req} holds on rank {session}: "
                f"{_fmt(st.held_by(session, req))}")


def check_WritesOnlyIntoOwnedBlocks_at_free(st: State, rank: int, req: int,
                                            blocks: list) -> None:
    """A block with a write in flight is not given back (the write could land
    after the free, into a block another request may get)."""
    inflight = st.inflight
    for b in blocks:
        w = inflight.get((rank, b))
        if w is not None and w.logged:     # (see LoggedWritesOnlyIntoOwnedBlocks)
            raise PropertyViolation(
                "WritesOnlyIntoOwnedBlocks",
                f"req {req} freed block {b} on rank {rank} while the sender's write of "
                f"req {w.req} (round starting at offset {w.round_sent}) into it was still "
                f"in flight: the write may land in a free block",
                "free a block only after the round writing it has ended")


def check_WritesOnlyIntoOwnedBlocks_at_end(st: State, req: int, rank: int) -> None:
    """When a request stops waiting on a rank (failed, aborted, handed over),
    no write into its blocks on that rank may be in flight."""
    for b in st.writes_in_flight(req, rank, logged=True):
            raise PropertyViolation(
                "WritesOnlyIntoOwnedBlocks",
                f"req {req} ended on rank {rank} while the sender's write into "
                f"block {b} was in flight",
                "end a request only after the round writing its blocks has ended")


def check_NoReadDuringWrite(st: State, rank: int, req: int, blocks: Sequence[int]) -> None:
    """No buffer is read while a write into one of its blocks is in flight."""
    inflight = st.inflight
    for b in blocks:
        w = inflight.get((rank, b))
        if w is not None:
            raise PropertyViolation(
                "NoReadDuringWrite",
                f"req {req} read block {b} on rank {rank} while the sender's write of "
                f"req {w.req} into it (round starting at offset {w.round_sent}) was in "
                f"flight" + ("" if w.logged else
                             " (not logged yet: SenderStartRound writes every session "
                             "of the room at once, and another session's part is logged)"),
                "read a block only after the status that follows its round arrived")


def check_HandedDataIsSource(st: State, req: int, session: int, tokens: int,
                             ids: list | None) -> None:
    """What is handed to prefill is exactly the sender's embedding, in order."""
    total = st.total.get(req)
    if total is not None and tokens != total:
        raise PropertyViolation(
            "HandedDataIsSource",
            f"req {req} (session {session}) handed {tokens} tokens to prefill, but the "
            f"embedding has {total}",
            f"hand over exactly {total} tokens: positions 1..{total} of req {req}")
    if ids is None:
        return
    if len(ids) != tokens:
        raise PropertyViolation(
            "HandedDataIsSource",
            f"req {req} handed {len(ids)} token ids but says {tokens} tokens",
            "ids has one entry per token")
    pos = 0
    for pos, t in enumerate(ids, 1):
        if t[0] != req or t[1] != pos:
            raise PropertyViolation(
                "HandedDataIsSource",
                f"req {req} (session {session}) handed token {pos} = {t[0]}:{t[1]} to "
                f"prefill, which is " + (f"token {t[1]} of req {t[0]}" if t[0] else
                                         "an empty slot"),
                f"token {pos} is {req}:{pos} (the source, in order)")


def check_AtMostOneResumePerRound(st: State, req: int, session: int) -> None:
    """A session resumes at most once for each round that ended partial."""
    resumes = st.rx_resumes.get((req, session), 0) + 1
    partials = st.tx_partials.get(req, 0)
    if resumes > partials:
        raise PropertyViolation(
            "AtMostOneResumePerRound",
            f"req {req} sent resume #{resumes} on session {session}, but only {partials} "
            f"round(s) of the room have ended partial",
            f"at most {partials} resume(s) so far")


def check_SenderOffsetFollowsResume(ev: dict, plan: tuple, src: str,
                                    why: Callable[[], str]) -> None:
    """A session's round_start shows the writes the protocol core's
    SenderStartRound issued for it (``plan``: offset, tokens, destination
    blocks, aux row written, partial): it starts at the offset the last
    init/resume (``src``) carried, writes min(remaining, allocated) tokens
    into the first destination blocks, and is partial exactly when tokens
    remain.  ``why()``: the core's room, in words."""
    req, s, total = ev["req"], ev["session"], ev["total"]
    sent, tok, dst, _aux, partial = plan
    if ev["sent_tokens"] != sent:
        raise PropertyViolation(
            "SenderOffsetFollowsResume",
            f"the sender started req {req} session {s} at offset {ev['sent_tokens']}, but "
            f"the last {src} carried offset {sent}",
            f"round_start sent_tokens = {sent} {why()}")
    if ev["tokens"] != tok:
        raise PropertyViolation(
            "SenderOffsetFollowsResume",
            f"the sender writes {ev['tokens']} tokens of req {req} session {s}, but the "
            f"design writes {tok} there",
            f"round_start tokens = {tok}: min(remaining, allocated) {why()}")
    if ev["partial"] != partial:
        raise PropertyViolation(
            "SenderOffsetFollowsResume",
            f"the round of req {req} session {s} says partial={ev['partial']}, but "
            f"{total - sent} tokens remain from offset {sent}",
            f"partial = {partial} {why()}")
    if ev["dst_blocks"] != dst:
        raise PropertyViolation(
            "SenderOffsetFollowsResume",
            f"the sender writes req {req} session {s} into {_fmt(ev['dst_blocks'])}, but the "
            f"design writes {tok} tokens into {_fmt(dst)}",
            f"dst_blocks = {_fmt(dst)}: the first blocks of the last {src}'s destination "
            f"{why()}")


def check_AuxOnlyInFirstRound(ev: dict, plan: tuple) -> None:
    """The aux row (the total) is written in the first block of the first
    round only (``plan`` as for check_SenderOffsetFollowsResume)."""
    sent, aux = plan[0], plan[3]
    if ev["aux_written"] != aux:
        where = "the first round" if sent == 0 else f"a later round (offset {sent})"
        raise PropertyViolation(
            "AuxOnlyInFirstRound",
            f"the round of req {ev['req']} session {ev['session']} at {where} has "
            f"aux_written={ev['aux_written']}",
            f"aux_written = {aux} (the aux row goes with the first block of the first "
            f"round only)")


def check_StatusMonotone(st: State, req: int, session: int, status: int) -> None:
    """The sender's status for a room only grows (Failed may overwrite anything)."""
    last = st.tx_status_sent.get((req, session))
    if status != 0 and last is not None and status < last:
        from .trace import STATUSES
        raise PropertyViolation(
            "StatusMonotone",
            f"the sender sent {STATUSES[status]} for req {req} to session {session} "
            f"after {STATUSES[last]}",
            f"a status >= {STATUSES[last]}, or Failed")
