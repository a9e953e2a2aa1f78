"""One simulated system: a sender, the receiving sessions, transport, pools.

``World.enabled_steps()`` lists every protocol step that may happen now, as
``{"step": <spec action name>, <parameters>}``; ``World.apply(step)`` runs it.
The step names are the spec's actions (docs/model.md); ``STEP_NAMES`` lists
them. A scheduler (``scheduler.py``) decides the interleaving.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import faults as fault_steps
from . import protocol as core
from .allocator import CorePicker, blocks_for
from .buffers import BlockBuffers, BlockCopy, make_source_embedding
from .checks import CONTAINMENT, PoolChecker, PropertyGate, check_handoff
from .device import choose_device
from .effects import Interpreter
from .protocol.receiver import ABORTING, DONE, FAILED, NEW, PREFILL, QUEUED
from .protocol.sender import AWAIT, WRITING
from .receiver import ENGINE_RESUME_ORDER, Receiver
from .sender import Sender
from .trace import TraceLog
from .transport import STATUS_NAMES, Transport

STEP_NAMES = ("ReceiverInit", "SenderRecvInit", "SenderStartRound", "SenderFailDead", "WriteLand",
              "SenderEndRound", "DeliverStatus", "ReceiverPoll", "SenderRecvResume",
              "SenderRecvAbort", "PrefillDone", "WriteError", "Heartbeat", "Abort",
              "AllocFail")
FAULT_STEPS = {"WriteError": "write_error", "Heartbeat": "heartbeat",
               "Abort": "abort", "AllocFail": "alloc_fail"}


@dataclass
class Config:
    variant: str = "corrected"
    tokens: list[int] = field(default_factory=lambda: [6])   # one entry per request
    block_size: int = 2
    pool: int = 4                 # blocks per language rank
    sessions: int = 1
    order: str = "fifo"
    cap: int = 0                  # blocks per resume allocation, 0 = all remaining
    resume_order: str | None = None   # None: the engine's order for the variant
    barrier: bool = True
    fork_sender: bool = False     # the engine fork's sender after a failed write (ForkSender)
    faults: tuple[str, ...] = ()
    seed: int = 0
    hidden: int = 8
    device: str = "auto"
    init_tokens: int | None = None    # None: one block
    max_steps: int = 100_000
    verify_inline: bool = True        # check each handoff when it happens
    time_writes: bool = False         # measure the time spent landing writes
    batch_writes: bool = True         # land a round's writes with a few batched copies
                                      # (False: one copy per block); the run is the same
    props: tuple[str, ...] | None = None  # safety properties that stop the run (None: all)

    def effective_resume_order(self) -> str:
        return self.resume_order or ENGINE_RESUME_ORDER[self.variant]

    def validate(self) -> None:
        from .allocator import ORDERS
        from .receiver import RESUME_ORDERS, VARIANTS
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {', '.join(VARIANTS)}")
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; expected one of {', '.join(ORDERS)}")
        if self.resume_order is not None and self.resume_order not in RESUME_ORDERS:
            raise ValueError(f"unknown resume order {self.resume_order!r}; expected alloc_first or free_first")
        for f in self.faults:
            if f not in fault_steps.FAULTS:
                raise ValueError(f"unknown fault {f!r}; expected some of {', '.join(fault_steps.FAULTS)}")
        if not self.tokens or any(t < 1 for t in self.tokens):
            raise ValueError("--tokens: every request needs at least 1 token")
        if len(self.tokens) >= 2048 or max(self.tokens) >= 1 << 20:
            raise ValueError("at most 2047 requests of fewer than 2**20 tokens each")
        for name in ("block_size", "pool", "sessions", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.cap < 0:
            raise ValueError("--cap must be 0 (all remaining) or a number of blocks")
        if blocks_for(self.init_tokens or self.block_size, self.block_size) > self.pool:
            raise ValueError("the initial allocation does not fit in the pool (--pool too small)")
        if self.fork_sender and not (self.barrier or self.variant == "corrected"):
            raise ValueError("the fork's sender without the resume barrier (the spec's QueuedRounds) "
                             "is not run by this interpreter; check it with the spec and the "
                             "conformance checkers")


class World:
    def __init__(self, cfg: Config) -> None:
        cfg.validate()
        self.cfg = cfg
        self.device = choose_device(cfg.device)
        self.trace = TraceLog()
        self.transport = Transport()
        bs = cfg.block_size
        ranks = range(1, cfg.sessions + 1)
        self.pools = {s: BlockBuffers(cfg.pool, bs, cfg.hidden, self.device,
                                      batch_landings=cfg.batch_writes, time_landings=cfg.time_writes)
                      for s in ranks}
        self.pickers = {s: CorePicker(bs, cfg.order, seed=cfg.seed * 31 + s) for s in ranks}
        self.gate = PropertyGate(cfg.props)
        self.checkers = {s: PoolChecker(s, cfg.pool, self.gate) for s in ranks}
        # The protocol core's parameters: every decision below is the core's.
        self.params = core.Params(
            cfg.variant, n_sessions=cfg.sessions, block_size=bs,
            init_tokens=cfg.init_tokens or bs, cap=cfg.cap,
            order="any" if cfg.order == "random" else cfg.order,
            resume_order=cfg.effective_resume_order(),
            barrier=cfg.barrier or cfg.variant == "corrected", fork_sender=cfg.fork_sender)
        self.fx = Interpreter(self, self.trace, corrected=self.params.corrected)
        # Source side: every request's embedding in the sender's own blocks.
        src_blocks_total = sum(blocks_for(t, bs) for t in cfg.tokens)
        self.source = BlockBuffers(src_blocks_total, bs, cfg.hidden, self.device)
        self.sender = Sender(self.params, self.fx)
        self.receiver = Receiver(self.params, cfg.pool, self.pools, self.pickers, self.fx)
        self.handed: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.landed: list = []  # every write that landed, in order
        next_block = 0
        for req, total in enumerate(cfg.tokens, start=1):
            emb, ids, mrope = make_source_embedding(req, total, cfg.hidden, self.device, cfg.seed)
            blocks = list(range(next_block, next_block + blocks_for(total, bs)))
            next_block += len(blocks)
            for i, b in enumerate(blocks):
                lo, hi = i * bs, min(total, (i + 1) * bs)
                self.source.load(b, emb[lo:hi], ids[lo:hi], mrope[:, lo:hi])
            self.source.write_aux(blocks[0], total, mrope_delta=req)
            del emb, ids, mrope  # the source blocks hold the only copy
            self.sender.add_room(req, total, blocks)
            self.receiver.add_request(req)
        self.faults_left = set(cfg.faults)
        self.bytes_landed = 0
        self._log_config()

    def _log_config(self) -> None:
        cfg = self.cfg
        fields = dict(block_size=cfg.block_size, nblocks=cfg.pool, nsess=cfg.sessions,
                      init_tokens=cfg.init_tokens or cfg.block_size, cap=cfg.cap,
                      order="any" if cfg.order == "random" else cfg.order,
                      variant=cfg.variant, resume_order=cfg.effective_resume_order(),
                      barrier=cfg.barrier or cfg.variant == "corrected",
                      faults=sorted(f for f in cfg.faults if f != "alloc_fail"))
        if cfg.fork_sender:
            fields["fork_sender"] = True
        self.trace.emit("encode", "config", **fields)
        for s in self.pools:
            self.trace.emit(f"language/{s}", "config", **fields)

    # -- hooks from the interpreter -------------------------------------------
    def on_handoff(self, req, session, handed) -> None:
        self.handed[(req, session)] = handed
        if self.cfg.verify_inline:
            check_handoff(req, session, handed, self.source_of(req), self.gate)

    def source_of(self, req: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The request's embedding, generated again from the seed (independent
        of every buffer of the run, so no buffer bug can hide itself)."""
        return make_source_embedding(req, self.sender.rooms[req].total, self.cfg.hidden,
                                     self.device, self.cfg.seed)

    def verify_handed(self) -> None:
        """Check every handoff of the run (when ``verify_inline`` was off)."""
        for (req, session), handed in sorted(self.handed.items()):
            check_handoff(req, session, handed, self.source_of(req), self.gate)

    @property
    def write_seconds(self) -> float:
        """Time spent copying landed writes (``time_writes``): wall time on
        CPU, device time between CUDA events on a GPU."""
        return sum(p.landing_seconds for p in self.pools.values())

    @property
    def write_ops(self) -> int:
        """Copy ops the landed writes took (fewer than writes when batched)."""
        return sum(p.landing_ops for p in self.pools.values())

    def drop_writes(self, req: int) -> None:
        for w in self.transport.drop_writes(req):
            self.checkers[w.session].on_write_gone(w.dst_block)

    # -- WriteLand ---------------------------------------------------------
    def land_write(self, session: int, write_id: int) -> None:
        """One write lands: the checks see it now; its bytes are copied now
        (per-block landing) or with the rest of its batch before the rank's
        pool is next read (batched landing, ``Config.batch_writes``)."""
        w = self.transport.take_write(session, write_id)
        checker = self.checkers[session]
        checker.on_write_gone(w.dst_block)
        checker.on_write_land(w.req, w.dst_block)
        self.landed.append(w)
        self.pools[session].land(self.source, BlockCopy(w.src_block, w.dst_block, w.tokens, w.with_aux))
        self.bytes_landed += w.tokens * (self.cfg.hidden * 2 + 4 + 12)

    def settle_writes(self) -> None:
        """Copy the bytes of every landed write still queued (batched landing)."""
        for pool in self.pools.values():
            pool.settle()

    # -- what may happen now ---------------------------------------------------
    def heartbeat(self, req: int) -> None:
        """Heartbeat(r): the core's atomic step over both sides."""
        rx_step, tx_step = core.heartbeat(self.receiver.rx, self.sender.rooms[req], req)
        self.sender.rooms[req] = tx_step.state
        self.fx.carry(req, tx_step.effects, None, tx_step.action)
        self.receiver.heartbeat_lost(req, rx_step)

    def enabled_steps(self) -> list[dict]:
        steps: list[dict] = []
        rx, tx, net = self.receiver, self.sender, self.transport
        for req, q in rx.rx.requests.items():
            room = tx.rooms[req]
            phase = q.phase
            if phase == NEW:
                steps.append({"step": "ReceiverInit", "req": req})
            for s in self.params.sessions:
                head = net.head_ctl(req, s)
                if head is not None:
                    if head.type == "init":
                        if room.alive:  # a closed or dead room takes no init
                            steps.append({"step": "SenderRecvInit", "req": req, "session": s})
                    elif head.type == "resume":
                        steps.append({"step": "SenderRecvResume", "req": req, "session": s})
                    elif tx.can_recv_abort(req):
                        steps.append({"step": "SenderRecvAbort", "req": req, "session": s})
                if net.head_status(req, s) is not None:
                    steps.append({"step": "DeliverStatus", "req": req, "session": s})
            if tx.can_start_round(req):
                steps.append({"step": "SenderStartRound", "req": req})
            if tx.can_fail_dead(req):
                steps.append({"step": "SenderFailDead", "req": req})
            if tx.can_end_round(req):
                steps.append({"step": "SenderEndRound", "req": req})
            if phase in (QUEUED, ABORTING):
                steps.append({"step": "ReceiverPoll", "req": req})
            if phase == PREFILL:
                steps.append({"step": "PrefillDone", "req": req})
            if "write_error" in self.faults_left and self.params.fork_sender \
                    and room.phase == WRITING:
                # the fork's sender: the write to any one session may fail
                for s in self.params.sessions:
                    steps.append({"step": "WriteError", "req": req, "session": s})
            elif "write_error" in self.faults_left and room.alive and net.pending_writes(req):
                steps.append({"step": "WriteError", "req": req})
            if "heartbeat" in self.faults_left and core.heartbeat(rx.rx, room, req) is not None:
                steps.append({"step": "Heartbeat", "req": req})
            if "abort" in self.faults_left and phase == QUEUED:
                steps.append({"step": "Abort", "req": req})
        for s, ws in net.wire.items():
            for w in ws.values():
                steps.append({"step": "WriteLand", "session": s, "req": w.req,
                              "write": w.id, "dst": w.dst_block, "pos": w.pos})
        if "alloc_fail" in self.faults_left and any(
                q.phase in (NEW, QUEUED) for q in rx.rx.requests.values()):
            for s in self.pickers:
                steps.append({"step": "AllocFail", "session": s})
        return steps

    def apply(self, step: dict) -> None:
        name = step["step"]
        rx, tx = self.receiver, self.sender
        if name == "ReceiverInit":
            rx.init_request(step["req"])
        elif name == "SenderRecvInit":
            tx.recv_init(step["req"], step["session"])
        elif name == "SenderRecvResume":
            tx.recv_resume(step["req"], step["session"])
        elif name == "SenderRecvAbort":
            tx.recv_abort(step["req"], step["session"])
        elif name == "SenderStartRound":
            tx.start_round(step["req"])
        elif name == "SenderFailDead":
            tx.fail_dead(step["req"])
        elif name == "WriteLand":
            self.land_write(step["session"], step["write"])
        elif name == "SenderEndRound":
            tx.end_round(step["req"])
        elif name == "DeliverStatus":
            rx.recv_status(step["req"], step["session"])
        elif name == "ReceiverPoll":
            rx.poll(step["req"])
        elif name == "PrefillDone":
            rx.prefill_done(step["req"])
        elif name in FAULT_STEPS:
            fault = FAULT_STEPS[name]
            self.faults_left.discard(fault)
            if name == "AllocFail":
                fault_steps.alloc_fail(self, step["session"])
            elif name == "WriteError":
                fault_steps.write_error(self, step["req"], step.get("session"))
            else:
                getattr(fault_steps, fault)(self, step["req"])
        else:
            raise KeyError(name)

    # -- progress and the end ------------------------------------------------
    def fingerprint(self) -> tuple:
        """Everything that makes a state differ, apart from tensor contents
        (which change only through WriteLand, whose effect shows in ``wire``):
        the core's states (immutable: an unchanged one is the same object,
        so comparing is cheap), the channels, the writes in flight, the faults."""
        rx = self.receiver.rx
        net = self.transport
        return (
            tuple(rx.requests.items()), rx.pools, tuple(self.sender.rooms.values()),
            tuple((k, len(q)) for k, q in net.ctl.items()),
            tuple((k, len(q)) for k, q in net.st.items()),
            tuple((s, tuple(ws)) for s, ws in net.wire.items()),
            tuple(p.fail_next for p in self.pickers.values()),
            tuple(sorted(self.faults_left)),
            tuple(sorted(self.sender.dead)),
        )

    def finished(self) -> bool:
        return (all(q.phase in (DONE, FAILED) for q in self.receiver.rx.requests.values())
                and all(not room.alive for room in self.sender.rooms.values())
                and not self.transport.pending_writes())

    def stuck_report(self) -> str:
        out = []
        rx = self.receiver.rx
        for req, q in rx.requests.items():
            if q.phase not in (DONE, FAILED):
                st = STATUS_NAMES[rx.combined_status(req)]
                room = self.sender.rooms[req]
                out.append(f"req {req}: receiver {q.phase}, status {st}, after "
                           f"{max(x.resumes for x in q.sessions)} resume(s); "
                           f"sender round {room.round} ({room.phase}), sent "
                           + "/".join(str(i.sent) for i in room.sessions)
                           + f" of {room.total}")
        for req, room in self.sender.rooms.items():
            phase = rx.requests[req].phase
            if room.alive and phase in (DONE, FAILED):
                out.append(f"req {req}: sender room never closes (round {room.round}, receiver {phase})")
        if self.transport.pending_writes():
            out.append(f"{len(self.transport.pending_writes())} write(s) never land")
        return "; ".join(out) or "no progress"

    def check_state(self) -> None:
        """Properties over the whole system, checked after every step."""
        rx = self.receiver.rx
        for w in self.transport.pending_writes():
            q = rx.requests[w.req]
            if q.phase not in (QUEUED, ABORTING) or w.dst_block not in q.session(w.session).blocks:
                self.gate.fail("write_into_unowned", "WritesOnlyIntoOwnedBlocks",
                               f"rank {w.session}: a write of req {w.req} in flight to block {w.dst_block}, "
                               f"which the request no longer holds (receiver {q.phase})")
        for req, q in rx.requests.items():
            partials = self.sender.rooms[req].partials
            for s, x in zip(self.params.sessions, q.sessions):
                if x.resumes > partials:
                    self.gate.fail("double_resume", "AtMostOneResumePerRound",
                                   f"req {req} session {s}: {x.resumes} resumes sent, "
                                   f"{partials} round(s) ended partial")

        if CONTAINMENT[0] in self.gate.props:
            failed = [req for req, q in rx.requests.items() if q.phase == FAILED]
            used = len(self.cfg.faults) - len(self.faults_left)
            if len(failed) > used:
                self.gate.fail("fault_spread", "EachFailureHasAFault",
                               f"requests {failed} failed after {used} fault(s)"
                               + (f"; the sender counts session(s) {sorted(self.sender.dead)} "
                                  f"as dead" if self.sender.dead else ""))

    def dead_wait(self, req: int) -> bool:
        """The spec's DeadWait: the receiver waits for data, the sender for a
        resume, and no message is on its way."""
        room = self.sender.rooms[req]
        return (self.receiver.rx.requests[req].phase == QUEUED and room.phase == AWAIT
                and all(not self.transport.ctl.get((req, s)) and not self.transport.st.get((req, s))
                        for s in self.params.sessions))

    def check_end(self) -> None:
        """At the end of a finished run: no block leaked, free lists intact."""
        for s, checker in self.checkers.items():
            checker.check_no_leak(self.receiver.rx.pools[s - 1].free)
