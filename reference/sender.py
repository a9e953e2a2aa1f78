"""The encode side: one sender holding every request's source blocks.

Protocol steps (docs/model.md), one method each:

* ``recv_init``   -> SenderRecvInit(r, s)
* ``start_round`` -> SenderStartRound(r)
* ``end_round``   -> SenderEndRound(r)
* ``recv_resume`` -> SenderRecvResume(r, s)
* ``recv_abort``  -> SenderRecvAbort(r, s)  (corrected design: abort is a message,
  answered with Failed to that session once none of the room's writes is in flight)

Per room the sender keeps, per receiving session, ``sent`` / ``alloc`` /
``dst`` / ``ready`` (the engine's per-session transfer info). A round writes,
for every session, ``min(total - sent, alloc)`` tokens starting at source
block ``sent // block_size`` into the first destination blocks; the aux row
goes only into the first destination block of the first round
(``sent == 0``). When all writes of the round have landed, ``sent`` grows and
the room's status goes to every session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .allocator import blocks_for
from .buffers import BlockBuffers
from .protocol import round_may_start, round_tokens
from .trace import TraceLog, encode_proc
from .transport import (
    FAILED,
    STATUS_NAMES,
    SUCCESS,
    TRANSFERRING,
    AbortMsg,
    Init,
    Resume,
    Status,
    Transport,
)


@dataclass
class SessionInfo:
    sent: int = 0
    alloc: int = 0
    dst: list[int] = field(default_factory=list)
    ready: bool = False
    known: bool = False      # init received
    round_tokens: int = 0    # tokens being written in the current round


@dataclass
class Room:
    req: int
    total: int
    src_blocks: list[int]
    sessions: dict[int, SessionInfo]
    round: int = 0
    in_round: bool = False
    state: str = "open"      # open | closed (Success/Failed sent) | dead (heartbeat)
    rounds_started: int = 0
    partials: int = 0        # rounds that ended partial (the spec's txPartials)


class Sender:
    def __init__(self, source: BlockBuffers, transport: Transport, trace: TraceLog,
                 corrected: bool, barrier: bool, on_write_issue) -> None:
        self.source = source
        self.transport = transport
        self.trace = trace
        self.corrected = corrected
        # The corrected design needs every session ready before a round
        # (it never writes with stale destination info), so it always waits.
        self.barrier = barrier or corrected
        self.on_write_issue = on_write_issue
        self.rooms: dict[int, Room] = {}

    def add_room(self, req: int, total: int, src_blocks: list[int], sessions: int) -> None:
        self.rooms[req] = Room(req, total, src_blocks,
                               {s: SessionInfo() for s in range(1, sessions + 1)})

    def _emit(self, event: str, **fields) -> None:
        self.trace.emit(encode_proc(), event, **fields)

    # -- SenderRecvInit / SenderRecvResume / SenderRecvAbort -------------
    def recv_init(self, req: int, session: int) -> None:
        msg = self.transport.ctl[(req, session)].popleft()
        assert isinstance(msg, Init)
        info = self.rooms[req].sessions[session]
        info.dst, info.alloc, info.sent = list(msg.blocks), msg.allocated_tokens, 0
        info.ready = info.known = True
        self._emit("init_recv", req=req, session=session, blocks=list(msg.blocks),
                   allocated_tokens=msg.allocated_tokens)

    def recv_resume(self, req: int, session: int) -> None:
        msg = self.transport.ctl[(req, session)].popleft()
        assert isinstance(msg, Resume)
        room = self.rooms[req]
        fields = dict(req=req, session=session, blocks=list(msg.blocks),
                      sent_tokens=msg.sent_tokens, allocated_tokens=msg.allocated_tokens)
        if msg.round is not None:
            fields["round"] = msg.round
        self._emit("resume_recv", **fields)
        if room.state != "open":
            return  # a closed room has nothing left to send
        info = room.sessions[session]
        # The receiver is authoritative for the offset.
        info.sent, info.alloc, info.dst = msg.sent_tokens, msg.allocated_tokens, list(msg.blocks)
        info.ready = True

    def can_recv_abort(self, req: int) -> bool:
        """The abort is answered once none of the room's writes is in flight."""
        return not self.transport.pending_writes(req)

    def recv_abort(self, req: int, session: int) -> None:
        msg = self.transport.ctl[(req, session)].popleft()
        assert isinstance(msg, AbortMsg)
        room = self.rooms[req]
        self._emit("abort_recv", req=req, session=session)
        if room.state == "dead":
            return
        # Failed to this session: its writes have all landed, none will follow.
        room.in_round = False
        room.state = "closed"
        self._send_status(room, FAILED, only=session)

    # -- SenderStartRound --------------------------------------------------
    def can_start_round(self, req: int) -> bool:
        room = self.rooms[req]
        if room.state != "open" or room.in_round:
            return False
        infos = room.sessions.values()
        if not all(i.known for i in infos):
            return False  # the first round needs every session's init
        return round_may_start(room.round == 0, [i.ready for i in infos], self.barrier)

    def start_round(self, req: int) -> None:
        room = self.rooms[req]
        bs = self.source.block_size
        room.round += 1
        room.in_round = True
        room.rounds_started += 1
        for s, info in room.sessions.items():
            remaining = room.total - info.sent
            tokens = round_tokens(room.total, info.sent, info.alloc)
            first_src = info.sent // bs
            with_aux_round = info.sent == 0
            src_used, dst_used = [], []
            for i in range(blocks_for(tokens, bs)):
                if i >= len(info.dst) or first_src + i >= len(room.src_blocks):
                    break  # nothing to write from / into
                n = min(bs, tokens - i * bs)
                src, dst = room.src_blocks[first_src + i], info.dst[i]
                w = self.transport.issue_write(req, s, src, dst, n,
                                               pos=info.sent + i * bs + 1,
                                               with_aux=with_aux_round and i == 0)
                self.on_write_issue(w)
                src_used.append(src)
                dst_used.append(dst)
            info.round_tokens = tokens
            info.ready = False
            self._emit("round_start", req=req, session=s, sent_tokens=info.sent, tokens=tokens,
                       src_blocks=src_used, dst_blocks=dst_used,
                       total=room.total, partial=remaining > info.alloc,
                       aux_written=with_aux_round and tokens > 0, x_round=room.round)

    # -- SenderEndRound ----------------------------------------------------
    def can_end_round(self, req: int) -> bool:
        room = self.rooms[req]
        return room.state == "open" and room.in_round and not self.transport.pending_writes(req)

    def end_round(self, req: int) -> None:
        room = self.rooms[req]
        room.in_round = False
        for s, info in room.sessions.items():
            info.sent += info.round_tokens
            info.round_tokens = 0
            self._emit("round_end", req=req, session=s, sent_tokens=info.sent, ok=True,
                       x_round=room.round)
        done = all(i.sent >= room.total for i in room.sessions.values())
        if not done:
            room.partials += 1
        self._send_status(room, SUCCESS if done else TRANSFERRING)
        if done:
            room.state = "closed"

    def fail_room(self, req: int) -> None:
        """A write error: the room's writes stop and Failed goes out."""
        room = self.rooms[req]
        room.in_round = False
        self._send_status(room, FAILED)
        room.state = "closed"

    def _send_status(self, room: Room, status: int, only: int | None = None) -> None:
        for s, info in room.sessions.items():
            if only is not None and s != only:
                continue
            fields = dict(req=room.req, session=s, status=STATUS_NAMES[status])
            if self.corrected:
                msg = Status(status, room.round, info.sent, room.total)
                fields.update(round=room.round, sent_tokens=info.sent, total=room.total)
            else:
                msg = Status(status)
            self.transport.send_status(room.req, s, msg)
            self._emit("status_sent", **fields)
