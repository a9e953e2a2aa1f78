"""What the processes of a deployed run share: the run's configuration, the
wire format of the control messages, the block buffers that Mooncake moves
bytes between, and the source embeddings.

Wire format.  Every ZMQ message is one JSON object (orjson), with ``t`` its
type.  Sockets are PUSH/PULL over TCP on loopback: each process binds one
PULL socket (its inbox) and connects a PUSH socket to each peer's inbox.

==========  ===================  ==========================================
``t``       from -> to           fields
==========  ===================  ==========================================
hello       any -> driver        proc, inbox (ZMQ address), mc (Mooncake
                                 session ``host:port``), emb, aux (base
                                 addresses of the registered buffers), pid
peers       driver -> any        encode (inbox), ranks {session: hello}
req         driver -> encode     req, total (the encoder's output length)
req         driver -> rank 1     req (the language side learns the id only)
init        rank -> encode       req, session, blocks, alloc
resume      rank -> encode       req, session, blocks, sent, alloc, round
abort       rank -> encode       req, session
status      encode -> rank       req, status, round, sent, total
hb          encode -> rank       (heartbeat)
end         rank -> driver       req, session, ok, tokens, sha (handoff) or reason
encoded     encode -> driver     req (its source blocks are filled)
kill_point  encode -> driver     req (the heartbeat fault: kill me now)
stop        driver -> any
==========  ===================  ==========================================
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field

import orjson

from resumespec.reference import protocol as core

AUX_SLOTS = 16                       # int32 per block's aux row; slot 0 = total length
AUX_BYTES = AUX_SLOTS * 4
FAULTS = ("heartbeat", "write_error", "abort")
WRITE_WAITS = ("submit", "sync")


@dataclass
class DeployConfig:
    """One deployed run.  ``lengths``: the embedding length of each request
    (request ids 1..n, in submission order)."""

    ranks: int = 1
    lengths: list[int] = field(default_factory=lambda: [300, 2000])
    block_size: int = 64             # tokens per block
    hidden: int = 64                 # embedding width (bf16 elements per token)
    pool_blocks: int = 64            # destination blocks per language rank
    src_blocks: int = 4096           # source blocks on the encode side
    init_tokens: int = 256           # tokens allocated before the length is known
    cap: int = 8                     # blocks per resume at most (0: all remaining)
    prefill_us_per_token: float = 2.0   # prefill modelled as a delay
    prefill_max_s: float = 0.05
    seed: int = 7
    fault: str | None = None         # one of FAULTS, or None
    fault_req: int = 1               # the request the fault hits
    heartbeat_s: float = 0.05        # encode -> language heartbeat period
    heartbeat_timeout_s: float = 2.0  # silence after which the language side gives up
    timeout_s: float = 120.0         # the whole run
    device: str = "cpu"              # "cpu" or "cuda": where the block buffers live
    trace_flush: bool | None = None  # RESUMESPEC_TRACE_FLUSH for the processes (None: inherit)
    verify: bool = True              # ranks hash what prefill got (the driver compares)
    sequential: bool = False         # submit a request only once the one before ended
    preencode: bool = False          # encode every request before the language side hears of any
    # how the encode process waits for a round's writes: "submit" (every
    # session's writes submitted together, waited for by sleeping between
    # looks: write_batches) or "sync" (Mooncake's batch_transfer_sync_write,
    # one session after the other; the call spins until its batch is done)
    write_wait: str = "submit"
    # token rows of prefill's input buffers each language rank sets up (and
    # touches) when it starts; a request that finds no free run there gets
    # fresh memory (common.Arena).  0: always fresh memory.
    handoff_rows: int = 0
    # collectives the language ranks run per loop iteration: 1 (one
    # all-reduce MIN carrying rank 1's commands beside the statuses; a rank
    # applies the commands at the top of its next iteration) or 2 (a
    # broadcast of the commands, applied at once, then the all-reduce).
    collectives: int = 1

    def params(self) -> core.Params:
        return core.Params("corrected", n_sessions=self.ranks, block_size=self.block_size,
                           init_tokens=self.init_tokens, cap=self.cap)

    def trace_config(self) -> dict:
        """The trace's ``config`` event (the spec's constants of this run)."""
        p = self.params()
        return dict(block_size=p.block_size, nblocks=self.pool_blocks, nsess=p.n_sessions,
                    init_tokens=p.init_tokens, cap=p.cap, order=p.order.value,
                    variant=p.variant, resume_order=p.resume_order.value,
                    barrier=p.barrier, faults=[self.fault] if self.fault else [])

    def validate(self) -> None:
        if self.ranks < 1:
            raise ValueError(f"ranks must be >= 1, got {self.ranks}")
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError("every request needs an embedding length >= 1")
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, got {self.fault!r}")
        if self.write_wait not in WRITE_WAITS:
            raise ValueError(f"write_wait must be one of {', '.join(WRITE_WAITS)}, "
                             f"got {self.write_wait!r}")
        if self.handoff_rows < 0:
            raise ValueError(f"handoff_rows must be >= 0, got {self.handoff_rows}")
        if self.collectives not in (1, 2):
            raise ValueError(f"collectives must be 1 or 2, got {self.collectives}")
        if not 1 <= self.fault_req <= len(self.lengths):
            raise ValueError(f"fault_req {self.fault_req} is not a request (1..{len(self.lengths)})")
        need = -(-max(self.lengths) // self.block_size)
        if need > self.src_blocks:
            raise ValueError(f"the longest embedding needs {need} source blocks, "
                             f"src_blocks is {self.src_blocks}")
        if -(-self.init_tokens // self.block_size) > self.pool_blocks:
            raise ValueError("init_tokens do not fit in one rank's pool")

    def to_json(self) -> dict:
        return asdict(self)


def dumps(msg: dict) -> bytes:
    return orjson.dumps(msg)


def loads(data: bytes) -> dict:
    return orjson.loads(data)


def join_driver(driver_addr: str, proc: str, **hello):
    """A process's ZMQ start: its inbox (PULL, on a free loopback port) and a
    PUSH socket to the driver, which is told the inbox's address in a
    ``hello`` (with ``hello``'s fields and the pid).  Returns (context,
    inbox, driver socket)."""
    import os

    import zmq

    zctx = zmq.Context()
    inbox = zctx.socket(zmq.PULL)
    inbox_addr = f"tcp://127.0.0.1:{inbox.bind_to_random_port('tcp://127.0.0.1')}"
    driver = zctx.socket(zmq.PUSH)
    driver.connect(driver_addr)
    driver.send(dumps({"t": "hello", "proc": proc, "inbox": inbox_addr, **hello,
                       "pid": os.getpid()}))
    return zctx, inbox, driver


def drain(sock, timeout_ms: int = 1):
    """Every message waiting on the ZMQ socket ``sock`` (after waiting up to
    ``timeout_ms`` for the first), decoded."""
    import zmq

    if not sock.poll(timeout=timeout_ms):
        return
    while True:
        try:
            data = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        yield loads(data)


# ---------------------------------------------------------------------------
# Source embeddings: deterministic per (seed, request), so that the driver can
# regenerate the bytes the encoder produced and compare what prefill got.
# ---------------------------------------------------------------------------
def source_embedding(seed: int, req: int, total: int, hidden: int):
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + req)
    return torch.randn(total, hidden, generator=g, dtype=torch.float32).to(torch.bfloat16)


def digest(t) -> str:
    """SHA-256 of a tensor's bytes (CPU, contiguous)."""
    import torch

    flat = t.detach().to("cpu").contiguous().view(torch.uint8).reshape(-1)
    return hashlib.sha256(flat.numpy().tobytes()).hexdigest()


# ---------------------------------------------------------------------------
# Block buffers registered with Mooncake
# ---------------------------------------------------------------------------
class Blocks:
    """``nblocks`` blocks of ``block_size`` token rows of ``hidden`` bf16
    each, plus one aux row (``AUX_SLOTS`` int32) per block: two contiguous
    tensors, both registered with the transfer engine."""

    def __init__(self, nblocks: int, block_size: int, hidden: int, device: str = "cpu"):
        import torch

        self.block_size = block_size
        self.hidden = hidden
        self.emb = torch.zeros(nblocks, block_size, hidden, dtype=torch.bfloat16, device=device)
        self.aux = torch.zeros(nblocks, AUX_SLOTS, dtype=torch.int32, device=device)
        self.token_bytes = hidden * 2
        self.block_bytes = block_size * self.token_bytes

    def register(self, engine) -> None:
        for t in (self.emb, self.aux):
            n = t.numel() * t.element_size()
            rc = engine.register_memory(t.data_ptr(), n)
            if rc != 0:
                raise RuntimeError(f"Mooncake register_memory of {n} bytes failed ({rc})")

    def emb_addr(self, block: int, row: int = 0) -> int:
        return self.emb.data_ptr() + block * self.block_bytes + row * self.token_bytes

    def aux_addr(self, block: int) -> int:
        return self.aux.data_ptr() + block * AUX_BYTES

    def aux_total(self, block: int) -> int:
        return int(self.aux[block, 0].item())


class Arena:
    """Prefill's input embeddings on a language rank: ``rows`` token rows of
    ``hidden`` bf16, allocated (and so touched: every page faulted in) when
    the rank starts, as an engine sets its buffers up before serving.
    ``take(n)`` gives a free run of ``n`` rows (first fit) or None when none
    is that long; ``give(t)`` returns a tensor ``take`` gave.  A rank that
    gets None takes fresh memory (``torch.empty``): each of its pages is
    faulted in and zeroed by the kernel while the round is copied out, which
    on CPU costs about four times the copy itself (docs/deployed.md,
    "Throughput")."""

    def __init__(self, rows: int, hidden: int, device: str = "cpu"):
        import torch

        self.rows = rows
        self.buf = torch.zeros(max(rows, 0), hidden, dtype=torch.bfloat16, device=device)
        self.free: list[tuple[int, int]] = [(0, rows)] if rows > 0 else []  # (start, length), sorted
        self.used: dict[int, tuple[int, int]] = {}     # data_ptr of a tensor given -> its run

    def take(self, n: int):
        for i, (start, length) in enumerate(self.free):
            if length >= n:
                if length == n:
                    del self.free[i]
                else:
                    self.free[i] = (start + n, length - n)
                t = self.buf[start:start + n]
                self.used[t.data_ptr()] = (start, n)
                return t
        return None

    def give(self, t) -> bool:
        """Return ``t`` to the arena (False, and nothing done, when the arena
        did not give it)."""
        run = self.used.pop(t.data_ptr(), None)
        if run is None:
            return False
        import bisect

        start, n = run
        i = bisect.bisect(self.free, run)
        self.free.insert(i, (start, n))
        # merge with the neighbours
        if i + 1 < len(self.free) and start + n == self.free[i + 1][0]:
            self.free[i] = (start, n + self.free.pop(i + 1)[1])
        if i > 0 and self.free[i - 1][0] + self.free[i - 1][1] == start:
            ps, pn = self.free.pop(i - 1)
            self.free[i - 1] = (ps, pn + self.free[i - 1][1])
        return True


WAIT_POLL_S = 50e-6     # write_batches: the sleep between two looks at the writes in flight


def write_batches(engine, batches, poll_s: float = WAIT_POLL_S) -> int | None:
    """Carry out ``batches`` (``(peer session, srcs, dsts, lens)`` each)
    through the transfer engine and return once every write has landed or
    failed: the index of the first batch with a failed write, or None.

    Every write is submitted first (``transfer_submit_write``, one engine
    batch per write, so that each can be looked at on its own), then the
    caller sleeps ``poll_s`` between looks (``transfer_check_status``).
    Mooncake's own ``batch_transfer_sync_write`` waits by spinning on the
    batch's status without ever yielding; on a machine where the transport's
    threads, the receivers and this process share few cores that spin holds
    a core the transfer needs (docs/deployed.md, "Throughput").  A write
    whose submission fails is not retried and the rest of its batch is not
    submitted; every write already submitted is still waited for, so
    nothing is left in flight when this returns."""
    failed: set[int] = set()
    pending: list[tuple[int, int]] = []
    for i, (peer, srcs, dsts, lens) in enumerate(batches):
        for src, dst, n in zip(srcs, dsts, lens):
            bid = engine.transfer_submit_write(peer, src, dst, n)
            if not 0 < bid < 1 << 63:          # -1 (or its unsigned 64-bit form)
                failed.add(i)
                break
            pending.append((i, bid))
    while pending:
        still = []
        for i, bid in pending:
            st = engine.transfer_check_status(bid)
            if st == 0:
                still.append((i, bid))
            elif st != 1:
                failed.add(i)      # -1 failed, -2 timed out
        pending = still
        if pending:
            time.sleep(poll_s)
    return min(failed) if failed else None


def mooncake_engine():
    """A transfer engine on loopback: TCP transport, P2P handshake (no
    metadata server).  The engine's own wrapper passes "rdma"; here the
    protocol argument is "tcp", the only change."""
    from mooncake.engine import TransferEngine

    engine = TransferEngine()
    rc = engine.initialize("127.0.0.1", "P2PHANDSHAKE", "tcp", "")
    if rc != 0:
        raise RuntimeError(f"Mooncake initialize failed ({rc})")
    return engine, f"127.0.0.1:{engine.get_rpc_port()}"


def redirect_stderr(path: str) -> None:
    """Send this process's fd 2 (Python tracebacks, Mooncake's glog lines,
    which no environment variable quiets) to ``path``."""
    import os
    import sys

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)
