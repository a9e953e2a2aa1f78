"""Synthetic traces: a small, fast generator of valid protocol runs.

Used by the tests (valid traces and their mutations) and by the benchmark
(traces of any length, streamed to disk).  It plays the mainline design with
an alloc-first resume, several sessions, requests overlapping in time and a
shared block pool per rank, and logs exactly what docs/trace-format.md says.
It is *not* the reference implementation (reference/ is): it has no data, only
the events, so that the benchmark can produce millions of events per second.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Iterator

HEADER = ("v", "proc", "seq", "event")


class _Log:
    """Numbers events per process and collects or streams them."""

    def __init__(self):
        self.seq: dict[str, int] = {}
        self.out: list = []

    def emit(self, proc: str, event: str, **fields) -> None:
        n = self.seq.get(proc, 0)
        self.seq[proc] = n + 1
        d = {"v": 1, "proc": proc, "seq": n, "event": event}
        d.update(fields)
        self.out.append(d)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _request(log: _Log, pools: dict, r: int, total: int, nsess: int, bs: int,
             init_tokens: int, rng: random.Random, ids: bool) -> Iterator[None]:
    """One request from init to the free after prefill; yields between steps."""
    lang = {s: f"language/{s}" for s in range(1, nsess + 1)}
    # ReceiverInit: allocate on every rank (all or nothing), then init.
    need = _ceil(init_tokens, bs)
    while any(len(pools[s]) < need for s in lang):
        yield
    blocks = {}
    for s in lang:
        blocks[s] = [pools[s].popleft() for _ in range(need)]
        log.emit(lang[s], "alloc", rank=s, req=r, tokens=init_tokens, blocks=blocks[s])
        log.emit(lang[s], "init_sent", req=r, session=s, blocks=blocks[s],
                 allocated_tokens=need * bs)
    yield
    tx = {}
    for s in lang:
        log.emit("encode", "init_recv", req=r, session=s, blocks=blocks[s],
                 allocated_tokens=need * bs)
        tx[s] = [0, need * bs, list(blocks[s])]   # sent, alloc, dst
    yield
    src = list(range(_ceil(total, bs)))
    resumed_once = False
    while True:
        # SenderStartRound
        partial = False
        toks = {}
        for s in lang:
            sent, alloc, dst = tx[s]
            tok = min(max(0, total - sent), alloc)
            toks[s] = tok
            p = total - sent > alloc
            partial = partial or p
            nb = min(_ceil(tok, bs), len(dst))
            first_src = sent // bs
            log.emit("encode", "round_start", req=r, session=s, sent_tokens=sent, tokens=tok,
                     total=total, src_blocks=src[first_src:first_src + nb],
                     dst_blocks=dst[:nb], partial=p, aux_written=(sent == 0 and nb > 0))
        yield
        if rng.random() < 0.3:   # a poll while the round is in flight: nothing new yet
            s = rng.choice(list(lang))
            st = "Transferring" if resumed_once else "WaitingForInput"
            log.emit(lang[s], "poll", req=r, status=st, decision="wait")
        for s in lang:
            tx[s][0] += toks[s]
            log.emit("encode", "round_end", req=r, session=s, sent_tokens=tx[s][0], ok=True)
        status = "Transferring" if partial else "Success"
        for s in lang:
            log.emit("encode", "status_sent", req=r, session=s, status=status)
        yield
        for s in lang:
            log.emit(lang[s], "status_recv", req=r, session=s, status=status)
        yield
        if not partial:
            break
        # ReceiverPoll, Transferring: every rank reads, allocates, frees, resumes.
        got = {s: tx[s][0] for s in lang}     # the receiver's view equals the sender's
        for s in lang:
            remaining = total - got[s]
            while len(pools[s]) < _ceil(remaining, bs):
                log.emit(lang[s], "poll", req=r, status="Transferring", decision="retry_alloc")
                log.emit(lang[s], "alloc", rank=s, req=r, tokens=remaining, blocks=None)
                yield
            log.emit(lang[s], "poll", req=r, status="Transferring", decision="resume")
            nread = len(blocks[s])
            first = got[s] - toks[s]
            read = {"req": r, "session": s, "blocks": blocks[s],
                    "aux_total": total if first == 0 else 0, "tokens": toks[s]}
            if first != 0:
                read.pop("aux_total")
                read["aux_total"] = total      # the cached total, as mainline reads once
            if ids:
                read["ids"] = [[r, first + i + 1] for i in range(toks[s])]
            if first == 0:
                log.emit(lang[s], "buffer_read", **read)
            new = [pools[s].popleft() for _ in range(_ceil(remaining, bs))]
            log.emit(lang[s], "alloc", rank=s, req=r, tokens=remaining, blocks=new)
            log.emit(lang[s], "free", rank=s, req=r, blocks=blocks[s])
            pools[s].extend(blocks[s])
            blocks[s] = new
            log.emit(lang[s], "resume_sent", req=r, session=s, blocks=new, sent_tokens=got[s],
                     allocated_tokens=len(new) * bs)
            del nread
        resumed_once = True
        yield
        for s in lang:
            log.emit("encode", "resume_recv", req=r, session=s, blocks=blocks[s],
                     sent_tokens=got[s], allocated_tokens=len(blocks[s]) * bs)
            tx[s] = [got[s], len(blocks[s]) * bs, list(blocks[s])]
        yield
    # PollSuccess, hand over, prefill, free.
    for s in lang:
        log.emit(lang[s], "poll", req=r, status="Success", decision="handoff")
        extra = {"ids": [[r, i] for i in range(1, total + 1)]} if ids else {}
        log.emit(lang[s], "handoff", req=r, session=s, tokens=total, **extra)
    yield
    for s in lang:
        log.emit(lang[s], "prefill_done", req=r)
        log.emit(lang[s], "free", rank=s, req=r, blocks=blocks[s])
        pools[s].extend(blocks[s])


def generate(nreq: int = 4, *, nsess: int = 1, block_size: int = 4, nblocks: int = 16,
             init_tokens: int | None = None, max_total: int = 20, concurrent: int = 3,
             seed: int = 0, ids: bool = False, config: bool = True) -> Iterator[dict]:
    """Yield the events of one valid run, in a causally consistent merged order.

    Memory is bounded by ``concurrent`` requests; ``nreq`` may be huge.
    """
    rng = random.Random(seed)
    init_tokens = init_tokens or block_size
    assert nblocks >= _ceil(max_total, block_size) + _ceil(init_tokens, block_size), \
        "pool too small for one request"
    log = _Log()
    pools = {s: deque(range(nblocks)) for s in range(1, nsess + 1)}
    if config:
        for p in ["encode"] + [f"language/{s}" for s in range(1, nsess + 1)]:
            log.emit(p, "config", block_size=block_size, nblocks=nblocks, nsess=nsess,
                     init_tokens=init_tokens, variant="once")
    live: list = []
    next_req = 1
    while live or next_req <= nreq:
        while len(live) < concurrent and next_req <= nreq:
            total = rng.randint(1, max_total)
            live.append(_request(log, pools, next_req, total, nsess, block_size,
                                 init_tokens, rng, ids))
            next_req += 1
        i = rng.randrange(len(live))
        try:
            next(live[i])
        except StopIteration:
            live.pop(i)
        if log.out:
            yield from log.out
            log.out.clear()


def write(path, events) -> int:
    """Write events as JSON Lines; returns the number written."""
    n = 0
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with open(path, "w", encoding="utf-8") as f:
        buf = []
        for ev in events:
            buf.append(dumps(ev))
            n += 1
            if len(buf) >= 4096:
                f.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            f.write("\n".join(buf) + "\n")
    return n


def split_by_process(events) -> dict[str, list]:
    """Per-process logs of a merged trace (what engines really write)."""
    out: dict[str, list] = {}
    for ev in events:
        out.setdefault(ev["proc"], []).append(ev)
    return out


def renumber(events: list) -> list:
    """Give every process consecutive seq numbers again (after a mutation)."""
    seq: dict[str, int] = {}
    out = []
    for ev in events:
        ev = dict(ev)
        n = seq.get(ev["proc"], 0)
        ev["seq"] = n
        seq[ev["proc"]] = n + 1
        out.append(ev)
    return out


# ---------------------------------------------------------------------------
# Adversarial shapes for the benchmark (issue 14): valid traces on which a
# checker that scans its whole state per event takes quadratic time.
# ---------------------------------------------------------------------------
def heartbeat_storm(n: int) -> Iterator[dict]:
    """Req 1 has ``n`` writes in flight (its second round, into n blocks of one
    token) while ``n`` other requests each lose the encode peer's heartbeat,
    fail and free their block; then req 1's round ends and it is handed over.
    About 7n events, one rank, fifo allocation from one shared free list."""
    log = _Log()
    lang = "language/1"
    for p in ("encode", lang):
        log.emit(p, "config", block_size=1, nblocks=n + 2, nsess=1, init_tokens=1,
                 variant="once", order="fifo", faults=["heartbeat"])
    pools = {1: deque(range(n + 2))}
    # Req 1 (n + 1 tokens) runs until the sender starts its resumed round.
    first = _request(log, pools, 1, n + 1, 1, 1, 1, random.Random(0), False)
    while not any(e["event"] == "round_start" and e["sent_tokens"] > 0 for e in log.out):
        next(first)
    yield from log.out
    log.out.clear()
    for r in range(2, n + 2):
        b = pools[1].popleft()
        log.emit(lang, "alloc", rank=1, req=r, tokens=1, blocks=[b])
        log.emit(lang, "init_sent", req=r, session=1, blocks=[b], allocated_tokens=1)
        log.emit("encode", "init_recv", req=r, session=1, blocks=[b], allocated_tokens=1)
        log.emit(lang, "heartbeat_fail", req=r)
        log.emit(lang, "poll", req=r, status="Failed", decision="fail")
        log.emit(lang, "free", rank=1, req=r, blocks=[b])
        pools[1].append(b)
        log.emit(lang, "fail", req=r, reason="heartbeat lost")
        yield from log.out
        log.out.clear()
    for _ in first:           # req 1's round ends; handed over, prefilled, freed
        yield from log.out
        log.out.clear()
    yield from log.out
    log.out.clear()


def wide_request(nranks: int) -> Iterator[dict]:
    """One request of 2 tokens over ``nranks`` language ranks (sessions): one
    round, handed over and freed on every rank.  12 events per rank."""
    log = _Log()
    procs = {s: f"language/{s}" for s in range(1, nranks + 1)}
    cfg = {"block_size": 2, "nblocks": 1, "nsess": nranks, "init_tokens": 2,
           "variant": "once"}
    log.emit("encode", "config", **cfg)
    for s, p in procs.items():
        log.emit(p, "config", **cfg)
        log.emit(p, "alloc", rank=s, req=1, tokens=2, blocks=[0])
        log.emit(p, "init_sent", req=1, session=s, blocks=[0], allocated_tokens=2)
    for kind in ("init_recv", "round_start", "round_end", "status_sent"):
        for s in procs:
            if kind == "init_recv":
                log.emit("encode", kind, req=1, session=s, blocks=[0], allocated_tokens=2)
            elif kind == "round_start":
                log.emit("encode", kind, req=1, session=s, sent_tokens=0, tokens=2, total=2,
                         src_blocks=[0], dst_blocks=[0], partial=False, aux_written=True)
            elif kind == "round_end":
                log.emit("encode", kind, req=1, session=s, sent_tokens=2, ok=True)
            else:
                log.emit("encode", kind, req=1, session=s, status="Success")
        yield from log.out
        log.out.clear()
    for s, p in procs.items():
        log.emit(p, "status_recv", req=1, session=s, status="Success")
        log.emit(p, "poll", req=1, status="Success", decision="handoff")
        log.emit(p, "handoff", req=1, session=s, tokens=2)
    for s, p in procs.items():
        log.emit(p, "prefill_done", req=1)
        log.emit(p, "free", rank=s, req=1, blocks=[0])
    yield from log.out
