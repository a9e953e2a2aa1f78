"""One language rank: the receiver's side of every request on this rank,
driven by the protocol core.

The ranks run one SPMD loop.  Each iteration:

1. take what arrived in this rank's ZMQ inbox (statuses and heartbeats from
   the encode process; on rank 1 also requests and stop from the driver);
2. apply rank 1's commands (new request, abort, prefill end, stop): every
   rank gets the same commands in the same iteration.  By default
   (``collectives=1``) they came with the last iteration's all-reduce (step
   4), so each iteration runs one collective; with ``collectives=2`` rank 1
   broadcasts them over the gloo group here, a second collective;
3. deliver the statuses (``deliver_status``);
4. one all-reduce (MIN) over the gloo group of a vector holding: "the
   encode peer is alive", "a new request fits my pool" per new request, and
   the local status per open request.  That is the engine's status
   all-reduce; the heartbeat and the admission ride along, and (by default)
   rank 1's commands for the next iteration;
5. heartbeat lost on some rank: ``heartbeat_lost`` for every open request;
   admission: ``receiver_init``; then the poll of every open request on the
   all-reduced status (``receiver_poll``), and prefill's end
   (``prefill_done``) once its delay has passed.

The loop never sleeps: the inbox poll of step 1 waits at most 1 ms.  (Two
options that made the ranks sleep, a ZMQ meeting before each all-reduce and
a longer wait once every rank was idle, were measured and removed: neither
made the protocol faster, docs/deployed.md.)

The core keeps one rank's state (a one-session ``RxState`` with this rank's
real pool): a rank decides from its own state, its own pool and the combined
status alone (``protocol/rank.py`` says why), so asking the core about this
rank with the combined status in place of its local one gives this rank's
decision.  Polls that decide ``wait`` change nothing and are not logged.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from resumespec.reference import protocol as core
from resumespec.reference.protocol.designs import STATUSES
from resumespec.reference.protocol.receiver import ABORTING, NEW, PREFILL, QUEUED

from .common import (
    DeployConfig,
    digest,
    drain,
    dumps,
    join_driver,
    loads,
    mooncake_engine,
    redirect_stderr,
)

CMD_REQ, CMD_ABORT, CMD_STOP, CMD_PREFILL_DONE = 1, 2, 3, 4
CMDS_PER_ITER = 256     # commands one broadcast carries (collectives=2)
CMDS_PER_REDUCE = 32    # commands the all-reduce carries (collectives=1)


class Group:
    """The ranks' gloo group (nothing to do for one rank)."""

    def __init__(self, rank: int, world: int, init_method: str):
        self.rank, self.world = rank, world
        if world > 1:
            import torch.distributed as dist

            dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
            self.dist = dist

    def broadcast_cmds(self, cmds: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if self.world == 1:
            return cmds
        import torch

        t = torch.zeros(1 + 2 * CMDS_PER_ITER, dtype=torch.int64)
        if self.rank == 0:
            t[0] = len(cmds)
            for i, (c, r) in enumerate(cmds):
                t[1 + 2 * i], t[2 + 2 * i] = c, r
        self.dist.broadcast(t, src=0)
        n = int(t[0])
        v = t[1:1 + 2 * n].tolist()
        return [(v[2 * i], v[2 * i + 1]) for i in range(n)]

    def all_reduce_min(self, values: list[int]) -> list[int]:
        if self.world == 1:
            return values
        import torch

        t = torch.tensor(values, dtype=torch.int64)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MIN)
        return t.tolist()

    def all_reduce_min_cmds(self, cmds: list[tuple[int, int]],
                            values: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
        """One all-reduce MIN that carries rank 0's commands (at most
        ``CMDS_PER_REDUCE``) beside ``values``: the other ranks put the
        largest int64 in the commands' slots, so the minimum is rank 0's.
        Returns (rank 0's commands, the combined values)."""
        if self.world == 1:
            return cmds, values
        import torch

        head = 1 + 2 * CMDS_PER_REDUCE
        t = torch.empty(head + len(values), dtype=torch.int64)
        if self.rank == 0:
            t[:head] = 0
            t[0] = len(cmds)
            for i, (c, r) in enumerate(cmds):
                t[1 + 2 * i], t[2 + 2 * i] = c, r
        else:
            t[:head] = torch.iinfo(torch.int64).max
        if values:
            t[head:] = torch.tensor(values, dtype=torch.int64)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MIN)
        v = t.tolist()
        n = v[0]
        return [(v[1 + 2 * i], v[2 + 2 * i]) for i in range(n)], v[head:]

    def close(self) -> None:
        if self.world > 1:
            self.dist.destroy_process_group()


def main(cfg_dict: dict, session: int, driver_addr: str, trace_dir: str, dist_addr: str) -> None:
    redirect_stderr(str(Path(trace_dir).parent / "logs" / f"language-{session}.log"))
    import torch
    import zmq

    from resumespec.conformance.recorder import close_all, recorder_for

    from .common import Arena, Blocks

    torch.set_num_threads(1)
    cfg = DeployConfig(**cfg_dict)
    s = session
    bs, hidden = cfg.block_size, cfg.hidden
    p1 = core.Params("corrected", n_sessions=1, block_size=bs, init_tokens=cfg.init_tokens,
                     cap=cfg.cap)
    rec = recorder_for(f"language/{s}", trace_dir, flush=cfg.trace_flush)
    log = rec.log
    log("config", **cfg.trace_config())

    group = Group(s - 1, cfg.ranks, dist_addr)
    engine, mc = mooncake_engine()
    buf = Blocks(cfg.pool_blocks, bs, hidden, cfg.device)
    buf.register(engine)
    arena = Arena(cfg.handoff_rows, hidden, cfg.device)

    zctx, inbox, driver = join_driver(driver_addr, f"language/{s}", mc=mc,
                                      emb=buf.emb.data_ptr(), aux=buf.aux.data_ptr())
    peers = loads(inbox.recv())
    while peers["t"] == "hb":        # the encode process may beat before the driver's peers come
        peers = loads(inbox.recv())
    assert peers["t"] == "peers", peers
    encode = zctx.socket(zmq.PUSH)
    encode.setsockopt(zmq.LINGER, 0)
    encode.setsockopt(zmq.SNDHWM, 0)
    encode.connect(peers["encode"])

    rx = core.RxState(p1, {}, (core.Pool.of(range(cfg.pool_blocks)),))
    open_reqs: list[int] = []                # queued or aborting
    new_reqs: deque[int] = deque()
    statuses: deque[dict] = deque()
    staged: list[tuple[int, int]] = []       # rank 1: commands for the next collective
    carried: list[tuple[int, int]] = []      # commands the last all-reduce carried (collectives=1)
    assembly: dict[int, list] = {}           # req -> [its embedding as copied out so far, rows]
    prefill_until: dict[int, float] = {}
    prefill_input: dict[int, object] = {}    # req -> the buffer prefill reads until it ends
    hb_failed: set[int] = set()
    ending: set[int] = set()                 # rank 1: prefill ends staged, not yet done
    abort_pending = cfg.fault == "abort" and s == 1
    last_hb = time.monotonic()
    stop = False

    def send_ctl(req: int, msg: core.Ctl) -> None:
        m = {"t": msg.type, "req": req, "session": s, "blocks": list(msg.blocks),
             "sent": msg.sent, "alloc": msg.alloc, "round": msg.round}
        encode.send(dumps(m))

    def read(e: core.Read):
        """Copy ``e.tokens`` rows out of the rank's blocks (``get_buf``) into
        the request's embedding, after what earlier rounds gave (one copy per
        block, straight into the tensor prefill gets), logged."""
        n = e.tokens
        touched = list(e.blocks[:-(-n // bs)]) if n > 0 else []
        aux_total = buf.aux_total(e.blocks[0]) if e.blocks else 0
        got = assembly.get(e.req)
        if got is None:
            total = rx.requests[e.req].sessions[0].info.total
            into = arena.take(total)
            if into is None:
                into = torch.empty(total, hidden, dtype=buf.emb.dtype, device=buf.emb.device)
            got = assembly[e.req] = [into, 0]
        out, at = got
        i = 0
        while i < len(touched):            # one copy per run of consecutive blocks
            j = i + 1
            while j < len(touched) and touched[j] == touched[j - 1] + 1:
                j += 1
            rows = min(n, j * bs) - i * bs
            out[at + i * bs:at + i * bs + rows].copy_(
                buf.emb[touched[i]:touched[j - 1] + 1].view(-1, hidden)[:rows])
            i = j
        got[1] = at + n
        log("buffer_read", req=e.req, session=s, blocks=touched, aux_total=aux_total, tokens=n)

    def end(req: int, **fields) -> None:
        driver.send(dumps({"t": "end", "req": req, "session": s, **fields}))

    def carry_out(effects, tokens: int | None = None) -> None:
        """Carry out the core's effects for this rank (the one-rank state names
        it session 1), logging each in the order of the trace format."""
        for e in effects:
            if isinstance(e, core.Alloc):
                log("alloc", rank=s, req=e_req, tokens=tokens if tokens is not None else
                    len(e.blocks) * bs, blocks=list(e.blocks))
            elif isinstance(e, core.Free):
                if e.blocks:
                    log("free", rank=s, req=e_req, blocks=list(e.blocks))
            elif isinstance(e, core.SendCtl):
                m = e.msg
                if m.type == "init":
                    log("init_sent", req=e.req, session=s, blocks=list(m.blocks),
                        allocated_tokens=m.alloc)
                elif m.type == "resume":
                    log("resume_sent", req=e.req, session=s, blocks=list(m.blocks),
                        sent_tokens=m.sent, allocated_tokens=m.alloc, round=m.round)
                else:
                    log("abort_sent", req=e.req, session=s)
                send_ctl(e.req, m)
            elif isinstance(e, core.Read):
                read(e)
                if e.purpose == "handoff":
                    out, at = assembly.pop(e.req)
                    prefill_input[e.req] = out
                    handed = out[:at]
                    log("handoff", req=e.req, session=s, tokens=int(handed.shape[0]))
                    end(e.req, ok=True, tokens=int(handed.shape[0]),
                        sha=digest(handed) if cfg.verify else None)
                    prefill_until[e.req] = time.monotonic() + min(
                        cfg.prefill_max_s, handed.shape[0] * cfg.prefill_us_per_token * 1e-6)
            elif isinstance(e, core.FailRequest):
                log("fail", req=e.req, reason=e.reason)
                got = assembly.pop(e.req, None)
                if got is not None:
                    arena.give(got[0])
                end(e.req, ok=False, reason=e.reason)

    e_req = 0   # the request whose effects carry_out logs (Alloc and Free lack it)

    def poll(req: int, combined: int) -> None:
        nonlocal rx, e_req
        e_req = req
        q = rx.requests[req]
        x = q.sessions[0]
        view = rx._with(req, replace(q, sessions=(replace(x, status=combined),)))
        steps = core.receiver_poll(view, req)
        if not steps:
            return                                   # wait (or nothing free to resume with)
        step = steps[0]
        a = step.action
        if a == "PollReadOnly":
            return
        chain = [step]
        decision = {"PollSuccess": "handoff", "PollFailed": "fail"}.get(a, "resume")
        if a == "PollTransferringCorrected":
            cached = any(isinstance(e, core.Read) for e in step.effects)
            if cached:
                more = [m for m in core.receiver_poll(step.state, req)
                        if m.action == "PollTransferringCorrected"]
                chain += more[:1]
            else:
                decision = "retry_alloc"             # the resume the last poll could not make
        log("poll", req=req, status=STATUSES[combined], decision=decision)
        for st in chain:
            tokens = None
            if any(isinstance(e, core.Alloc) for e in st.effects):
                before = (chain[0].state if st is not chain[0] else view).requests[req].sessions[0]
                pool = (chain[0].state if st is not chain[0] else view).pools[0]
                tokens = p1.resume_tokens(before.info.total - before.info.sent, len(pool.free))
            carry_out(st.effects, tokens)
        last = chain[-1]
        if a == "PollTransferringCorrected" and len(chain) == 1 and decision == "resume":
            # cached and freed, but no block is free for the resume: the
            # allocator says None; a later poll retries (decision retry_alloc)
            info = last.state.requests[req].sessions[0].info
            log("alloc", rank=s, req=req, tokens=info.total - info.sent, blocks=None)
        nq = last.state.requests[req]
        rx = last.state._with(req, replace(nq, sessions=(replace(nq.sessions[0], status=x.status),)))
        if nq.phase not in (QUEUED, ABORTING):
            open_reqs.remove(req)

    def prefill_done(r: int) -> None:
        nonlocal rx, e_req
        prefill_until.pop(r, None)
        if r in prefill_input:
            arena.give(prefill_input.pop(r))
        steps = core.prefill_done(rx, r)
        log("prefill_done", req=r)
        e_req = r
        rx = steps[0].state
        carry_out(steps[0].effects)

    def take(m: dict) -> None:
        """Take one inbox message."""
        nonlocal last_hb
        t = m["t"]
        if t == "status":
            statuses.append(m)
        elif t == "hb":
            last_hb = time.monotonic()
        elif t == "req":
            staged.append((CMD_REQ, m["req"]))
        elif t == "stop":
            staged.append((CMD_STOP, 0))

    try:
        while True:
            for m in drain(inbox, timeout_ms=1):
                take(m)
            if abort_pending and cfg.fault_req in rx.requests:
                x = rx.requests[cfg.fault_req]
                if x.phase == QUEUED and x.sessions[0].info.round >= 1:
                    staged.append((CMD_ABORT, cfg.fault_req))   # mid-transfer: a round ended
                    abort_pending = False
            if s == 1:                               # rank 1 times prefill for every rank
                now = time.monotonic()
                for r in [r for r, t in prefill_until.items() if t <= now and r not in ending]:
                    ending.add(r)
                    staged.append((CMD_PREFILL_DONE, r))
            if cfg.collectives == 2:
                cmds = group.broadcast_cmds(staged[:CMDS_PER_ITER])
                staged = staged[CMDS_PER_ITER:]
            else:                                    # what the last all-reduce carried
                cmds, carried = carried, []
            prefilled = []
            for c, r in cmds:
                if c == CMD_REQ:
                    rx = rx.add_request(r)
                    new_reqs.append(r)
                elif c == CMD_ABORT:
                    steps = core.abort(rx, r)
                    if steps:
                        log("abort", req=r)
                        e_req = r
                        rx = steps[0].state
                        carry_out(steps[0].effects)
                elif c == CMD_PREFILL_DONE:
                    prefilled.append(r)
                else:
                    stop = True
            if stop:
                break
            while statuses:
                m = statuses.popleft()
                r = m["req"]
                msg = core.StatusMsg(m["status"], m["round"], m["sent"], m["total"])
                log("status_recv", req=r, session=s, status=STATUSES[m["status"]],
                    round=m["round"], sent_tokens=m["sent"], total=m["total"])
                rx = core.deliver_status(rx, r, 1, msg).state
            # the all-reduce: [peer alive, admission per new request, status per open request]
            free = len(rx.pools[0].free)
            need = -(-cfg.init_tokens // bs)
            fits = []
            for _ in new_reqs:
                fits.append(1 if free >= need else 0)
                free -= need
            alive = 0 if time.monotonic() - last_hb > cfg.heartbeat_timeout_s else 1
            local = [rx.requests[r].sessions[0].status for r in open_reqs]
            if cfg.collectives == 2:
                combined = group.all_reduce_min([alive] + fits + local)
            else:
                carried, combined = group.all_reduce_min_cmds(staged[:CMDS_PER_REDUCE],
                                                              [alive] + fits + local)
                staged = staged[CMDS_PER_REDUCE:]
            alive_all, fits_all = combined[0], combined[1:1 + len(fits)]
            comb = dict(zip(list(open_reqs), combined[1 + len(fits):]))
            # After the all-reduce (a barrier: every rank's events of the last
            # iteration are logged before it), first the steps the spec takes
            # on every rank at once (PrefillDone, Heartbeat, PollSuccess,
            # PollFailed, ReceiverInit), in the same order on every rank, then
            # each rank's own steps (CorrectedCache, CorrectedResume).
            for r in prefilled:
                prefill_done(r)
            if not alive_all:
                for r in open_reqs:
                    if r not in hb_failed:
                        steps = core.heartbeat_lost(rx, r)
                        if steps:
                            log("heartbeat_fail", req=r)
                            rx = steps[0].state
                            hb_failed.add(r)
                            comb[r] = core.Status.FAILED
            lockstep = (core.Status.SUCCESS, core.Status.FAILED)
            for r, c in comb.items():
                if c in lockstep:
                    poll(r, c)
            for ok in fits_all:
                if not ok:
                    break
                r = new_reqs.popleft()
                steps = core.receiver_init(rx, r)
                assert steps, f"request {r}: the all-reduce said its init blocks are free"
                e_req = r
                rx = steps[0].state
                carry_out(steps[0].effects, cfg.init_tokens)
                open_reqs.append(r)
            for r, c in comb.items():
                if c not in lockstep:
                    poll(r, c)
        # stopped: let the prefills still running end, then leave
        # (in request order on every rank: no rank logs anything else now)
        if prefill_until:
            time.sleep(max(0.0, max(prefill_until.values()) - time.monotonic()))
        for r in sorted(prefill_until):
            prefill_done(r)
        assert all(q.phase not in (NEW, QUEUED, ABORTING, PREFILL) for q in rx.requests.values()), \
            "stopped with requests still open"
    finally:
        close_all()
        group.close()
        zctx.destroy(linger=0)
