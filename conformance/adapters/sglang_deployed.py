"""The fork's disaggregation code run as deployed: one OS process for the
encode side, one per language rank, real pyzmq, the real Mooncake transfer
engine over TCP on loopback, a real gloo group across the language ranks.

What runs in each process (all the fork's own code, from ``--fork DIR``):

* **encode** (``encode_main``): the fork's bootstrap server
  (``MooncakeEmbeddingBootstrapServer``, aiohttp, HTTP on loopback), its
  ``MultimodalEmbeddingBootstrapQueue`` (which builds the ENCODE
  ``MooncakeEmbeddingManager`` with its receive thread and transfer workers,
  and one ``MooncakeEmbeddingSender`` per request) over the fork's
  ``MultimodalDataBuffers`` and ``ReqToMetadataBlockAllocator``.  The loop
  does what the encode scheduler does around them: ``pop_bootstrapped``
  (source blocks, ``sender.init``), the encoder's forward as a delay, then
  ``set_buf`` and ``sender.send_embedding`` (``send_embedding_chunk``), and
  the in-flight queue: poll, ``clear`` on Success, ``failure_exception`` on
  Failed, free the source blocks.
* **language rank r** (``language_main``): the fork's
  ``MultimodalLanguagePreallocQueue`` (LANGUAGE manager with its status
  thread and heartbeat thread, one ``MooncakeEmbeddingReceiver`` per request)
  and ``MultimodalLanguageTransferQueue`` (``pop_transferred``), over the
  rank's own buffers and allocator; the all-reduces go over a gloo group of
  the rank processes.  The loop is ``process_multimodal_language_queue``;
  prefill is a delay, then ``free_with_req``.  Rank 1 takes the requests
  from the driver and broadcasts them (and aborts, prefill ends, stop) to the
  other ranks each iteration, as the engine's TP ranks share their inputs.
* **driver** (``run``): stands in for the model and the HTTP front end:
  starts the processes, tells the encode side which Mooncake session is
  which rank (for its trace only), submits the requests with random gaps,
  kills the encode process with SIGKILL when it reports the kill point, and
  stops everything when every request has ended or nothing has ended for
  ``idle_timeout_s`` (a hang).

Nothing here decides an interleaving: the processes and their threads run
as the OS schedules them.  Each process logs its own trace
(``encode.jsonl``, ``language-<r>.jsonl``) through the conformance
recorder; ``resumespec conform DIR`` merges them.  The observation hooks are
all in ``sglang_deployed_hooks``.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import random
import signal
import socket
import sys
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FAULTS = ("kill", "write_error", "abort")


@dataclass
class RunConfig:
    fork: str = ""
    commit: str = ""
    design: str = ""               # the spec variant the traces claim; "": the commit's
    ranks: int = 1
    lengths: list[int] = field(default_factory=lambda: [300, 3000])
    block_size: int = 256          # tokens per block (SGLANG_EMBEDDING_CACHE_BLOCK_SIZE)
    hidden: int = 16               # embedding width (bf16)
    pool_blocks: int = 256         # language blocks per rank (SGLANG_EMBEDDING_CACHE_BUFFER_SIZE)
    src_blocks: int = 4096         # encode blocks
    init_tokens: int = 1024        # SGLANG_EMBEDDING_DEFAULT_ALLOCATE_BUFFER_SIZE
    cap_blocks: int = 0            # >0: resume allocations capped (adapter knob, not the engine)
    encode_us_per_token: float = 1.0
    encode_max_s: float = 0.02
    prefill_us_per_token: float = 1.0
    prefill_max_s: float = 0.02
    mean_gap_s: float = 0.004      # mean time between two submissions (exponential)
    seed: int = 7
    fault: str | None = None       # one of FAULTS
    fault_req: int = 1
    fault_round: int = 2           # kill / write_error: at this round of fault_req
    idle_timeout_s: float = 12.0   # no request ended for this long: stop (a hang)
    timeout_s: float = 180.0
    trace_flush: bool = False      # RESUMESPEC_TRACE_FLUSH=1 in the processes
    loop_sleep_s: float = 0.001
    rank2_lag_s: float = 0.0       # rank 2 is slower: it pauses this long after a poll
                                   # that saw Transferring, before deciding (and resuming)

    def lang_server_args(self, bootstrap_port: int) -> Any:
        return types.SimpleNamespace(disaggregation_bootstrap_port=bootstrap_port,
                                     dist_init_addr=None, tp_size=self.ranks, dp_size=1,
                                     disaggregation_ib_device=None)


def design_config(cfg: RunConfig) -> dict:
    """The trace's ``config`` event: the run's sizes and the design it runs
    (the commit's, or ``cfg.design``, e.g. "corrected" for a patched build)."""
    from resumespec.reference.protocol.designs import design, design_of_commit
    d = design(cfg.design) if cfg.design else design_of_commit(cfg.commit)
    return dict(block_size=cfg.block_size, nblocks=cfg.pool_blocks, nsess=cfg.ranks,
                init_tokens=cfg.init_tokens, cap=cfg.cap_blocks, order="fifo",
                variant=d.variant, resume_order=d.resume_order.value,
                barrier=d.barrier,
                faults=[{"kill": "heartbeat"}.get(cfg.fault, cfg.fault)] if cfg.fault else [],
                # the fork's own sender after a failed write (ForkSender); a
                # patched build runs the corrected design's rule instead
                fork_sender=d.variant != "corrected")


def is_corrected(cfg: RunConfig) -> bool:
    """Does the run claim the corrected design (a patched build)?"""
    return design_config(cfg)["variant"] == "corrected"


def _env(cfg: RunConfig) -> None:
    os.environ["SGLANG_EMBEDDING_DEFAULT_ALLOCATE_BUFFER_SIZE"] = str(cfg.init_tokens)
    # the patched engine's own cap on one resume's allocation (the spec's
    # Cap); the historical commits do not read it (the hooks cap them)
    os.environ["SGLANG_EMBEDDING_RESUME_MAX_BLOCKS"] = str(cfg.cap_blocks)
    os.environ["SGLANG_DISAGGREGATION_HEARTBEAT_INTERVAL"] = "2"
    os.environ["SGLANG_DISAGGREGATION_HEARTBEAT_MAX_FAILURE"] = "2"
    os.environ["RESUMESPEC_TRACE_FLUSH"] = "1" if cfg.trace_flush else "0"


def _redirect_stderr(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.dup2(fd, 1)
    os.close(fd)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_process_group() -> Any:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}",
                            rank=0, world_size=1)
    return dist.new_group(backend="gloo")


def _wait_http(port: int, timeout: float = 20.0) -> None:
    import requests
    t0 = time.time()
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except Exception:
            pass
        if time.time() - t0 > timeout:
            raise RuntimeError(f"the fork's bootstrap server did not start on port {port}")
        time.sleep(0.05)


def _hard_exit(code: int = 0) -> None:
    from resumespec.conformance.recorder import close_all
    close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)       # the fork's receive threads are not daemons


# ---------------------------------------------------------------------------
# encode process
# ---------------------------------------------------------------------------
class EncodeReq:
    """The attributes of the encode scheduler's Req that the fork's queues and
    ``set_buf`` read."""

    def __init__(self, room: int, total: int, cfg: RunConfig, mm_cls: type):
        import torch

        from .sglang_deployed_hooks import source_embedding, source_fill_ids
        self.rid = f"req-{room}"
        self.bootstrap_room = room
        self.bootstrap_host = "127.0.0.1"
        self.data_parallel_rank = None
        self.return_logprob = False
        self.finished_reason = None
        self.embedding = source_embedding(room, total, cfg.hidden, cfg.seed)
        self.fill_ids = source_fill_ids(room, total)
        self.origin_input_ids = self.fill_ids
        mm = mm_cls(mm_items=[])
        mm.mrope_positions = torch.arange(3 * total, dtype=torch.int32).reshape(3, total)
        mm.mrope_position_delta = torch.tensor([[room % 1000]])
        self.multimodal_inputs = mm
        self.embedding_indices: list[int] | None = None
        self.disagg_embedding_sender: Any = None


def encode_main(cfg_d: dict, trace_dir: str, log_dir: str, conn: Any) -> None:
    cfg = RunConfig(**cfg_d)
    _redirect_stderr(Path(log_dir) / "encode.log")
    _env(cfg)
    try:
        _encode(cfg, trace_dir, conn)
    except BaseException as e:   # noqa: BLE001 - report, then die
        import traceback
        traceback.print_exc()
        try:
            conn.send({"t": "crash", "proc": "encode", "error": repr(e)[:500]})
        except Exception:
            pass
        _hard_exit(1)
    _hard_exit(0)


def _encode(cfg: RunConfig, trace_dir: str, conn: Any) -> None:
    from resumespec.conformance.recorder import recorder_for

    from .sglang_cluster import FakeScheduler
    from .sglang_deployed_hooks import EncodeHooks, install_module_hooks
    from .sglang_deployed_loader import load_fork_deployed

    fork = load_fork_deployed(cfg.fork)
    install_module_hooks(fork)
    u = fork.utils
    KVPoll = fork.base.KVPoll
    group = _one_process_group()
    bport = _free_port()
    fork.conn.MooncakeEmbeddingBootstrapServer("127.0.0.1", bport)
    _wait_http(bport)
    rec = recorder_for("encode", trace_dir, check=True, flush=cfg.trace_flush)
    rec.log("config", **design_config(cfg))
    buffers = u.MultimodalDataBuffers(cfg.src_blocks, cfg.block_size, embedding_dim=cfg.hidden)
    alloc = u.ReqToMetadataBlockAllocator(cfg.src_blocks, cfg.block_size)
    server_args = types.SimpleNamespace(disaggregation_bootstrap_port=bport,
                                        dist_init_addr=None, tp_size=1, dp_size=1,
                                        disaggregation_ib_device=None)
    sched = FakeScheduler(server_args)
    bq = fork.embedding.MultimodalEmbeddingBootstrapQueue(
        alloc, buffers, 0, 1, bport, group, u.TransferBackend.MOONCAKE, sched)
    mgr = bq.data_manager

    def kill_point(room: int) -> None:
        rec.flush()
        conn.send({"t": "kill_point", "req": room, "pid": os.getpid()})

    hooks = EncodeHooks(fork, mgr, rec, cfg.pool_blocks, on_kill_point=kill_point,
                        corrected=is_corrected(cfg))
    if cfg.fault in ("kill", "write_error"):
        hooks.fault = {"kind": cfg.fault, "req": cfg.fault_req, "round": cfg.fault_round}
    conn.send({"t": "ready", "bootstrap_port": bport, "pid": os.getpid(),
               "session": mgr.get_session_id()})

    encoding: list[tuple[float, EncodeReq]] = []
    inflight: list[EncodeReq] = []
    stop = False
    mm_cls = fork.schedule_batch.MultimodalInputs
    while not stop:
        while conn.poll(0):
            m = conn.recv()
            t = m["t"]
            if t == "peers":
                hooks.set_peers(m["session_of"], m["rank_of_port"])
                conn.send({"t": "ack"})
            elif t == "req":
                bq.add(EncodeReq(m["req"], m["total"], cfg, mm_cls))
            elif t == "stop":
                stop = True
        now = time.time()
        for req in bq.pop_bootstrapped():
            delay = min(cfg.encode_max_s, cfg.encode_us_per_token * len(req.fill_ids) * 1e-6)
            encoding.append((now + delay, req))
        for ready_at, req in list(encoding):
            if ready_at <= now:
                encoding.remove((ready_at, req))
                buffers.set_buf(req)                      # send_embedding_chunk
                req.disagg_embedding_sender.send_embedding(
                    embedding_indices=req.embedding_indices, last_chunk=True,
                    total_tokens=len(req.fill_ids), block_size=buffers.block_size)
                inflight.append(req)
        if inflight:                                      # the in-flight queue
            polls = u.poll_and_all_reduce([r.disagg_embedding_sender for r in inflight], group)
            undone = []
            for req, poll in zip(inflight, polls):
                if poll in (KVPoll.WaitingForInput, KVPoll.Transferring):
                    undone.append(req)
                    continue
                if poll == KVPoll.Success:
                    req.disagg_embedding_sender.clear()
                elif poll == KVPoll.Failed:
                    try:
                        req.disagg_embedding_sender.failure_exception()
                    except Exception:
                        pass
                else:
                    undone.append(req)
                    continue
                alloc.free(block_indices=req.embedding_indices, req_id=req.rid)
                req.embedding_indices = None
            inflight = undone
        time.sleep(cfg.loop_sleep_s)


# ---------------------------------------------------------------------------
# language process
# ---------------------------------------------------------------------------
def language_main(cfg_d: dict, rank: int, gloo_port: int, bootstrap_port: int,
                  trace_dir: str, log_dir: str, conn: Any) -> None:
    cfg = RunConfig(**cfg_d)
    _redirect_stderr(Path(log_dir) / f"language-{rank}.log")
    _env(cfg)
    try:
        _language(cfg, rank, gloo_port, bootstrap_port, trace_dir, conn)
    except BaseException as e:   # noqa: BLE001 - report, then die
        import traceback
        traceback.print_exc()
        try:
            conn.send({"t": "crash", "proc": f"language/{rank}", "error": repr(e)[:500]})
        except Exception:
            pass
        _hard_exit(1)
    _hard_exit(0)


def _language(cfg: RunConfig, rank: int, gloo_port: int, bootstrap_port: int,
              trace_dir: str, conn: Any) -> None:
    import torch.distributed as dist

    from resumespec.conformance.recorder import recorder_for

    from .sglang_cluster import FakeScheduler, LanguageReq
    from .sglang_deployed_hooks import LanguageHooks, install_module_hooks
    from .sglang_deployed_loader import load_fork_deployed

    fork = load_fork_deployed(cfg.fork)
    install_module_hooks(fork)
    u = fork.utils
    n = cfg.ranks
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{gloo_port}",
                            rank=rank - 1, world_size=n)
    group = dist.new_group(ranks=list(range(n)), backend="gloo")
    rec = recorder_for(f"language/{rank}", trace_dir, check=True, flush=cfg.trace_flush)
    rec.log("config", **design_config(cfg))
    buffers = u.MultimodalDataBuffers(cfg.pool_blocks, cfg.block_size, embedding_dim=cfg.hidden)
    alloc = u.ReqToMetadataBlockAllocator(cfg.pool_blocks, cfg.block_size)
    sched = FakeScheduler(cfg.lang_server_args(bootstrap_port))
    sched.tp_rank = rank - 1
    prealloc = fork.language.MultimodalLanguagePreallocQueue(
        alloc, buffers, rank - 1, n, sched, u.TransferBackend.MOONCAKE, bootstrap_port, group)
    tq = fork.language.MultimodalLanguageTransferQueue(group, alloc, buffers, sched, None)
    totals: dict[int, int] = {}
    hooks = LanguageHooks(fork, rank, rec, alloc, buffers, prealloc, tq,
                          cap_blocks=cfg.cap_blocks,
                          check=lambda room: (totals[room], cfg.seed, cfg.hidden),
                          lag_s=cfg.rank2_lag_s if rank == 2 else 0.0,
                          corrected=is_corrected(cfg))
    mgr = prealloc.data_manager
    conn.send({"t": "ready", "rank": rank, "session": mgr.get_session_id(),
               "port": int(mgr.rank_port), "pid": os.getpid()})

    submitted: list[int] = []
    prefill_at: dict[int, float] = {}          # rank 1: handed room -> prefill end
    reported: set[int] = set()
    abort_pending = cfg.fault == "abort"
    stop = False
    while not stop:
        cmds: list = []
        if rank == 1:
            while conn.poll(0):
                m = conn.recv()
                if m["t"] == "req":
                    cmds.append(("req", m["req"], m["total"]))
                elif m["t"] == "stop":
                    cmds.append(("stop",))
            now = time.time()
            for room, t_end in sorted(prefill_at.items()):
                if t_end <= now:
                    cmds.append(("prefill_done", room))
                    del prefill_at[room]
            if abort_pending and any(q.req.bootstrap_room == cfg.fault_req for q in tq.queue):
                # the fault request's init is out (it is in the transfer
                # queue): abort it now, before its transfer is over
                cmds.append(("abort", cfg.fault_req))
                abort_pending = False
        if n > 1:
            box = [cmds]
            dist.broadcast_object_list(box, src=0, group=group)
            cmds = box[0]
        for c in cmds:
            if c[0] == "req":
                totals[c[1]] = c[2]
                submitted.append(c[1])
                prealloc.add(LanguageReq(c[1]))
            elif c[0] == "prefill_done":
                hooks.prefill_done(c[1])
            elif c[0] == "abort":
                lreq = next((q for q in tq.queue if q.req.bootstrap_room == c[1]), None)
                if lreq is not None:
                    hooks.abort(c[1], lreq)
            elif c[0] == "stop":
                stop = True
        if stop:
            break
        handed = hooks.step()
        if rank == 1:
            now = time.time()
            for room in handed:
                total = totals[room]
                prefill_at[room] = now + min(cfg.prefill_max_s,
                                             cfg.prefill_us_per_token * total * 1e-6)
            live = {q.req.bootstrap_room for q in prealloc.queue} | \
                {q.req.bootstrap_room for q in tq.queue} | set(hooks.handed)
            for room in submitted:
                if room in reported or room in live:
                    continue
                reported.add(room)
                if room in hooks.source_equal and room in hooks.finished:
                    how = "prefill"
                elif room in hooks.finished:
                    how = "fail"
                else:
                    how = "rejected"          # failed before it was preallocated
                conn.send({"t": "end", "req": room, "how": how,
                           "equal": hooks.source_equal.get(room)})
        time.sleep(cfg.loop_sleep_s)
    conn.send({"t": "stopped", "rank": rank, "events": hooks.events})


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------
def lengths_spread(n: int, lo: int, hi: int, seed: int) -> list[int]:
    """``n`` embedding lengths, log-uniform in [lo, hi] (image token counts)."""
    rng = random.Random(seed)
    return [int(round(math.exp(rng.uniform(math.log(lo), math.log(hi))))) for _ in range(n)]


def run(cfg: RunConfig, out: Path, *, quiet: bool = True) -> dict:
    """One deployed run; the traces go to ``out/trace/``, the processes'
    stderr to ``out/logs/``.  Returns what happened."""
    out = Path(out)
    trace_dir, log_dir = out / "trace", out / "logs"
    for d in (trace_dir, log_dir):
        d.mkdir(parents=True, exist_ok=True)
        for p in d.glob("*"):
            p.unlink()
    ctx = mp.get_context("spawn")
    cfg_d = asdict(cfg)
    procs: dict[str, Any] = {}
    conns: dict[str, Any] = {}
    t_start = time.time()
    result: dict[str, Any] = {"commit": cfg.commit, "ranks": cfg.ranks,
                              "requests": len(cfg.lengths), "tokens": sum(cfg.lengths),
                              "fault": cfg.fault, "ends": {}, "crashes": [],
                              "killed": None}

    def recv_from(name: str, timeout: float) -> dict:
        c = conns[name]
        if not c.poll(timeout):
            raise RuntimeError(f"{name}: no answer within {timeout:.0f} s "
                               f"(see {log_dir}/{name.replace('/', '-')}.log)")
        m = c.recv()
        if m.get("t") == "crash":
            raise RuntimeError(f"{name} crashed: {m['error']} (see {log_dir})")
        return m

    try:
        a, b = ctx.Pipe()
        conns["encode"] = a
        procs["encode"] = ctx.Process(target=encode_main,
                                      args=(cfg_d, str(trace_dir), str(log_dir), b),
                                      daemon=True)
        procs["encode"].start()
        hello = recv_from("encode", 120)
        bport = hello["bootstrap_port"]
        gloo_port = _free_port()
        for r in range(1, cfg.ranks + 1):
            a, b = ctx.Pipe()
            name = f"language/{r}"
            conns[name] = a
            procs[name] = ctx.Process(
                target=language_main,
                args=(cfg_d, r, gloo_port, bport, str(trace_dir), str(log_dir), b), daemon=True)
            procs[name].start()
        session_of, rank_of_port = {}, {}
        for r in range(1, cfg.ranks + 1):
            h = recv_from(f"language/{r}", 120)
            session_of[h["session"]] = r
            rank_of_port[h["port"]] = r
        conns["encode"].send({"t": "peers", "session_of": session_of,
                              "rank_of_port": rank_of_port})
        recv_from("encode", 30)
        t_run = time.time()
        rng = random.Random(cfg.seed)
        pending = list(enumerate(cfg.lengths, start=1))
        next_at = time.time()
        ends: dict[int, dict] = result["ends"]
        last_progress = time.time()
        while True:
            now = time.time()
            while pending and next_at <= now:
                room, total = pending.pop(0)
                if result["killed"] is None:
                    conns["encode"].send({"t": "req", "req": room, "total": total})
                conns["language/1"].send({"t": "req", "req": room, "total": total})
                next_at += rng.expovariate(1.0 / cfg.mean_gap_s) if cfg.mean_gap_s else 0
            for name, c in list(conns.items()):
                try:
                    while c.poll(0):
                        m = c.recv()
                        if m["t"] == "end":
                            ends[m["req"]] = {"how": m["how"], "equal": m["equal"]}
                            last_progress = time.time()
                        elif m["t"] == "kill_point":
                            os.kill(m["pid"], signal.SIGKILL)
                            result["killed"] = {"req": m["req"], "at_s": round(now - t_run, 3)}
                            last_progress = time.time()
                        elif m["t"] == "crash":
                            result["crashes"].append(f"{m['proc']}: {m['error']}")
                except (EOFError, OSError):
                    conns.pop(name, None)
            if not pending and len(ends) == len(cfg.lengths):
                break
            if result["crashes"]:
                break
            if time.time() - last_progress > cfg.idle_timeout_s and not pending:
                result["hung"] = sorted(set(range(1, len(cfg.lengths) + 1)) - set(ends))
                break
            if time.time() - t_start > cfg.timeout_s:
                result["timeout"] = True
                result["hung"] = sorted(set(range(1, len(cfg.lengths) + 1)) - set(ends))
                break
            time.sleep(0.002)
        result["run_s"] = round(time.time() - t_run, 2)
    finally:
        for c in conns.values():
            try:
                c.send({"t": "stop"})
            except Exception:
                pass
        deadline = time.time() + 20
        for name, p in procs.items():
            p.join(max(0.1, deadline - time.time()))
            if p.is_alive():
                p.kill()
                p.join(5)
                result.setdefault("killed_at_stop", []).append(name)
    result["wall_s"] = round(time.time() - t_start, 2)
    hows: dict[str, int] = {}
    for e in result["ends"].values():
        hows[e["how"]] = hows.get(e["how"], 0) + 1
    result["outcomes"] = hows
    result["not_source"] = sorted(r for r, e in result["ends"].items()
                                  if e["how"] == "prefill" and not e["equal"])
    result["ends"] = {str(k): v for k, v in sorted(result["ends"].items())}
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result




# ---------------------------------------------------------------------------
# the scenarios of the committed corpus
# ---------------------------------------------------------------------------
def _fault_req(lengths: list[int], init_tokens: int) -> int:
    """The fault hits the first request (of the first ten) that needs a
    resume: its second round is mid-transfer by construction."""
    for i, n in enumerate(lengths[:10], start=1):
        if n > init_tokens * 3 // 2:
            return i
    return 1


def scenario_config(name: str, fork: str, commit: str, design: str = "") -> RunConfig:
    """The run behind ``conformance/corpus/deployed/<commit>/<name>/``."""
    base = dict(fork=fork, commit=commit, design=design)
    if name == "steady":
        return RunConfig(**base, lengths=lengths_spread(200, 256, 16384, 7), pool_blocks=2048)
    if name == "pressure":
        return RunConfig(**base, lengths=lengths_spread(60, 256, 8192, 11), pool_blocks=48)
    if name == "rounds":
        return RunConfig(**base, lengths=lengths_spread(8, 3000, 6000, 13), pool_blocks=256,
                         cap_blocks=4, idle_timeout_s=8.0)
    if name == "tp2":
        return RunConfig(**base, ranks=2, lengths=lengths_spread(60, 256, 16384, 17),
                         pool_blocks=2048)
    if name == "tp2_lag":
        # rank 2 resumes 20 ms after rank 1 (a slower rank): the sender hears
        # one session's resume well before the other's
        return RunConfig(**base, ranks=2, lengths=lengths_spread(20, 256, 8192, 23),
                         pool_blocks=256, rank2_lag_s=0.02)
    # the faults: few enough blocks named for TLC trace validation too
    lengths = lengths_spread(20, 256, 8192, 19)
    fr = _fault_req(lengths, 1024)
    if name == "kill":
        return RunConfig(**base, lengths=lengths, pool_blocks=256, fault="kill", fault_req=fr,
                         trace_flush=True)
    if name == "write_error":
        return RunConfig(**base, lengths=lengths, pool_blocks=256, fault="write_error",
                         fault_req=fr)
    if name == "abort":
        return RunConfig(**base, lengths=lengths, pool_blocks=256, fault="abort", fault_req=fr)
    if name == "tp2_write_error":
        return RunConfig(**base, ranks=2, lengths=lengths, pool_blocks=256,
                         fault="write_error", fault_req=fr)
    if name == "tp2_kill":
        return RunConfig(**base, ranks=2, lengths=lengths, pool_blocks=256, fault="kill",
                         fault_req=fr, trace_flush=True)
    raise KeyError(name)


SCENARIOS = ("steady", "pressure", "rounds", "tp2", "tp2_lag", "kill", "write_error",
             "abort", "tp2_write_error", "tp2_kill")


__all__ = ["RunConfig", "run", "lengths_spread", "FAULTS", "SCENARIOS", "scenario_config"]
