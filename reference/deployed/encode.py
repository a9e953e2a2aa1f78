"""The encode process: the sender's rooms, driven by the protocol core.

Every decision is the core's (``sender_recv_init``, ``sender_recv_resume``,
``sender_recv_abort``, ``sender_start_round``, ``sender_end_round``,
``write_error``); this process carries the effects out: ``WriteBlock`` as
Mooncake writes, every session's writes of a round submitted together and
waited for together (``common.write_batches``: the call returns once the
bytes are in the ranks' memory, so every write of a round has landed before
its status goes out), ``SendStatus`` as a ZMQ message.
Send events are logged just before the message is handed to ZMQ (a crash
between the two leaves a message logged but never delivered, which the
spec allows; the other order would leave a message received but never
sent).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from resumespec.reference import protocol as core
from resumespec.reference.protocol.designs import STATUSES

from .common import (
    AUX_BYTES,
    Blocks,
    DeployConfig,
    drain,
    dumps,
    join_driver,
    loads,
    mooncake_engine,
    redirect_stderr,
    source_embedding,
    write_batches,
)


@dataclass
class Room:
    tx: core.TxRoom
    src: list[int]                # source blocks holding the embedding, in order
    released: bool = False


def main(cfg_dict: dict, driver_addr: str, trace_dir: str) -> None:
    redirect_stderr(str(Path(trace_dir).parent / "logs" / "encode.log"))
    import torch
    import zmq

    from resumespec.conformance.recorder import close_all, recorder_for

    torch.set_num_threads(1)
    cfg = DeployConfig(**cfg_dict)
    p = cfg.params()
    bs = cfg.block_size
    rec = recorder_for("encode", trace_dir, flush=cfg.trace_flush)
    log = rec.log
    log("config", **cfg.trace_config())

    engine, mc = mooncake_engine()
    src = Blocks(cfg.src_blocks, bs, cfg.hidden, cfg.device)
    src.register(engine)

    zctx, inbox, driver = join_driver(driver_addr, "encode", mc=mc)
    peers = loads(inbox.recv())
    assert peers["t"] == "peers", peers
    ranks = {int(s): h for s, h in peers["ranks"].items()}
    to_rank = {}
    for s, h in ranks.items():
        sock = zctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(h["inbox"])
        to_rank[s] = sock

    # Connect to every rank's Mooncake segment now, as an engine does at
    # bootstrap, rather than inside the first round's write: 64 zero bytes
    # of the (not yet encoded) source arena over the rank's block 0, which
    # holds zeros too and gets no data before this process's first round.
    for h in ranks.values():
        rc = engine.transfer_sync_write(h["mc"], src.emb_addr(0), h["emb"], 64)
        if rc != 0:
            raise RuntimeError(f"Mooncake could not reach {h['proc']} ({rc})")

    beating = threading.Event()

    def heartbeat() -> None:
        """The heartbeat thread: its own sockets (ZMQ sockets are not shared
        between threads), one beat to every rank every ``heartbeat_s``,
        whatever the main loop is doing; it dies with the process."""
        socks = []
        for h in ranks.values():
            sock = zctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(h["inbox"])
            socks.append(sock)
        while not beating.wait(cfg.heartbeat_s):
            for sock in socks:
                sock.send(b'{"t":"hb"}')
        for sock in socks:
            sock.close()

    beat = threading.Thread(target=heartbeat, name="heartbeat", daemon=True)
    beat.start()
    free_src: deque[int] = deque(range(cfg.src_blocks))
    rooms: dict[int, Room] = {}
    early: dict[int, list[dict]] = {}        # control messages for rooms not made yet
    waiting: deque[tuple[int, int]] = deque()  # (req, total) waiting for source blocks
    stop = False

    def carry_out(effects) -> None:
        """The statuses of one core step: every one is logged before any
        leaves, so no rank can act on one of them (and, through the
        all-reduce, end the request on every rank) before the log holds the
        whole step (the spec's step sends them all at once)."""
        sends = [e for e in effects if isinstance(e, core.SendStatus)]
        for e in sends:
            m = e.msg
            log("status_sent", req=e.req, session=e.session, status=STATUSES[m.status],
                round=m.round, sent_tokens=m.sent, total=m.total)
        for e in sends:
            m = e.msg
            to_rank[e.session].send(dumps({"t": "status", "req": e.req, "status": m.status,
                                           "round": m.round, "sent": m.sent, "total": m.total}))

    def make_room(req: int, total: int) -> bool:
        need = -(-total // bs)
        if len(free_src) < need:
            return False
        blocks = [free_src.popleft() for _ in range(need)]
        emb = source_embedding(cfg.seed, req, total, cfg.hidden)     # "the encoder ran"
        padded = torch.zeros(need * bs, cfg.hidden, dtype=emb.dtype)
        padded[:total] = emb
        idx = torch.tensor(blocks, dtype=torch.long)
        src.emb.index_copy_(0, idx.to(src.emb.device), padded.view(need, bs, cfg.hidden).to(src.emb.device))
        src.aux[blocks[0], 0] = total
        rooms[req] = Room(core.TxRoom.initial(p, req, total), blocks)
        driver.send(dumps({"t": "encoded", "req": req}))
        for m in early.pop(req, []):
            on_ctl(m)
        return True

    def on_ctl(m: dict) -> None:
        req, s = m["req"], m["session"]
        room = rooms.get(req)
        if room is None:
            early.setdefault(req, []).append(m)
            return
        t = m["t"]
        if t == "init":
            step = core.sender_recv_init(room.tx, s, core.Ctl("init", tuple(m["blocks"]), 0, m["alloc"]))
            if step is None:
                return          # a closed room leaves it unread
            log("init_recv", req=req, session=s, blocks=m["blocks"], allocated_tokens=m["alloc"])
        elif t == "resume":
            step = core.sender_recv_resume(room.tx, s, core.Ctl(
                "resume", tuple(m["blocks"]), m["sent"], m["alloc"], m["round"]))
            log("resume_recv", req=req, session=s, blocks=m["blocks"], sent_tokens=m["sent"],
                allocated_tokens=m["alloc"], round=m["round"])
        else:
            step = core.sender_recv_abort(room.tx, s, core.Ctl("abort"), writes_in_flight=False)
            log("abort_recv", req=req, session=s)
        assert step is not None
        room.tx = step.state
        carry_out(step.effects)

    def fault_here(room: Room) -> bool:
        """The round the fault hits: the second of the fault's request (the
        first when its embedding fits the init allocation)."""
        tx = room.tx
        if cfg.fault is None or tx.req != cfg.fault_req:
            return False
        return tx.round == (2 if tx.total > cfg.init_tokens else 1)

    def run_round(room: Room) -> None:
        before = room.tx
        step = core.sender_start_round(before)
        if step is None:
            return
        room.tx = tx = step.state
        req = tx.req
        per_session: dict[int, list[core.WriteBlock]] = {s: [] for s in p.sessions}
        for w in step.effects:
            if isinstance(w, core.WriteBlock):
                per_session[w.session].append(w)
        for s in p.sessions:
            ws, x0 = per_session[s], before.session(s)
            log("round_start", req=req, session=s, sent_tokens=x0.sent, tokens=tx.session(s).tok,
                total=tx.total, src_blocks=[room.src[(w.first - 1) // bs] for w in ws],
                dst_blocks=[w.block for w in ws], partial=tx.total - x0.sent > x0.alloc,
                aux_written=any(w.aux > 0 for w in ws), x_round=tx.round)
        inject = fault_here(room)
        if inject and cfg.fault == "heartbeat":
            kill_point(req)
        batches, sessions = [], []
        for s in p.sessions:
            ws = per_session[s]
            if not ws:
                continue
            peer = ranks[s]
            srcs, dsts, lens = [], [], []
            for w in ws:
                pos = w.first - 1
                sb, row = room.src[pos // bs], pos % bs
                assert row + w.count <= bs, "a write never straddles two source blocks"
                srcs.append(src.emb_addr(sb, row))
                dsts.append(peer["emb"] + w.block * src.block_bytes)
                lens.append(w.count * src.token_bytes)
                if w.aux > 0:
                    srcs.append(src.aux_addr(room.src[0]))
                    dsts.append(peer["aux"] + w.block * AUX_BYTES)
                    lens.append(AUX_BYTES)
            if inject and cfg.fault == "write_error" and s == p.n_sessions:
                # the injected failure: the last write goes to an address the
                # rank never registered; Mooncake's TCP transport refuses it
                dsts[-1] = peer["emb"] - (1 << 30)
            batches.append((peer["mc"], srcs, dsts, lens))
            sessions.append(s)
        # every session's writes of the round in flight together; returns
        # once all have landed (or failed), so none is in flight after it
        # ("sync": one session's batch after the other, a failed one ends it)
        if cfg.write_wait == "sync":
            bad = next((i for i, b in enumerate(batches)
                        if engine.batch_transfer_sync_write(*b) != 0), None)
        else:
            bad = write_batches(engine, batches)
        failed_session = None if bad is None else sessions[bad]
        if failed_session is not None:
            log("write_error", req=req, session=failed_session)
            fail = core.write_error(room.tx)
            assert fail is not None
            room.tx = fail.state
            carry_out(fail.effects)
            return
        end = core.sender_end_round(room.tx, writes_in_flight=False)
        assert end is not None
        room.tx = end.state
        for s in p.sessions:
            log("round_end", req=req, session=s, sent_tokens=end.state.session(s).sent, ok=True,
                x_round=tx.round)
        carry_out(end.effects)

    def kill_point(req: int) -> None:
        """The heartbeat fault: the driver kill -9s this process here, in the
        middle of the request's transfer (a round started, its writes not yet
        issued).  Nothing after this line runs: what the recorder still
        buffers is lost (the driver runs this scenario with
        RESUMESPEC_TRACE_FLUSH=1, where every line is written as logged)."""
        driver.send(dumps({"t": "kill_point", "req": req, "pid": os.getpid()}))
        while True:
            time.sleep(1)

    while not stop:
        busy = False
        for m in drain(inbox, timeout_ms=1):
            t = m["t"]
            if t == "req":
                waiting.append((m["req"], m["total"]))
            elif t == "stop":
                stop = True
            else:
                on_ctl(m)
        if waiting and make_room(*waiting[0]):     # one encoding per loop: stay responsive
            waiting.popleft()
        for room in list(rooms.values()):
            if room.tx.phase in ("init", "await"):
                n = room.tx.round
                run_round(room)
                busy = busy or room.tx.round != n
            if not room.tx.alive and not room.released:
                free_src.extend(room.src)
                room.released = True
        if not busy:
            time.sleep(0)
    beating.set()
    beat.join()
    close_all()
    zctx.destroy(linger=0)
