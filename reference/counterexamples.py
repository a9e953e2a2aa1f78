"""Explicit schedules that reproduce each historical design's failure.

Each entry is written like a TLC counterexample: the configuration (the
spec's constants) and the sequence of actions, with the parameters that
matter. ``scheduler.run(config, steps)`` replays it; after the last step the
run goes on from the seed, so a prefix that leads into a hang is reported as
one. The analysis behind each is in docs/reference.md.

When the spec's own counterexamples land (``resumespec counterexample
MODEL``), these are to be checked against them step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

from .world import Config


def _round(req: int, session: int = 1, writes: int = 1) -> list[str]:
    """Sender writes one round of ``req`` to ``session`` and the status arrives."""
    return ([f"SenderStartRound req={req}"] + [f"WriteLand req={req}"] * writes
            + [f"SenderEndRound req={req}", f"DeliverStatus req={req} session={session}"])


def _start(req: int) -> list[str]:
    return [f"ReceiverInit req={req}", f"SenderRecvInit req={req} session=1"]


# Three rounds (capped resume allocation): resume once, then the second
# partial round is never resumed.
_HANG_3_ROUNDS = (_start(1) + _round(1) + ["ReceiverPoll req=1", "SenderRecvResume req=1 session=1"]
                  + _round(1) + ["ReceiverPoll req=1"])

# free_first: free old blocks, the allocation returns None (another request
# holds the rest of the pool), the failure path frees the old blocks again.
_DOUBLE_FREE = (["ReceiverInit req=1", "ReceiverInit req=2", "SenderRecvInit req=1 session=1"]
                + _round(1) + ["ReceiverPoll req=1"])

# Abort: the receiver frees its blocks while a write of the round is in flight.
_ABORT = _start(1) + ["SenderStartRound req=1", "Abort req=1", "WriteLand req=1"]

# sent_tokens: request 1 leaves its total (1) in block 0's aux row; request 2's
# resume blocks reuse block 0, so the stale aux says 1 token arrived; the
# second resume does not cache round 2 -> prefill gets tokens 1 and 3.
_STALE_AUX = (_start(1) + _round(1) + ["ReceiverPoll req=1", "PrefillDone req=1"]
              + _start(2) + _round(2) + ["ReceiverPoll req=2", "SenderRecvResume req=2 session=1"]
              + _round(2) + ["ReceiverPoll req=2", "SenderRecvResume req=2 session=1"]
              + _round(2) + ["ReceiverPoll req=2"])

# sent_tokens reads the buffer on every Transferring poll: also while the
# next round's writes are landing.
_READ_DURING_WRITE = (_start(1) + _round(1) + ["ReceiverPoll req=1", "SenderRecvResume req=1 session=1",
                                              "SenderStartRound req=1", "ReceiverPoll req=1"])

# Abort between rounds: nothing is written into freed blocks, but the sender
# is never told and waits for a resume forever (SenderRoomsClose).
_ABORT_ROOM_OPEN = _start(1) + _round(1) + ["Abort req=1"]

# Without the barrier, the sender starts the next round at the first resume
# and writes the other session with its old destination blocks (freed).
_NO_BARRIER = (["ReceiverInit req=1", "SenderRecvInit req=1 session=1", "SenderRecvInit req=1 session=2",
                "SenderStartRound req=1", "WriteLand req=1", "WriteLand req=1", "SenderEndRound req=1",
                "DeliverStatus req=1 session=1", "DeliverStatus req=1 session=2", "ReceiverPoll req=1",
                "SenderRecvResume req=1 session=1", "SenderStartRound req=1", "WriteLand req=1 session=2"])


@dataclass(frozen=True)
class Counterexample:
    name: str
    variant: str
    config: dict
    steps: tuple[str, ...]
    outcome: str        # what the replay must end in
    why: str


def _cx(name, variant, config, steps, outcome, why) -> Counterexample:
    return Counterexample(name, variant, config, tuple(steps), outcome, why)


_HANG_CFG = dict(tokens=[3], block_size=1, pool=4, cap=1)
_DF_CFG = dict(tokens=[4, 2], block_size=1, pool=2, cap=0)
_ABORT_CFG = dict(tokens=[2], block_size=1, pool=2, cap=0, faults=("abort",))

COUNTEREXAMPLES: dict[str, Counterexample] = {c.name: c for c in (
    _cx("flag_hang", "flag", _HANG_CFG, _HANG_3_ROUNDS, "hang", "resumes at most once"),
    _cx("indices_hang", "indices", _HANG_CFG, _HANG_3_ROUNDS, "hang",
        "blocks equal last_resume_indices after the first resume"),
    _cx("sent_tokens_hang", "sent_tokens", _HANG_CFG, _HANG_3_ROUNDS, "hang",
        "fresh resume blocks have aux 0: no new tokens seen"),
    _cx("cached_sent_hang", "cached_sent", _HANG_CFG, _HANG_3_ROUNDS, "hang",
        "cached partial_sent equals last_resume_at"),
    _cx("once_hang", "once", _HANG_CFG, _HANG_3_ROUNDS, "hang", "resumes only if nothing is cached"),
    _cx("flag_double_free", "flag", _DF_CFG, _DOUBLE_FREE, "double_free",
        "free_first: resume allocation None, failure path frees the old blocks again"),
    _cx("indices_double_free", "indices", _DF_CFG, _DOUBLE_FREE, "double_free", "as flag"),
    _cx("sent_tokens_double_free", "sent_tokens", _DF_CFG, _DOUBLE_FREE, "double_free", "as flag"),
    _cx("cached_sent_double_free", "cached_sent", _DF_CFG, _DOUBLE_FREE, "double_free", "as flag"),
    _cx("sent_tokens_stale_aux", "sent_tokens", dict(tokens=[1, 3], block_size=1, pool=2, cap=1),
        _STALE_AUX, "corruption", "stale aux length; round 2 never cached"),
    _cx("sent_tokens_read_during_write", "sent_tokens", _HANG_CFG, _READ_DURING_WRITE,
        "read_during_write", "reads the buffer on every Transferring poll"),
    _cx("flag_abort", "flag", _ABORT_CFG, _ABORT, "write_into_unowned", "abort frees, sender still writes"),
    _cx("indices_abort", "indices", _ABORT_CFG, _ABORT, "write_into_unowned", "as flag"),
    _cx("sent_tokens_abort", "sent_tokens", _ABORT_CFG, _ABORT, "write_into_unowned", "as flag"),
    _cx("cached_sent_abort", "cached_sent", _ABORT_CFG, _ABORT, "write_into_unowned", "as flag"),
    _cx("once_abort", "once", _ABORT_CFG, _ABORT, "write_into_unowned", "as flag"),
    _cx("once_abort_room_open", "once", dict(tokens=[3], block_size=1, pool=2, cap=0, faults=("abort",)),
        _ABORT_ROOM_OPEN, "hang", "the sender's room never closes after a local abort"),
    _cx("once_no_barrier", "once", dict(tokens=[2], block_size=1, pool=2, sessions=2, barrier=False),
        _NO_BARRIER, "write_into_unowned", "first resume starts the round; session 2 still has freed blocks"),
)}


def config_of(cx: Counterexample, **overrides) -> Config:
    kw = dict(cx.config)
    kw.update(overrides)
    return Config(variant=overrides.get("variant", cx.variant), **{k: v for k, v in kw.items() if k != "variant"})


def steps_of(cx: Counterexample) -> list[dict]:
    from .scheduler import parse_schedule_entry
    return [parse_schedule_entry(s, f"{cx.name} step {i + 1}") for i, s in enumerate(cx.steps)]
