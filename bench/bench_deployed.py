"""Benchmark of the reference deployed as processes (``python -m bench deployed``).

Three measurements, each side by side in this run:

1. **Throughput**: the resume protocol over the Mooncake transfer engine
   (encode process, language rank processes, ZMQ control messages, rounds
   and resumes, the rank copying each round out of its blocks) against
   Mooncake alone moving the same bytes with the same block layout: the
   run's own block writes (read back from its trace: every ``round_start``
   names its source and destination blocks and token count) replayed back
   to back by a bare set of processes, round by round, in two modes
   (``REPLAY_MODES``): ``sync``, the engine's own
   ``batch_transfer_sync_write`` per round and session, one after the
   other; ``submit``, what the encode process does (``write_batches``:
   every session's writes of a round submitted, then waited for by
   sleeping).  Protocol time: first ``init_sent`` to last ``handoff``
   (trace timestamps); Mooncake time: the faster mode's median over
   ``REPLAYS`` replays each.  Interleaved: Mooncake alone keeps its
   processes (connected once, as the protocol's encode process connects at
   its start) and replays each run's writes right after the run; the
   protocol's variants (``VARIANTS``: the code before and after the changes
   of docs/deployed.md "Throughput", and each change alone) take turns,
   ``--reps`` runs each; per variant the median ratio with min and max.
   Each run also gives the time the encode process spent inside its writes
   (``round_start`` to ``round_end``), the CPU seconds each process and
   thread spent while the run transferred and Mooncake alone's per mode
   (``bench/cpu_split.py``), and Mooncake alone replaying the run's writes
   again while the next run's processes are up and idle, and the CPU
   ceiling (``cpu_ceiling``): the ratio the run's CPU allows at best on
   this machine's cores.  Goal >= 0.9.
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
--requests=N, --hidden=H, --reps=N, --variants=a,b, --json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL_THROUGHPUT = 0.9
REPLAYS = 3            # Mooncake-alone replays of each run's writes (the median is compared)


def cores() -> int:
    """The CPUs this process may run on (its affinity mask, else the count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_ceiling(mooncake_s: float, cpu: dict, ncores: int) -> dict:
    """What the CPU a protocol run used allows on this machine.  ``cpu``: the
    run's split (``cpu_split.split`` plus ``wall_s``, the window it covers).
    Spread perfectly over ``ncores`` cores, that CPU still takes
    ``cpu_s / ncores`` seconds, so a run using it cannot beat Mooncake alone's
    ``mooncake_s`` by more than ``ceiling`` = mooncake_s / that (capped at
    1); ``busy`` is the share of the cores' time the run's processes used in
    the window.  The window brackets the transfer (a few ms of idle loops on
    either side count too), so the ceiling is a little low, never high, for
    this run's CPU; a run that needed less CPU could go higher."""
    cpu_s = sum(g["total"] for p, g in cpu.items() if p != "wall_s")
    floor_s = cpu_s / ncores
    return {"cpu_s": round(cpu_s, 4), "cores": ncores,
            "busy": round(cpu_s / (ncores * cpu["wall_s"]), 3) if cpu["wall_s"] > 0 else None,
            "ceiling": round(min(1.0, mooncake_s / floor_s), 3) if floor_s > 0 else 1.0}


def _events(trace_dir: str) -> list[dict]:
    from resumespec.conformance.trace import read_trace
    from resumespec.reference.deployed.driver import trace_files

    out = []
    for f in trace_files(trace_dir):
        out += [ev for _, ev in read_trace(f)]
    return out


def _writes_of(events: list[dict], block_size: int) -> list[list[tuple[int, list[tuple[int, int, int, bool]]]]]:
    """The run's block writes, grouped as it issued them: per round (the
    ``round_start`` events of one request and round, one per session), per
    session (session, [(src_block, dst_block, tokens, aux)])."""
    out: list[list] = []
    last = None
    for ev in events:
        if ev["proc"] != "encode" or ev["event"] != "round_start":
            continue
        ws = []
        for i, (sb, db) in enumerate(zip(ev["src_blocks"], ev["dst_blocks"])):
            n = min(block_size, ev["tokens"] - i * block_size)
            ws.append((sb, db, n, ev["aux_written"] and i == 0))
        key = (ev["req"], ev["x_round"])
        if key != last:
            out.append([])
            last = key
        out[-1].append((ev["session"], ws))
    return out


def _raw_target(nblocks: int, block_size: int, hidden: int, q, done) -> None:
    from resumespec.reference.deployed.common import Blocks, mooncake_engine, redirect_stderr

    redirect_stderr(tempfile.mktemp(prefix="mooncake-raw-", suffix=".log"))
    engine, mc = mooncake_engine()
    buf = Blocks(nblocks, block_size, hidden)
    buf.register(engine)
    q.put((mc, buf.emb.data_ptr(), buf.aux.data_ptr()))
    done.get()


REPLAY_MODES = ("sync", "submit")


def _raw_sender(src_blocks: int, block_size: int, hidden: int, targets, jobs, results) -> None:
    """Mooncake alone: a registered source, connected to every target once;
    each job is (rounds, modes): the writes replayed back to back once per
    entry of ``modes``, each replay either ``sync`` (the engine's own
    ``batch_transfer_sync_write``, one per round and session, one after the
    other) or ``submit`` (``common.write_batches`` per round, every session's
    writes in flight together and waited for by sleeping: what the encode
    process does); answers [(mode, wall seconds)] in order."""
    from resumespec.reference.deployed.common import (
        AUX_BYTES,
        Blocks,
        mooncake_engine,
        redirect_stderr,
        write_batches,
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
        writes, modes = job
        rounds = []
        for rnd in writes:
            batches = []
            for s, ws in rnd:
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
            rounds.append(batches)
        took = []
        for mode in modes:
            t0 = time.perf_counter()
            for batches in rounds:
                if mode == "sync":
                    bad = next((i for i, b in enumerate(batches)
                                if engine.batch_transfer_sync_write(*b) != 0), None)
                else:
                    bad = write_batches(engine, batches)
                if bad is not None:
                    results.put(f"Mooncake replay write failed ({mode})")
                    return
            took.append((mode, time.perf_counter() - t0))
        results.put(took)


class MooncakeAlone:
    """Mooncake alone, kept running between the protocol's runs: ``ranks``
    target processes holding registered pools and one sender process holding
    a registered source, connected once.  ``replay(writes, modes)`` gives
    the wall seconds of each back-to-back replay of a run's writes."""

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

    def pids(self) -> dict[str, int]:
        return {**{f"target/{i}": p.pid for i, p in enumerate(self.procs[:-1], 1)},
                "sender": self.procs[-1].pid}

    def replay(self, writes, modes: list[str], cpu: dict | None = None) -> list[tuple[str, float]]:
        """[(mode, wall seconds)] of one replay per entry of ``modes``;
        ``cpu``, when given, gets the CPU seconds of each process over all of
        them (``cpu_split``)."""
        from bench import cpu_split

        pids = self.pids()
        before = cpu_split.snapshot(pids) if cpu is not None else None
        self.jobs.put((writes, modes))
        took = self.results.get(timeout=600)
        if isinstance(took, str):
            raise RuntimeError(took)
        if cpu is not None:
            cpu.update(cpu_split.split(before, cpu_split.snapshot(pids), pids))
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


# The protocol's variants a throughput run compares, each a DeployConfig
# change ("all" rows: as many as the run's embeddings hold, every request
# being in flight at once here).  "before": the deployed reference as it was
# (the encode process waits in Mooncake's spinning batch_transfer_sync_write,
# one session after the other; a rank copies each embedding out into fresh
# memory; the ranks run a broadcast and an all-reduce per iteration);
# "after": all three changed (submitted writes, the arena, one all-reduce
# per iteration carrying the commands); "submit" and "arena": one change
# each; "twocoll": "after" with the broadcast and the all-reduce.  (The
# variants "meet" and "idle" measured two options that made the ranks
# sleep; neither helped, and both were removed: docs/deployed.md.)
_OLD_RANKS = {"collectives": 2}
_AFTER = {"write_wait": "submit", "handoff_rows": "all", "collectives": 1}
VARIANTS: dict[str, dict] = {
    "before": {"write_wait": "sync", "handoff_rows": 0, **_OLD_RANKS},
    "submit": {"write_wait": "submit", "handoff_rows": 0, **_OLD_RANKS},
    "arena": {"write_wait": "sync", "handoff_rows": "all", **_OLD_RANKS},
    "twocoll": {"write_wait": "submit", "handoff_rows": "all", **_OLD_RANKS},
    "after": _AFTER,
}


def bench_throughput(args, out: Path) -> dict:
    """``args.reps`` rounds, interleaved: in each, a deployed run of the
    protocol per variant (``VARIANTS``; their order alternates), each followed
    by Mooncake alone replaying that run's own writes ``REPLAYS`` times in
    each replay mode (``REPLAY_MODES``, alternating).  Mooncake alone's time
    is the faster mode's median; a run's ratio is that over the protocol's
    time.  Per variant: the median ratio and the spread, and the CPU each
    process spent while the run was transferring."""
    from bench import cpu_split
    from resumespec.reference.deployed.common import DeployConfig
    from resumespec.reference.deployed.driver import deploy, realistic_lengths

    lengths = realistic_lengths(args.requests, 11, 256, args.max_tokens)
    bs = 64
    src_blocks = sum(-(-n // bs) for n in lengths) + 1
    base = dict(ranks=args.ranks, lengths=lengths, block_size=bs, hidden=args.hidden,
                pool_blocks=args.pool_blocks, src_blocks=src_blocks, init_tokens=1024,
                cap=32, verify=False, preencode=True, timeout_s=900)
    nbytes = sum(lengths) * args.hidden * 2 * args.ranks
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    runs: dict[str, list[dict]] = {v: [] for v in names}
    modes = [m for _ in range(REPLAYS) for m in REPLAY_MODES]
    last_writes = None       # the writes of the run before, and Mooncake alone's times
    last_alone: dict = {}    # for them right after it (processes stopped)
    idle_pairs: list[dict] = []
    with MooncakeAlone(args.ranks, src_blocks, args.pool_blocks, bs, args.hidden) as alone:
        for k in range(args.reps):
            for v in (names if k % 2 == 0 else names[::-1]):
                change = {k: (sum(lengths) if x == "all" else x) for k, x in VARIANTS[v].items()}
                cfg = DeployConfig(**base, **change)
                snaps: dict = {}

                def probe(phase: str, pids: dict[str, int], snaps: dict = snaps,
                          last_writes=last_writes) -> None:
                    if phase == "start" and last_writes is not None:
                        # the last run's writes replayed while this run's
                        # processes are up and idle (their loops running, no
                        # request yet on the language side)
                        c0, w0 = cpu_split.snapshot(pids), time.time()
                        snaps["idle"] = alone.replay(last_writes, modes)
                        snaps["idle_cpu"] = {"wall_s": round(time.time() - w0, 4),
                                             **cpu_split.split(c0, cpu_split.snapshot(pids),
                                                               pids)}
                    snaps[phase] = (time.time(), cpu_split.snapshot(pids), pids)

                res = deploy(cfg, out / f"throughput-{k}-{v}", probe=probe)
                if res.mismatches or not all(o == "handed" for o in res.outcomes.values()):
                    raise RuntimeError("the deployed run went wrong: " + "; ".join(res.mismatches))
                evs = _events(res.trace_dir)
                t_first = min(ev["ts"] for ev in evs if ev["event"] == "init_sent")
                t_last = max(ev["ts"] for ev in evs if ev["event"] == "handoff")
                proto = t_last - t_first
                writes = _writes_of(evs, bs)
                (t0, s0, pids), (t1, s1, _) = snaps["start"], snaps["end"]
                cpu_proto = cpu_split.split(s0, s1, pids)
                # one replay at a time, the modes alternating, so that each
                # mode's CPU is its own (summed over its REPLAYS replays)
                replays, cpu_alone = [], {m: {"wall_s": 0.0} for m in REPLAY_MODES}
                for m in modes:
                    cpu: dict = {}
                    t2 = time.time()
                    replays += alone.replay(writes, [m], cpu)
                    cpu_alone[m]["wall_s"] += time.time() - t2
                    for proc, groups in cpu.items():
                        acc = cpu_alone[m].setdefault(proc, {})
                        for g, x in groups.items():
                            acc[g] = round(acc.get(g, 0.0) + x, 4)
                by_mode = {m: [t for mm, t in replays if mm == m] for m in REPLAY_MODES}
                if "idle" in snaps:
                    idle = {m: statistics.median(t for mm, t in snaps["idle"] if mm == m)
                            for m in REPLAY_MODES}
                    idle_pairs.append({"variant": v, "idle_cpu": snaps["idle_cpu"],
                                       **{m: {"stopped_s": round(last_alone[m], 4),
                                              "idle_processes_s": round(idle[m], 4)}
                                          for m in REPLAY_MODES}})
                med = {m: statistics.median(ts) for m, ts in by_mode.items()}
                raw = min(med.values())
                last_writes, last_alone = writes, med
                writing = _writing_s(evs)
                cpu_window = {"wall_s": round(t1 - t0, 4), **cpu_proto}
                runs[v].append({
                    "protocol_s": round(proto, 4), "mooncake_s": round(raw, 4),
                    "ratio": round(raw / proto, 3),
                    "encode_writing_s": round(writing, 4),
                    "writing_share": round(writing / proto, 3),
                    "rounds": len(writes), "batches": sum(len(r) for r in writes),
                    "mooncake_replays_s": {m: [round(t, 4) for t in ts] for m, ts in by_mode.items()},
                    "cpu_protocol": cpu_window,
                    "cpu_bound": cpu_ceiling(raw, cpu_window, cores()),
                    "cpu_mooncake": {m: {**c, "wall_s": round(c["wall_s"], 4)}
                                     for m, c in cpu_alone.items()}})
    variants = {}
    for v, rs in runs.items():
        ratios = [r["ratio"] for r in rs]
        proto_med = statistics.median(r["protocol_s"] for r in rs)
        raw_med = statistics.median(r["mooncake_s"] for r in rs)
        variants[v] = {
            "config": VARIANTS[v],
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min": min(ratios), "ratio_max": max(ratios),
            "writing_share_median": statistics.median(r["writing_share"] for r in rs),
            "protocol_s_median": proto_med, "mooncake_s_median": raw_med,
            "mooncake_mode_medians_s": {m: round(statistics.median(
                t for r in rs for t in r["mooncake_replays_s"][m]), 4) for m in REPLAY_MODES},
            "protocol_GBps_median": round(nbytes / proto_med / 1e9, 3),
            "mooncake_GBps_median": round(nbytes / raw_med / 1e9, 3),
            "cpu_protocol_median": _cpu_medians([r["cpu_protocol"] for r in rs]),
            "cpu_bound_median": {k: statistics.median(r["cpu_bound"][k] for r in rs)
                                 for k in ("cpu_s", "busy", "ceiling")},
            "runs": rs}
    return {"requests": len(lengths), "tokens": sum(lengths), "ranks": args.ranks,
            "hidden": args.hidden, "bytes": nbytes, "reps": args.reps, "replays": REPLAYS,
            "cores": cores(),
            "replay_modes": list(REPLAY_MODES), "goal": GOAL_THROUGHPUT,
            "load": os.getloadavg()[0], "variants": variants,
            "replay_beside_idle_processes": idle_pairs}


def _cpu_medians(cpus: list[dict]) -> dict:
    """Per process and thread group, the median over runs of the CPU seconds
    (wall too); a group missing from a run counts 0 there."""
    out: dict = {"wall_s": round(statistics.median(c["wall_s"] for c in cpus), 4)}
    procs = sorted({p for c in cpus for p in c if p != "wall_s"})
    for p in procs:
        groups = sorted({g for c in cpus for g in c.get(p, {})})
        vals = {g: round(statistics.median(c.get(p, {}).get(g, 0.0) for c in cpus), 4)
                for g in groups}
        out[p] = dict(sorted(vals.items(), key=lambda kv: (kv[0] != "total", -kv[1])))
    return out


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


def _report_throughput(r: dict) -> None:
    print(f"throughput, {r['requests']} requests, {r['tokens']} tokens x {r['ranks']} ranks "
          f"(hidden {r['hidden']}, {r['bytes'] / 1e6:.1f} MB), {r['reps']} rounds interleaved "
          f"(per variant a protocol run, then Mooncake alone replaying its writes "
          f"{r['replays']} times in each mode: {', '.join(r['replay_modes'])}); load {r['load']:.2f}:")
    for v, d in r["variants"].items():
        print(f"  {v} {d['config']}:")
        for i, p in enumerate(d["runs"], 1):
            modes = "  ".join(f"{m} {p['mooncake_replays_s'][m]}" for m in r["replay_modes"])
            print(f"   {i}: protocol {p['protocol_s']:.4f} s ({p['rounds']} rounds, encode writing "
                  f"{p['encode_writing_s']:.4f} s)   Mooncake alone {p['mooncake_s']:.4f} s "
                  f"({modes})   ratio {p['ratio']:.3f}")
        mm = ", ".join(f"{m} {t} s" for m, t in d["mooncake_mode_medians_s"].items())
        print(f"   ratio (Mooncake alone s / protocol s): median {d['ratio_median']:.3f}, "
              f"min {d['ratio_min']:.3f}, max {d['ratio_max']:.3f} (goal >= {r['goal']}); "
              f"protocol {d['protocol_GBps_median']} GB/s, Mooncake alone "
              f"{d['mooncake_GBps_median']} GB/s (medians; Mooncake alone per mode: {mm})")
        print(f"   share of the protocol's time the encode process spent inside its writes: "
              f"median {d['writing_share_median']:.3f}")
        print(f"   CPU s while transferring (median of runs): {_cpu_line(d['cpu_protocol_median'])}")
        b = d["cpu_bound_median"]
        print(f"   CPU ceiling on this machine ({r['cores']} cores): the run's processes used "
              f"{b['cpu_s']:.3f} CPU s, {b['busy']:.2f} of the cores' time in the window; spread "
              f"perfectly that CPU takes {b['cpu_s'] / r['cores']:.3f} s, so a run using it can "
              f"reach at most ratio {b['ceiling']:.3f} here (medians); measured "
              f"{d['ratio_median']:.3f} is {d['ratio_median'] / b['ceiling']:.2f} of that")
        for m in r["replay_modes"]:
            print(f"   CPU s of Mooncake alone ({m}), median of runs, {r['replays']} replays: "
                  f"{_cpu_line(_cpu_medians([x['cpu_mooncake'][m] for x in d['runs']]))}")


def _report_idle(r: dict) -> None:
    pairs = r["replay_beside_idle_processes"]
    if not pairs:
        return
    print("  Mooncake alone replaying a run's writes right after it (the deployed processes "
          "stopped) and again while the next run's processes are up and idle (their loops "
          "running, no request yet), median seconds, per variant of the idle processes:")
    for v in dict.fromkeys(p.get("variant", "?") for p in pairs):
        ps = [p for p in pairs if p.get("variant", "?") == v]
        for m in r["replay_modes"]:
            pts = [(p[m]["stopped_s"], p[m]["idle_processes_s"]) for p in ps]
            ratios = [b / a for a, b in pts]
            print(f"   {v} {m}: " + "  ".join(f"{a:.4f}/{b:.4f}" for a, b in pts)
                  + f"   idle/stopped median x{statistics.median(ratios):.2f}")
        cpus = [p["idle_cpu"] for p in ps if "idle_cpu" in p]
        if cpus:
            print(f"   {v}: CPU s of the idle processes during those replays (median): "
                  f"{_cpu_line(_cpu_medians(cpus))}")


def _cpu_line(cpu: dict) -> str:
    """One pair's CPU split, on one line: wall, then per process its total
    (main thread / the other thread groups)."""
    parts = [f"wall {cpu['wall_s']:.3f}"]
    for proc, groups in cpu.items():
        if proc in ("wall_s", "replays"):
            continue
        rest = " ".join(f"{g} {v:.3f}" for g, v in groups.items() if g != "total" and v >= 0.001)
        parts.append(f"{proc} {groups['total']:.3f} ({rest})")
    return "; ".join(parts)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench deployed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=16384)
    ap.add_argument("--latency-tokens", type=int, default=8192)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="protocol/Mooncake pairs (throughput)")
    ap.add_argument("--pool-blocks", type=int, default=512)
    ap.add_argument("--variants", default="before,after",
                    help=f"protocol variants to compare (throughput; of {', '.join(VARIANTS)})")
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
                _report_throughput(r)
                _report_idle(r)
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
