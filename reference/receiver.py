"""The language side: one receiver acting for every rank (session) of a request.

Protocol steps (docs/model.md), one method each:

* ``init_request``  -> ReceiverInit(r)
* ``recv_status``   -> DeliverStatus(r, s)
* ``poll``          -> ReceiverPoll(r): combined (MIN) status, then the
  variant's decision, acting on all sessions of the request in one step as the
  engine's SPMD scheduler does
* ``prefill_done``  -> PrefillDone(r)
* ``abort``         -> Abort(r)

The variants differ only in what ``poll`` does when the combined status is
Transferring.  The five historical designs decide in the protocol core
(``reference/protocol``, ``historical_view``) and ``_transferring_historical``
carries the decision out on tensors; ``_transferring_corrected`` does the
same for the corrected design (the core says whether a cache or a resume is
due on a rank; the allocation and the retry are carried out here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .allocator import BlockAllocator
from .buffers import ID_STRIDE, BlockBuffers
from .checks import PoolChecker
from .protocol import (
    RxSession,
    corrected_cache_due,
    corrected_resume_due,
    historical_view,
    resume_tokens,
)
from .protocol import StatusMsg as CoreStatus
from .protocol.designs import (  # noqa: F401 (ENGINE_RESUME_ORDER, HISTORICAL re-exported)
    ENGINE_RESUME_ORDER,
    HISTORICAL,
    RESUME_ORDERS,
    VARIANTS,
)
from .trace import TraceLog, language_proc
from .transport import (
    BOOTSTRAPPING,
    FAILED,
    STATUS_NAMES,
    SUCCESS,
    TRANSFERRING,
    WAITING,
    AbortMsg,
    Init,
    Resume,
    Status,
    Transport,
    merge_status,
)


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


@dataclass
class SessionState:
    """One rank's view of one request (the engine's ``MultimodalLanguageRequest``
    on that rank, plus our per-variant dedup state)."""

    blocks: list[int] = field(default_factory=list)     # embedding_indices
    status: int = WAITING
    last_status: Status | None = None
    assembly: Assembly | None = None
    cached: bool = False            # partial data cached (historical designs)
    cached_total: int = 0           # total length cached from round 1's aux
    partial_sent: int = 0
    triggered: bool = False         # flag
    last_resume_indices: list[int] | None = None   # indices
    last_resume_at: int = -1        # sent_tokens, cached_sent
    cached_round: int = 0           # corrected: last round copied out
    last_resumed_round: int = 0     # corrected: last round a resume was sent for
    resumes: int = 0                # resumes sent on this session (AtMostOneResumePerRound)


@dataclass
class Request:
    req: int
    phase: str = "new"              # new, queued, aborting, prefill, done, failed
    sessions: dict[int, SessionState] = field(default_factory=dict)
    resumes: int = 0
    fail_reason: str | None = None


class RequestFailed(Exception):
    """Raised inside a poll when the variant fails the request on the spot."""


class Receiver:
    def __init__(self, variant: str, pools: dict[int, BlockBuffers],
                 allocators: dict[int, BlockAllocator], checkers: dict[int, PoolChecker],
                 transport: Transport, trace: TraceLog, init_tokens: int, cap_blocks: int,
                 resume_order: str, on_handoff, trace_ids_max: int = 256) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
        if resume_order not in RESUME_ORDERS:
            raise ValueError(f"unknown resume order {resume_order!r}; expected alloc_first or free_first")
        self.variant = variant
        self.pools, self.allocators, self.checkers = pools, allocators, checkers
        self.transport, self.trace = transport, trace
        self.init_tokens = init_tokens
        self.cap_blocks = cap_blocks
        self.resume_order = resume_order
        self.on_handoff = on_handoff
        self.trace_ids_max = trace_ids_max
        self.block_size = next(iter(pools.values())).block_size
        self.requests: dict[int, Request] = {}

    def add_request(self, req: int) -> None:
        self.requests[req] = Request(req, sessions={s: SessionState() for s in self.pools})

    # -- helpers: every pool touch goes through these (trace + checks) -----
    def _emit(self, on_rank: int, event: str, **fields) -> None:
        self.trace.emit(language_proc(on_rank), event, **fields)

    def _alloc(self, req: int, s: int, tokens: int) -> list[int] | None:
        blocks = self.allocators[s].alloc(tokens)
        self._emit(s, "alloc", rank=s, req=req, tokens=tokens, blocks=blocks)
        if blocks is not None:
            self.checkers[s].on_alloc(req, blocks)
        return blocks

    def _free(self, req: int, s: int, blocks: list[int]) -> None:
        if not blocks:
            return
        self._emit(s, "free", rank=s, req=req, blocks=list(blocks))
        self.checkers[s].on_free(req, blocks)
        self.allocators[s].free(blocks)

    def _aux_length(self, s: int, blocks: list[int]) -> tuple[int, int]:
        """(aux total of the first block, tokens get_buf would gather)."""
        if not blocks:
            return 0, 0
        total = self.pools[s].aux_total(blocks[0])
        return total, max(0, min(total, len(blocks) * self.block_size))

    def _read(self, req: int, s: int, tokens: int, into: Assembly) -> None:
        """Copy ``tokens`` tokens out of the session's current blocks."""
        sess = self.requests[req].sessions[s]
        tokens = max(0, min(tokens, len(sess.blocks) * self.block_size))
        touched = sess.blocks[:-(-tokens // self.block_size)] if tokens > 0 else []
        aux_total = self.pools[s].aux_total(sess.blocks[0]) if sess.blocks else 0
        fields = dict(req=req, session=s, blocks=list(touched), aux_total=aux_total, tokens=tokens)
        if tokens and tokens <= self.trace_ids_max:
            ids = self.pools[s].gather(touched, tokens).fill_ids.tolist()
            fields["ids"] = [list(divmod(i, ID_STRIDE)) for i in ids]
        self._emit(s, "buffer_read", **fields)
        self.checkers[s].on_read(req, touched)
        into.append(self.pools[s], touched, tokens)

    def _probe_read(self, req: int, s: int) -> int:
        """A read the engine does only to learn a length (get_buf on the
        current blocks): checked and traced like any read, data dropped."""
        sess = self.requests[req].sessions[s]
        aux_total, n = self._aux_length(s, sess.blocks)
        touched = sess.blocks[:-(-n // self.block_size)] if n > 0 else sess.blocks[:1]
        self._emit(s, "buffer_read", req=req, session=s, blocks=list(touched),
                   aux_total=aux_total, tokens=n)
        self.checkers[s].on_read(req, touched)
        return n

    def _new_assembly(self, capacity: int) -> Assembly:
        pool = next(iter(self.pools.values()))
        return Assembly(pool.hidden, pool.device, capacity)

    def _resume_tokens(self, remaining: int, s: int) -> int:
        """Tokens a resume asks for: all remaining (engine), at most ``cap``
        blocks; the corrected design asks for no more than is free now."""
        return resume_tokens(self.variant, self.cap_blocks, self.block_size, remaining,
                             self.allocators[s].available())

    # -- ReceiverInit --------------------------------------------------------
    def init_request(self, req: int) -> None:
        rq = self.requests[req]
        short = [s for s in rq.sessions if not self.allocators[s].can_alloc(self.init_tokens)]
        if short:
            # All ranks or none, as the spec's ReceiverInit: nothing is taken
            # (so nothing has to be given back); the ranks that cannot
            # allocate log their None, and the request retries later.
            for s in short:
                self._alloc(req, s, self.init_tokens)
            return
        got = {s: self._alloc(req, s, self.init_tokens) for s in rq.sessions}
        for s, blocks in got.items():
            sess = rq.sessions[s]
            sess.blocks = blocks
            sess.status = WAITING
            allocated = len(blocks) * self.block_size
            self.transport.send_ctl(req, s, Init(blocks, allocated))
            self._emit(s, "init_sent", req=req, session=s, blocks=list(blocks),
                       allocated_tokens=allocated)
        rq.phase = "queued"

    # -- DeliverStatus -------------------------------------------------------
    def recv_status(self, req: int, s: int) -> None:
        msg = self.transport.st[(req, s)].popleft()
        sess = self.requests[req].sessions[s]
        if self.variant == "corrected" and sess.status == FAILED:
            pass  # corrected: Failed is final (the engine lets a later status lift it)
        else:
            sess.status = merge_status(sess.status, msg.status)
            sess.last_status = msg
        fields = dict(req=req, session=s, status=STATUS_NAMES[msg.status])
        if msg.round is not None:
            fields.update(round=msg.round, sent_tokens=msg.sent_tokens, total=msg.total)
        self._emit(s, "status_recv", **fields)

    # -- ReceiverPoll --------------------------------------------------------
    def combined_status(self, req: int) -> int:
        return min(sess.status for sess in self.requests[req].sessions.values())

    def poll(self, req: int) -> str:
        rq = self.requests[req]
        status = self.combined_status(req)
        decisions: dict[int, str] = {}
        with self.trace.hold() as held:
            try:
                if status == FAILED:
                    self._fail(req, "status Failed")
                    decisions = {s: "fail" for s in rq.sessions}
                elif rq.phase == "aborting":
                    decisions = {s: "wait" for s in rq.sessions}
                elif status == SUCCESS:
                    self._handoff(req)
                    decisions = {s: "handoff" for s in rq.sessions}
                elif status == TRANSFERRING:
                    decisions = (self._transferring_corrected(req) if self.variant == "corrected"
                                 else self._transferring_historical(req))
                else:
                    decisions = {s: "wait" for s in rq.sessions}
            except RequestFailed as exc:
                decisions = {s: "fail" for s in rq.sessions}
                self._fail(req, str(exc))
            finally:
                # Log each rank's poll first, then what its decision did. A
                # violation raised above still leaves the events that led to it.
                # (A poll cut short by a violation is logged as "fail".)
                for s in rq.sessions:
                    self.trace.release(held, language_proc(s), first=(
                        "poll", dict(req=req, status=STATUS_NAMES[status],
                                     decision=decisions.get(s, "fail"))))
        return "resume" if "resume" in decisions.values() else next(iter(decisions.values()))

    def _fail(self, req: int, reason: str) -> None:
        """The failure path: free whatever ``embedding_indices`` holds now."""
        rq = self.requests[req]
        rq.phase = "failed"
        rq.fail_reason = reason
        for s, sess in rq.sessions.items():
            self._free(req, s, sess.blocks)
            sess.blocks = []
            self._emit(s, "fail", req=req, reason=reason)

    def _handoff(self, req: int) -> None:
        rq = self.requests[req]
        for s, sess in rq.sessions.items():
            if self.variant == "corrected":
                total = sess.last_status.total
                if sess.assembly is None:
                    sess.assembly = self._new_assembly(total)
                self._read(req, s, total - sess.assembly.length, sess.assembly)
            elif sess.cached:
                self._read(req, s, sess.cached_total - sess.partial_sent, sess.assembly)
            else:
                aux_total, n = self._aux_length(s, sess.blocks)
                sess.assembly = self._new_assembly(n)
                self._read(req, s, n, sess.assembly)
            handed = sess.assembly.view()
            fields = dict(req=req, session=s, tokens=int(handed[1].shape[0]))
            if fields["tokens"] <= self.trace_ids_max:
                fields["ids"] = [list(divmod(i, ID_STRIDE)) for i in handed[1].tolist()]
            self._emit(s, "handoff", **fields)
            self.on_handoff(req, s, handed)
        rq.phase = "prefill"

    # -- the historical designs: the core decides ----------------------------
    def _core_session(self, sess: SessionState) -> RxSession:
        """This rank's state as the protocol core keeps it."""
        cached = sess.cached and sess.assembly is not None
        return RxSession(blocks=tuple(sess.blocks),
                         cached=sess.assembly.length if cached else 0,
                         p_sent=sess.partial_sent, p_total=sess.cached_total if sess.cached else 0,
                         flag=sess.triggered, last_idx=tuple(sess.last_resume_indices or ()),
                         last_sent=sess.last_resume_at)

    def _core_session_corrected(self, sess: SessionState) -> RxSession:
        """This rank's state as the protocol core keeps it (corrected design)."""
        info = sess.last_status
        seen = (CoreStatus(info.status, info.round or 0, info.sent_tokens or 0, info.total or 0)
                if info is not None else CoreStatus(BOOTSTRAPPING))
        return RxSession(status=sess.status, info=seen, blocks=tuple(sess.blocks),
                         cached=sess.assembly.length if sess.assembly is not None else 0,
                         round=sess.cached_round, resumes=sess.resumes)

    def _transferring_historical(self, req: int) -> dict[int, str]:
        """The five historical designs: the decision is the protocol core's
        (``historical_view``: does the rank read its buffer, what total and
        offset it believes, whether it thinks it already resumed); here it
        is carried out on tensors: the read it makes, then the resume."""
        out = {}
        for s, sess in self.requests[req].sessions.items():
            aux_total, _ = self._aux_length(s, sess.blocks)
            view = historical_view(self.variant, self.block_size, self._core_session(sess), aux_total)
            if view.reads:
                self._probe_read(req, s)
            out[s] = self._historical_resume(req, s, view.total, view.sent) if view.wants else "wait"
        return out

    def _historical_resume(self, req: int, s: int, total: int, sent: int) -> str:
        """Cache (first time only), swap blocks, send resume(sent, allocated)."""
        rq = self.requests[req]
        sess = rq.sessions[s]
        want = self._resume_tokens(total - sent, s)
        if self.resume_order == "alloc_first":
            new = self._alloc(req, s, want)
            if new is None:
                return "retry_alloc"  # keep everything, try again next poll
            self._cache_first_round(req, s, total, sent)
            self._free(req, s, sess.blocks)
        else:
            self._cache_first_round(req, s, total, sent)
            self._free(req, s, sess.blocks)
            new = self._alloc(req, s, want)
            if new is None:
                # embedding_indices still names the blocks just freed
                raise RequestFailed("resume allocation failed")
        sess.blocks = new
        allocated = len(new) * self.block_size
        self.transport.send_ctl(req, s, Resume(new, sent, allocated))
        self._emit(s, "resume_sent", req=req, session=s, blocks=list(new),
                   sent_tokens=sent, allocated_tokens=allocated)
        sess.partial_sent = sent
        sess.last_resume_at = sent
        sess.last_resume_indices = list(new)
        sess.triggered = True
        sess.resumes += 1
        rq.resumes += 1
        return "resume"

    def _cache_first_round(self, req: int, s: int, total: int, sent: int) -> None:
        sess = self.requests[req].sessions[s]
        if sess.cached:
            return  # the engine caches the first round only
        sess.assembly = self._new_assembly(max(total, sent))
        self._read(req, s, sent, sess.assembly)
        sess.cached = True
        sess.cached_total = total

    # -- the corrected design ---------------------------------------------
    def _transferring_corrected(self, req: int) -> dict[int, str]:
        """Resume exactly once per round that ended partial, each rank on its
        own (the spec's CorrectedCache and CorrectedResume are steps of one
        session): (1) copy out the round's tokens (the status says how many;
        all its writes landed before the status was sent), (2) free the
        blocks they came from, (3) allocate as many blocks as are free, up to
        what remains (at least one, else retry on a later poll holding
        nothing), (4) send resume with the round number."""
        rq = self.requests[req]
        out: dict[int, str] = {}
        for s, sess in rq.sessions.items():
            # what is due on this rank is the protocol core's decision
            rank = self._core_session_corrected(sess)
            cache_due = corrected_cache_due(rank)
            if not (cache_due or corrected_resume_due(rank)):
                out[s] = "wait"
                continue
            info = sess.last_status
            k = info.round
            freed_now = False
            if cache_due:                             # (1) and (2), once per round
                if sess.assembly is None:
                    sess.assembly = self._new_assembly(info.total)
                self._read(req, s, info.sent_tokens - sess.assembly.length, sess.assembly)
                sess.cached_round = k
                self._free(req, s, sess.blocks)
                sess.blocks = []
                freed_now = True
            remaining = info.total - info.sent_tokens
            want = self._resume_tokens(remaining, s)
            # (3); a session whose tokens all arrived (its allocation was larger
            # than another session's) resumes with no blocks, so that the
            # sender's barrier is met
            if remaining > 0 and (want <= 0 or not self.allocators[s].can_alloc(want)):
                if want > 0:
                    self._alloc(req, s, want)  # returns None, and logs it
                else:  # no block free at all: the allocator says None
                    self._emit(s, "alloc", rank=s, req=req, tokens=remaining, blocks=None)
                # the poll that freed is the resume step; a later one retries
                out[s] = "resume" if freed_now else "retry_alloc"
                continue
            blocks = self._alloc(req, s, want)
            sess.blocks = blocks                      # (4)
            allocated = len(blocks) * self.block_size
            self.transport.send_ctl(req, s, Resume(blocks, info.sent_tokens, allocated, round=k))
            self._emit(s, "resume_sent", req=req, session=s, blocks=list(blocks),
                       sent_tokens=info.sent_tokens, allocated_tokens=allocated, round=k)
            sess.last_resumed_round = k
            sess.resumes += 1
            out[s] = "resume"
        rq.resumes = max(sess.resumes for sess in rq.sessions.values())
        return out

    # -- PrefillDone -----------------------------------------------------------
    def prefill_done(self, req: int) -> None:
        rq = self.requests[req]
        for s, sess in rq.sessions.items():
            self._emit(s, "prefill_done", req=req)
            self._free(req, s, sess.blocks)
            sess.blocks = []
            sess.assembly = None  # prefill consumed it
        rq.phase = "done"

    # -- Abort -------------------------------------------------------------------
    def abort(self, req: int) -> None:
        rq = self.requests[req]
        for s in rq.sessions:
            self._emit(s, "abort", req=req)
        if self.variant == "corrected":
            # Ask the sender; free only once it acknowledges (status Failed).
            rq.phase = "aborting"
            for s in rq.sessions:
                self.transport.send_ctl(req, s, AbortMsg())
                self._emit(s, "abort_sent", req=req, session=s)
        else:
            # The engine: local Failed, blocks freed now, nothing sent.
            rq.phase = "failed"
            rq.fail_reason = "aborted"
            for s, sess in rq.sessions.items():
                self._free(req, s, sess.blocks)
                sess.blocks = []

    def heartbeat_lost(self, req: int) -> None:
        rq = self.requests[req]
        for s, sess in rq.sessions.items():
            self._emit(s, "heartbeat_fail", req=req)
            sess.status = merge_status(sess.status, FAILED)
