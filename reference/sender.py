"""The encode side: the protocol core's sender rooms, hosted on torch buffers.

The sender holds one core room (``TxRoom``) per request and the source
blocks of every request's embedding.  Each spec step is one core call; its
effects go to the interpreter (``effects.py``): ``WriteBlock`` becomes a
one-sided write from the source block that holds the token, ``SendStatus``
a status message.  Nothing here decides: the round's size, destinations,
aux row, status and its fields are the core's.

* ``recv_init``   -> ``sender_recv_init``     (SenderRecvInit)
* ``recv_resume`` -> ``sender_recv_resume``   (SenderRecvResume)
* ``recv_abort``  -> ``sender_recv_abort``    (SenderRecvAbort)
* ``start_round`` -> ``sender_start_round``   (SenderStartRound)
* ``end_round``   -> ``sender_end_round``     (SenderEndRound)
* ``write_error`` -> ``write_error``          (WriteError)
* ``fail_dead``   -> ``sender_fail_dead``     (SenderFailDead, ``fork_sender`` only)

``dead`` is the spec's ``txDead``: the sessions the sender counts as dead
after a failed write (only with ``Params.fork_sender``, the engine fork's
rule); it belongs to the sender, not to a room.

Whether a room's writes are still in flight (the guard of
``SenderEndRound`` and ``SenderRecvAbort``) is the transport's to say.
"""

from __future__ import annotations

from . import protocol as core
from .effects import Interpreter
from .protocol import TxRoom, WriteBlock
from .protocol.sender import AWAIT, INIT


class Sender:
    def __init__(self, params: core.Params, fx: Interpreter) -> None:
        self.params, self.fx = params, fx
        self.rooms: dict[int, TxRoom] = {}
        self.src_blocks: dict[int, list[int]] = {}
        self._may_start: dict[int, tuple[TxRoom, bool]] = {}   # per room: the core's answer
        self.dead: set[int] = set()

    def add_room(self, req: int, total: int, src_blocks: list[int]) -> None:
        self.rooms[req] = TxRoom.initial(self.params, req, total)
        self.src_blocks[req] = list(src_blocks)

    def _in_flight(self, req: int) -> bool:
        return bool(self.fx.world.transport.pending_writes(req))

    def _ctl(self, req: int, s: int) -> core.Ctl:
        return self.fx.world.transport.ctl[(req, s)].popleft()

    def _done(self, req: int, step: core.TxStep | None, what: str) -> core.TxStep:
        if step is None:
            raise RuntimeError(f"{what} of req {req} is not enabled in the core")
        self.rooms[req] = step.state
        return step

    # -- SenderRecvInit / SenderRecvResume / SenderRecvAbort -------------
    def recv_init(self, req: int, s: int) -> None:
        msg = self._ctl(req, s)
        self._done(req, core.sender_recv_init(self.rooms[req], s, msg), "SenderRecvInit")
        self.fx.encode_event("init_recv", req=req, session=s, blocks=list(msg.blocks),
                             allocated_tokens=msg.alloc)

    def recv_resume(self, req: int, s: int) -> None:
        msg = self._ctl(req, s)
        self.fx.encode_event("resume_recv", **self.fx.resume_fields(req, s, msg))
        self._done(req, core.sender_recv_resume(self.rooms[req], s, msg), "SenderRecvResume")

    def can_recv_abort(self, req: int) -> bool:
        """The abort is answered once none of the room's writes is in flight."""
        return not self._in_flight(req)

    def recv_abort(self, req: int, s: int) -> None:
        msg = self._ctl(req, s)
        self.fx.encode_event("abort_recv", req=req, session=s)
        step = self._done(req, core.sender_recv_abort(self.rooms[req], s, msg, self._in_flight(req)),
                          "SenderRecvAbort")
        self.fx.carry(req, step.effects, None, step.action)

    # -- SenderStartRound --------------------------------------------------
    def can_start_round(self, req: int) -> bool:
        """Whether the core would start a round now (asked once per room state:
        the state is immutable, so the answer holds until the room changes)."""
        room = self.rooms[req]
        if room.phase not in (INIT, AWAIT):
            return False
        known = self._may_start.get(req)
        if known is None or known[0] is not room:
            known = self._may_start[req] = (
                room, core.sender_start_round(room, dead=self.dead) is not None)
        return known[1]

    def start_round(self, req: int) -> None:
        before = self.rooms[req]
        step = self._done(req, core.sender_start_round(before, dead=self.dead),
                          "SenderStartRound")
        self.fx.carry(req, step.effects, None, step.action)
        after = step.state
        bs = self.params.block_size
        for s in self.params.sessions:
            x0, x1 = before.session(s), after.session(s)
            writes = [e for e in step.effects if isinstance(e, WriteBlock) and e.session == s]
            self.fx.encode_event(
                "round_start", req=req, session=s, sent_tokens=x0.sent, tokens=x1.tok,
                src_blocks=[self.src_blocks[req][(w.first - 1) // bs] for w in writes],
                dst_blocks=[w.block for w in writes], total=after.total,
                partial=after.total - x0.sent > x0.alloc,
                aux_written=any(w.aux > 0 for w in writes), x_round=after.round)

    # -- SenderEndRound ----------------------------------------------------
    def can_end_round(self, req: int) -> bool:
        return core.sender_end_round(self.rooms[req], self._in_flight(req)) is not None

    def end_round(self, req: int) -> None:
        step = self._done(req, core.sender_end_round(self.rooms[req], self._in_flight(req)),
                          "SenderEndRound")
        for s in self.params.sessions:
            self.fx.encode_event("round_end", req=req, session=s,
                                 sent_tokens=step.state.session(s).sent, ok=True,
                                 x_round=step.state.round)
        self.fx.carry(req, step.effects, None, step.action)

    # -- WriteError ----------------------------------------------------------
    def write_error(self, req: int, session: int) -> None:
        """A data write of the room (one to rank ``session``) fails."""
        self.fx.encode_event("write_error", req=req, session=session)
        fork = self.params.fork_sender
        step = self._done(req, core.write_error(self.rooms[req], session if fork else None),
                          "WriteError")
        if step.dead is not None:
            self.dead.add(step.dead)
            self._may_start.clear()
        self.fx.carry(req, step.effects, None, step.action)

    # -- SenderFailDead (fork_sender) ------------------------------------------
    def can_fail_dead(self, req: int) -> bool:
        return bool(self.dead) and core.sender_fail_dead(self.rooms[req], self.dead) is not None

    def fail_dead(self, req: int) -> None:
        step = self._done(req, core.sender_fail_dead(self.rooms[req], self.dead),
                          "SenderFailDead")
        self.fx.carry(req, step.effects, None, step.action)
