"""One encode rank and N language ranks of the fork, in one process, traced.

``Cluster`` builds the fork's real objects the way its schedulers do:

* encode side: ``MultimodalDataBuffers`` + ``ReqToMetadataBlockAllocator``
  (source blocks), ``MooncakeEmbeddingManager`` in ENCODE mode (its receive
  loop and transfer worker), one ``MooncakeEmbeddingSender`` per request;
* language side, per rank (``LanguageRank``; several ranks = tensor
  parallelism, each rank one receiving session): ``MultimodalDataBuffers`` +
  ``ReqToMetadataBlockAllocator`` (destination blocks), ``MultimodalLanguagePreallocQueue`` (which builds the
  LANGUAGE manager and one ``MooncakeEmbeddingReceiver`` per request) and
  ``MultimodalLanguageTransferQueue`` (``pop_transferred``: the poll loop);

and wires them through the in-process transport of ``sglang_inprocess``.
The driver decides when each side runs (``language_step``, ``encode_step``),
so a scenario is one fixed interleaving of real code.  With one rank the
all-reduces go through a real one-process gloo group; with several, every
rank runs its scheduler step in its own thread and ``LockstepGroup`` performs
the all-reduces, the ranks taking turns so that the run stays reproducible.

Observation (what an engine could log, see docs/trace-format.md), all by
wrapping the fork's objects without changing what they do:

* ``alloc``/``free``: the language allocator's ``alloc``/``free``;
* ``init_sent``/``resume_sent``: ``MooncakeEmbeddingReceiver.init`` /
  ``resume_transfer``;
* ``init_recv``/``resume_recv``/``status_recv``: the message taken from the
  encode / language socket by the fork's receive loops;
* ``poll`` (combined status + decision), ``buffer_read``, ``handoff``,
  ``fail``: ``poll_and_all_reduce`` as ``pop_transferred`` calls it,
  ``MultimodalDataBuffers.get_buf``, the requests ``pop_transferred``
  returns, ``_handle_failed_request``; the decision is what the real code did
  (sent a resume, failed the request, got None from the allocator and kept
  waiting, handed the request over, or nothing);
* ``round_start``: the transfer engine's batch as ``send_embedding`` issues
  it (blocks read back from the byte addresses, tokens from the fill-ids
  lengths, aux written or not); ``round_end`` (+ ``write_error`` when it
  failed): when ``send_embedding`` returns for that session, with the
  offset the worker then stores (the fork writes a room's sessions in
  turn, as the deployed adapter logs them); ``status_sent``: the status the
  transfer worker sends.

Token identities: the encode side fills ``fill_ids`` of request r with
``r * ID_BASE + position`` (positions 1-based), so every read and handoff
logs which tokens it really got.
"""

from __future__ import annotations

import os
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resumespec.reference.protocol.designs import BY_COMMIT, BY_VARIANT, STATUSES

from .sglang_inprocess import (
    Drained,
    InProcessTransferEngine,
    LockstepGroup,
    ManualThreads,
    make_draining_queue,
    route_all_reduce_to_lockstep_groups,
)
from .sglang_loader import Fork
from .sglang_observe import (
    ids_of,
    observe_allocator,
    observe_buffers,
    pop_and_log,
)

ID_BASE = 1000          # fill id = req * ID_BASE + position (1-based)
STATUS_NAMES = STATUSES
BOOTSTRAP_PORT = 8998

# The historical commits and the design each one runs (docs/model.md).
DESIGNS: dict[str, dict[str, Any]] = {
    commit: {"variant": d.variant, "resume_order": d.resume_order.value, "barrier": d.barrier}
    for commit, d in BY_COMMIT.items()}

# Checkouts with one of conformance/engine_patch/'s patches applied, by label
# (the patch file's name): the design the patched code runs.
_CORRECTED = BY_VARIANT["corrected"]
PATCHED: dict[str, dict[str, Any]] = {
    "cca20b094-corrected": {"variant": "corrected",
                            "resume_order": _CORRECTED.resume_order.value,
                            "barrier": _CORRECTED.barrier}}


def design_of(commit: str) -> tuple[str, dict[str, Any]]:
    """The short commit id and design for a (possibly longer) commit id, or
    a patched checkout's label (``PATCHED``)."""
    c = commit.strip().lower()
    if c in PATCHED:
        return c, PATCHED[c]
    for short, design in DESIGNS.items():
        if len(c) >= 7 and (short.startswith(c) or c.startswith(short)):
            return short, design
    raise KeyError(commit)


@dataclass
class Config:
    block_size: int = 4         # tokens per block
    hidden: int = 2             # embedding_dim (tiny: traces stay small)
    nblocks: int = 4            # language pool
    enc_nblocks: int = 16       # encode pool
    init_tokens: int = 4        # SGLANG_EMBEDDING_DEFAULT_ALLOCATE_BUFFER_SIZE
    cap: int = 0                # >0: the adapter caps resume allocations (not the engine)
    nsess: int = 1              # language ranks (tensor parallel), each a session
    faults: tuple[str, ...] = ()


class LanguageReq:
    """The attributes of the scheduler's Req that the transfer queues touch."""

    def __init__(self, room: int, prompt_len: int = 1):
        self.rid = f"req-{room}"
        self.bootstrap_room = room
        self.bootstrap_host = "127.0.0.1"
        self.data_parallel_rank = None
        self.finished_reason = None
        self.return_logprob = False
        self.origin_input_ids = [7] * prompt_len   # text tokens before the embedding
        self.embedding_indices = None
        self.input_embeds = None
        self.multimodal_inputs = None


class EncodeReq:
    """The attributes ``MultimodalDataBuffers.set_buf`` reads on the encode side."""

    def __init__(self, room: int, total: int, hidden: int, mm_inputs_cls: type):
        self.rid = f"req-{room}"
        self.embedding = torch.stack(
            [torch.full((hidden,), float(room * ID_BASE + i + 1)) for i in range(total)])
        self.fill_ids = [room * ID_BASE + i + 1 for i in range(total)]
        mm = mm_inputs_cls(mm_items=[])
        mm.mrope_positions = torch.arange(3 * total, dtype=torch.int32).reshape(3, total)
        mm.mrope_position_delta = torch.tensor([[room]])
        self.multimodal_inputs = mm
        self.embedding_indices: list[int] | None = None


class FakeScheduler:
    """What the transfer queues read from the scheduler."""

    def __init__(self, server_args: Any):
        self.server_args = server_args
        self.gpu_id = 0
        self.tp_rank = 0
        self.enable_metrics = False
        self.streamed: list[Any] = []

    def stream_output(self, reqs: list, return_logprob: bool = False, *a: Any) -> None:
        self.streamed.extend(reqs)


_GLOO: Any = None


def one_process_gloo_group():
    """A real gloo group of one process (the all-reduce of one rank is the identity)."""
    global _GLOO
    import torch.distributed as dist
    if _GLOO is None:
        if not dist.is_initialized():
            store = tempfile.mktemp(prefix="resumespec-gloo-")
            dist.init_process_group("gloo", init_method=f"file://{store}", rank=0,
                                    world_size=1)
        _GLOO = dist.new_group(backend="gloo")
    return _GLOO


class LanguageRank:
    """One language rank: its pool, buffers, queues, manager, and its trace."""

    def __init__(self, cluster: Cluster, rank: int, group: Any, server_args: Any):
        from resumespec.conformance.recorder import recorder_for

        fork, u, cfg = cluster.fork, cluster.fork.utils, cluster.cfg
        self.cluster = cluster
        self.rank = rank                                   # 1-based, = session
        self.rec = recorder_for(f"language/{rank}", str(cluster.trace_path), check=True)
        self.buffers = u.MultimodalDataBuffers(cfg.nblocks, cfg.block_size,
                                               embedding_dim=cfg.hidden)
        self.alloc = u.ReqToMetadataBlockAllocator(cfg.nblocks, cfg.block_size)
        self.scheduler = FakeScheduler(server_args)
        self.scheduler.tp_rank = rank - 1
        n = len(cluster.threads.started)
        self.prealloc = fork.language.MultimodalLanguagePreallocQueue(
            self.alloc, self.buffers, rank - 1, cluster.nsess, self.scheduler,
            u.TransferBackend.MOONCAKE, BOOTSTRAP_PORT, group)
        self.threads = cluster.threads.started[n:]
        self.mgr = self.prealloc.data_manager
        self.transfer_queue = fork.language.MultimodalLanguageTransferQueue(
            group, self.alloc, self.buffers, self.scheduler, None)
        self.endpoint = f"127.0.0.1:{self.mgr.rank_port}"
        self.reqs: dict[int, LanguageReq] = {}
        self.by_room: dict[int, Any] = {}            # MultimodalLanguageRequest
        self.handed: dict[int, LanguageReq] = {}
        self.finished: set[int] = set()              # prefill done or failed
        self.aborted: set[int] = set()               # abort() called, not yet polled
        # state of the pop_transferred call in progress
        self.buffer: list | None = None
        self.pop_current: int | None = None
        self.in_pop = False
        self.pop_polls: list[int] | None = None
        self.pop_resumed: set[int] = set()
        self.pop_failed: set[int] = set()
        self.pop_alloc_none: set[int] = set()
        self.pop_resume_alloc: set[int] = set()
        self.pop_freed: set[int] = set()
        self.corrected = cluster.design["variant"] == "corrected"
        self._install_observers()

    # -- logging ------------------------------------------------------------
    def log(self, event: str, **f: Any) -> None:
        if self.buffer is not None:
            self.buffer.append((self.pop_current, event, f))
        else:
            self.write(event, **f)

    def write(self, event: str, **f: Any) -> None:
        self.rec.log(event, **f)
        self.cluster.events_logged += 1

    def _install_observers(self) -> None:
        me, cfg = self, self.cluster.cfg
        observe_allocator(self, self.alloc, cfg.cap * cfg.block_size if cfg.cap else 0)
        observe_buffers(self, self.buffers, lambda fill_ids, room: {"ids": ids_of(fill_ids, ID_BASE)})

        real_node_failure = self.mgr._handle_node_failure

        def handle_node_failure(bootstrap_addr):
            before = {k: int(v) for k, v in me.mgr.request_status.items()}
            real_node_failure(bootstrap_addr)
            for room, status in sorted(me.mgr.request_status.items()):
                if int(status) == 0 and before.get(room) != 0:
                    me.log("heartbeat_fail", req=room)
        self.mgr._handle_node_failure = handle_node_failure

        tq = self.transfer_queue
        real_handle_failed = tq._handle_failed_request

        def handle_failed(language_req):
            real_handle_failed(language_req)
            room = language_req.req.bootstrap_room
            me.pop_failed.add(room)
            reason = getattr(language_req.req.finished_reason, "message", "") or "failed"
            me.log("fail", req=room, reason=reason[:200])
        tq._handle_failed_request = handle_failed

    # -- driving ------------------------------------------------------------
    def submit(self, room: int) -> None:
        req = LanguageReq(room)
        self.reqs[room] = req
        self.prealloc.add(req)

    def recv(self) -> None:
        for _name, target, args in self.threads:
            if getattr(target, "__name__", "") == "language_thread":
                ManualThreads.run_until_drained(target, args)

    def step(self) -> list[int]:
        """One scheduler loop: receive statuses, preallocate, poll the transfer queue."""
        self.recv()
        for lr in self.prealloc.pop_preallocated():
            self.by_room[lr.req.bootstrap_room] = lr
            self.transfer_queue.extend([lr])
        return self.pop_transferred()

    def pop_transferred(self) -> list[int]:
        """Run the real ``pop_transferred`` once and log what it did, per
        request (``sglang_observe.pop_and_log``)."""
        return pop_and_log(self, self.transfer_queue)

    # what pop_and_log asks of this adapter: no timestamps of its own, every
    # poll logged, the handoff's token identities as the fill ids it set
    def poll_times(self) -> tuple[dict[str, float], dict[str, float]]:
        return {}, {}

    def keep_poll(self, room: int, status: str, decision: str, events: list) -> bool:
        return True

    def log_handoff(self, room: int, req: Any, extra: dict[str, float]) -> None:
        ids = ids_of(req.origin_input_ids, ID_BASE)
        self.write("handoff", req=room, session=self.rank, tokens=len(ids), ids=ids, **extra)
        self.handed[room] = req

    def prefill_done(self, room: int) -> None:
        req = self.handed.pop(room)
        self.log("prefill_done", req=room)
        self.alloc.free_with_req(req)
        self.finished.add(room)

    def run_heartbeat_once(self) -> None:
        """One pass of the fork's heartbeat checker (GET /health of each encode peer)."""
        for _name, target, args in self.threads:
            if getattr(target, "__name__", "") == "heartbeat_checker":
                self.cluster.sleeps_left = 1      # the pass's sleep; the next ends it
                ManualThreads.run_until_drained(target, args)

    def abort(self, room: int) -> None:
        lr = self.by_room.get(room)
        if lr is None:
            raise KeyError(f"request {room} is not in the transfer queue of rank {self.rank}")
        lr.embedding_receiver.abort()
        if self.corrected and getattr(lr.embedding_receiver, "aborting", False):
            # corrected (patched engine): abort is a message; the blocks stay
            # held until the encode side answers Failed
            self.log("abort", req=room)
            self.log("abort_sent", req=room, session=self.rank)
            self.finished.add(room)
            return
        self.aborted.add(room)     # logged when it takes effect (next poll)


class Cluster:
    """The encode rank and ``cfg.nsess`` language ranks, wired and traced."""

    def __init__(self, fork: Fork, commit: str, cfg: Config, trace_path: Path):
        from resumespec.conformance.recorder import recorder_for

        self.fork = fork
        self.cfg = cfg
        self.nsess = cfg.nsess
        self.commit, self.design = design_of(commit)
        u, conn, base = fork.utils, fork.conn, fork.base
        self.KVPoll = base.KVPoll
        self.events_logged = 0

        # Recorders: every process into one merged file (one OS process, so
        # the line order is the real order of events).
        trace_path.parent.mkdir(parents=True, exist_ok=True)
        if trace_path.exists():
            trace_path.unlink()
        self.trace_path = trace_path
        self.enc_rec = recorder_for("encode", str(trace_path), check=True)
        self.config_event = dict(
            block_size=cfg.block_size, nblocks=cfg.nblocks, nsess=cfg.nsess,
            init_tokens=cfg.init_tokens, cap=cfg.cap, order="fifo",
            variant=self.design["variant"], resume_order=self.design["resume_order"],
            barrier=self.design["barrier"], faults=list(cfg.faults),
            # the fork's sender (the same in all five commits): a failed write
            # marks its session dead and tells only that session (ForkSender);
            # the patched engine runs the corrected design's own rule
            fork_sender=self.design["variant"] != "corrected")
        self.enc_rec.log("config", **self.config_event)

        # Threads run on demand; queues raise Drained when empty.
        os.environ["SGLANG_DISAGGREGATION_QUEUE_SIZE"] = "1"
        os.environ["SGLANG_DISAGGREGATION_THREAD_POOL_SIZE"] = "1"
        os.environ["SGLANG_EMBEDDING_DEFAULT_ALLOCATE_BUFFER_SIZE"] = str(cfg.init_tokens)
        os.environ["SGLANG_DISAGGREGATION_HEARTBEAT_MAX_FAILURE"] = "1"
        # the patched engine's own cap on a resume's allocation (the model's
        # Cap); the historical commits do not read it (the adapter caps them)
        os.environ["SGLANG_EMBEDDING_RESUME_MAX_BLOCKS"] = str(cfg.cap)
        self.threads = ManualThreads()
        conn.threading = self.threads.module
        # the heartbeat loop sleeps between passes: here a sleep returns at
        # once while passes are allowed, then ends the loop
        self.sleeps_left = 0
        self.encode_dead = False

        def sleep(_seconds: float) -> None:
            if self.sleeps_left <= 0:
                raise Drained()
            self.sleeps_left -= 1
        conn.time = types.SimpleNamespace(time=time.time, sleep=sleep)
        fork.bootstrap.dead = False
        conn.FastQueue = make_draining_queue(fork.common.FastQueue)
        InProcessTransferEngine.reset()
        fork.network.inboxes.clear()
        fork.network.budgets.clear()
        fork.network.on_recv.clear()
        enc_args = types.SimpleNamespace(
            disaggregation_bootstrap_port=BOOTSTRAP_PORT, dist_init_addr=None, tp_size=1,
            dp_size=1, disaggregation_ib_device=None)
        lang_args = types.SimpleNamespace(
            disaggregation_bootstrap_port=BOOTSTRAP_PORT, dist_init_addr=None,
            tp_size=cfg.nsess, dp_size=1, disaggregation_ib_device=None)
        if cfg.nsess == 1:
            self.group = one_process_gloo_group()
        else:
            route_all_reduce_to_lockstep_groups()
            self.group = LockstepGroup(cfg.nsess)

        # ---- encode rank ------------------------------------------------
        self.enc_buffers = u.MultimodalDataBuffers(cfg.enc_nblocks, cfg.block_size,
                                                   embedding_dim=cfg.hidden)
        self.enc_alloc = u.ReqToMetadataBlockAllocator(cfg.enc_nblocks, cfg.block_size)
        kv = base.KVArgs()
        kv.engine_rank = 0
        kv.aux_data_ptrs, kv.aux_data_lens, kv.aux_item_lens = self.enc_buffers.get_buf_infos()
        kv.ib_device = None
        kv.gpu_id = 0
        n0 = len(self.threads.started)
        self.enc_mgr = conn.MooncakeEmbeddingManager(kv, u.DisaggregationMode.ENCODE, enc_args)
        self.enc_threads = self.threads.started[n0:]
        self.enc_endpoint = f"127.0.0.1:{self.enc_mgr.rank_port}"
        self.senders: dict[int, Any] = {}
        self.enc_reqs: dict[int, EncodeReq] = {}
        self.enc_ready: list[int] = []          # embeddings computed, not yet sent
        self.enc_sent: set[int] = set()
        self.enc_src_freed: set[int] = set()

        # ---- language ranks ---------------------------------------------
        self.ranks: list[LanguageRank] = []
        for r in range(1, cfg.nsess + 1):
            lr = LanguageRank(self, r, self.group, lang_args)
            lr.rec.log("config", **self.config_event)
            self.ranks.append(lr)
        self.session_of = {lr.mgr.get_session_id(): lr.rank for lr in self.ranks}
        self.rank_of_port = {lr.mgr.rank_port: lr.rank for lr in self.ranks}
        self.rank_of_endpoint = {lr.endpoint: lr for lr in self.ranks}
        self.rank_of_mgr = {id(lr.mgr): lr for lr in self.ranks}
        self._install_shared_observers()

    # rank 1, for scenarios of one rank
    @property
    def lang(self) -> LanguageRank:
        return self.ranks[0]

    def log_enc(self, event: str, **f: Any) -> None:
        self.enc_rec.log(event, **f)
        self.events_logged += 1

    # ------------------------------------------------------------------
    # observers shared by the ranks, and the encode side's
    # ------------------------------------------------------------------
    def _install_shared_observers(self) -> None:
        fork, conn = self.fork, self.fork.conn
        cluster = self

        # receiver messages (class-level wrappers; they report to the rank of
        # the receiver's manager in the cluster that is current)
        Receiver = conn.MooncakeEmbeddingReceiver
        Receiver._resumespec_cluster = self
        if not hasattr(Receiver, "_resumespec_real_init"):
            real_init, real_resume = Receiver.init, Receiver.resume_transfer
            Receiver._resumespec_real_init = real_init

            def rank_of(rself) -> LanguageRank:
                return Receiver._resumespec_cluster.rank_of_mgr[id(rself.embedding_mgr)]

            def r_init(rself, embedding_indices=None, allocated_tokens=None):
                real_init(rself, embedding_indices=embedding_indices,
                          allocated_tokens=allocated_tokens)
                lr = rank_of(rself)
                lr.log("init_sent", req=rself.bootstrap_room, session=lr.rank,
                       blocks=list(embedding_indices), allocated_tokens=int(allocated_tokens))

            def r_resume(rself, embedding_indices, sent_tokens, allocated_tokens, **kw):
                real_resume(rself, embedding_indices=embedding_indices,
                            sent_tokens=sent_tokens, allocated_tokens=allocated_tokens, **kw)
                lr = rank_of(rself)
                extra = {"round": int(kw["round"])} if "round" in kw else {}
                lr.log("resume_sent", req=rself.bootstrap_room, session=lr.rank,
                       blocks=list(embedding_indices), sent_tokens=int(sent_tokens),
                       allocated_tokens=int(allocated_tokens), **extra)
                lr.pop_resumed.add(rself.bootstrap_room)
            Receiver.init = r_init
            Receiver.resume_transfer = r_resume

        # messages taken by the receive loops
        def on_recv(endpoint: str, frames: list) -> None:
            lr = cluster.rank_of_endpoint.get(endpoint)
            if lr is not None:
                room, status = int(frames[0]), int(frames[1])
                extra = ({"round": int(frames[2]), "sent_tokens": int(frames[3]),
                          "total": int(frames[4])} if len(frames) >= 5 else {})
                lr.log("status_recv", req=room, session=lr.rank, status=STATUS_NAMES[status],
                       **extra)
            elif endpoint == cluster.enc_endpoint:
                if frames[0] == b"None":
                    return          # buffer registration (once per connection)
                room = int(frames[0])
                session = cluster.session_of[frames[3].decode()]
                if len(frames) == 6 and frames[5] == b"abort":      # patched engine
                    cluster.log_enc("abort_recv", req=room, session=session)
                    return
                blocks = [int(x) for x in frames[4].decode().split(",") if x]
                if len(frames) >= 8:
                    extra = {"round": int(frames[8])} if len(frames) >= 9 else {}
                    cluster.log_enc("resume_recv", req=room, session=session, blocks=blocks,
                                    sent_tokens=int(frames[6]), allocated_tokens=int(frames[7]),
                                    **extra)
                else:
                    cluster.log_enc("init_recv", req=room, session=session, blocks=blocks,
                                    allocated_tokens=int(frames[6]))
        fork.network.on_recv.append(on_recv)

        # the poll loop's combined status
        real_poll_reduce = fork.utils.poll_and_all_reduce

        def poll_and_all_reduce(pollers, gloo_group):
            polls = real_poll_reduce(pollers, gloo_group)
            if pollers:
                lr = cluster.rank_of_mgr.get(id(pollers[0].embedding_mgr))
                if lr is not None and lr.in_pop:
                    lr.pop_polls = list(polls)
            return polls
        fork.language.poll_and_all_reduce = poll_and_all_reduce

        # sender side: rounds and statuses
        self._sending: dict | None = None
        self._worker_room: int | None = None
        real_send = self.enc_mgr.send_embedding

        def send_embedding(mooncake_session_id, embedding_indices, dst_embedding_ptrs,
                           dst_embedding_indices, total_tokens, block_size, sent_tokens=0,
                           allocated_tokens=None):
            cluster._sending = {"room": cluster._worker_room,
                                "session": cluster.session_of[mooncake_session_id],
                                "sent_tokens": int(sent_tokens), "total": int(total_tokens)}
            ctx = cluster._sending
            try:
                out = real_send(mooncake_session_id, embedding_indices, dst_embedding_ptrs,
                                dst_embedding_indices, total_tokens, block_size,
                                sent_tokens, allocated_tokens)
                if ctx.get("logged"):
                    # the round ends for this session when its batch returns
                    # (the fork writes a room's sessions in turn); on success
                    # the worker then stores sent + tokens as the offset
                    ok = out[0] == 0
                    room, s, sent = ctx["room"], ctx["session"], ctx["sent_tokens"]
                    cluster.log_enc("round_end", req=room, session=s,
                                    sent_tokens=sent + ctx["tokens"] if ok else sent, ok=ok)
                    if not ok:
                        cluster.log_enc("write_error", req=room, session=s)
                return out
            finally:
                cluster._sending = None
        self.enc_mgr.send_embedding = send_embedding

        enc_ptrs, _, enc_items = (list(x) for x in self.enc_buffers.get_buf_infos())
        lang_layout = {}
        for lr in self.ranks:
            ptrs, _, items = (list(x) for x in lr.buffers.get_buf_infos())
            lang_layout[lr.rank] = (ptrs, items)
        nblocks = self.cfg.nblocks

        def block_of(addr: int, ptrs: list, items: list, kind: int) -> int:
            return (addr - ptrs[kind]) // items[kind]

        def in_kind(addr: int, ptrs: list, items: list, kind: int) -> bool:
            return ptrs[kind] <= addr < ptrs[kind] + items[kind] * nblocks

        def on_batch(engine, session_id, src, dst, lengths) -> None:
            ctx = cluster._sending
            if ctx is None or engine is not cluster.enc_mgr.engine or ctx.get("logged"):
                return
            ctx["logged"] = True
            ptrs, items = lang_layout[ctx["session"]]
            src_blocks, dst_blocks, tokens, aux = [], [], 0, False
            for s, d, n in zip(src, dst, lengths):
                if in_kind(d, ptrs, items, 1):                   # fill_ids rows
                    dst_blocks.append(block_of(d, ptrs, items, 1))
                    src_blocks.append(block_of(s, enc_ptrs, enc_items, 1))
                    tokens += n // 4
                if in_kind(d, ptrs, items, 3):                   # aux rows
                    aux = True
            remaining = ctx["total"] - ctx["sent_tokens"]
            ctx["tokens"] = tokens
            cluster.log_enc("round_start", req=ctx["room"], session=ctx["session"],
                            sent_tokens=ctx["sent_tokens"], tokens=tokens, total=ctx["total"],
                            src_blocks=src_blocks, dst_blocks=dst_blocks,
                            partial=remaining > tokens, aux_written=aux)
        InProcessTransferEngine.observers.append(on_batch)

        real_transfer = getattr(self.enc_mgr, "_transfer", None)
        if real_transfer is not None:
            # patched engine: a round's writes go through `_transfer`, which
            # fails them at once for a session known dead (no engine call):
            # the round started all the same
            def transfer(mooncake_session_id, src, dst, lengths):
                on_batch(cluster.enc_mgr.engine, mooncake_session_id, src, dst, lengths)
                return real_transfer(mooncake_session_id, src, dst, lengths)
            self.enc_mgr._transfer = transfer

        real_sync = self.enc_mgr.sync_status_to_language_endpoint

        def sync_status(remote, dst_port, room, status, **kw):
            status = int(status)
            real_sync(remote, dst_port, room, status, **kw)
            extra = ({"round": int(kw.get("round", 0)), "sent_tokens": int(kw.get("sent", 0)),
                      "total": int(kw.get("total", 0))}
                     if cluster.design["variant"] == "corrected" else {})
            cluster.log_enc("status_sent", req=room, session=cluster.rank_of_port[int(dst_port)],
                            status=STATUS_NAMES[status], **extra)
        self.enc_mgr.sync_status_to_language_endpoint = sync_status

        def on_get(item: Any) -> None:
            cluster._worker_room = item.room
        for q in self.enc_mgr.transfer_queues:
            q.on_get = on_get

    # ------------------------------------------------------------------
    # driving the language ranks (SPMD: every rank runs the same step)
    # ------------------------------------------------------------------
    def language_submit(self, room: int) -> None:
        for lr in self.ranks:
            lr.submit(room)

    def language_step(self) -> None:
        if self.nsess == 1:
            self.lang.step()
        else:
            self.group.run([lr.step for lr in self.ranks])

    def prefill_ready(self) -> list[int]:
        """Requests every rank has handed over (prefill runs on all ranks at once)."""
        rooms = set(self.ranks[0].handed)
        for lr in self.ranks[1:]:
            rooms &= set(lr.handed)
        return sorted(rooms)

    def prefill_done(self, room: int) -> None:
        for lr in self.ranks:
            lr.prefill_done(room)

    def abort(self, room: int) -> None:
        for lr in self.ranks:
            lr.abort(room)

    @property
    def handed(self) -> dict[int, LanguageReq]:
        return {r: self.ranks[0].handed[r] for r in self.prefill_ready()}

    @property
    def finished(self) -> set[int]:
        out = set(self.ranks[0].finished)
        for lr in self.ranks[1:]:
            out &= lr.finished
        return out

    # ------------------------------------------------------------------
    # driving the encode rank
    # ------------------------------------------------------------------
    def encode_submit(self, room: int, total: int) -> None:
        conn = self.fork.conn
        sender = conn.MooncakeEmbeddingSender(self.enc_mgr, f"127.0.0.1:{BOOTSTRAP_PORT}",
                                              room, [0], 0)
        ereq = EncodeReq(room, total, self.cfg.hidden, self.fork.schedule_batch.MultimodalInputs)
        blocks = self.enc_alloc.alloc(num_tokens=total, req_id=ereq.rid)
        if blocks is None:
            raise RuntimeError("encode pool too small for the scenario")
        ereq.embedding_indices = blocks
        sender.init(embedding_indices=blocks)
        self.senders[room] = sender
        self.enc_reqs[room] = ereq

    def encode_ready(self, room: int) -> None:
        """The encoder finished this request's embedding: send it when the receiver is ready."""
        self.enc_ready.append(room)

    def encode_recv(self, max_messages: int | None = None) -> None:
        """The encode receive loop: take init/resume messages (at most ``max_messages``)."""
        net = self.fork.network
        if max_messages is not None:
            net.budgets[self.enc_endpoint] = max_messages
        try:
            for _name, target, args in self.enc_threads:
                if getattr(target, "__name__", "") == "embedding_thread":
                    ManualThreads.run_until_drained(target, args)
        finally:
            net.budgets.pop(self.enc_endpoint, None)

    def encode_work(self) -> None:
        """Send what is ready, run the transfer worker, free finished sources."""
        KVPoll = self.KVPoll
        for room in list(self.enc_ready):
            sender = self.senders[room]
            if sender.poll() == KVPoll.WaitingForInput:
                ereq = self.enc_reqs[room]
                self.enc_buffers.set_buf(ereq)
                sender.send_embedding(embedding_indices=ereq.embedding_indices,
                                      last_chunk=True, total_tokens=len(ereq.fill_ids),
                                      block_size=self.enc_buffers.block_size)
                self.enc_ready.remove(room)
                self.enc_sent.add(room)
        for _name, target, args in self.enc_threads:
            if getattr(target, "__name__", "") == "transfer_worker":
                ManualThreads.run_until_drained(target, args)
        for room in sorted(self.enc_sent - self.enc_src_freed):
            if self.senders[room].poll() in (KVPoll.Success, KVPoll.Failed):
                self.enc_alloc.free(block_indices=self.enc_reqs[room].embedding_indices)
                self.enc_src_freed.add(room)

    def encode_step(self) -> None:
        """Receive loop, then send what is ready, then the transfer worker."""
        if self.encode_dead:
            return
        self.encode_recv()
        self.encode_work()

    def encode_dies(self) -> None:
        """The encode side stops: no more steps, /health fails; every language
        rank's heartbeat checker then runs one pass and fails the rooms."""
        self.encode_dead = True
        self.fork.bootstrap.dead = True
        for lr in self.ranks:
            lr.run_heartbeat_once()

    def fail_next_write(self, rank: int | None = None) -> None:
        """The encode side's next transfer batch returns an error (a write error);
        with ``rank``, its next batch to that language rank's session."""
        if rank is None:
            self.enc_mgr.engine.fail_next = True
        else:
            self.enc_mgr.engine.fail_to = self.ranks[rank - 1].mgr.get_session_id()

    # ------------------------------------------------------------------
    def pending_messages(self) -> int:
        return self.fork.network.pending()

    def close(self) -> None:
        from resumespec.conformance.recorder import close_all
        close_all()
