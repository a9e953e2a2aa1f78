"""Benchmark of the live monitor: ``python -m bench monitor [--quick]``.

Measured side by side in one run:
1. catching up: the monitor reading per-process logs that are already
   written (``conform --follow`` started late) against the offline checker
   (``conform DIR``) on the same files: events/s of each and the ratio.
2. detection delay: a writer thread logs a run through the recorder
   (``RESUMESPEC_TRACE_FLUSH=1``) in real time and injects violations; the
   delay from the violating line's write to the monitor's report, at the
   default poll interval and lag bound, with every process alive and with
   one process that stopped logging (the monitor then waits the lag bound
   for it before each event).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from resumespec.conformance import synth
from resumespec.conformance.checker_native import check_native
from resumespec.conformance.monitor import INTERVAL_S, MAX_LAG_S, Monitor
from resumespec.conformance.recorder import recorder_for


def _write_split(folder: Path, nreq: int) -> tuple[list[str], int]:
    folder.mkdir(parents=True)
    files: dict = {}
    n = 0
    t = 1.0
    for ev in synth.generate(nreq, nsess=2, seed=11):
        t += 0.0001
        ev["ts"] = round(t, 4)
        f = files.get(ev["proc"])
        if f is None:
            f = files[ev["proc"]] = open(folder / (ev["proc"].replace("/", "-") + ".jsonl"), "w")
        f.write(json.dumps(ev, separators=(",", ":")) + "\n")
        n += 1
    for f in files.values():
        f.close()
    return sorted(str(p) for p in folder.glob("*.jsonl")), n


def bench_catch_up(tmp: Path, nreq: int) -> None:
    files, n = _write_split(tmp / f"catch{nreq}", nreq)
    t0 = time.perf_counter()
    v = check_native(files)
    offline = time.perf_counter() - t0
    mon = Monitor(str(tmp / f"catch{nreq}"), max_lag=MAX_LAG_S)
    t0 = time.perf_counter()
    while mon.poll() or mon.behind():
        pass
    summary = mon.stop(judge=True)
    live = time.perf_counter() - t0
    assert v.verdict == "conforms" and summary["events"] == n and not mon.findings
    print(f"catch-up, {n:,} events in 3 files: offline {n / offline:,.0f} events/s, "
          f"monitor {n / live:,.0f} events/s (monitor/offline time: {live / offline:.1f}x)")


def _live_delays(tmp: Path, name: str, nreq: int, pace: float, dead: bool,
                 inject_every: int) -> list[float]:
    d = tmp / name
    written: dict[int, float] = {}
    reported: dict[int, float] = {}

    def on_finding(f):
        reported[f.number] = time.time()

    mon = Monitor(str(d), on_finding=on_finding)
    stop = threading.Event()

    def writer():
        recs = {}
        if dead:     # a process that logged its config and went quiet
            recorder_for("language/3", str(d), flush=True).log("config", block_size=4)
        k = 0
        for i, ev in enumerate(synth.generate(nreq, nsess=2, seed=3)):
            proc = ev.pop("proc")
            for f in ("v", "seq"):
                ev.pop(f)
            rec = recs.get(proc) or recs.setdefault(proc, recorder_for(proc, str(d), flush=True))
            rec.log(ev.pop("event"), **ev)
            if i and i % inject_every == 0:
                k += 1
                recs["language/1"].log("free", rank=1, req=800000 + k, blocks=[999])
                written[k] = time.time()
            time.sleep(pace)
        stop.set()

    th = threading.Thread(target=writer)
    th.start()
    mon.run(interval=INTERVAL_S, should_stop=lambda: stop.is_set() and not th.is_alive())
    th.join()
    return [reported[k] - written[k] for k in written if k in reported]


def bench_delay(tmp: Path, nreq: int) -> None:
    for dead in (False, True):
        ds = _live_delays(tmp, f"live{int(dead)}", nreq, 0.002, dead, 300)
        what = "one process quiet" if dead else "every process alive"
        print(f"detection delay, {what} (interval {INTERVAL_S}s, max lag {MAX_LAG_S}s): "
              f"{len(ds)} violations, median {statistics.median(ds) * 1000:.0f} ms, "
              f"max {max(ds) * 1000:.0f} ms")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        bench_catch_up(Path(tmp), 300 if quick else 1200)
        bench_delay(Path(tmp), 60 if quick else 150)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
