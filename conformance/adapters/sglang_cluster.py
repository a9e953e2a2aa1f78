"""One encode rank and one language rank of the fork, in one process, traced.

``Cluster`` builds the fork's real objects the way its schedulers do:

* encode side: ``MultimodalDataBuffers`` + ``ReqToMetadataBlockAllocator``
  (source blocks), ``MooncakeEmbeddingManager`` in ENCODE mode (its receive
  loop and transfer worker), one ``MooncakeEmbeddingSender`` per request;
* language side: ``MultimodalDataBuffers`` + ``ReqToMetadataBlockAllocator``
  (destination blocks), ``MultimodalLanguagePreallocQueue`` (which builds the
  LANGUAGE manager and one ``MooncakeEmbeddingReceiver`` per request) and
  ``MultimodalLanguageTransferQueue`` (``pop_transferred``: the poll loop);

and wires them through the in-process transport of ``sglang_inprocess``.
The driver decides when each side runs (``language_step``, ``encode_step``),
so a scenario is one fixed interleaving of real code.

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
  lengths, aux written or not); ``round_end`` + ``status_sent``: the status
  the transfer worker sends, with the offset it has stored.

Token identities: the encode side fills ``fill_ids`` of request r with
``r * ID_BASE + position`` (positions 1-based), so every read and handoff
logs which tokens it really got.
"""

from __future__ import annotations

import os
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .sglang_inprocess import (
    InProcessTransferEngine,
    ManualThreads,
    make_draining_queue,
)
from .sglang_loader import Fork

ID_BASE = 1000          # fill id = req * ID_BASE + position (1-based)
STATUS_NAMES = ("Failed", "Bootstrapping", "WaitingForInput", "Transferring", "Success")
BOOTSTRAP_PORT = 8998

# The historical commits and the design each one runs (docs/model.md).
DESIGNS: dict[str, dict[str, Any]] = {
    "d1bceb411": {"variant": "flag", "resume_order": "free_first", "barrier": False},
    "7a7a71977": {"variant": "indices", "resume_order": "free_first", "barrier": False},
    "caff70bd5": {"variant": "sent_tokens", "resume_order": "free_first", "barrier": False},
    "2141e0842": {"variant": "cached_sent", "resume_order": "free_first", "barrier": False},
    "cca20b094": {"variant": "once", "resume_order": "alloc_first", "barrier": True},
}


def design_of(commit: str) -> tuple[str, dict[str, Any]]:
    """The short commit id and design for a (possibly longer) commit id."""
    c = commit.strip().lower()
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


def ids_of(fill_ids: Any) -> list[list[int]]:
    """Token identities [req, position] of a fill-ids sequence."""
    out = []
    for v in (fill_ids.tolist() if hasattr(fill_ids, "tolist") else list(fill_ids)):
        v = int(v)
        out.append([max(v, 0) // ID_BASE, max(v, 0) % ID_BASE])
    return out


class _WatchedQueue(list):
    """The transfer queue's list; iterating it tells the cluster which request
    the poll loop is handling (the loop zips the queue with the polls)."""

    def __init__(self, items: list, cluster: "Cluster"):
        super().__init__(items)
        self._cluster = cluster

    def __iter__(self):
        for item in list.__iter__(self):
            self._cluster._pop_current = item.req.bootstrap_room
            yield item


class Cluster:
    def __init__(self, fork: Fork, commit: str, cfg: Config, trace_path: Path):
        from resumespec.conformance.recorder import recorder_for

        self.fork = fork
        self.cfg = cfg
        self.commit, self.design = design_of(commit)
        u, conn, base = fork.utils, fork.conn, fork.base
        self.KVPoll = base.KVPoll

        # Recorders: both processes into one merged file (one OS process, so
        # the line order is the real order of events).
        trace_path.parent.mkdir(parents=True, exist_ok=True)
        if trace_path.exists():
            trace_path.unlink()
        self.trace_path = trace_path
        self.enc_rec = recorder_for("encode", str(trace_path), check=True)
        self.lang_rec = recorder_for("language/1", str(trace_path), check=True)
        config = dict(block_size=cfg.block_size, nblocks=cfg.nblocks, nsess=1,
                      init_tokens=cfg.init_tokens, cap=cfg.cap, order="fifo",
                      variant=self.design["variant"],
                      resume_order=self.design["resume_order"],
                      barrier=self.design["barrier"], faults=list(cfg.faults))
        self.lang_rec.log("config", **config)
        self.enc_rec.log("config", **config)

        # Threads run on demand; queues raise Drained when empty.
        os.environ["SGLANG_DISAGGREGATION_QUEUE_SIZE"] = "1"
        os.environ["SGLANG_DISAGGREGATION_THREAD_POOL_SIZE"] = "1"
        os.environ["SGLANG_EMBEDDING_DEFAULT_ALLOCATE_BUFFER_SIZE"] = str(cfg.init_tokens)
        self.threads = ManualThreads()
        conn.threading = self.threads.module
        conn.FastQueue = make_draining_queue(fork.common.FastQueue)
        InProcessTransferEngine.reset()
        fork.network.inboxes.clear()
        fork.network.on_recv.clear()
        self.server_args = types.SimpleNamespace(
            disaggregation_bootstrap_port=BOOTSTRAP_PORT, dist_init_addr=None, tp_size=1,
            dp_size=1, disaggregation_ib_device=None)
        self.gloo_group = one_process_gloo_group()

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
        self.enc_mgr = conn.MooncakeEmbeddingManager(kv, u.DisaggregationMode.ENCODE,
                                                     self.server_args)
        self.enc_threads = self.threads.started[n0:]
        self.senders: dict[int, Any] = {}
        self.enc_reqs: dict[int, EncodeReq] = {}
        self.enc_ready: list[int] = []          # embeddings computed, not yet sent
        self.enc_sent: set[int] = set()
        self.enc_src_freed: set[int] = set()

        # ---- language rank ----------------------------------------------
        self.lang_buffers = u.MultimodalDataBuffers(cfg.nblocks, cfg.block_size,
                                                    embedding_dim=cfg.hidden)
        self.lang_alloc = u.ReqToMetadataBlockAllocator(cfg.nblocks, cfg.block_size)
        self.scheduler = FakeScheduler(self.server_args)
        n1 = len(self.threads.started)
        self.prealloc = fork.language.MultimodalLanguagePreallocQueue(
            self.lang_alloc, self.lang_buffers, 0, 1, self.scheduler,
            u.TransferBackend.MOONCAKE, BOOTSTRAP_PORT, self.gloo_group)
        self.lang_threads = self.threads.started[n1:]
        self.lang_mgr = self.prealloc.data_manager
        self.transfer_queue = fork.language.MultimodalLanguageTransferQueue(
            self.gloo_group, self.lang_alloc, self.lang_buffers, self.scheduler, None)
        self.lang_reqs: dict[int, LanguageReq] = {}
        self.language_reqs_by_room: dict[int, Any] = {}   # MultimodalLanguageRequest
        self.handed: dict[int, LanguageReq] = {}
        self.finished: set[int] = set()               # prefill done or failed
        self.failed: set[int] = set()
        self.aborted: set[int] = set()               # abort() called, not yet polled

        self.session_of = {self.lang_mgr.get_session_id(): 1}
        self.lang_endpoint = f"127.0.0.1:{self.lang_mgr.rank_port}"
        self.enc_endpoint = f"127.0.0.1:{self.enc_mgr.rank_port}"
        self.events_logged = 0
        self._install_observers()

    # ------------------------------------------------------------------
    # logging helpers
    # ------------------------------------------------------------------
    def room_of_rid(self, rid: Any) -> int | None:
        if isinstance(rid, str) and rid.startswith("req-"):
            return int(rid[4:])
        return None

    def log_lang(self, event: str, **f: Any) -> None:
        if self._poll_buffer is not None:
            self._poll_buffer.append((self._pop_current, event, f))
        else:
            self._write_lang(event, **f)

    def _write_lang(self, event: str, **f: Any) -> None:
        self.lang_rec.log(event, **f)
        self.events_logged += 1

    def log_enc(self, event: str, **f: Any) -> None:
        self.enc_rec.log(event, **f)
        self.events_logged += 1

    # ------------------------------------------------------------------
    # observers
    # ------------------------------------------------------------------
    def _install_observers(self) -> None:
        fork, conn = self.fork, self.fork.conn
        self._poll_buffer: list | None = None
        self._pop_current: int | None = None
        self._in_pop = False
        self._pop_polls: list[int] | None = None
        self._pop_resumed: set[int] = set()
        self._pop_failed: set[int] = set()
        self._pop_alloc_none: set[int] = set()
        self._pop_resume_alloc: set[int] = set()
        cluster = self

        # allocator (language rank)
        real_alloc, real_free = self.lang_alloc.alloc, self.lang_alloc.free

        def alloc(num_tokens=None, req_id=None, fake=False):
            asked = num_tokens
            if cluster.cfg.cap and cluster._in_pop and num_tokens is not None:
                num_tokens = min(num_tokens, cluster.cfg.cap * cluster.cfg.block_size)
            blocks = real_alloc(num_tokens=num_tokens, req_id=req_id, fake=fake)
            room = cluster.room_of_rid(req_id)
            extra = {"x_asked": asked} if asked != num_tokens else {}
            cluster.log_lang("alloc", rank=1, req=room, tokens=int(num_tokens),
                             blocks=None if blocks is None else list(blocks), **extra)
            if cluster._in_pop:
                cluster._pop_resume_alloc.add(room)
                if blocks is None:
                    cluster._pop_alloc_none.add(room)
            return blocks

        def free(block_indices=None, req_id=None, fake=False):
            blocks = list(block_indices) if block_indices is not None else None
            real_free(block_indices=block_indices, req_id=req_id, fake=fake)
            room = cluster.room_of_rid(req_id)
            if blocks is not None and room is not None:
                cluster.log_lang("free", rank=1, req=room, blocks=blocks)
        self.lang_alloc.alloc = alloc
        self.lang_alloc.free = free

        # receiver messages (class-level wrappers; they report to the cluster
        # that is current, one cluster runs at a time)
        Receiver = conn.MooncakeEmbeddingReceiver
        Receiver._resumespec_cluster = self
        if not hasattr(Receiver, "_resumespec_real_init"):
            real_init, real_resume = Receiver.init, Receiver.resume_transfer
            Receiver._resumespec_real_init = real_init

            def r_init(rself, embedding_indices=None, allocated_tokens=None):
                real_init(rself, embedding_indices=embedding_indices,
                          allocated_tokens=allocated_tokens)
                Receiver._resumespec_cluster.log_lang(
                    "init_sent", req=rself.bootstrap_room, session=1,
                    blocks=list(embedding_indices), allocated_tokens=int(allocated_tokens))

            def r_resume(rself, embedding_indices, sent_tokens, allocated_tokens):
                real_resume(rself, embedding_indices=embedding_indices,
                            sent_tokens=sent_tokens, allocated_tokens=allocated_tokens)
                c = Receiver._resumespec_cluster
                c.log_lang("resume_sent", req=rself.bootstrap_room, session=1,
                           blocks=list(embedding_indices), sent_tokens=int(sent_tokens),
                           allocated_tokens=int(allocated_tokens))
                c._pop_resumed.add(rself.bootstrap_room)
            Receiver.init = r_init
            Receiver.resume_transfer = r_resume

        # messages taken by the receive loops
        def on_recv(endpoint: str, frames: list) -> None:
            if endpoint == cluster.lang_endpoint:
                room, status = int(frames[0]), int(frames[1])
                cluster.log_lang("status_recv", req=room, session=1,
                                 status=STATUS_NAMES[status])
            elif endpoint == cluster.enc_endpoint:
                if frames[0] == b"None":
                    return          # buffer registration (once per connection)
                room = int(frames[0])
                session = cluster.session_of.get(frames[3].decode(), 1)
                blocks = [int(x) for x in frames[4].decode().split(",") if x]
                if len(frames) >= 8:
                    cluster.log_enc("resume_recv", req=room, session=session, blocks=blocks,
                                    sent_tokens=int(frames[6]), allocated_tokens=int(frames[7]))
                else:
                    cluster.log_enc("init_recv", req=room, session=session, blocks=blocks,
                                    allocated_tokens=int(frames[6]))
        fork.network.on_recv.append(on_recv)

        # the poll loop
        lang_mod = fork.language
        real_poll_reduce = fork.utils.poll_and_all_reduce

        def poll_and_all_reduce(pollers, gloo_group):
            polls = real_poll_reduce(pollers, gloo_group)
            if cluster._in_pop:
                cluster._pop_polls = list(polls)
            return polls
        lang_mod.poll_and_all_reduce = poll_and_all_reduce

        real_get_buf = self.lang_buffers.get_buf

        def get_buf(block_indices=None, **kw):
            out = real_get_buf(block_indices=block_indices, **kw)
            fill_ids = out[1]
            room = cluster._pop_current
            cluster.log_lang("buffer_read", req=room, session=1, blocks=list(block_indices),
                             aux_total=int(out[3][0]), tokens=int(len(fill_ids)),
                             ids=ids_of(fill_ids))
            return out
        self.lang_buffers.get_buf = get_buf

        tq = self.transfer_queue
        real_handle_failed = tq._handle_failed_request

        def handle_failed(language_req):
            real_handle_failed(language_req)
            room = language_req.req.bootstrap_room
            cluster._pop_failed.add(room)
            reason = getattr(language_req.req.finished_reason, "message", "") or "failed"
            cluster.log_lang("fail", req=room, reason=reason[:200])
        tq._handle_failed_request = handle_failed

        # sender side: rounds and statuses
        self._open_rounds: dict[tuple[int, int], dict] = {}
        self._sending: dict | None = None
        real_send = self.enc_mgr.send_embedding

        def send_embedding(mooncake_session_id, embedding_indices, dst_embedding_ptrs,
                           dst_embedding_indices, total_tokens, block_size, sent_tokens=0,
                           allocated_tokens=None):
            room = cluster._worker_room
            cluster._sending = {"room": room, "session": cluster.session_of.get(
                mooncake_session_id, 1), "sent_tokens": int(sent_tokens),
                "total": int(total_tokens)}
            try:
                return real_send(mooncake_session_id, embedding_indices, dst_embedding_ptrs,
                                 dst_embedding_indices, total_tokens, block_size,
                                 sent_tokens, allocated_tokens)
            finally:
                cluster._sending = None
        self.enc_mgr.send_embedding = send_embedding

        enc_ptrs = list(self.enc_buffers.get_buf_infos()[0])
        enc_items = list(self.enc_buffers.get_buf_infos()[2])
        lang_ptrs = list(self.lang_buffers.get_buf_infos()[0])
        lang_items = list(self.lang_buffers.get_buf_infos()[2])

        def block_of(addr: int, ptrs: list, items: list, kind: int) -> int:
            return (addr - ptrs[kind]) // items[kind]

        def in_kind(addr: int, ptrs: list, items: list, kind: int, nblocks: int) -> bool:
            return ptrs[kind] <= addr < ptrs[kind] + items[kind] * nblocks

        def on_batch(engine, session_id, src, dst, lengths) -> None:
            ctx = cluster._sending
            if ctx is None or engine is not cluster.enc_mgr.engine:
                return
            src_blocks, dst_blocks, tokens, aux = [], [], 0, False
            for s, d, n in zip(src, dst, lengths):
                if in_kind(d, lang_ptrs, lang_items, 1, cluster.cfg.nblocks):   # fill_ids
                    dst_blocks.append(block_of(d, lang_ptrs, lang_items, 1))
                    src_blocks.append(block_of(s, enc_ptrs, enc_items, 1))
                    tokens += n // 4
                if in_kind(d, lang_ptrs, lang_items, 3, cluster.cfg.nblocks):   # aux row
                    aux = True
            remaining = ctx["total"] - ctx["sent_tokens"]
            cluster.log_enc("round_start", req=ctx["room"], session=ctx["session"],
                            sent_tokens=ctx["sent_tokens"], tokens=tokens, total=ctx["total"],
                            src_blocks=src_blocks, dst_blocks=dst_blocks,
                            partial=remaining > tokens, aux_written=aux)
            cluster._open_rounds[(ctx["room"], ctx["session"])] = ctx
        InProcessTransferEngine.observers.append(on_batch)

        real_sync = self.enc_mgr.sync_status_to_language_endpoint

        def sync_status(remote, dst_port, room, status):
            status = int(status)
            infos = cluster.enc_mgr.transfer_infos.get(room, {}) \
                if hasattr(cluster.enc_mgr, "transfer_infos") else {}
            for (r, s), ctx in sorted(cluster._open_rounds.items()):
                if r != room:
                    continue
                info = next((i for sid, i in infos.items()
                             if cluster.session_of.get(sid, 1) == s), None)
                sent = int(info.sent_tokens) if info is not None else ctx["sent_tokens"]
                cluster.log_enc("round_end", req=room, session=s, sent_tokens=sent,
                                ok=status != 0)
                if status == 0:
                    cluster.log_enc("write_error", req=room, session=s)
                del cluster._open_rounds[(r, s)]
            real_sync(remote, dst_port, room, status)
            cluster.log_enc("status_sent", req=room, session=1, status=STATUS_NAMES[status])
        self.enc_mgr.sync_status_to_language_endpoint = sync_status

        self._worker_room: int | None = None

        def on_get(item: Any) -> None:
            cluster._worker_room = item.room
        for q in self.enc_mgr.transfer_queues:
            q.on_get = on_get

    # ------------------------------------------------------------------
    # driving the language rank
    # ------------------------------------------------------------------
    def language_submit(self, room: int) -> None:
        req = LanguageReq(room)
        self.lang_reqs[room] = req
        self.prealloc.add(req)

    def language_recv(self) -> None:
        for _name, target, args in self.lang_threads:
            if getattr(target, "__name__", "") == "language_thread":
                ManualThreads.run_until_drained(target, args)

    def language_step(self) -> list[int]:
        """One scheduler loop: receive statuses, preallocate, poll the transfer queue."""
        self.language_recv()
        for lr in self.prealloc.pop_preallocated():
            self.language_reqs_by_room[lr.req.bootstrap_room] = lr
            self.transfer_queue.extend([lr])
        return self.pop_transferred()

    def pop_transferred(self) -> list[int]:
        """Run the real ``pop_transferred`` once and log what it did, per request.

        Events of the loop body are buffered and written after their request's
        ``poll`` line (docs/trace-format.md: poll first, then the events of its
        decision).  The loop handles the requests one after another; which one
        it is at is known from iterating the queue (``_WatchedQueue``).
        """
        queue_before = list(self.transfer_queue.queue)
        if not queue_before:
            return []
        self._in_pop = True
        self._pop_polls = None
        self._pop_resumed, self._pop_failed, self._pop_alloc_none = set(), set(), set()
        self._pop_resume_alloc = set()
        self._poll_buffer = []
        self._pop_current = None
        self.transfer_queue.queue = _WatchedQueue(queue_before, self)
        try:
            handed = self.transfer_queue.pop_transferred()
        finally:
            self._in_pop = False
            self._pop_current = None
            buffered, self._poll_buffer = self._poll_buffer, None
            if isinstance(self.transfer_queue.queue, _WatchedQueue):
                self.transfer_queue.queue = list(self.transfer_queue.queue)
        polls = self._pop_polls or []
        handed_rooms = [r.bootstrap_room for r in handed]
        by_room: dict[Any, list] = {}
        for room, event, f in buffered:
            by_room.setdefault(room, []).append((event, f))
        for lr, poll in zip(queue_before, polls):
            room = lr.req.bootstrap_room
            status = STATUS_NAMES[int(poll)]
            tried_resume = room in self._pop_resume_alloc
            if status == "Failed" and room in self.aborted:
                # The abort takes effect here: receiver.abort() only marked the
                # request Failed locally; this poll frees its blocks and fails
                # it.  Logged as the spec's Abort step: abort, free, fail.
                self.aborted.discard(room)
                self.failed.add(room)
                self.finished.add(room)
                self._write_lang("abort", req=room)
                for event, f in by_room.pop(room, []):
                    self._write_lang(event, **f)
                continue
            if room in handed_rooms:
                decision = "handoff"
            elif status == "Transferring" and (room in self._pop_resumed or
                                               (tried_resume and room in self._pop_failed)):
                # free_first: the design decided to resume; its allocation
                # returning None fails the request inside the same poll
                decision = "resume"
            elif status == "Transferring" and room in self._pop_alloc_none:
                decision = "retry_alloc"
            elif room in self._pop_failed:
                decision = "fail"
            else:
                decision = "wait"
            if room in self._pop_failed:
                self.failed.add(room)
                self.finished.add(room)
            self._write_lang("poll", req=room, status=status, decision=decision)
            for event, f in by_room.pop(room, []):
                self._write_lang(event, **f)
            if decision == "handoff":
                req = self.lang_reqs[room]
                ids = ids_of(req.origin_input_ids)
                self._write_lang("handoff", req=room, session=1, tokens=len(ids), ids=ids)
                self.handed[room] = req
        for events in by_room.values():   # not attributable to a polled request
            for event, f in events:
                self._write_lang(event, **f)
        return handed_rooms

    def prefill_done(self, room: int) -> None:
        req = self.handed.pop(room)
        self.log_lang("prefill_done", req=room)
        self.lang_alloc.free_with_req(req)
        self.finished.add(room)

    def abort(self, room: int) -> None:
        lr = self.language_reqs_by_room.get(room)
        if lr is None:
            raise KeyError(f"request {room} is not in the transfer queue")
        lr.embedding_receiver.abort()
        self.aborted.add(room)     # logged when it takes effect (next poll)

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

    def encode_step(self) -> None:
        """Receive loop, then send what is ready, then the transfer worker."""
        KVPoll = self.KVPoll
        for _name, target, args in self.enc_threads:
            if getattr(target, "__name__", "") == "embedding_thread":
                ManualThreads.run_until_drained(target, args)
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

    def fail_next_write(self) -> None:
        """The encode side's next transfer batch returns an error (a write error)."""
        self.enc_mgr.engine.fail_next = True

    # ------------------------------------------------------------------
    def pending_messages(self) -> int:
        return self.fork.network.pending()

    def close(self) -> None:
        self.lang_rec.close()
        self.enc_rec.close()
        from resumespec.conformance.recorder import close_all
        close_all()
