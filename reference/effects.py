"""The torch interpreter of the protocol core's effects, and the trace.

The reference implementation takes no protocol decision: ``receiver.py``
and ``sender.py`` call the core (``reference/protocol``) for every step and
hand the effects it returns to ``Interpreter.carry``, which does them on
real tensors and logs them:

=====================  ==================================================
effect                 what the interpreter does
=====================  ==================================================
``Alloc``              the blocks the allocator picked (the core asked
                       it through ``CorePicker``) are now the request's:
                       pool checker, log ``alloc``
``Free``               pool checker, log ``free`` (the core's free list
                       already has them)
``Read``               copy the rows out of the rank's block buffers into
                       the request's assembly (``cache``, ``handoff``) or
                       nowhere (``probe``); log ``buffer_read``
``SendCtl``            put the message on the control channel; log
                       ``init_sent`` / ``resume_sent`` / ``abort_sent``
``SendStatus``         put the status on the status channel; log
                       ``status_sent``
``WriteBlock``         issue a one-sided write from the source block
                       holding token ``first`` (it lands later, a
                       ``WriteLand`` step)
``CancelWrites``       drop the room's writes in flight
``HandOff``            give every rank's assembly to prefill (checked
                       against the source); log ``handoff``
``FailRequest``        record the reason; log ``fail``
``NoBlocks``           (the host's, not the core's) the allocator said
                       None to an allocation the core asked for: log
                       ``alloc`` with ``blocks: null``
=====================  ==================================================

Every trace event of a run is built here (``Interpreter.event``), from
the effects and from the step that produced them (``poll``, ``round_start``
and the receive events name the step and the state it reached), so the log
is what the core decided.  ``Interpreter.journal``, when set to a list,
records every effect carried out, in order (the tests compare it with the
core's own outcomes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .buffers import ID_STRIDE, BlockBuffers
from .protocol import (
    Alloc,
    CancelWrites,
    Effect,
    FailRequest,
    Free,
    HandOff,
    Read,
    SendCtl,
    SendStatus,
    WriteBlock,
)
from .protocol.designs import STATUSES
from .trace import TraceLog, encode_proc, language_proc


@dataclass(frozen=True)
class NoBlocks:
    """The allocator returned None to an allocation of ``tokens`` tokens on
    rank ``session`` (too few free blocks, or an injected failure): the
    step the core would take with those blocks is not enabled."""

    session: int
    tokens: int


@dataclass(frozen=True)
class Picked:
    """An allocation the core asked the host's allocator for (``pick``)."""

    session: int
    tokens: int
    free: tuple[int, ...]
    blocks: tuple[int, ...] | None


class Interpreter:
    """Carries out effects on one system's buffers, channels and checkers."""

    def __init__(self, world: Any, trace: TraceLog, corrected: bool, trace_ids_max: int = 256) -> None:
        self.world = world
        self.trace = trace
        self.corrected = corrected
        self.trace_ids_max = trace_ids_max
        self.journal: list[Effect | NoBlocks] | None = None
        self._req = 0       # the request of the step being carried out

    # -- trace: the one place events are built ------------------------------
    def event(self, proc: str, event: str, **fields: Any) -> None:
        self.trace.emit(proc, event, **fields)

    def rank_event(self, s: int, event: str, **fields: Any) -> None:
        self.event(language_proc(s), event, **fields)

    def encode_event(self, event: str, **fields: Any) -> None:
        self.event(encode_proc(), event, **fields)

    def _round_fields(self, msg: Any) -> dict[str, int]:
        """The corrected design's (round, sent, total) of a status or resume."""
        if not self.corrected:
            return {}
        out = {"round": msg.round}
        if hasattr(msg, "total"):
            out.update(sent_tokens=msg.sent, total=msg.total)
        return out

    def status_fields(self, req: int, s: int, msg: Any) -> dict[str, Any]:
        return dict(req=req, session=s, status=STATUSES[msg.status], **self._round_fields(msg))

    def resume_fields(self, req: int, s: int, msg: Any) -> dict[str, Any]:
        return dict(req=req, session=s, blocks=list(msg.blocks), sent_tokens=msg.sent,
                    allocated_tokens=msg.alloc, **self._round_fields(msg))

    # -- effects ---------------------------------------------------------------
    def carry(self, req: int, effects: tuple[Effect | NoBlocks, ...] | list[Effect | NoBlocks],
              picks: list[Picked] | None = None, action: str = "") -> None:
        """Carry out ``effects`` of a step of request ``req``, in order.
        ``picks``: the allocations the core asked for while computing them
        (which tokens each ``Alloc`` asked for; the allocator's generator
        moves on for the one taken).  ``action``: the core step's name."""
        self._req = req
        picks = picks or []
        for e in effects:
            if self.journal is not None:
                self.journal.append(e)
            getattr(self, "_" + type(e).__name__)(e, picks, action)

    def _Alloc(self, e: Alloc, picks: list[Picked], action: str) -> None:
        w = self.world
        pk = next((p for p in reversed(picks) if p.session == e.session and p.blocks == e.blocks), None)
        tokens = pk.tokens if pk is not None else len(e.blocks) * w.cfg.block_size
        if pk is not None:
            w.pickers[e.session].took(pk.free, e.blocks)
        req = self._req
        self.rank_event(e.session, "alloc", rank=e.session, req=req, tokens=tokens, blocks=list(e.blocks))
        w.checkers[e.session].on_alloc(req, list(e.blocks))

    def _NoBlocks(self, e: NoBlocks, picks: list[Picked], action: str) -> None:
        self.world.pickers[e.session].failed()
        self.rank_event(e.session, "alloc", rank=e.session, req=self._req, tokens=e.tokens, blocks=None)

    def _Free(self, e: Free, picks: list[Picked], action: str) -> None:
        if not e.blocks:
            return
        req = self._req
        self.rank_event(e.session, "free", rank=e.session, req=req, blocks=list(e.blocks))
        self.world.checkers[e.session].on_free(req, list(e.blocks))

    def _Read(self, e: Read, picks: list[Picked], action: str) -> None:
        w = self.world
        pool: BlockBuffers = w.pools[e.session]
        bs = pool.block_size
        tokens = max(0, min(e.tokens, len(e.blocks) * bs))
        if tokens:
            touched = list(e.blocks[:-(-tokens // bs)])
        else:   # a probe reads the first block's aux row to learn the length
            touched = list(e.blocks[:1]) if e.purpose == "probe" else []
        aux_total = pool.aux_total(e.blocks[0]) if e.blocks else 0
        fields: dict[str, Any] = dict(req=e.req, session=e.session, blocks=touched,
                                      aux_total=aux_total, tokens=tokens)
        if e.purpose != "probe" and tokens and tokens <= self.trace_ids_max:
            ids = pool.gather(touched, tokens).fill_ids.tolist()
            fields["ids"] = [list(divmod(i, ID_STRIDE)) for i in ids]
        self.rank_event(e.session, "buffer_read", **fields)
        w.checkers[e.session].on_read(e.req, touched)
        if e.purpose != "probe":
            w.receiver.assembly_for(e.req, e.session, tokens).append(pool, touched, tokens)

    def _SendCtl(self, e: SendCtl, picks: list[Picked], action: str) -> None:
        m = e.msg
        self.world.transport.send_ctl(e.req, e.session, m)
        if m.type == "init":
            self.rank_event(e.session, "init_sent", req=e.req, session=e.session,
                            blocks=list(m.blocks), allocated_tokens=m.alloc)
        elif m.type == "resume":
            self.rank_event(e.session, "resume_sent", **self.resume_fields(e.req, e.session, m))
        else:
            self.rank_event(e.session, "abort_sent", req=e.req, session=e.session)

    def _SendStatus(self, e: SendStatus, picks: list[Picked], action: str) -> None:
        self.world.transport.send_status(e.req, e.session, e.msg)
        self.encode_event("status_sent", **self.status_fields(e.req, e.session, e.msg))

    def _WriteBlock(self, e: WriteBlock, picks: list[Picked], action: str) -> None:
        w = self.world
        bs = w.cfg.block_size
        src = w.sender.src_blocks[e.req][(e.first - 1) // bs]
        write = w.transport.issue_write(e.req, e.session, src, e.block, e.count,
                                        pos=e.first, with_aux=e.aux > 0)
        w.checkers[e.session].on_write_issue(write.dst_block)

    def _CancelWrites(self, e: CancelWrites, picks: list[Picked], action: str) -> None:
        self.world.drop_writes(e.req)

    def _HandOff(self, e: HandOff, picks: list[Picked], action: str) -> None:
        w = self.world
        for s in w.pools:
            handed = w.receiver.assembly_for(e.req, s, 0).view()
            fields: dict[str, Any] = dict(req=e.req, session=s, tokens=int(handed[1].shape[0]))
            if fields["tokens"] <= self.trace_ids_max:
                fields["ids"] = [list(divmod(i, ID_STRIDE)) for i in handed[1].tolist()]
            self.rank_event(s, "handoff", **fields)
            w.on_handoff(e.req, s, handed)

    def _FailRequest(self, e: FailRequest, picks: list[Picked], action: str) -> None:
        w = self.world
        w.receiver.fail_reason[e.req] = e.reason
        for s in w.pools:       # nothing goes to prefill: drop what was copied out
            w.receiver.assembly.pop((e.req, s), None)
        if action == "Abort":
            return      # the abort event says it (the engine logs no separate failure)
        for s in w.pools:
            self.rank_event(s, "fail", req=e.req, reason=e.reason)
