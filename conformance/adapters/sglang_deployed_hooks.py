"""Every observation hook of the deployed fork runs, in one module.

A deployed run (``sglang_deployed``) builds the fork's real objects in each
process; this module wraps them so that each process logs its own trace
through the conformance recorder (docs/trace-format.md), without changing
what the fork does.  Someone running the runner on another checkout (e.g. a
patched one whose messages carry more fields) edits this module only.

Encode process (``EncodeHooks``):

* ``init_recv`` / ``resume_recv``: the frames the fork's ``embedding_thread``
  takes from its PULL socket (7 frames: init, 8: resume; the registration
  message ``room == "None"`` is not logged);
* ``round_start``: the batch the fork's ``send_embedding`` hands to the
  transfer engine wrapper (``batch_transfer_sync``): blocks read back from
  the byte addresses, tokens from the fill-ids lengths, aux row written or
  not; the request is the room of the chunk the transfer worker took from its
  queue;
* ``round_end`` (+ ``write_error`` when it failed): when that synchronous
  batch returns (``sent_tokens``: the offset the worker then stores);
* ``status_sent``: ``sync_status_to_language_endpoint``, logged before the
  message goes out.

Language process (``LanguageHooks``), one per rank:

* ``alloc`` / ``free``: the allocator's ``alloc`` / ``free`` (the optional
  ``cap`` knob caps resume allocations: not engine behaviour, it forces more
  rounds; the ``alloc`` event then carries ``x_asked``);
* ``init_sent`` / ``resume_sent``: ``MooncakeEmbeddingReceiver.init`` /
  ``resume_transfer``;
* ``status_recv``: the frames the fork's ``language_thread`` takes from its
  PULL socket;
* ``poll`` (combined status + decision), ``buffer_read``, ``handoff``,
  ``fail``: ``poll_and_all_reduce`` as ``pop_transferred`` calls it,
  ``get_buf``, the requests ``pop_transferred`` returns,
  ``_handle_failed_request``;
* ``heartbeat_fail``: ``_handle_node_failure`` (called by the fork's
  heartbeat thread once ``/health`` of the encode side fails);
* ``abort``: ``receiver.abort()`` only marks the request Failed locally; the
  next poll frees its blocks and fails it, logged as ``abort``, ``free``,
  ``fail``.

A patched build (``corrected=True``: conformance/engine_patch/) changes the
messages, and the hooks log what it adds: ``round``, ``sent_tokens`` and
``total`` on ``status_sent`` / ``status_recv``, ``round`` on
``resume_sent`` / ``resume_recv``; its abort is a message (``abort`` and
``abort_sent`` on the rank, ``abort_recv`` on the encode side) and the
request stays queued until the poll that sees the answer (Failed) frees its
blocks; its rounds are observed at ``mgr._transfer`` (a round to a session
known dead fails there without an engine call); a poll that cached a round
and freed its blocks is a ``resume`` decision.

One lock per language process orders the status thread against the poll
loop: the status thread takes it after a message arrives and releases it once
``update_status`` has applied the message; ``pop_transferred`` (and the
heartbeat's ``_handle_node_failure``) run holding it.  So the log order is the
order in which a status takes effect relative to a poll.  The fork itself has
no such lock; what it changes is only *when* a status lands (before or after
a poll loop), never what the loop does with it, since ``pop_transferred``
reads every status once, at its start.

Times: the events of one ``pop_transferred`` are written after it (each
request's ``poll`` line first, then the events of its decision), each with
the time it happened as its ``ts`` (the poll line: when the all-reduce
returned), so that the merge of the processes' logs places them where they
happened, not where they were written.

Token identities: request ``r``'s fill id at 1-based position ``p`` is
``r * ID_BASE + p``.  ``ids`` are logged on ``buffer_read`` and ``handoff``
only when they are not the request's own consecutive tokens (what a checker
needs to see a foreign or out-of-place token; the logs stay small).  Every
``handoff`` also says, as ``x_source_equal``, whether the embedding rows and
fill ids handed to prefill equal the source's, compared byte for byte with the
source regenerated from its seed.
"""

from __future__ import annotations

import json
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import torch

from resumespec.reference.protocol.designs import STATUSES

from .sglang_observe import (
    ids_of,
    observe_allocator,
    observe_buffers,
    pop_and_log,
)

ID_BASE = 100_000        # fill id = req * ID_BASE + position (1-based); positions < ID_BASE
STATUS_NAMES = STATUSES


# ---------------------------------------------------------------------------
# The source embeddings (both sides regenerate them from the request id)
# ---------------------------------------------------------------------------
def source_embedding(room: int, total: int, hidden: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + room)
    return torch.randn((total, hidden), generator=g).to(torch.bfloat16)


def source_fill_ids(room: int, total: int) -> list[int]:
    return [room * ID_BASE + i + 1 for i in range(total)]


def ids_are_own(fill_ids: Any, room: int, first: int | None = None) -> bool:
    """Are these the request's own tokens, consecutive (from ``first`` if given)?"""
    t = fill_ids if isinstance(fill_ids, torch.Tensor) else torch.tensor(list(fill_ids))
    t = t.to(torch.int64).flatten()
    if t.numel() == 0:
        return True
    if bool((t // ID_BASE != room).any()):
        return False
    pos = t % ID_BASE
    start = int(pos[0]) if first is None else first
    return bool(torch.equal(pos, torch.arange(start, start + t.numel(), dtype=torch.int64)))


def _now() -> float:
    """The recorder's clock (``ts``: microseconds, as seconds)."""
    return time.time_ns() // 1000 / 1e6


# ---------------------------------------------------------------------------
# Observed sockets: the fork's receive loops' PULL sockets
# ---------------------------------------------------------------------------
class ObservedSocket:
    """A pyzmq socket whose ``recv_multipart`` reports the frames to ``hook``
    (looked up at every receive, so it may be set after the fork started its
    receive thread)."""

    def __init__(self, real: Any, kind: int, zmq_mod: Any):
        self._real = real
        self._kind = kind
        self.hook: Callable[[list], None] | None = None
        if kind == zmq_mod.PULL:
            ObservedZmq.pull_sockets.append(self)

    def recv_multipart(self, *a: Any, **k: Any) -> list:
        frames = self._real.recv_multipart(*a, **k)
        hook = self.hook
        if hook is not None:
            hook(frames)
        return frames

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class ObservedZmq(types.ModuleType):
    """What ``conn_multimodal`` sees as ``zmq``: the real module, except that
    its sockets are ``ObservedSocket``s."""

    pull_sockets: list[ObservedSocket] = []

    def __init__(self, real_zmq: Any):
        super().__init__("zmq")
        self._real = real_zmq
        self.PUSH = real_zmq.PUSH
        self.PULL = real_zmq.PULL
        ctx = real_zmq.Context.instance()

        class _Ctx:
            def socket(_self, kind: int) -> ObservedSocket:
                return ObservedSocket(ctx.socket(kind), kind, real_zmq)
        self._ctx = _Ctx()

    def Context(self, *a: Any, **k: Any) -> Any:   # noqa: N802 (zmq's name)
        return self._ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


_current = threading.local()      # the room the transfer worker of this thread took


def install_module_hooks(fork: Any) -> None:
    """Before any manager is built: observed sockets, and transfer queues that
    tell which room the worker took."""
    import zmq

    fork.conn.zmq = ObservedZmq(zmq)
    base_q = fork.common.FastQueue

    class RoomQueue(base_q):                      # type: ignore[misc, valid-type]
        def get(self, *a: Any, **k: Any) -> Any:
            item = super().get(*a, **k)
            _current.room = getattr(item, "room", None)
            return item
    fork.conn.FastQueue = RoomQueue


# ---------------------------------------------------------------------------
# Encode side
# ---------------------------------------------------------------------------
class EncodeHooks:
    """Wraps the ENCODE manager of one encode process."""

    def __init__(self, fork: Any, mgr: Any, rec: Any, nblocks_lang: int,
                 on_kill_point: Callable[[int], None] | None = None,
                 corrected: bool = False):
        self.fork, self.mgr, self.rec = fork, mgr, rec
        # a patched build (the corrected design): statuses name their round,
        # offset and total; resumes their round; abort is a message
        self.corrected = corrected
        self.nblocks_lang = nblocks_lang
        self.session_of: dict[str, int] = {}     # mooncake session id -> rank (1-based)
        self.rank_of_port: dict[int, int] = {}   # language rank_port -> rank
        self.fault: dict | None = None           # {"kind", "req", "round"}
        self.on_kill_point = on_kill_point
        self.rounds: dict[int, int] = {}         # room -> round_starts seen (session 1)
        self.events = 0
        self._sending = threading.local()
        self._install()

    def log(self, event: str, **f: Any) -> None:
        self.rec.log(event, **f)
        self.events += 1

    def set_peers(self, session_of: dict[str, int], rank_of_port: dict[int, int]) -> None:
        self.session_of = dict(session_of)
        self.rank_of_port = {int(k): int(v) for k, v in rank_of_port.items()}

    def _install(self) -> None:
        mgr, me = self.mgr, self
        sock = mgr.server_socket

        def on_recv(frames: list) -> None:
            if frames[0] == b"None":
                return          # buffer registration (once per language rank)
            room = int(frames[0])
            session = me.session_of.get(frames[3].decode(), 0)
            if len(frames) == 6 and frames[5] == b"abort":          # patched engine
                me.log("abort_recv", req=room, session=session)
                return
            blocks = [int(x) for x in frames[4].decode().split(",") if x]
            if len(frames) >= 8:
                # patched engine: a 9th frame names the round the resume answers
                extra = {"round": int(frames[8])} if len(frames) >= 9 else {}
                me.log("resume_recv", req=room, session=session, blocks=blocks,
                       sent_tokens=int(frames[6]), allocated_tokens=int(frames[7]), **extra)
            else:
                me.log("init_recv", req=room, session=session, blocks=blocks,
                       allocated_tokens=int(frames[6]))
        sock.hook = on_recv

        real_send = mgr.send_embedding

        def send_embedding(mooncake_session_id, embedding_indices, dst_embedding_ptrs,
                           dst_embedding_indices, total_tokens, block_size, sent_tokens=0,
                           allocated_tokens=None):
            me._sending.ctx = {"room": getattr(_current, "room", None),
                               "session": me.session_of.get(mooncake_session_id, 0),
                               "sent_tokens": int(sent_tokens), "total": int(total_tokens),
                               "ptrs": list(dst_embedding_ptrs)}
            try:
                return real_send(mooncake_session_id, embedding_indices, dst_embedding_ptrs,
                                 dst_embedding_indices, total_tokens, block_size,
                                 sent_tokens, allocated_tokens)
            finally:
                me._sending.ctx = None
        mgr.send_embedding = send_embedding

        wrapper = mgr.engine                      # the fork's MooncakeTransferEngine
        # patched engine: a round's writes go through `mgr._transfer`, which
        # fails them at once for a session known dead (no engine call): the
        # round starts and ends with an error all the same, so observe there
        real_transfer = getattr(mgr, "_transfer", None)
        real_batch = real_transfer if real_transfer is not None else \
            wrapper.batch_transfer_sync
        enc_ptrs = list(mgr.data_args.aux_data_ptrs)
        items = list(mgr.data_args.aux_item_lens)
        nblocks = self.nblocks_lang

        def block_of(addr: int, ptrs: list, kind: int) -> int:
            return (addr - ptrs[kind]) // items[kind]

        def in_kind(addr: int, ptrs: list, kind: int) -> bool:
            return ptrs[kind] <= addr < ptrs[kind] + items[kind] * nblocks

        def batch_transfer_sync(session_id, buffers, peer_buffer_addresses, lengths):
            ctx = getattr(me._sending, "ctx", None)
            if ctx is None:
                return real_batch(session_id, buffers, peer_buffer_addresses, lengths)
            ptrs = ctx["ptrs"]
            src_blocks, dst_blocks, tokens, aux = [], [], 0, False
            for s, d, n in zip(buffers, peer_buffer_addresses, lengths):
                if in_kind(d, ptrs, 1):                      # fill_ids rows
                    dst_blocks.append(block_of(d, ptrs, 1))
                    src_blocks.append(block_of(s, enc_ptrs, 1))
                    tokens += n // 4
                if in_kind(d, ptrs, 3):                      # aux rows
                    aux = True
            room, session, sent = ctx["room"], ctx["session"], ctx["sent_tokens"]
            me.log("round_start", req=room, session=session, sent_tokens=sent, tokens=tokens,
                   total=ctx["total"], src_blocks=src_blocks, dst_blocks=dst_blocks,
                   partial=ctx["total"] - sent > tokens, aux_written=aux)
            me._maybe_fault(room, session)
            ret = real_batch(session_id, buffers, peer_buffer_addresses, lengths)
            # the round ends when the engine's synchronous write returns; on
            # success the worker then stores sent + tokens as the offset
            ok = ret == 0
            me.log("round_end", req=room, session=session,
                   sent_tokens=sent + tokens if ok else sent, ok=ok)
            if not ok:
                me.log("write_error", req=room, session=session)
            return ret
        if real_transfer is not None:
            mgr._transfer = batch_transfer_sync
        else:
            wrapper.batch_transfer_sync = batch_transfer_sync

        real_sync = mgr.sync_status_to_language_endpoint

        def sync_status(remote, dst_port, room, status, **kw):
            status = int(status)
            extra = ({"round": int(kw.get("round", 0)), "sent_tokens": int(kw.get("sent", 0)),
                      "total": int(kw.get("total", 0))} if me.corrected else {})
            me.log("status_sent", req=room, session=me.rank_of_port.get(int(dst_port), 0),
                   status=STATUS_NAMES[status], **extra)
            return real_sync(remote, dst_port, room, status, **kw)
        mgr.sync_status_to_language_endpoint = sync_status

    def _maybe_fault(self, room: int, session: int) -> None:
        f = self.fault
        if f is None or room != f["req"]:
            return
        if session == max(self.session_of.values(), default=1):
            self.rounds[room] = self.rounds.get(room, 0) + 1
        elif f["kind"] != "write_error":
            return
        if self.rounds.get(room, 0) != f["round"]:
            return
        if f["kind"] == "write_error" and session == max(self.session_of.values(), default=1):
            self.fault = None
            for eng in self._shims():
                eng.fail_next = True
        elif f["kind"] == "kill":
            self.fault = None
            if self.on_kill_point is not None:
                self.on_kill_point(room)
            while True:                 # the driver kill -9s this process now
                time.sleep(1)

    def _shims(self) -> list:
        from .sglang_deployed_loader import TcpTransferEngine
        eng = getattr(self.mgr.engine, "engine", None)
        return [eng] if isinstance(eng, TcpTransferEngine) else []


# ---------------------------------------------------------------------------
# Language side
# ---------------------------------------------------------------------------
_LANG: LanguageHooks | None = None       # this process's rank (one per process)


class LanguageHooks:
    """Wraps one language rank's allocator, buffers, queues and manager."""

    def __init__(self, fork: Any, rank: int, rec: Any, alloc: Any, buffers: Any,
                 prealloc: Any, transfer_queue: Any, cap_blocks: int = 0,
                 check: Callable[[int], tuple[int, int, int]] | None = None,
                 lag_s: float = 0.0, corrected: bool = False):
        global _LANG
        self.fork, self.rank, self.rec = fork, rank, rec
        self.alloc, self.buffers = alloc, buffers
        self.prealloc, self.tq = prealloc, transfer_queue
        self.mgr = prealloc.data_manager
        self.cap_blocks = cap_blocks
        self.lag_s = lag_s            # a slower rank: pause after a poll that saw Transferring
        self.check = check            # room -> (total, seed): the source, for x_source_equal
        self.lock = threading.Lock()
        self._tl = threading.local()
        self.events = 0
        self.aborted: set[int] = set()
        self.finished: set[int] = set()
        self.handed: dict[int, Any] = {}
        self.source_equal: dict[int, bool] = {}
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
        # a patched build (the corrected design): a rank caches a round and
        # frees its blocks before it resumes; abort is a message
        self.corrected = corrected
        self.pop_poll_ts = 0.0
        # repeated polls: the last logged poll of each request, and the pool's
        # version then (see _pop_transferred)
        self.pool_version = 0
        self.last_poll: dict[int, tuple] = {}
        self.skipped_polls = 0
        _LANG = self
        self._install()

    # -- logging ----------------------------------------------------------
    def log(self, event: str, **f: Any) -> None:
        if self.buffer is not None and threading.current_thread() is threading.main_thread():
            # written after the request's poll line, with the time it happened
            self.buffer.append((self.pop_current, event, dict(f, ts=_now())))
        else:
            self.write(event, **f)

    def write(self, event: str, **f: Any) -> None:
        """Log one event; a ``ts`` among the fields replaces the time of logging
        (the recorder's checked mode puts the fields over its own)."""
        self.rec.log(event, **f)
        self.events += 1

    def _install(self) -> None:
        me, fork = self, self.fork
        bs = self.buffers.block_size

        def bump() -> None:
            me.pool_version += 1

        def ids_field(fill_ids: Any, room: int | None) -> dict[str, Any]:
            if room is None or ids_are_own(fill_ids, room):
                return {}
            return {"ids": ids_of(fill_ids, ID_BASE)}

        observe_allocator(self, self.alloc, me.cap_blocks * bs, changed=bump)
        observe_buffers(self, self.buffers, ids_field)

        real_node_failure = self.mgr._handle_node_failure

        def handle_node_failure(bootstrap_addr):
            with me.lock:
                before = {k: int(v) for k, v in me.mgr.request_status.items()}
                real_node_failure(bootstrap_addr)
                for room, status in sorted(me.mgr.request_status.items()):
                    if int(status) == 0 and before.get(room) != 0:
                        me.write("heartbeat_fail", req=room)
        self.mgr._handle_node_failure = handle_node_failure

        real_handle_failed = self.tq._handle_failed_request

        def handle_failed(language_req):
            real_handle_failed(language_req)
            room = language_req.req.bootstrap_room
            me.pop_failed.add(room)
            reason = getattr(language_req.req.finished_reason, "message", "") or "failed"
            me.log("fail", req=room, reason=reason[:200])
        self.tq._handle_failed_request = handle_failed

        # status messages: taken by the fork's language_thread
        real_update = self.mgr.update_status

        def on_status(frames: list) -> None:
            me.lock.acquire()
            me._tl.holding = True
            room, status = int(frames[0]), int(frames[1])
            # patched engine: [room, status, round, offset after it, total]
            extra = ({"round": int(frames[2]), "sent_tokens": int(frames[3]),
                      "total": int(frames[4])} if len(frames) >= 5 else {})
            me.write("status_recv", req=room, session=me.rank, status=STATUS_NAMES[status],
                     **extra)

        def update_status(bootstrap_room, status):
            try:
                return real_update(bootstrap_room, status)
            finally:
                if getattr(me._tl, "holding", False):
                    me._tl.holding = False
                    me.lock.release()
        self.mgr.update_status = update_status
        self.mgr.server_socket.hook = on_status

        Receiver = fork.conn.MooncakeEmbeddingReceiver
        if not hasattr(Receiver, "_resumespec_real_init"):
            real_init, real_resume = Receiver.init, Receiver.resume_transfer
            Receiver._resumespec_real_init = real_init

            def r_init(rself, embedding_indices=None, allocated_tokens=None):
                real_init(rself, embedding_indices=embedding_indices,
                          allocated_tokens=allocated_tokens)
                lr = _LANG
                lr.log("init_sent", req=rself.bootstrap_room, session=lr.rank,
                       blocks=[int(b) for b in embedding_indices],
                       allocated_tokens=int(allocated_tokens))

            def r_resume(rself, embedding_indices, sent_tokens, allocated_tokens, **kw):
                # patched engine: ``round=`` (the round the resume answers)
                real_resume(rself, embedding_indices=embedding_indices,
                            sent_tokens=sent_tokens, allocated_tokens=allocated_tokens, **kw)
                lr = _LANG
                extra = {"round": int(kw["round"])} if "round" in kw else {}
                lr.log("resume_sent", req=rself.bootstrap_room, session=lr.rank,
                       blocks=[int(b) for b in embedding_indices],
                       sent_tokens=int(sent_tokens), allocated_tokens=int(allocated_tokens),
                       **extra)
                lr.pop_resumed.add(rself.bootstrap_room)
            Receiver.init = r_init
            Receiver.resume_transfer = r_resume

        real_poll_reduce = fork.utils.poll_and_all_reduce

        def poll_and_all_reduce(pollers, gloo_group):
            polls = real_poll_reduce(pollers, gloo_group)
            if me.in_pop:
                me.pop_polls = list(polls)
                me.pop_poll_ts = _now()
                if me.lag_s and STATUS_NAMES.index("Transferring") in polls:
                    time.sleep(me.lag_s)   # this rank decides (and resumes) later
            return polls
        fork.language.poll_and_all_reduce = poll_and_all_reduce

    # -- the scheduler's step ---------------------------------------------
    def step(self) -> list[int]:
        """``process_multimodal_language_queue``: preallocate, then poll (holding
        the lock that keeps the status thread out, see the module's doc)."""
        with self.lock:
            for lr in self.prealloc.pop_preallocated():
                self.tq.extend([lr])
            return self._pop_transferred()

    def _pop_transferred(self) -> list[int]:
        return pop_and_log(self, self.tq)

    # what pop_and_log asks of these hooks: the poll's own time on its lines
    # and the time it returned on the handoffs, and the repeated polls left out
    def poll_times(self) -> tuple[dict[str, float], dict[str, float]]:
        return {"ts": self.pop_poll_ts}, {"ts": _now()}

    def keep_poll(self, room: int, status: str, decision: str, events: list) -> bool:
        """A poll that read nothing and did nothing is not logged; nor is one
        that repeats the request's last logged poll exactly (same status,
        decision and events) while the pool has not changed since: the loop
        polls every millisecond, and such a poll is a stutter of the spec's
        step."""
        if decision == "wait" and not events:
            return False
        if decision not in ("wait", "retry_alloc"):
            self.last_poll.pop(room, None)
            return True
        sig = (status, decision, self.pool_version, json.dumps(
            [(e, {k: v for k, v in f.items() if k != "ts"}) for e, f in events],
            sort_keys=True))
        if self.last_poll.get(room) == sig:
            self.skipped_polls += 1
            return False
        self.last_poll[room] = sig
        return True

    def log_handoff(self, room: int, req: Any, at: dict[str, float]) -> None:
        fill = req.origin_input_ids
        n = len(fill)
        extra: dict[str, Any] = {}
        if not ids_are_own(fill, room, first=1):
            extra["ids"] = ids_of(fill, ID_BASE)
        equal = False
        if self.check is not None:
            total, seed, hidden = self.check(room)
            if n == total and extra == {}:
                emb = req.input_embeds
                want = source_embedding(room, total, hidden, seed)
                equal = emb is not None and tuple(emb.shape) == tuple(want.shape) and \
                    bool(torch.equal(emb.to(torch.bfloat16), want))
        self.source_equal[room] = equal
        self.write("handoff", req=room, session=self.rank, tokens=n, x_source_equal=equal,
                   **at, **extra)
        self.handed[room] = req

    def prefill_done(self, room: int) -> None:
        req = self.handed.pop(room)
        self.write("prefill_done", req=room)
        self.alloc.free_with_req(req)
        self.finished.add(room)

    def abort(self, room: int, lreq: Any) -> None:
        t0 = _now()        # before the message can be out (the merge orders by ts)
        lreq.embedding_receiver.abort()
        if self.corrected and getattr(lreq.embedding_receiver, "aborting", False):
            # corrected (patched engine): abort is a message; the blocks stay
            # held until the encode side answers Failed (the poll that sees it
            # frees them and fails the request)
            self.write("abort", req=room, ts=t0)
            self.write("abort_sent", req=room, session=self.rank, ts=t0)
            self.finished.add(room)
            return
        self.aborted.add(room)     # logged when it takes effect (next poll)

    def status_of(self, room: int) -> int | None:
        s = self.mgr.request_status.get(room)
        return None if s is None else int(s)


__all__ = ["ID_BASE", "EncodeHooks", "LanguageHooks", "install_module_hooks",
           "source_embedding", "source_fill_ids", "ids_are_own"]
