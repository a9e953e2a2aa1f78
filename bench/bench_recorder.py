"""The recorder's cost per event with tracing on (``python -m bench recorder``).

Side by side in one run, interleaved: the same engine-like calls (``alloc``,
``status_sent``, ``round_start`` with an engine-private ``x_round``, and
``poll``, in turn) logged through

* a plain Python function with the same signature that does nothing (the
  floor: what the call itself costs) and the recorder with tracing off;
* ``TraceWriter`` (the first recorder: ``json.dumps``, a buffered text file);
* the recorder before this change (``conformance/recorder.py`` at commit
  338ed49, read from git);
* the recorder now (``conformance/recorder.py``);

each of the last two buffered and per line, with the fields checked and
unchecked.  Every round times every variant once (in a shuffled order) on a
fresh file; the tables give the median over the rounds.  Cost is CPU time
of the whole process per event (``time.process_time``: it counts the
recorder's flusher thread and the kernel's work in ``os.write``, and it is
what load on a shared machine changes least), and wall time next to it.

Flags: --events=N per variant and round (default 20,000), --rounds=R
(default 7), --quick (4,000 and 3), --json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL_US = 2.0


def _drive(llog, elog, n: int) -> None:
    """``n`` calls, four kinds in turn, arguments as an engine builds them:
    language events through ``llog``, encode events through ``elog``."""
    blocks = [3, 4, 5, 6]
    for i in range(n // 4):
        req = i + 1
        llog("alloc", rank=1, req=req, tokens=256, blocks=blocks)
        elog("status_sent", req=req, session=1, status="Transferring", round=2,
             sent_tokens=512, total=4096)
        elog("round_start", req=req, session=1, sent_tokens=512, tokens=256, total=4096,
             src_blocks=blocks, dst_blocks=blocks, partial=True, aux_written=False, x_round=2)
        llog("poll", req=req, status="Transferring", decision="resume")


# the recorder before the compiled fields check and preformatted lines
BEFORE_REV = "338ed49"


def _plain(event, **fields):
    return None


def _variants(folder: Path):
    """name -> a factory returning (language log, encode log, close) on fresh
    files."""
    from bench.bench_refinement import load_baseline
    from resumespec.conformance import recorder
    from resumespec.conformance.trace import TraceWriter

    count = [0]

    def fresh() -> Path:
        count[0] += 1
        return folder / f"t{count[0]}"

    def writer():
        d = fresh()
        lw = TraceWriter(d / "language-1.jsonl", "language/1")
        ew = TraceWriter(d / "encode.jsonl", "encode")

        def close():
            lw.close()
            ew.close()
        return lw.write, ew.write, close

    def rec(module, flush: bool, check: bool):
        def make():
            d = str(fresh())
            lang = module.recorder_for("language/1", d, flush=flush, check=check)
            enc = module.recorder_for("encode", d, flush=flush, check=check)
            return lang.log, enc.log, module.close_all
        return make

    out = {"plain call": lambda: (_plain, _plain, lambda: None),
           "tracing off": lambda: (recorder.NULL.log, recorder.NULL.log, lambda: None),
           "TraceWriter (the first), checked": writer}
    recorder_before = load_baseline(BEFORE_REV, "recorder")
    for who, module in (("before", recorder_before), ("now", recorder)):
        for flush in (False, True):
            for check in (True, False):
                name = (f"{who}: {'per line' if flush else 'buffered'}, "
                        f"{'checked' if check else 'unchecked'}")
                out[name] = rec(module, flush, check)
    return out


def measure(events: int, rounds: int, folder: Path, seed: int = 1) -> dict:
    variants = _variants(folder)
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    rnd = random.Random(seed)
    order = list(variants)
    for _ in range(rounds):
        rnd.shuffle(order)
        for name in order:
            llog, elog, close = variants[name]()
            c0, w0 = time.process_time(), time.perf_counter()
            _drive(llog, elog, events)
            close()
            cpu[name].append((time.process_time() - c0) / events * 1e6)
            wall[name].append((time.perf_counter() - w0) / events * 1e6)
    rows = {name: {"cpu_us": round(statistics.median(c), 3), "cpu_min_us": round(min(c), 3),
                   "cpu_max_us": round(max(c), 3),
                   "wall_us": round(statistics.median(wall[name]), 3)}
            for name, c in cpu.items()}
    ratios = {}
    for mode in ("buffered, checked", "buffered, unchecked", "per line, checked",
                 "per line, unchecked"):
        ratios[mode] = round(rows[f"before: {mode}"]["cpu_us"] / rows[f"now: {mode}"]["cpu_us"], 2)
    return {"events": events, "rounds": rounds, "us_per_event": rows,
            "before_over_now_cpu": ratios, "goal_us": GOAL_US}


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def report(r: dict) -> None:
    rows = r["us_per_event"]
    base = rows["plain call"]["cpu_us"]
    print(f"recorder cost per event: {r['events']:,} events per variant and round, "
          f"{r['rounds']} rounds interleaved, load average {r['load']}")
    print(f"   {'':34} {'CPU us/event':>12} {'(min-max)':>15} {'wall us':>9} {'x plain call':>13}")
    for name, v in rows.items():
        print(f"   {name:34} {v['cpu_us']:12.3f} {v['cpu_min_us']:7.3f}-{v['cpu_max_us']:<7.3f} "
              f"{v['wall_us']:9.3f} {v['cpu_us'] / base:12.1f}x")
    print("   before / now (CPU): " + ", ".join(
        f"{k} x{v}" for k, v in r["before_over_now_cpu"].items()))
    now = rows["now: buffered, checked"]["cpu_us"]
    print(f"   goal <= {r['goal_us']} us per event (buffered, checked, CPU): "
          f"{now:.3f} us, {'met' if now <= r['goal_us'] else 'NOT met'}; "
          f"per line (nothing lost to kill -9): {rows['now: per line, checked']['cpu_us']:.3f} us")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench recorder",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.rounds = 4_000, 3
    with tempfile.TemporaryDirectory(prefix="bench-recorder-") as tmp:
        r = measure(args.events, args.rounds, Path(tmp))
    r["load"] = _load()
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        report(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
