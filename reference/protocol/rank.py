"""One language rank at a time: the receiver's actions for a host or a
checker that sees each rank on its own.

In an engine every language rank runs the scheduler's poll in its own
process, on the all-reduced (MIN) status; a log shows each rank's steps
separately.  The lockstep functions of ``receiver`` take every rank of a
request at once.  A rank's own decision depends only on its own state, its
own pool and the combined status, so asking the lockstep function about a
request of *one* rank gives that rank's outcomes.  These helpers build such a
one-rank state and read the rank's state back out; they hold no rule of
their own (every decision is ``receiver``'s).

Blocks: the caller passes how many blocks the rank has free
(``nfree``); the pool is made of stand-in ids ``-1, -2, ...`` in that order
and the allocator order is FIFO, so the rank's resume takes ``-1 ..  -k``.
``rename_blocks`` then puts the blocks the engine really got in their place.
Which blocks an allocator hands out is the host's business (the checker
checks ownership on its own); how many, and everything the messages say, is
the core's.
"""

from __future__ import annotations

from dataclasses import replace

from .designs import AllocOrder, Status
from .messages import Ctl, Read, SendCtl, StatusMsg
from .params import Params
from .pool import Pool
from .receiver import (
    NEW,
    QUEUED,
    RxRequest,
    RxSession,
    RxState,
    Step,
    deliver_status,
    receiver_init,
    receiver_poll,
)


def one_rank_params(params: Params) -> Params:
    """``params`` for a request of one rank, FIFO allocation (see the module doc)."""
    return replace(params, n_sessions=1, order=AllocOrder.FIFO)


def one_rank_state(p1: Params, r: int, x: RxSession, nfree: int = 0, phase: str = QUEUED) -> RxState:
    """A receiver holding request ``r`` of one rank in state ``x``, with
    ``nfree`` free blocks (ids ``-1 .. -nfree``).  ``p1``: ``one_rank_params``."""
    return RxState(p1, {r: RxRequest(phase, (x,))}, (Pool(tuple(range(-1, -nfree - 1, -1))),))


def rank_of(rx: RxState, r: int) -> RxSession:
    """The one rank's state of request ``r`` in a one-rank receiver."""
    return rx.requests[r].sessions[0]


def rank_deliver(p1: Params, r: int, x: RxSession, msg: StatusMsg) -> RxSession:
    """``DeliverStatus`` on one rank: its state after ``msg`` arrives."""
    return rank_of(deliver_status(one_rank_state(p1, r, x), r, 1, msg).state, r)


def rank_poll_transferring(p1: Params, r: int, x: RxSession, combined: int, nfree: int,
                           aux: int | None) -> list[list[Step]]:
    """What one rank may do in one poll that sees ``combined`` (the MIN over
    the ranks), given its state ``x``, ``nfree`` free blocks and the aux row
    it read (``aux``; historical designs).  Each outcome is the list of core
    steps the rank takes in that poll: the corrected design may cache a
    round and then resume it in the same poll (two steps), a historical
    design acts once.  Read-only polls are left out (they change nothing).
    An empty list: the design does nothing in this poll."""
    rx = one_rank_state(p1, r, replace(x, status=combined), nfree)
    seen = {1: aux} if aux is not None else None
    out: list[list[Step]] = []
    for step in receiver_poll(rx, r, seen):
        if step.action == "PollReadOnly":
            continue
        chain = [step]
        if step.action == "PollTransferringCorrected" and not _sends(step):
            more = receiver_poll(step.state, r, seen)
            out.extend(chain + [m] for m in more if m.action == "PollTransferringCorrected")
        out.append(chain)
    return out


def _sends(step: Step) -> Ctl | None:
    for e in step.effects:
        if isinstance(e, SendCtl):
            return e.msg
    return None


def sent_ctl(chain: list[Step]) -> Ctl | None:
    """The control message an outcome of ``rank_poll_transferring`` sends (None: none)."""
    for step in chain:
        m = _sends(step)
        if m is not None:
            return m
    return None


def rename_blocks(x: RxSession, got: tuple[int, ...], logged: tuple[int, ...],
                  status: int | None = None) -> RxSession:
    """``x`` with the blocks of an allocation (``got``, as the core chose them)
    replaced by the ones the engine logged, position by position (and, if
    given, its local ``status``)."""
    if got == logged and (status is None or status == x.status):
        return x
    m = dict(zip(got, logged))
    changes: dict[str, object] = {"blocks": tuple(m.get(b, b) for b in x.blocks)}
    if x.last_idx:
        changes["last_idx"] = tuple(m.get(b, b) for b in x.last_idx)
    if status is not None:
        changes["status"] = status
    return _with(x, changes)


def _with(x: RxSession, changes: dict[str, object]) -> RxSession:
    """``dataclasses.replace`` without its per-call field checks (a checker
    renames blocks on every resume): the same frozen value, built directly."""
    new = object.__new__(RxSession)
    d = new.__dict__
    d.update(x.__dict__)
    d.update(changes)
    return new


def rank_init(p1: Params, r: int, blocks: tuple[int, ...]) -> tuple[RxSession, Ctl]:
    """``ReceiverInit`` on one rank that got ``blocks`` from its allocator:
    the rank's state after it (holding ``blocks``) and the init message the
    design sends (its block count is the design's, ``init_tokens``; compare
    it with what was logged)."""
    need = -(-p1.init_tokens // p1.block_size)
    rx = one_rank_state(p1, r, RxSession(), max(need, len(blocks)), phase=NEW)
    step = receiver_init(rx, r)[0]
    ctl = next(e.msg for e in step.effects if isinstance(e, SendCtl))
    return rename_blocks(rank_of(step.state, r), ctl.blocks, blocks), ctl


STAND_IN_BASE = -1_000_001   # the rank's own blocks in a normal form: -1_000_001, -1_000_002, ...


def normal_form(x: RxSession) -> tuple[tuple[object, ...], tuple[int, ...], tuple[int, ...]]:
    """``x`` up to the names of its blocks: ``(key, stand_ins, names)``.
    Two ranks with equal keys are in the same state but for which blocks
    they hold; every core function gives them the same outcomes but for
    those names.  ``names`` are the block ids ``x`` mentions (current
    blocks, then ``last_idx``'s others), ``stand_ins`` the ids that replace
    them in the normal form (``rename_blocks(x, names, stand_ins)``), kept
    apart from the pool's stand-ins ``-1, -2, ...``.  A host that asks the
    core about many ranks (a checker) can remember outcomes by key."""
    names = x.blocks
    if x.last_idx and x.last_idx != x.blocks:
        names = names + tuple(b for b in dict.fromkeys(x.last_idx) if b not in names)
    if len(set(names)) != len(names):
        names = tuple(dict.fromkeys(names))
    m = {b: STAND_IN_BASE - i for i, b in enumerate(names)}
    key = tuple(tuple(m[b] for b in v) if k in ("blocks", "last_idx") else v
                for k, v in x.__dict__.items())
    return key, tuple(m.values()), names


def normalized(x: RxSession, status: int | None = None) -> tuple[RxSession, tuple[int, ...]]:
    """``x`` in normal form (its blocks named by stand-ins, see
    ``normal_form``; if given, with local ``status``) and the real names of
    those stand-ins, in order: ``STAND_IN_BASE - i`` is ``names[i]``."""
    _, stand, names = normal_form(x)
    return rename_blocks(x, names, stand, status), names


def rank_handoff_read(p1: Params, r: int, x: RxSession, aux: int) -> Read:
    """``PollSuccess`` on one rank: the read that hands this rank's tokens of
    the last round to prefill (after its cache), given the aux row it reads
    (``aux``; historical designs without a cached total)."""
    rx = one_rank_state(p1, r, replace(x, status=Status.SUCCESS))
    step = receiver_poll(rx, r, {1: aux})[0]
    return next(e for e in step.effects if isinstance(e, Read))
