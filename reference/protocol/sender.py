"""The encode side (sender): one room per request.  Pure functions over
immutable state, one per spec action:

==============================  ==========================================
spec action                     function
==============================  ==========================================
``SenderRecvInit(r, s)``        ``sender_recv_init``
``SenderRecvResume(r, s)``      ``sender_recv_resume``
``SenderRecvAbort(r, s)``       ``sender_recv_abort``
``SenderStartRound(r)``         ``sender_start_round``
``SenderEndRound(r)``           ``sender_end_round``
``WriteError(r)``               ``write_error``
``SenderFailDead(r)``           ``sender_fail_dead``
``SenderQueuedRound(r)``        ``sender_queued_round``
``SenderWriteSession(r, s)``    ``sender_write_session``
``Heartbeat(r)`` (encode half)  ``peer_dies``
==============================  ==========================================

The sessions the sender counts as dead (the spec's ``txDead``, the engine
fork's ``failed_sessions``) belong to the sender, not to one room: the host
keeps the set, adds ``TxStep.dead`` after a step that names one, and passes
the set to ``sender_start_round`` and ``sender_fail_dead``.  Only with
``Params.fork_sender`` (the spec's ``ForkSender``) does a step name one;
otherwise the set stays empty.

With ``Params.queued_rounds`` (the spec's ``QueuedRounds``: the fork's
sender without the barrier, the four ``pull/13`` designs) every resume
queues a round (``TxRoom.queue``), and a round is a walk over the sessions
(``TxRoom.left``: the sessions it has still to write): ``sender_queued_round``
takes the next round, ``sender_write_session`` writes one session from its
offset and blocks as they are when the walk reaches it (or, at a dead
session, fails the room and tells that session alone); ``sender_start_round``
and ``sender_fail_dead`` are then never enabled.

The sender is deterministic: each function returns one ``TxStep`` or None
(not enabled).  Two guards depend on the data path, which the core does not
see: ``SenderEndRound`` and ``SenderRecvAbort`` wait until none of the
room's writes is in flight; the host says so with ``writes_in_flight``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .designs import Status
from .messages import CancelWrites, Ctl, Effect, SendStatus, StatusMsg, WriteBlock
from .params import Params
from .pool import nblk

# room phases (the spec's txPhase)
INIT, WRITING, AWAIT, DONE, FAILED, DEAD = "init", "writing", "await", "done", "failed", "dead"
TX_PHASES = (INIT, WRITING, AWAIT, DONE, FAILED, DEAD)


class TxSession(NamedTuple):
    """One session of a room (immutable; a named tuple, which a streaming
    checker makes several times per round at a tenth of a frozen
    dataclass's cost)."""

    sent: int = 0                   # txSent: tokens of this session written and confirmed
    alloc: int = 0                  # txAlloc: tokens the receiver allocated
    dst: tuple[int, ...] = ()       # txDst: destination blocks
    ready: bool = False             # txReady: init/resume received since the last round
    tok: int = 0                    # txTok: tokens of the current round


_NEW_SESSION = TxSession()     # (immutable: every new room's sessions share it)
# ``_new(TxSession, (sent, alloc, dst, ready, tok))`` is ``TxSession(sent, ...)``
# without the named tuple's Python-level constructor: every field given, in
# order (a third of the cost, in the steps a checker takes per round)
_new = tuple.__new__


class TxRoom(NamedTuple):
    """One request's room on the encode side (immutable, a named tuple as
    ``TxSession``)."""

    params: Params
    req: int
    total: int                      # Total[r]: tokens of the embedding
    phase: str = INIT
    sessions: tuple[TxSession, ...] = ()
    round: int = 0                  # txRound: rounds started
    partials: int = 0               # txPartials: rounds that ended partial
    partial: bool = False           # txPartial: the current round is partial
    queue: int = 0                  # txQueue: rounds queued, not started (queued_rounds)
    left: frozenset[int] = frozenset()   # txLeft: sessions the round has still to write

    @classmethod
    def initial(cls, params: Params, req: int, total: int) -> TxRoom:
        if total < 1:
            raise ValueError(f"request {req}: total must be >= 1 token, got {total}")
        return cls(params, req, total, INIT, (_NEW_SESSION,) * params.n_sessions)

    def session(self, s: int) -> TxSession:
        return self.sessions[s - 1]

    @property
    def alive(self) -> bool:
        """The spec's ``SenderAlive``."""
        return self.phase not in (DONE, FAILED, DEAD)

    def _set(self, s: int, x: TxSession) -> tuple[TxSession, ...]:
        out = list(self.sessions)
        out[s - 1] = x
        return tuple(out)

    def _with(self, phase: str, sessions: tuple[TxSession, ...], round: int | None = None,
              partials: int | None = None, partial: bool | None = None) -> TxRoom:
        """This room with a new phase and sessions (``dataclasses.replace``
        without its cost: a checker makes one per logged sender event)."""
        return _new(TxRoom, (self.params, self.req, self.total, phase, sessions,
                             self.round if round is None else round,
                             self.partials if partials is None else partials,
                             self.partial if partial is None else partial,
                             self.queue, self.left))

    def _failed_status(self, s: int) -> StatusMsg:
        # Before the first round the sender may not know the length yet:
        # the spec's KnownTotal names 0 there.
        return StatusMsg(Status.FAILED, self.round, self.session(s).sent,
                         self.total if self.round else 0)


class TxStep(NamedTuple):
    """One step of the sender: the spec action, the room after it, the
    effects for the host, in order (immutable, a named tuple as ``TxRoom``)."""

    action: str
    state: TxRoom
    effects: tuple[Effect, ...]
    dead: int | None = None         # the session this step marks dead (ForkSender)


def sender_recv_init(tx: TxRoom, s: int, msg: Ctl) -> TxStep | None:
    """SenderRecvInit: store the destination of session ``s``.  Not enabled
    (None) once the room is closed: the message stays unread."""
    if msg.type != "init" or not tx.alive:
        return None
    x = TxSession(0, msg.alloc, msg.blocks, True, tx.session(s).tok)
    return TxStep("SenderRecvInit", tx._with(tx.phase, tx._set(s, x)), ())


def sender_recv_resume(tx: TxRoom, s: int, msg: Ctl) -> TxStep | None:
    """SenderRecvResume: the receiver is authoritative, its resume overwrites
    sent/allocated/destination.  A closed room drops it (still a step)."""
    if msg.type != "resume":
        return None
    queued = tx.params.queued_rounds
    if not (tx.alive or (queued and tx.phase == FAILED)):
        return TxStep("SenderRecvResume", tx, ())
    x = TxSession(msg.sent, msg.alloc, msg.blocks, True, tx.session(s).tok)
    nt = tx._with(tx.phase, tx._set(s, x))
    if queued:        # (the fork's embedding thread queues a round per resume)
        nt = nt._replace(queue=tx.queue + 1)
    return TxStep("SenderRecvResume", nt, ())


def sender_recv_abort(tx: TxRoom, s: int, msg: Ctl, writes_in_flight: bool) -> TxStep | None:
    """SenderRecvAbort (corrected design's abort message): once no write of
    the room is in flight, close the room (unless it already succeeded) and
    answer session ``s`` with Failed.  A dead room drops it."""
    if msg.type != "abort" or writes_in_flight:
        return None
    if tx.phase == DEAD:
        return TxStep("SenderRecvAbort", tx, ())
    nt = tx._with(DONE if tx.phase == DONE else FAILED, tx.sessions)
    return TxStep("SenderRecvAbort", nt, (SendStatus(tx.req, s, tx._failed_status(s)),))


def round_may_start(first_round: bool, ready: Sequence[bool], barrier: bool) -> bool:
    """SenderStartRound's guard on the sessions: the first round needs every
    session's init; a later one every session's resume (barrier) or any one."""
    return all(ready) if first_round or barrier else any(ready)


def round_tokens(total: int, sent: int, alloc: int) -> int:
    """Tokens a round writes for one session: ``min(remaining, allocated)``."""
    return min(max(0, total - sent), alloc)


def session_partial(total: int, sent: int, alloc: int) -> bool:
    """Is one session's share of a round partial: does more remain than its
    destination holds?  The round is partial when some session's share is."""
    return total - sent > alloc


def session_writes(tx: TxRoom, s: int) -> list[tuple[int, int, int, int]]:
    """The spec's ``RoundWrites(r, s)`` as plain tuples ``(block, first,
    count, aux)``: ``min(remaining, allocated)`` tokens from offset
    ``sent``, block by block into the destination (token positions
    ``first .. first + count - 1``); the aux row (the total) with the first
    block of the first round only (``aux`` 0: none)."""
    bs, x, total = tx.params.block_size, tx.sessions[s - 1], tx.total
    sent, dst = x.sent, x.dst
    tok = round_tokens(total, sent, x.alloc)
    n = min(nblk(tok, bs), len(dst))
    if not n:
        return []
    out = [(dst[0], sent + 1, bs if tok > bs else tok, total if sent == 0 else 0)]
    if n > 1:             # (every block full but the round's last, which may be short)
        out += [(dst[j], sent + j * bs + 1, bs, 0) for j in range(1, n)]
        last = tok - (n - 1) * bs
        if last < bs:
            out[-1] = (dst[n - 1], sent + (n - 1) * bs + 1, last, 0)
    return out


def round_writes(tx: TxRoom, s: int) -> list[WriteBlock]:
    """The writes of ``session_writes`` as ``WriteBlock`` effects."""
    return [WriteBlock(tx.req, s, b, first, count, aux)
            for b, first, count, aux in session_writes(tx, s)]


def sender_start_round(tx: TxRoom, writes: bool = True,
                       dead: frozenset[int] | set[int] = frozenset()) -> TxStep | None:
    """SenderStartRound: the first round once every session's init arrived; a
    later one once every session resumed (barrier) or any one did (no
    barrier: the others are written from their stale destinations, the
    ``once_no_barrier`` bug).  ``writes=False``: the step without its
    ``WriteBlock`` effects, for a host that takes them from
    ``session_writes(tx, s)`` of the room before the step (a streaming
    checker, which wants tuples, not objects).  Not enabled while the
    sender counts a session as ``dead``: ``sender_fail_dead`` instead."""
    p = tx.params
    phase = tx.phase
    if dead or p.queued_rounds or (phase != INIT and phase != AWAIT) or not round_may_start(
            phase == INIT, [x.ready for x in tx.sessions], p.barrier):
        return None
    effects: list[Effect] = []
    if writes:
        for s in p.sessions:
            effects.extend(round_writes(tx, s))
    total = tx.total
    sessions: list[TxSession] = []
    partial = False
    for x in tx.sessions:     # (a loop, not generators: a checker takes this step per round)
        sent, alloc = x.sent, x.alloc
        sessions.append(_new(TxSession, (sent, alloc, x.dst, False,
                                         round_tokens(total, sent, alloc))))
        if not partial and session_partial(total, sent, alloc):
            partial = True
    nt = _new(TxRoom, (p, tx.req, total, WRITING, tuple(sessions), tx.round + 1, tx.partials,
                       partial, tx.queue, tx.left))
    return _new(TxStep, ("SenderStartRound", nt, tuple(effects), None))


def sender_end_round(tx: TxRoom, writes_in_flight: bool) -> TxStep | None:
    """SenderEndRound: every write of the round completed; ``sent += tokens``
    and the status (Transferring if partial, else Success) to every session,
    with (round, sent, total) in the corrected design."""
    if tx.phase != WRITING or writes_in_flight or tx.left:
        return None
    partial = tx.partial
    queued = tx.params.queued_rounds      # (the offsets advanced as each session was written)
    status = Status.TRANSFERRING if partial else Status.SUCCESS
    req, rnd, total = tx.req, tx.round, tx.total
    bare = None if tx.params.design.status_carries_round else _BARE[status]
    sessions: list[TxSession] = []
    effects: list[Effect] = []
    for s, x in enumerate(tx.sessions, 1):
        sent = x.sent if queued else x.sent + x.tok
        sessions.append(_new(TxSession, (sent, x.alloc, x.dst, x.ready, x.tok)))
        effects.append(SendStatus(req, s, StatusMsg(status, rnd, sent, total) if bare is None
                                  else bare))
    nt = _new(TxRoom, (tx.params, req, total, AWAIT if partial else DONE, tuple(sessions), rnd,
                       tx.partials + 1 if partial else tx.partials, partial, tx.queue, tx.left))
    return _new(TxStep, ("SenderEndRound", nt, tuple(effects), None))


# a historical design's status message: the status alone (immutable, so shared)
_BARE = {st: StatusMsg(st, 0, 0, 0) for st in (Status.TRANSFERRING, Status.SUCCESS)}


def write_error(tx: TxRoom, session: int | None = None) -> TxStep | None:
    """WriteError: a data write of the current round fails; the room fails and
    its writes in flight are dropped.  The corrected design's rule (and any
    design without ``fork_sender``): every session is told Failed.  With
    ``fork_sender`` (the engine fork's sender) the write to ``session``
    failed: only that session is told, and the step marks it dead
    (``TxStep.dead``); the others learn it through the all-reduce."""
    if tx.phase != WRITING:
        return None
    effects: list[Effect] = [CancelWrites(tx.req)]
    if tx.params.fork_sender:
        if session is None or session not in tx.params.sessions:
            raise ValueError(f"fork_sender: a write error names the session whose write "
                             f"failed (1..{tx.params.n_sessions}), got {session}")
        if tx.params.queued_rounds:
            # the batch of ``session`` failed (the host checks that it is the one
            # being written): its offset does not advance, and the walk stops
            x = tx.session(session)
            nt = tx._with(FAILED, tx._set(session, x._replace(sent=x.sent - x.tok)))
            nt = nt._replace(left=frozenset())
            effects.append(SendStatus(tx.req, session, tx._failed_status(session)))
            return TxStep("WriteError", nt, tuple(effects), session)
        effects.append(SendStatus(tx.req, session, tx._failed_status(session)))
        return TxStep("WriteError", tx._with(FAILED, tx.sessions), tuple(effects), session)
    effects += [SendStatus(tx.req, s, tx._failed_status(s)) for s in tx.params.sessions]
    return TxStep("WriteError", tx._with(FAILED, tx.sessions), tuple(effects))


def sender_fail_dead(tx: TxRoom, dead: frozenset[int] | set[int], session: int | None = None,
                     written: frozenset[int] | set[int] | tuple[int, ...] = ()
                     ) -> TxStep | None:
    """SenderFailDead (``fork_sender`` only): a round could start but the
    sender counts a session as dead.  The fork walks the room's sessions in
    the order their inits arrived: it writes the live sessions before the
    first dead one (``written``, each batch synchronous), then fails the
    room and tells that dead one (``session``; default: the lowest dead)
    alone.  The step's ``WriteBlock`` effects have landed when the step is
    over: the host lands them at once (no write of the room is in flight in
    phase init or await).  None when not enabled or the choice is not one
    the spec allows (``session`` not dead, ``written`` not all live)."""
    if not tx.params.fork_sender or tx.params.queued_rounds or not dead \
            or tx.phase not in (INIT, AWAIT) \
            or not round_may_start(tx.phase == INIT, [x.ready for x in tx.sessions],
                                   tx.params.barrier):
        return None
    d = min(dead) if session is None else session
    w = frozenset(written)
    if d not in dead or w & frozenset(dead) or not w <= frozenset(tx.params.sessions):
        return None
    effects: list[Effect] = []
    sessions = list(tx.sessions)
    for s in sorted(w):
        effects.extend(round_writes(tx, s))
        x = tx.session(s)
        sessions[s - 1] = x._replace(sent=x.sent + round_tokens(tx.total, x.sent, x.alloc))
    effects.append(SendStatus(tx.req, d, tx._failed_status(d)))
    return TxStep("SenderFailDead", tx._with(FAILED, tuple(sessions)), tuple(effects))


def sender_queued_round(tx: TxRoom, writes_in_flight: bool) -> TxStep | None:
    """SenderQueuedRound (``queued_rounds``): the transfer worker takes the
    room's next round, once the last round's walk is over and its last batch
    returned: the first round once every session's init arrived, a later one
    when a resume queued it (also on a room that failed: it is still in the
    sender's table).  No write yet: ``sender_write_session`` walks the
    sessions."""
    p = tx.params
    if not p.queued_rounds or tx.left or writes_in_flight:
        return None
    phase = tx.phase
    if phase == INIT:
        if not all(x.ready for x in tx.sessions):
            return None
        queue = tx.queue
    elif phase in (AWAIT, FAILED) and tx.queue > 0:
        queue = tx.queue - 1
    else:
        return None
    sessions = tuple(_new(TxSession, (x.sent, x.alloc, x.dst, False, 0)) for x in tx.sessions)
    nt = _new(TxRoom, (p, tx.req, tx.total, FAILED if phase == FAILED else WRITING, sessions,
                       tx.round + 1, tx.partials, tx.partial, queue, frozenset(p.sessions)))
    return TxStep("SenderQueuedRound", nt, ())


def sender_write_session(tx: TxRoom, s: int, dead: frozenset[int] | set[int],
                         writes_in_flight: bool, writes: bool = True) -> TxStep | None:
    """SenderWriteSession (``queued_rounds``): the round's walk reaches
    session ``s`` once the batch before it returned.  A live session is
    written from its offset, allocation and blocks as they are now; its
    offset advances and the round is partial as this session's share is
    (the engine keeps the last session's).  A ``dead`` session fails the
    room, is told Failed (again, in a room that failed already) and ends
    the walk.  ``writes=False``: without the ``WriteBlock`` effects (see
    ``sender_start_round``)."""
    if not tx.params.queued_rounds or s not in tx.left or writes_in_flight \
            or tx.phase not in (WRITING, FAILED):
        return None
    if s in dead:
        nt = tx._with(FAILED, tx.sessions)._replace(left=frozenset())
        return TxStep("SenderWriteSession", nt, (SendStatus(tx.req, s, tx._failed_status(s)),))
    x = tx.session(s)
    tok = round_tokens(tx.total, x.sent, x.alloc)
    effects = tuple(round_writes(tx, s)) if writes else ()
    nt = tx._with(tx.phase, tx._set(s, _new(TxSession, (x.sent + tok, x.alloc, x.dst, x.ready,
                                                         tok))),
                  partial=session_partial(tx.total, x.sent, x.alloc))
    return TxStep("SenderWriteSession", nt._replace(left=tx.left - {s}), effects)


def peer_dies(tx: TxRoom) -> TxStep | None:
    """The encode half of Heartbeat: the sender dies, its writes stop.

    A room the sender already closed (done, failed) dies too: its last
    status may have died with the process before it left.  Only a dead
    room cannot die again (each room fails once)."""
    if tx.phase == DEAD:
        return None
    return TxStep("Heartbeat", tx._with(DEAD, tx.sessions), (CancelWrites(tx.req),))
