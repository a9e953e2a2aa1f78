"""The refinement checker against the checker it replaced, side by side:
``python -m bench refinement [--baseline=REV] [--sizes=N,N] [--mutations=N] [--seed=S]
[--workers=W]``.

1. Throughput: the native checker of this tree and the one at git revision
   ``REV`` (default ``main``; loaded from ``git show REV:conformance/
   checker_native.py`` into its own module) on the same generated valid
   traces (``python -m bench conformance``'s: 2 sessions, 8 requests in
   flight, design ``once``), end to end (file -> verdict), interleaved run by
   run and best of three each, so that machine load hits both alike.  Prints
   both rates, their ratio, and each against the 200,000 events/s target.
2. ``--mutations=N`` (default 0: skipped): N mutants of the mutation campaign
   (``conformance/mutate.py``, seed ``S``); TLC trace validation once per
   mutant (``W`` at a time, 2 by default), then both native checkers; prints how many mutants each native
   checker disagrees with TLC on (``mutate.agree``), and the ones on which
   the two native checkers differ.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TARGET = 200_000
ROOT = Path(__file__).resolve().parent.parent


def _arg(argv: list[str], name: str, default: str) -> str:
    for a in argv:
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def load_baseline(rev: str, module: str = "checker_native"):
    """A module of ``conformance/`` as it is at git revision ``rev`` (default
    the native checker): that revision's package, extracted and imported
    under its own name."""
    d = tempfile.mkdtemp(prefix="bench-baseline-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "conformance"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
    pkg = os.path.join(d, "conformance")
    name = "resumespec._baseline_conformance_" + "".join(c if c.isalnum() else "_" for c in rev)
    spec = importlib.util.spec_from_file_location(name, os.path.join(pkg, "__init__.py"),
                                                  submodule_search_locations=[pkg])
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return importlib.import_module(f"{name}.{module}")


def throughput(base, sizes: list[int], repeat: int = 5) -> None:
    from resumespec.conformance import checker_native, synth

    load = os.getloadavg()[0]
    print(f"1. end-to-end events/s, this tree vs the checker at {_REV}, same trace, interleaved, best of {repeat}, CPU-time ratio = baseline CPU / refinement CPU (load average {load:.1f} "
          f"on {os.cpu_count()} CPUs)")
    print(f"   {'events':>10} {'baseline ev/s':>14} {'refinement ev/s':>16} {'ratio':>6} "
          f"{'baseline/target':>16} {'refinement/target':>18} {'CPU-time ratio':>15}")
    with tempfile.TemporaryDirectory() as d:
        for nreq in sizes:
            path = Path(d) / f"t{nreq}.jsonl"
            n = synth.write(path, synth.generate(nreq, nsess=2, seed=1, max_total=40,
                                                 nblocks=64, concurrent=8))
            best = {"base": float("inf"), "new": float("inf")}
            cpu = {"base": float("inf"), "new": float("inf")}
            for _ in range(repeat):
                for key, mod in (("base", base), ("new", checker_native)):
                    t0, c0 = time.perf_counter(), time.process_time()
                    v = mod.check_native([str(path)])
                    best[key] = min(best[key], time.perf_counter() - t0)
                    cpu[key] = min(cpu[key], time.process_time() - c0)
                    assert v.verdict == "conforms", (key, v.message)
            b, r = n / best["base"], n / best["new"]
            print(f"   {n:>10,} {b:>14,.0f} {r:>16,.0f} {r / b:>6.2f} {b / TARGET:>16.2f} "
                  f"{r / TARGET:>18.2f} {cpu['base'] / cpu['new']:>15.2f}")


def mutations(base, count: int, seed: int, workers: int = 2) -> None:
    from resumespec.conformance import checker_native, mutate, synth
    from resumespec.conformance.tlc_trace import check_tlc

    bases = mutate.base_traces(seed=seed)
    print(f"2. mutation campaign: {count} mutants of {len(bases)} traces (seed {seed}); "
          f"TLC once per mutant, then both native checkers")
    dis: dict[str, list] = {"base": [], "new": []}
    exact = {"base": 0, "new": 0}        # same verdict and the very same property
    differ: list = []
    no_tlc = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        items = []
        for n, (label, events) in enumerate(mutate.mutants(bases, count, seed)):
            path = os.path.join(d, f"m{n:05d}.jsonl")
            synth.write(path, events)
            items.append((label, path))

        def tlc_of(item):
            return item, check_tlc([item[1]], timeout=300)

        done = 0
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for (label, path), tlc in pool.map(tlc_of, items):
                done += 1
                if done % 20 == 0:
                    print(f"   {done}/{len(items)} mutants, {time.perf_counter() - t0:,.0f} s",
                          flush=True)
                if tlc.verdict == "error":
                    no_tlc += 1
                    continue
                got = {"base": base.check_native([path]),
                       "new": checker_native.check_native([path])}
                for key, v in got.items():
                    if not mutate.agree(v, tlc):
                        dis[key].append((label, v.verdict, v.prop, tlc.verdict, tlc.prop))
                    elif v.verdict == tlc.verdict and (v.verdict != "violates"
                                                       or v.prop == tlc.prop):
                        exact[key] += 1
                if ((got["base"].verdict, got["base"].prop)
                        != (got["new"].verdict, got["new"].prop)):
                    differ.append((label, got["base"].verdict, got["base"].prop,
                                   got["new"].verdict, got["new"].prop, tlc.verdict, tlc.prop,
                                   got["new"].message))
    print(f"   {count} mutants, {no_tlc} without a TLC verdict, {time.perf_counter() - t0:,.0f} s")
    print(f"   disagreements with TLC: baseline {len(dis['base'])}, refinement {len(dis['new'])}")
    print(f"   same verdict and same property as TLC: baseline {exact['base']}, "
          f"refinement {exact['new']}")
    for key in ("base", "new"):
        for label, nv, np_, tv, tp in dis[key]:
            print(f"   {key:>4} disagrees: {label}: native {nv} {np_ or ''}; TLC {tv} {tp or ''}")
    print(f"   mutants the two native checkers judge differently: {len(differ)}")
    for label, bv, bp, nv, np_, tv, tp, msg in differ:
        print(f"     {label}: baseline {bv} {bp or ''} -> refinement {nv} {np_ or ''} "
              f"(TLC {tv} {tp or ''}): {msg[:110]}")


_REV = "main"


def main(argv: list[str]) -> int:
    global _REV
    _REV = _arg(argv, "--baseline", "main")
    sizes = [int(x) for x in _arg(argv, "--sizes", "2000,8000").split(",")]
    base = load_baseline(_REV)
    throughput(base, sizes)
    count = int(_arg(argv, "--mutations", "0"))
    if count:
        mutations(base, count, int(_arg(argv, "--seed", "0")), int(_arg(argv, "--workers", "2")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
