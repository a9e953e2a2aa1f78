"""The language side: the protocol core's receiver, hosted on torch buffers.

Every decision is the core's (``reference/protocol/receiver.py``); this
class holds the core's state (``RxState``: phases, per-rank sessions, the
ranks' free lists), calls one core function per spec step, picks the
outcome (the first: the host's allocator already narrowed the allocations
to the one it makes) and hands its effects to the interpreter
(``effects.py``), which does them on tensors and logs them:

* ``init_request``  -> ``receiver_init``            (ReceiverInit)
* ``recv_status``   -> ``deliver_status``           (DeliverStatus)
* ``poll``          -> ``receiver_poll``            (ReceiverPoll; every rank
  in one step, as the engine's SPMD scheduler does: in the corrected design
  each rank takes its cache step and then its resume step when the core
  enables them)
* ``prefill_done``  -> ``prefill_done``             (PrefillDone)
* ``abort``         -> ``abort``                    (Abort)
* ``heartbeat``     -> ``heartbeat`` (with the sender's room; Heartbeat)

What the core cannot see, the host passes in: the aux row a historical
rank reads in its first block (``aux_seen``), and which blocks its
allocator picks (``alloc``: ``allocator.CorePicker``, which also injects
the ``alloc_fail`` fault).  A poll logs each rank's ``poll`` event first
(the decision is read off the effects), then the effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import protocol as core
from .allocator import CorePicker
from .buffers import BlockBuffers
from .effects import Interpreter, NoBlocks, Picked
from .protocol import Free, Pool, Read, RxSession, RxState, SendCtl
from .protocol.designs import (  # noqa: F401 (ENGINE_RESUME_ORDER, HISTORICAL re-exported)
    ENGINE_RESUME_ORDER,
    HISTORICAL,
    RESUME_ORDERS,
    STATUSES,
    VARIANTS,
)
from .protocol.receiver import QUEUED


class Assembly:
    """What a session has copied out of its blocks so far, in token order,
    in preallocated output tensors (one slice copy per block, no concat)."""

    def __init__(self, hidden: int, device: torch.device, capacity: int = 0) -> None:
        self.hidden, self.device, self.length = hidden, device, 0
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self.emb = torch.empty(capacity, self.hidden, dtype=torch.bfloat16, device=self.device)
        self.ids = torch.empty(capacity, dtype=torch.int32, device=self.device)
        self.mrope = torch.empty(3, capacity, dtype=torch.int32, device=self.device)

    def reserve(self, capacity: int) -> None:
        if capacity > self.emb.shape[0]:
            old = (self.emb, self.ids, self.mrope)
            self._alloc(capacity)
            self.emb[:self.length].copy_(old[0][:self.length])
            self.ids[:self.length].copy_(old[1][:self.length])
            self.mrope[:, :self.length].copy_(old[2][:, :self.length])

    def append(self, pool: BlockBuffers, blocks: list[int], tokens: int) -> None:
        self.reserve(self.length + tokens)
        pool.gather_into(blocks, tokens, self.emb, self.ids, self.mrope, self.length)
        self.length += tokens

    def view(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.length
        return self.emb[:n], self.ids[:n], self.mrope[:, :n]



@dataclass(frozen=True)
class RequestView:
    """A request as the core holds it, for reports and tests."""

    req: int
    phase: str                          # new, queued, aborting, prefill, done, failed
    sessions: tuple[RxSession, ...]     # per rank, index s - 1
    fail_reason: str | None

    @property
    def resumes(self) -> int:
        """Resumes sent, per rank (the most any rank sent)."""
        return max(x.resumes for x in self.sessions)


Effects = list[Any]


class Receiver:
    def __init__(self, params: core.Params, n_blocks: int, pools: dict[int, BlockBuffers],
                 pickers: dict[int, CorePicker], fx: Interpreter) -> None:
        self.params = params
        self.pools, self.pickers, self.fx = pools, pickers, fx
        self.block_size = params.block_size
        self.rx: RxState = RxState.initial(params, [], range(n_blocks))
        self.assembly: dict[tuple[int, int], Assembly] = {}
        self.fail_reason: dict[int, str] = {}

    @property
    def variant(self) -> str:
        return self.params.variant

    def add_request(self, req: int) -> None:
        self.rx = self.rx.add_request(req)

    @property
    def requests(self) -> dict[int, RequestView]:
        return {r: RequestView(r, q.phase, q.sessions, self.fail_reason.get(r))
                for r, q in self.rx.requests.items()}

    def combined_status(self, req: int) -> int:
        return self.rx.combined_status(req)

    def assembly_for(self, req: int, s: int, tokens: int) -> Assembly:
        """The rows rank ``s`` has copied out for ``req`` (created on first use)."""
        a = self.assembly.get((req, s))
        if a is None:
            x = self.rx.requests[req].session(s)
            pool = self.pools[s]
            a = self.assembly[(req, s)] = Assembly(
                pool.hidden, pool.device, max(tokens, x.info.total, x.p_total))
        return a

    def _allocator(self) -> tuple[core.AllocHook, list[Picked]]:
        """The core's ``alloc`` hook: ask this rank's allocator which blocks it
        takes (or None), and remember each question."""
        asked: list[Picked] = []

        def pick(s: int, pool: Pool, tokens: int) -> list[tuple[tuple[int, ...], Pool]]:
            got = self.pickers[s].pick(pool.free, tokens)
            asked.append(Picked(s, tokens, pool.free, None if got is None else got[0]))
            return [] if got is None else [(got[0], Pool(got[1]))]
        return pick, asked

    # -- ReceiverInit --------------------------------------------------------
    def init_request(self, req: int) -> None:
        pick, asked = self._allocator()
        steps = core.receiver_init(self.rx, req, pick)
        if not steps:
            # all ranks or none: the ranks whose allocator said None log it,
            # nothing is taken, the request tries again later
            self.fx.carry(req, [NoBlocks(a.session, a.tokens) for a in asked if a.blocks is None],
                          asked, "ReceiverInit")
            return
        self.rx = steps[0].state
        self.fx.carry(req, steps[0].effects, asked, steps[0].action)

    # -- DeliverStatus -------------------------------------------------------
    def recv_status(self, req: int, s: int) -> None:
        msg = self.fx.world.transport.st[(req, s)].popleft()
        self.rx = core.deliver_status(self.rx, req, s, msg).state
        self.fx.rank_event(s, "status_recv", **self.fx.status_fields(req, s, msg))

    # -- ReceiverPoll --------------------------------------------------------
    def poll(self, req: int) -> dict[int, str]:
        """One poll of every rank; returns each rank's decision (as logged)."""
        status = self.rx.combined_status(req)
        if self.params.corrected and self.rx.requests[req].phase == QUEUED \
                and status == core.Status.TRANSFERRING:
            effects, asked, decisions = self._poll_corrected(req)
        else:
            effects, asked, decisions = self._poll_lockstep(req)
        for s in self.params.sessions:
            self.fx.rank_event(s, "poll", req=req, status=STATUSES[status], decision=decisions[s])
        self.fx.carry(req, effects, asked, "ReceiverPoll")
        return decisions

    def _aux_seen(self, req: int) -> dict[int, int]:
        """What each rank's first current block's aux row says (historical designs)."""
        out = {}
        for s in self.params.sessions:
            b = self.rx.first_block(req, s)
            out[s] = self.pools[s].aux_total(b) if b is not None else 0
        return out

    def _poll_lockstep(self, req: int) -> tuple[Effects, list[Picked], dict[int, str]]:
        """Every design but the corrected one's Transferring poll: one core step
        for all ranks (or none: every rank waits, reading if it reads)."""
        pick, asked = self._allocator()
        status = self.rx.combined_status(req)
        reads_aux = not self.params.corrected and status in (core.Status.TRANSFERRING, core.Status.SUCCESS)
        aux = self._aux_seen(req) if reads_aux else None
        outs = core.receiver_poll(self.rx, req, aux, pick)
        acting = [o for o in outs if o.action != "PollReadOnly"]
        if acting:
            self.rx = acting[0].state
            effects: Effects = list(acting[0].effects)
        else:       # nobody acts: the reads the ranks make to decide, nothing else
            effects = [e for o in outs for e in o.effects]
        failed = {a.session: a.tokens for a in asked if a.blocks is None}
        for s, tokens in failed.items():
            _insert_no_blocks(effects, s, tokens)
        kinds = {type(e).__name__ for e in effects}
        decisions = {}
        for s in self.params.sessions:
            if "FailRequest" in kinds:
                decisions[s] = "fail"
            elif "HandOff" in kinds:
                decisions[s] = "handoff"
            elif any(isinstance(e, SendCtl) and e.session == s for e in effects):
                decisions[s] = "resume"
            elif s in failed:
                decisions[s] = "retry_alloc"
            else:
                decisions[s] = "wait"
        return effects, asked, decisions

    def _poll_corrected(self, req: int) -> tuple[Effects, list[Picked], dict[int, str]]:
        """The corrected design's Transferring poll: each rank, in turn, takes
        the core's ``PollTransferringCorrected`` steps for it (cache, then
        resume) while there is one."""
        effects: Effects = []
        all_asked: list[Picked] = []
        decisions = {}
        for s in self.params.sessions:
            acted = False
            asked: list[Picked] = []
            for _ in range(2):      # at most a cache and a resume per rank and poll
                pick, asked = self._allocator()
                mine = [o for o in core.receiver_poll(self.rx, req, None, pick) if o.session == s]
                asked = [a for a in asked if a.session == s]
                if not mine:
                    break
                self.rx = mine[0].state
                effects += mine[0].effects
                all_asked += asked
                acted = True
            x = self.rx.requests[req].session(s)
            if core.corrected_resume_due(x):
                # the resume is due but its allocation is not possible now
                tokens = next((a.tokens for a in asked if a.blocks is None), x.info.total - x.info.sent)
                effects.append(NoBlocks(s, tokens))
                decisions[s] = "resume" if acted else "retry_alloc"
            else:
                decisions[s] = "resume" if acted else "wait"
        return effects, all_asked, decisions

    # -- PrefillDone -----------------------------------------------------------
    def prefill_done(self, req: int) -> None:
        step = core.prefill_done(self.rx, req)[0]
        self.rx = step.state
        for s in self.params.sessions:
            self.fx.rank_event(s, "prefill_done", req=req)
            self.assembly.pop((req, s), None)   # prefill consumed it
        self.fx.carry(req, step.effects, None, step.action)

    # -- Abort -------------------------------------------------------------------
    def abort(self, req: int) -> None:
        step = core.abort(self.rx, req)[0]
        self.rx = step.state
        for s in self.params.sessions:
            self.fx.rank_event(s, "abort", req=req)
        self.fx.carry(req, step.effects, None, step.action)

    def heartbeat_lost(self, req: int, step: core.Step) -> None:
        """The language half of Heartbeat (``core.heartbeat``'s receiver step)."""
        self.rx = step.state
        for s in self.params.sessions:
            self.fx.rank_event(s, "heartbeat_fail", req=req)


def _insert_no_blocks(effects: Effects, s: int, tokens: int) -> None:
    """Log rank ``s``'s failed allocation where the engine makes it: after its
    first free (free_first: the allocation follows the free), else after its
    reads, else last."""
    at = next((i + 1 for i, e in enumerate(effects) if isinstance(e, Free) and e.session == s), None)
    if at is None:
        reads = [i + 1 for i, e in enumerate(effects) if isinstance(e, Read) and e.session == s]
        at = reads[-1] if reads else len(effects)
    effects.insert(at, NoBlocks(s, tokens))
