"""Mutation campaign: ``python -m bench mutations [--count=N] [--seed=S]
[--workers=W] [--keep=DIR] [--json=FILE]`` (options take ``=``: ``python -m
bench`` reads every word without a dash as a benchmark name).

Mutates short valid traces (generated mainline runs and reference runs of
every design, one and two sessions) with blind and coordinated mutations
(conformance/mutate.py), runs the native checker and TLC trace validation on
each (TLC ``--workers`` at a time, 2 by default), and prints the number of
disagreements (verdict, or property where both can name it), the verdict mix
by mutation kind and the time.  Mutants are written to ``--keep DIR`` (kept)
or a temporary folder; the disagreeing ones are listed with their files.
Exit code 1 when the checkers disagree on any mutant.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def _arg(argv: list[str], name: str, default: str | None) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def main(argv: list[str]) -> int:
    from resumespec.conformance import mutate

    count = int(_arg(argv, "--count", "1000"))
    seed = int(_arg(argv, "--seed", "0"))
    workers = int(_arg(argv, "--workers", "2"))
    keep = _arg(argv, "--keep", None)
    out_json = _arg(argv, "--json", None)
    folder = keep or tempfile.mkdtemp(prefix="bench-mutations-")
    os.makedirs(folder, exist_ok=True)
    bases = mutate.base_traces(seed=seed)
    print(f"mutation campaign: {count} mutants of {len(bases)} valid traces "
          f"(one and two sessions; kinds {', '.join(mutate.KINDS)}), "
          f"TLC {workers} at a time; mutants in {folder}", flush=True)
    last = [time.perf_counter(), 0]

    def progress(done, total, seconds, res):
        for d in res["disagree"][last[1]:]:      # each new one as soon as it is found
            print(f"  DISAGREE {d['trace']} ({d['file']}): native {d['native']}; "
                  f"TLC {d['tlc']}", flush=True)
        last[1] = len(res["disagree"])
        if time.perf_counter() - last[0] >= 60 or done == total:
            last[0] = time.perf_counter()
            print(f"  {done}/{total} traces, {last[1]} disagreements, {seconds:,.0f} s",
                  flush=True)
            if out_json:          # a snapshot: a campaign cut short still says what it found
                with open(out_json, "w", encoding="utf-8") as f:
                    json.dump(dict(res, done=done, seconds=seconds), f, indent=2)

    res = mutate.campaign(bases, count, seed=seed, workers=workers, folder=folder,
                          progress=progress)
    print(f"traces: {res['traces']}   disagreements: {len(res['disagree'])}   "
          f"no TLC verdict: {len(res['no_tlc_verdict'])}   time: {res['seconds']:,.0f} s "
          f"({res['seconds'] / max(res['traces'], 1):.2f} s per trace, {workers} TLC runs "
          f"at a time; load average {os.getloadavg()[0]:.1f})")
    print("verdict mix (native): " + ", ".join(f"{k} {n}" for k, n in
                                              sorted(res["mix"].items(), key=lambda x: -x[1])))
    print("mutants by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(res["kinds"].items())))
    for d in res["disagree"]:
        print(f"  DISAGREE {d['trace']} ({d['file']}): native {d['native']} "
              f"(line {d['native_line']}: {d['native_message'][:100]}); TLC {d['tlc']}")
    for d in res["no_tlc_verdict"][:20]:
        print(f"  no TLC verdict {d['trace']} ({d['file']}): {d['tlc'][:120]}")
    if out_json:
        with open(out_json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    return 1 if res["disagree"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
