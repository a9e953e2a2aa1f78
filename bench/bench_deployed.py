"""Benchmark of the reference deployed as processes (``python -m bench deployed``).

Three measurements, each side by side in this run:

1. **Throughput**: the resume protocol over the Mooncake transfer engine
   (encode process, language rank processes, ZMQ control messages, rounds
   and resumes, the rank copying each round out of its blocks) against
   Mooncake alone moving the same bytes with the same block layout: the
   run's own block writes (read back from its trace: every ``round_start``
   names its source and destination blocks and token count) replayed back
   to back by a bare pair of processes, one ``batch_transfer_sync_write``
   per round and session, as the run did.  Protocol time: first
   ``init_sent`` to last ``handoff`` (trace timestamps); Mooncake time: the
   replay's wall time (median of ``REPLAYS``).  The two are interleaved:
   Mooncake alone keeps its processes (connected once, as the protocol's
   encode process connects at its start) and replays each run's writes
   right after the run, ``--reps`` pairs; the ratio reported is the median
   of the pairs' ratios, with their min and max.  Each pair also gives the
   time the encode process spent inside its writes (``round_start`` to
   ``round_end``): protocol time beyond it is waiting for the ranks.
   Goal >= 0.9.
2. **Multi-round against single-round latency**: the same requests (same
   bytes), one at a time, once with an init allocation that holds the
   whole embedding (one round) and once with a small one and a resume cap
   (several rounds); per-request latency = ``init_sent`` to ``handoff``.
3. **The recorder's cost per event** with tracing on: ``bench/bench_recorder.py``
   (also ``python -m bench recorder``): the first recorder (``TraceWriter``),
   the recorder before its compiled fields check and today's, buffered and
   per line, checked and unchecked, interleaved, CPU time per event.

The timed deployed runs skip hashing what prefill got (``verify=False``;
``tests/test_deployed.py`` checks the bytes) and encode every request before
the language side hears of the first (``preencode``: the encoder's work is
the model's, not the protocol's).  Flags: --quick (small sizes),
--requests=N, --hidden=H, --reps=N, --json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL_THROUGHPUT = 0.9
REPLAYS = 3            # Mooncake-alone replays of each run's writes (the median is compared)


def _events(trace_dir: str) -> list[dict]:
    from resumespec.conformance.trace import read_trace
    from resumespec.reference.deployed.driver import trace_files

    out = []
    for f in trace_files(trace_dir):
        out += [ev for _, ev in read_trace(f)]
    return out


def _writes_of(events: list[dict], block_size: int) -> list[tuple[int, list[tuple[int, int, int, bool]]]]:
    """The run's block writes, grouped as it issued them: per round_start
    (one round of one session), (session, [(src_block, dst_block, tokens,
    aux)])."""
    out = []
    for ev in events:
        if ev["proc"] != "encode" or ev["event"] != "round_start":
            continue
        ws = []
        for i, (sb, db) in enumerate(zip(ev["src_blocks"], ev["dst_blocks"])):
            n = min(block_size, ev["tokens"] - i * block_size)
            ws.append((sb, db, n, ev["aux_written"] and i == 0))
        out.append((ev["session"], ws))
    return out


def _raw_target(nblocks: int, block_size: int, hidden: int, q, done) -> None:
    from resumespec.reference.deployed.common import Blocks, mooncake_engine, redirect_stderr

    redirect_stderr(tempfile.mktemp(prefix="mooncake-raw-", suffix=".log"))
    engine, mc = mooncake_engine()
    buf = Blocks(nblocks, block_size, hidden)
    buf.register(engine)
    q.put((mc, buf.emb.data_ptr(), buf.aux.data_ptr()))
    done.get()


def _raw_sender(src_blocks: int, block_size: int, hidden: int, targets, jobs, results) -> None:
    """Mooncake alone: a registered source, connected to every target once;
    each job is (writes, times): the writes replayed back to back ``times``
    times, one ``batch_transfer_sync_write`` per entry; answers the wall
    seconds of each replay."""
    from resumespec.reference.deployed.common import (
        AUX_BYTES,
        Blocks,
        mooncake_engine,
        redirect_stderr,
    )

    redirect_stderr(tempfile.mktemp(prefix="mooncake-raw-", suffix=".log"))
    engine, _ = mooncake_engine()
    src = Blocks(src_blocks, block_size, hidden)
    src.register(engine)
    for mc, emb, _aux in targets:      # connect to each target first (as the protocol's
        engine.transfer_sync_write(mc, src.emb_addr(0), emb, 64)   # encode process does)
    while True:
        job = jobs.get()
        if job is None:
            return
        writes, times = job
        batches = []
        for s, ws in writes:
            mc, emb, aux = targets[s - 1]
            srcs, dsts, lens = [], [], []
            for sb, db, n, with_aux in ws:
                srcs.append(src.emb_addr(sb))
                dsts.append(emb + db * src.block_bytes)
                lens.append(n * src.token_bytes)
                if with_aux:
                    srcs.append(src.aux_addr(sb))
                    dsts.append(aux + db * AUX_BYTES)
                    lens.append(AUX_BYTES)
            batches.append((mc, srcs, dsts, lens))
        took = []
        for _ in range(times):
            t0 = time.perf_counter()
            for mc, srcs, dsts, lens in batches:
                rc = engine.batch_transfer_sync_write(mc, srcs, dsts, lens)
                if rc != 0:
                    results.put(f"Mooncake replay write failed ({rc})")
                    return
            took.append(time.perf_counter() - t0)
        results.put(took)


class MooncakeAlone:
    """Mooncake alone, kept running between the protocol's runs: ``ranks``
    target processes holding registered pools and one sender process holding
    a registered source, connected once.  ``replay(writes, times)`` gives the
    wall seconds of each back-to-back replay of a run's writes."""

    def __init__(self, ranks: int, src_blocks: int, pool_blocks: int, block_size: int,
                 hidden: int):
        ctx = mp.get_context("spawn")
        q, self.done = ctx.Queue(), ctx.Queue()
        self.jobs, self.results = ctx.Queue(), ctx.Queue()
        self.ranks = ranks
        self.procs = [ctx.Process(target=_raw_target, args=(pool_blocks, block_size, hidden, q,
                                                            self.done), daemon=True)
                      for _ in range(ranks)]
        for p in self.procs:
            p.start()
        try:
            targets = [q.get(timeout=300) for _ in self.procs]
            sender = ctx.Process(target=_raw_sender, args=(src_blocks, block_size, hidden,
                                                           targets, self.jobs, self.results),
                                 daemon=True)
            sender.start()
            self.procs.append(sender)
        except BaseException:
            self.close()
            raise

    def replay(self, writes, times: int) -> list[float]:
        self.jobs.put((writes, times))
        took = self.results.get(timeout=600)
        if isinstance(took, str):
            raise RuntimeError(took)
        return took

    def close(self) -> None:
        self.jobs.put(None)
        for _ in range(self.ranks):
            self.done.put(1)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()

    def __enter__(self) -> MooncakeAlone:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _writing_s(events: list[dict]) -> float:
    """Seconds the encode process spent inside its rounds' writes: from the
    last ``round_start`` of a round (logged just before its first batch) to
    the round's first ``round_end`` (just after its last)."""
    total, started = 0.0, None
    for ev in events:
        if ev["proc"] != "encode":
            continue
        if ev["event"] == "round_start":
            started = ev["ts"]
        elif ev["event"] == "round_end" and started is not None:
            total += ev["ts"] - started
            started = None
    return total


def bench_throughput(args, out: Path) -> dict:
    """``args.reps`` pairs, interleaved: a deployed run of the protocol, then
    Mooncake alone replaying that run's writes ``REPLAYS`` times (median).
    The pairs' ratios (Mooncake seconds / protocol seconds) give the median
    and the spread."""
    from resumespec.reference.deployed.common import DeployConfig
    from resumespec.reference.deployed.driver import deploy, realistic_lengths

    lengths = realistic_lengths(args.requests, 11, 256, args.max_tokens)
    bs = 64
    src_blocks = sum(-(-n // bs) for n in lengths) + 1
    cfg = DeployConfig(ranks=args.ranks, lengths=lengths, block_size=bs, hidden=args.hidden,
                       pool_blocks=args.pool_blocks, src_blocks=src_blocks, init_tokens=1024,
                       cap=32, verify=False, preencode=True, timeout_s=900)
    nbytes = sum(lengths) * cfg.hidden * 2 * cfg.ranks
    pairs = []
    with MooncakeAlone(cfg.ranks, src_blocks, cfg.pool_blocks, bs, cfg.hidden) as alone:
        for k in range(args.reps):
            res = deploy(cfg, out / f"throughput-{k}")
            if res.mismatches or not all(o == "handed" for o in res.outcomes.values()):
                raise RuntimeError("the deployed run went wrong: " + "; ".join(res.mismatches))
            evs = _events(res.trace_dir)
            t_first = min(ev["ts"] for ev in evs if ev["event"] == "init_sent")
            t_last = max(ev["ts"] for ev in evs if ev["event"] == "handoff")
            proto = t_last - t_first
            writes = _writes_of(evs, bs)
            replays = alone.replay(writes, REPLAYS)
            raw = statistics.median(replays)
            pairs.append({"protocol_s": round(proto, 4), "mooncake_s": round(raw, 4),
                          "ratio": round(raw / proto, 3),
                          "encode_writing_s": round(_writing_s(evs), 4),
                          "writing_share": round(_writing_s(evs) / proto, 3),
                          "rounds": sum(1 for ev in evs if ev["event"] == "round_start")
                          // cfg.ranks, "batches": len(writes),
                          "mooncake_replays_s": [round(t, 4) for t in replays]})
    ratios = [p["ratio"] for p in pairs]
    med = statistics.median(ratios)
    proto_med = statistics.median(p["protocol_s"] for p in pairs)
    raw_med = statistics.median(p["mooncake_s"] for p in pairs)
    return {"requests": len(lengths), "tokens": sum(lengths), "ranks": cfg.ranks,
            "hidden": cfg.hidden, "bytes": nbytes, "reps": args.reps, "replays": REPLAYS,
            "ratio_median": round(med, 3), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "goal": GOAL_THROUGHPUT,
            "writing_share_median": statistics.median(p["writing_share"] for p in pairs),
            "protocol_GBps_median": round(nbytes / proto_med / 1e9, 3),
            "mooncake_GBps_median": round(nbytes / raw_med / 1e9, 3),
            "pairs": pairs}


def _latencies(trace_dir: str) -> list[float]:
    evs = _events(trace_dir)
    start = {ev["req"]: ev["ts"] for ev in evs
             if ev["event"] == "init_sent" and ev["proc"] == "language/1"}
    return [ev["ts"] - start[ev["req"]] for ev in evs
            if ev["event"] == "handoff" and ev["proc"] == "language/1"]


def bench_rounds(args, out: Path) -> dict:
    from resumespec.reference.deployed.common import DeployConfig
    from resumespec.reference.deployed.driver import deploy

    n, total, bs = args.requests, args.latency_tokens, 64
    common = dict(ranks=args.ranks, lengths=[total] * n, block_size=bs, hidden=args.hidden,
                  pool_blocks=max(args.pool_blocks, -(-total // bs)),
                  src_blocks=n * -(-total // bs) + 1, verify=False, sequential=True,
                  preencode=True, timeout_s=900)
    single = deploy(DeployConfig(init_tokens=total, cap=0, **common), out / "single")
    quarter = max(bs, total // 4 // bs * bs)
    multi = deploy(DeployConfig(init_tokens=quarter, cap=quarter // bs, **common), out / "multi")
    for res in (single, multi):
        if res.mismatches:
            raise RuntimeError("the deployed run went wrong: " + "; ".join(res.mismatches))
    ls, lm = _latencies(single.trace_dir), _latencies(multi.trace_dir)
    rounds_multi = sum(1 for ev in _events(multi.trace_dir)
                       if ev["event"] == "round_start" and ev["session"] == 1) // n
    return {"requests": n, "tokens_each": total, "ranks": args.ranks, "rounds_multi": rounds_multi,
            "single_ms_median": round(1e3 * statistics.median(ls), 3),
            "multi_ms_median": round(1e3 * statistics.median(lm), 3),
            "ratio_multi_over_single": round(statistics.median(lm) / statistics.median(ls), 3)}


def bench_recorder(args, out: Path) -> dict:
    """The recorder's cost per event: ``bench/bench_recorder.py`` (today's
    recorder against the one before, interleaved, CPU time per event)."""
    from bench import bench_recorder as br

    return br.measure(args.events, 3 if args.quick else 5, out / "recorder")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench deployed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=16384)
    ap.add_argument("--latency-tokens", type=int, default=8192)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="protocol/Mooncake pairs (throughput)")
    ap.add_argument("--pool-blocks", type=int, default=512)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="small sizes (a dry run)")
    ap.add_argument("--only", choices=("throughput", "rounds", "recorder"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.requests, args.max_tokens, args.latency_tokens = 4, 2048, 1024
        args.hidden, args.pool_blocks, args.events = 128, 64, 4_000
        args.reps = 2
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-deployed-") as tmp:
        out = Path(tmp)
        if args.only in (None, "recorder"):
            results["recorder"] = r = bench_recorder(args, out)
            if not args.json:
                from bench import bench_recorder as br

                r["load"] = br._load()
                br.report(r)
        if args.only in (None, "throughput"):
            results["throughput"] = r = bench_throughput(args, out)
            if not args.json:
                print(f"throughput, {r['requests']} requests, {r['tokens']} tokens x {r['ranks']} ranks "
                      f"(hidden {r['hidden']}, {r['bytes'] / 1e6:.1f} MB), {r['reps']} pairs interleaved "
                      f"(a protocol run, then Mooncake alone replaying its writes {r['replays']} times):")
                for i, p in enumerate(r["pairs"], 1):
                    print(f"   {i}: protocol {p['protocol_s']:.4f} s ({p['rounds']} rounds, encode writing "
                          f"{p['encode_writing_s']:.4f} s)   Mooncake alone {p['mooncake_s']:.4f} s "
                          f"{p['mooncake_replays_s']}   ratio {p['ratio']:.3f}")
                print(f"   ratio (Mooncake alone s / protocol s): median {r['ratio_median']:.3f}, "
                      f"min {r['ratio_min']:.3f}, max {r['ratio_max']:.3f} (goal >= {GOAL_THROUGHPUT}); "
                      f"protocol {r['protocol_GBps_median']} GB/s, Mooncake alone "
                      f"{r['mooncake_GBps_median']} GB/s (medians)")
                print(f"   share of the protocol's time the encode process spent inside its writes: "
                      f"median {r['writing_share_median']:.3f} (the rest: waiting for the ranks)")
        if args.only in (None, "rounds"):
            results["rounds"] = r = bench_rounds(args, out)
            if not args.json:
                print(f"latency, {r['requests']} requests of {r['tokens_each']} tokens one at a time:")
                print(f"   single round {r['single_ms_median']} ms   {r['rounds_multi']} rounds "
                      f"{r['multi_ms_median']} ms   (median; multi/single x{r['ratio_multi_over_single']})")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
