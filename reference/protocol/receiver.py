"""The language side (receiver): every request's state on every rank, and
the pools of the ranks.  Pure functions over immutable state.

One function per spec action; each returns the list of ``Step`` outcomes the
spec allows (empty: the action is not enabled now).  A host picks one
(usually the first) and keeps its ``state``; a checker asks whether what it
saw is one of them.

==================================  ======================================
spec action                         function
==================================  ======================================
``ReceiverInit(r)``                 ``receiver_init``
``DeliverStatus(r, s)``             ``deliver_status``
``ReceiverPoll(r)``                 ``receiver_poll``: each outcome's
                                    ``action`` names the disjunct:
                                    ``PollSuccess``, ``PollFailed``,
                                    ``PollTransferringHistorical``,
                                    ``PollTransferringCorrected``,
                                    ``PollReadOnly``
``PrefillDone(r)``                  ``prefill_done``
``Abort(r)``                        ``abort``
``Heartbeat(r)`` (language half)    ``heartbeat_lost``
==================================  ======================================

The historical designs decide from what a rank reads in its own buffer: the
total length in the aux row of the first current block.  The core does no
I/O, so a host passes that observation in (``aux_seen``; ``first_block``
says which block to look at).  Tokens themselves never enter the core: it
keeps how many are cached and tells the host, with ``Read`` effects, which
blocks to copy out and where to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from itertools import product

from ._fastinit import direct_init
from .designs import HISTORICAL, Status, merge_status
from .messages import (
    Alloc,
    Ctl,
    Effect,
    FailRequest,
    Free,
    HandOff,
    Read,
    SendCtl,
    StatusMsg,
)
from .params import Params
from .pool import Pool

# request phases (the spec's rxPhase)
NEW, QUEUED, ABORTING, PREFILL, DONE, FAILED = "new", "queued", "aborting", "prefill", "done", "failed"
PHASES = (NEW, QUEUED, ABORTING, PREFILL, DONE, FAILED)

BOOT_INFO = StatusMsg(Status.BOOTSTRAPPING, 0, 0, 0)

AllocHook = Callable[[int, Pool, int], list[tuple[tuple[int, ...], Pool]]]
"""``alloc(session, pool, tokens)``: the allocations a host's allocator may
make from ``pool`` on rank ``session`` (each: blocks, pool after); empty:
it fails.  Default (None): every choice the spec allows
(``Pool.alloc_choices`` with the deployment's order).  A host whose
allocator picks one way (a seeded random order, an injected failure)
passes its pick here, so the core's state holds the blocks it chose.
It must not change anything (the core may ask for outcomes not taken)."""


def _allocator(p: Params, alloc: AllocHook | None) -> AllocHook:
    if alloc is not None:
        return alloc
    return lambda s, pool, tokens: pool.alloc_choices(tokens, p.block_size, p.order)


@dataclass(frozen=True)
class RxSession:
    """One rank's view of one request (the engine's per-rank request object)."""

    status: int = Status.BOOTSTRAPPING     # rxStatus
    info: StatusMsg = BOOT_INFO             # rxDesign.info: the last status (corrected: newest round)
    blocks: tuple[int, ...] = ()            # rxBlocks: embedding_indices
    cached: int = 0                         # len(rxCache): tokens cached from earlier rounds
    # the historical designs' rxDesign fields (the corrected design leaves them as here)
    p_sent: int = 0                         # .pSent: partial_sent_tokens
    p_total: int = 0                        # .pTotal: cached total (0 = none)
    flag: bool = False                      # .flag ("flag": resume_triggered)
    last_idx: tuple[int, ...] = ()          # .lastIdx ("indices"; () = None)
    last_sent: int = -1                     # .lastSent ("sent_tokens", "cached_sent")
    # the corrected design's rxDesign field (the historical designs leave it 0)
    round: int = 0                          # .round ("corrected": last round cached)
    resumes: int = 0                        # rxResumes: resumes sent

    def __hash__(self) -> int:
        # (of the plain fields only, not the nested status message: equal
        # states still hash alike, and a checker that remembers the core's
        # answers by state hashes one per decision)
        return hash((self.status, self.blocks, self.cached, self.p_sent, self.p_total,
                     self.last_sent, self.round, self.resumes))


@dataclass(frozen=True)
class RxRequest:
    phase: str
    sessions: tuple[RxSession, ...]         # index s - 1

    def session(self, s: int) -> RxSession:
        return self.sessions[s - 1]


@dataclass(frozen=True)
class RxState:
    """The receiver: per-request state and one pool per rank (index s - 1)."""

    params: Params
    requests: Mapping[int, RxRequest]
    pools: tuple[Pool, ...]

    @classmethod
    def initial(cls, params: Params, requests: list[int] | range,
                pool_blocks: list[int] | range) -> RxState:
        """The spec's ``Init``: every request new, every rank's pool ``pool_blocks``."""
        fresh = RxRequest(NEW, tuple(RxSession() for _ in params.sessions))
        return cls(params, {r: fresh for r in requests},
                   tuple(Pool.of(tuple(pool_blocks)) for _ in params.sessions))

    def add_request(self, r: int) -> RxState:
        """A new request ``r`` (phase new): engines learn of requests one by one."""
        if r in self.requests:
            raise ValueError(f"request {r} already exists")
        return self._with(r, RxRequest(NEW, tuple(RxSession() for _ in self.params.sessions)))

    def drop_request(self, r: int) -> RxState:
        """Forget an ended request (done or failed, no blocks held), to keep
        the state bounded over a long run."""
        q = self.requests[r]
        if q.phase not in (DONE, FAILED) or any(x.blocks for x in q.sessions):
            raise ValueError(f"request {r} has not ended (phase {q.phase}) or still holds blocks")
        reqs = dict(self.requests)
        del reqs[r]
        return replace(self, requests=reqs)

    def request(self, r: int) -> RxRequest:
        return self.requests[r]

    def combined_status(self, r: int) -> int:
        """The all-reduce MIN over the ranks (the spec's ``CombinedStatus``)."""
        return min(x.status for x in self.requests[r].sessions)

    def first_block(self, r: int, s: int) -> int | None:
        """The block whose aux row a historical design reads (``AuxOf``); None: no blocks."""
        bs = self.requests[r].session(s).blocks
        return bs[0] if bs else None

    def held(self, r: int, s: int) -> tuple[int, ...]:
        """Blocks request ``r`` holds on rank ``s`` (the spec's ``Held``)."""
        q = self.requests[r]
        return q.session(s).blocks if q.phase in (QUEUED, ABORTING, PREFILL) else ()

    # -- building new states ------------------------------------------------
    def _with(self, r: int, req: RxRequest, pools: tuple[Pool, ...] | None = None) -> RxState:
        reqs = dict(self.requests)
        reqs[r] = req
        return replace(self, requests=reqs, pools=self.pools if pools is None else pools)


@dataclass(frozen=True)
class Step:
    """One allowed outcome of an action: the spec action it is, the new
    receiver state, and the effects for the host, in order."""

    action: str
    state: RxState
    effects: tuple[Effect, ...]
    session: int | None = None      # the rank, for per-rank polls (corrected, read-only)


def _set_sessions(q: RxRequest, **changes: object) -> RxRequest:
    return replace(q, sessions=tuple(replace(x, **changes) for x in q.sessions))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# ReceiverInit(r)
# ---------------------------------------------------------------------------
def receiver_init(rx: RxState, r: int, alloc: AllocHook | None = None) -> list[Step]:
    """ReceiverInit: allocate ``init_tokens`` on every rank (all or nothing;
    if any rank cannot, the request waits: no step), send init on each.
    ``alloc``: the host's allocator (``AllocHook``), default the spec's."""
    p, q = rx.params, rx.requests[r]
    if q.phase != NEW:
        return []
    pick = _allocator(p, alloc)
    per_session = [pick(s, rx.pools[s - 1], p.init_tokens) for s in p.sessions]
    if any(not c for c in per_session):
        return []
    steps = []
    for choice in product(*per_session):
        effects: list[Effect] = []
        sessions = []
        for s, (blocks, _) in zip(p.sessions, choice):
            sessions.append(replace(q.session(s), blocks=blocks, status=Status.WAITING_FOR_INPUT))
            effects.append(Alloc(s, blocks))
            effects.append(SendCtl(r, s, Ctl("init", blocks, 0, len(blocks) * p.block_size, 0)))
        state = rx._with(r, RxRequest(QUEUED, tuple(sessions)), tuple(c[1] for c in choice))
        steps.append(Step("ReceiverInit", state, tuple(effects)))
    return steps


# ---------------------------------------------------------------------------
# DeliverStatus(r, s)
# ---------------------------------------------------------------------------
def deliver_status(rx: RxState, r: int, s: int, msg: StatusMsg) -> Step:
    """DeliverStatus: the status message at the head of ``st[r][s]`` arrives
    (always enabled when there is one; any phase).  The local status is
    ``NewStatus(old, new)``; the kept info is the message if its round is
    not older than the one kept."""
    q = rx.requests[r]
    x = q.session(s)
    latches = rx.params.design.failed_latches
    nx = replace(x, status=merge_status(x.status, msg.status, latches),
                 info=msg if msg.round >= x.info.round else x.info)
    sessions = list(q.sessions)
    sessions[s - 1] = nx
    return Step("DeliverStatus", rx._with(r, replace(q, sessions=tuple(sessions))), ())


# ---------------------------------------------------------------------------
# ReceiverPoll(r)
# ---------------------------------------------------------------------------
def receiver_poll(rx: RxState, r: int, aux_seen: Mapping[int, int] | None = None,
                  alloc: AllocHook | None = None) -> list[Step]:
    """ReceiverPoll: the scheduler's poll of request ``r`` on the MIN of the
    ranks' statuses.  Every outcome the spec allows, each named after its
    disjunct.  ``aux_seen[s]``: the aux row of rank ``s``'s first current
    block (``first_block``), needed by the historical designs only; a rank
    missing from it reads 0 (stale).  ``alloc``: the host's allocator
    (``AllocHook``), default the spec's."""
    q = rx.requests[r]
    pick = _allocator(rx.params, alloc)
    comb = rx.combined_status(r)
    aux = dict(aux_seen or {})
    if comb == Status.SUCCESS and q.phase == QUEUED:
        return [_poll_success(rx, r, aux)]
    if comb == Status.FAILED and q.phase in (QUEUED, ABORTING):
        return [_fail_all(rx, r, "PollFailed", "status Failed")]
    if comb == Status.TRANSFERRING and q.phase == QUEUED:
        if rx.params.corrected:
            out: list[Step] = []
            for s in rx.params.sessions:
                out.extend(_poll_corrected(rx, r, s, pick))
            return out
        return _poll_historical(rx, r, aux, pick) + _poll_read_only(rx, r, aux)
    return []


def _poll_success(rx: RxState, r: int, aux: dict[int, int]) -> Step:
    """PollSuccess: hand over, per rank, the cache plus this round's tokens."""
    p, q = rx.params, rx.requests[r]
    effects: list[Effect] = []
    for s in p.sessions:
        x = q.session(s)
        if p.corrected:
            n = x.info.total - x.cached
        elif x.p_total > 0:
            n = x.p_total - x.p_sent
        else:
            n = aux.get(s, 0) if x.blocks else 0
        effects.append(Read(r, s, x.blocks, p.read_len(x.blocks, n), "handoff"))
    effects.append(HandOff(r))
    return Step("PollSuccess", rx._with(r, replace(q, phase=PREFILL)), tuple(effects))


def _free_all(rx: RxState, r: int, phase: str) -> tuple[RxState, list[Effect]]:
    """Free whatever every rank's block list holds now (the spec's ``FreeAll``)."""
    p, q = rx.params, rx.requests[r]
    pools = list(rx.pools)
    effects: list[Effect] = []
    for s in p.sessions:
        bs = q.session(s).blocks
        pools[s - 1] = pools[s - 1].free_blocks(bs)
        effects.append(Free(s, bs))
    nq = _set_sessions(replace(q, phase=phase), blocks=())
    return rx._with(r, nq, tuple(pools)), effects


def _fail_all(rx: RxState, r: int, action: str, reason: str) -> Step:
    """The failure path: free every rank's current blocks; the request fails."""
    state, effects = _free_all(rx, r, FAILED)
    return Step(action, state, (*effects, FailRequest(r, reason)))


@direct_init
@dataclass(frozen=True)
class HistoricalView:
    """What a historical design computes on one rank in one poll of a
    Transferring request, before it acts."""

    reads: bool     # ReadsNow: it reads its current blocks (get_buf) to decide
    got: int        # Len(Got): tokens that read yields (aux total, as far as the blocks reach)
    total: int      # TotalSeen: the total length it believes
    sent: int       # SentSeen: the tokens it believes it has (the resume's sent_tokens)
    wants: bool     # WantsResume: not "already resumed", and total > sent


def historical_view(variant: str, block_size: int, x: RxSession, aux: int) -> HistoricalView:
    """The "have I already resumed?" decision of a historical design on one
    rank: the spec's ReadsNow, Got, TotalSeen, SentSeen, AlreadyResumed and
    WantsResume.  ``aux``: the aux row of the rank's first current block.
    What the rank then does (allocate, free, resume, or fail) is
    ``receiver_poll``'s; a host that runs its own poll loop (the torch
    reference) calls this for the decision alone."""
    v = variant
    if v not in HISTORICAL:
        raise ValueError(f"historical_view: {v!r} is not a historical design "
                         f"({', '.join(HISTORICAL)})")
    blocks = x.blocks
    a = aux if blocks else 0
    got = max(0, min(a, len(blocks) * block_size))
    # (one branch per design, not a table of every design's test: a checker
    # asks this twice per resume poll)
    total, sent = a, got
    if v == "flag":
        reads, already = not x.flag, x.flag
    elif v == "indices":
        reads, already = x.last_idx != blocks, x.last_idx == blocks
    elif v == "once":
        reads, already = x.cached == 0, x.cached > 0
    else:                                   # sent_tokens, cached_sent
        reads = v == "sent_tokens" or x.p_total == 0
        if x.p_total > 0:
            total = x.p_total
            sent = (x.p_sent + got if got > 0 else x.p_sent) if v == "sent_tokens" else x.p_sent
        already = sent == x.last_sent and sent > 0
    return HistoricalView(reads, got, total, sent, not already and total > sent)


def _seen(rx: RxState, x: RxSession, aux: int) -> HistoricalView:
    return historical_view(rx.params.variant, rx.params.block_size, x, aux)


def _hist_options(rx: RxState, s: int, x: RxSession, seen: HistoricalView,
                  pick: AllocHook) -> list[tuple[str, tuple[int, ...], Pool]]:
    """The spec's ``HistOption``: ("wait"|"resume"|"fail", new blocks, pool after)."""
    p = rx.params
    pool = rx.pools[s - 1]
    none = ((), pool)
    if not seen.wants:
        return [("wait", *none)]
    need = p.resume_tokens(seen.total - seen.sent, len(pool.free))
    if p.alloc_first:
        cs = pick(s, pool, need)
        return [("resume", b, rest) for b, rest in cs] if cs else [("wait", *none)]
    cs = pick(s, pool.free_blocks(x.blocks), need)
    return [("resume", b, rest) for b, rest in cs] if cs else [("fail", *none)]


def _poll_historical(rx: RxState, r: int, aux: dict[int, int], pick: AllocHook) -> list[Step]:
    """PollTransferringHistorical: every rank decides on what it holds, in
    lockstep; at least one rank acts.  A free_first rank whose allocation
    fails fails the request through the Failed path, which frees its old
    blocks a second time (the historical bug, kept)."""
    p, q = rx.params, rx.requests[r]
    v = p.variant
    seen = {s: _seen(rx, q.session(s), aux.get(s, 0)) for s in p.sessions}
    options = [_hist_options(rx, s, q.session(s), seen[s], pick) for s in p.sessions]
    steps = []
    for combo in product(*options):
        o = dict(zip(p.sessions, combo))
        if all(k == "wait" for k, _, _ in combo):
            continue
        fails = any(k == "fail" for k, _, _ in combo)
        effects: list[Effect] = []
        sessions = []
        pools = list(rx.pools)
        for s in p.sessions:
            x, sn = q.session(s), seen[s]
            kind, new_blocks, rest = o[s]
            acts = kind != "wait"
            if sn.reads or (acts and x.cached == 0):
                purpose = "cache" if acts and x.cached == 0 else "probe"
                effects.append(Read(r, s, x.blocks, sn.got, purpose))
            nx = x
            if acts:
                nx = replace(nx, cached=sn.got if x.cached == 0 else x.cached,
                             p_total=sn.total if x.p_total == 0 else x.p_total,
                             p_sent=sn.sent if v in ("sent_tokens", "cached_sent") or x.cached == 0
                             else x.p_sent)
            if fails:
                extra = x.blocks if kind == "fail" else ()
                pools[s - 1] = pools[s - 1].free_blocks(x.blocks + extra)
                effects.append(Free(s, x.blocks))
                if extra:
                    effects.append(Free(s, extra))
                nx = replace(nx, blocks=())
            elif acts:
                if p.alloc_first:
                    pools[s - 1] = rest.free_blocks(x.blocks)
                    effects += [Alloc(s, new_blocks), Free(s, x.blocks)]
                else:
                    pools[s - 1] = rest
                    effects += [Free(s, x.blocks), Alloc(s, new_blocks)]
                effects.append(SendCtl(r, s, Ctl("resume", new_blocks, sn.sent,
                                                 len(new_blocks) * p.block_size, 0)))
                nx = replace(nx, blocks=new_blocks, resumes=x.resumes + 1,
                             flag=True if v == "flag" else x.flag,
                             last_idx=new_blocks if v == "indices" else x.last_idx,
                             last_sent=sn.sent if v in ("sent_tokens", "cached_sent") else x.last_sent)
            sessions.append(nx)
        if fails:
            effects.append(FailRequest(r, "resume allocation failed (free_first)"))
        nq = RxRequest(FAILED if fails else q.phase, tuple(sessions))
        steps.append(Step("PollTransferringHistorical", rx._with(r, nq, tuple(pools)), tuple(effects)))
    return steps


def _poll_read_only(rx: RxState, r: int, aux: dict[int, int]) -> list[Step]:
    """PollReadOnly: a rank that does not want to resume but reads its
    buffer to decide.  Nothing changes; the read is the point (a host that
    checks ``NoReadDuringWrite`` checks it; the spec takes this step only
    when the read overlaps a write in flight)."""
    p, q = rx.params, rx.requests[r]
    out = []
    for s in p.sessions:
        x = q.session(s)
        sn = _seen(rx, x, aux.get(s, 0))
        if not sn.wants and sn.reads:
            out.append(Step("PollReadOnly", rx, (Read(r, s, x.blocks, sn.got, "probe"),), s))
    return out


def corrected_cache_due(x: RxSession) -> bool:
    """CorrectedCache's guard: the last status names a round that ended
    partial (Transferring) newer than the last round this rank cached."""
    return x.info.round > x.round and x.info.status == Status.TRANSFERRING


def corrected_resume_due(x: RxSession) -> bool:
    """CorrectedResume's guard (before the allocation): this rank cached the
    round the last status names and has not resumed it yet."""
    return x.round == x.info.round and x.resumes < x.round


def _poll_corrected(rx: RxState, r: int, s: int, pick: AllocHook) -> list[Step]:
    """PollTransferringCorrected on rank ``s``: CorrectedCache or CorrectedResume."""
    p, q = rx.params, rx.requests[r]
    x = q.session(s)
    info = x.info
    sessions = list(q.sessions)
    if corrected_cache_due(x):
        # CorrectedCache: copy this round's tokens out, free the blocks
        n = p.read_len(x.blocks, info.sent - x.cached)
        sessions[s - 1] = replace(x, cached=x.cached + n, round=info.round, blocks=())
        pools = list(rx.pools)
        pools[s - 1] = pools[s - 1].free_blocks(x.blocks)
        effects: tuple[Effect, ...] = (Read(r, s, x.blocks, n, "cache"), Free(s, x.blocks))
        return [Step("PollTransferringCorrected",
                     rx._with(r, replace(q, sessions=tuple(sessions)), tuple(pools)), effects, s)]
    if corrected_resume_due(x):
        # CorrectedResume: allocate what is free, up to what remains; resume round k
        pool = rx.pools[s - 1]
        need = p.resume_tokens(info.total - info.sent, len(pool.free))
        if info.total > info.sent and need <= 0:
            return []           # no block free: retry on a later poll
        out = []
        for blocks, rest in pick(s, pool, need):
            sessions[s - 1] = replace(x, blocks=blocks, resumes=x.resumes + 1)
            pools = list(rx.pools)
            pools[s - 1] = rest
            msg = Ctl("resume", blocks, info.sent, len(blocks) * p.block_size, info.round)
            out.append(Step("PollTransferringCorrected",
                            rx._with(r, replace(q, sessions=tuple(sessions)), tuple(pools)),
                            (Alloc(s, blocks), SendCtl(r, s, msg)), s))
        return out
    return []


# ---------------------------------------------------------------------------
# PrefillDone(r), Abort(r), Heartbeat(r)
# ---------------------------------------------------------------------------
def prefill_done(rx: RxState, r: int) -> list[Step]:
    """PrefillDone: prefill finished, the request's blocks go back to the pools."""
    q = rx.requests[r]
    if q.phase != PREFILL:
        return []
    state, effects = _free_all(rx, r, DONE)
    return [Step("PrefillDone", state, tuple(effects))]


def abort(rx: RxState, r: int) -> list[Step]:
    """Abort: the receiver gives a queued request up.  Historical designs
    fail it locally and free its blocks (writes may still land in them);
    the corrected design sends abort on every rank and keeps the blocks
    until the sender's Failed arrives (``PollFailed`` frees them)."""
    p, q = rx.params, rx.requests[r]
    if q.phase != QUEUED:
        return []
    if p.design.abort_is_message:
        effects = tuple(SendCtl(r, s, Ctl("abort")) for s in p.sessions)
        return [Step("Abort", rx._with(r, replace(q, phase=ABORTING)), effects)]
    return [_fail_all(rx, r, "Abort", "aborted")]


def heartbeat_lost(rx: RxState, r: int) -> list[Step]:
    """The language half of Heartbeat: the encode peer is gone, every rank
    sets the request's status Failed (the next poll fails it)."""
    q = rx.requests[r]
    if q.phase not in (QUEUED, ABORTING):
        return []
    return [Step("Heartbeat", rx._with(r, _set_sessions(q, status=Status.FAILED)), ())]
