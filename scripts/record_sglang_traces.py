#!/usr/bin/env python3
"""Record conformance traces by running the real code of a ZhengWG/sglang checkout.

    python scripts/record_sglang_traces.py --fork /tmp/sglang-cca20b094 \\
        --commit cca20b094 --out conformance/corpus/sglang/

The checkout is imported, never copied: get one with
``git archive <commit> python/sglang | tar -x -C /tmp/sglang-<commit>`` from a
clone of the fork.  Needs torch and numpy (numpy is not a dependency of this
project: use a separate virtual environment, see docs/sglang-adapter.md).
Writes ``OUT/<commit>/<scenario>.jsonl`` (one merged trace per scenario) and
prints what each run showed.  ``--patch FILE`` (e.g.
``conformance/engine_patch/cca20b094-corrected.patch``) applies an engine
patch to a copy of the checkout first (the checkout is left as it is) and
records the patched code under the patch's name
(``OUT/cca20b094-corrected/``); a patch that does not apply exits 9.  One commit per invocation (the fork's modules
are loaded once per process).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BAD_INPUT = 9
USAGE = 2


def _exitcodes():
    try:
        from resumespec import exitcodes
        return exitcodes.BAD_INPUT, exitcodes.USAGE
    except ImportError:
        return BAD_INPUT, USAGE


def observed_facts(path: Path) -> dict:
    """What a trace shows, read back from the file (independent of the checker)."""
    from resumespec.conformance.trace import read_trace

    nblocks = None
    free: dict[int, set[int]] = {}              # rank -> free blocks
    owner: dict[tuple[int, int], int] = {}      # (rank, block) -> req
    double_frees, handoffs, bad_handoffs, fails = [], [], [], []
    resumes: Counter = Counter()
    totals: dict[int, int] = {}
    foreign_writes = []
    last_status: dict[int, str] = {}

    def pool(rank: int) -> set[int]:
        return free.setdefault(rank, set(range(nblocks or 0)))

    for _, ev in read_trace(path):
        e = ev["event"]
        if e == "config":
            nblocks = ev.get("nblocks", nblocks)
        elif e == "alloc" and ev["blocks"] is not None:
            for b in ev["blocks"]:
                pool(ev["rank"]).discard(b)
                owner[(ev["rank"], b)] = ev["req"]
        elif e == "free":
            for b in ev["blocks"]:
                if b in pool(ev["rank"]):
                    double_frees.append({"rank": ev["rank"], "req": ev["req"], "block": b})
                pool(ev["rank"]).add(b)
                owner.pop((ev["rank"], b), None)
        elif e == "round_start":
            totals[ev["req"]] = ev["total"]
            for b in ev["dst_blocks"]:
                if owner.get((ev["session"], b)) != ev["req"]:
                    foreign_writes.append({"req": ev["req"], "rank": ev["session"], "block": b,
                                           "owner": owner.get((ev["session"], b))})
        elif e == "resume_sent":
            resumes[ev["req"]] += 1
        elif e == "handoff":
            want = [[ev["req"], i] for i in range(1, totals.get(ev["req"], 0) + 1)]
            handoffs.append(ev["req"])
            if ev.get("ids") != want:
                bad_handoffs.append({"req": ev["req"], "session": ev["session"],
                                     "tokens": ev["tokens"], "got": ev.get("ids")})
        elif e == "fail":
            fails.append(ev["req"])
        elif e == "poll":
            last_status[ev["req"]] = f'{ev["status"]}/{ev["decision"]}'
    open_reqs = sorted(r for r in last_status if r not in handoffs and r not in fails)
    return {"handoffs": sorted(set(handoffs)), "bad_handoffs": bad_handoffs,
            "double_frees": double_frees, "writes_into_blocks_not_owned": foreign_writes,
            "fails": sorted(set(fails)), "resumes": dict(resumes),
            "never_finished": {r: last_status[r] for r in open_reqs}}


def main(argv: list[str] | None = None) -> int:
    bad_input, usage = _exitcodes()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fork", required=True, help="checkout of ZhengWG/sglang (holds python/sglang)")
    p.add_argument("--commit", required=True,
                   help="which commit the checkout is (d1bceb411, 7a7a71977, caff70bd5, "
                        "2141e0842, cca20b094)")
    p.add_argument("--out", default=str(REPO / "conformance" / "corpus" / "sglang"),
                   help="output folder (default: conformance/corpus/sglang)")
    p.add_argument("--scenario", action="append",
                   help="only this scenario (repeatable); default: the corpus scenarios")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--patch", help="apply this engine patch to a copy of the checkout and "
                                   "record the patched code (label: the file's name)")
    args = p.parse_args(argv)

    from resumespec.conformance.adapters.sglang_cluster import Cluster, design_of
    from resumespec.conformance.adapters.sglang_loader import ForkLoadError, load_fork
    from resumespec.conformance.adapters.sglang_scenarios import SCENARIOS

    label = Path(args.patch).name.removesuffix(".patch") if args.patch else args.commit
    try:
        short, design = design_of(label)
        if args.patch and design_of(args.commit)[0] != label.split("-")[0]:
            print(f"record_sglang_traces: --patch {args.patch} is made against "
                  f"{label.split('-')[0]}, not --commit {args.commit}", file=sys.stderr)
            return usage
    except KeyError:
        print(f"record_sglang_traces: --commit {args.commit!r}: expected one of "
              "d1bceb411, 7a7a71977, caff70bd5, 2141e0842, cca20b094", file=sys.stderr)
        return usage
    names = args.scenario or [n for n, sc in SCENARIOS.items() if sc.in_corpus]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"record_sglang_traces: --scenario {unknown[0]!r}: expected one of "
              + ", ".join(SCENARIOS), file=sys.stderr)
        return usage
    try:
        import numpy  # noqa: F401  (the fork imports it)
    except ImportError:
        print("record_sglang_traces: numpy is not installed in this interpreter; the fork "
              "needs it (see docs/sglang-adapter.md)", file=sys.stderr)
        return bad_input
    checkout = args.fork
    if args.patch:
        import shutil
        import tempfile

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from apply_engine_patch import PatchError, apply_patch, checkout_root
        try:
            src = checkout_root(Path(args.fork).resolve())
            checkout = tempfile.mkdtemp(prefix=f"sglang-{label}-")
            shutil.copytree(src / "python" / "sglang", Path(checkout) / "python" / "sglang",
                            symlinks=True)
            apply_patch(checkout, args.patch)
        except PatchError as e:
            print(f"record_sglang_traces: {e}", file=sys.stderr)
            return bad_input
    try:
        fork = load_fork(checkout)
    except ForkLoadError as e:
        print(f"record_sglang_traces: {e}", file=sys.stderr)
        return bad_input

    import logging
    logging.disable(logging.CRITICAL)     # the fork logs every round at INFO
    out = Path(args.out) / short
    summary = {"commit": short, "design": design, "scenarios": {}}
    for i, name in enumerate(names, 1):
        sc = SCENARIOS[name]
        path = out / f"{name}.jsonl"
        print(f"[{i}/{len(names)}] {short} {name}: {sc.shows}", file=sys.stderr)
        cluster = Cluster(fork, short, sc.config, path)
        try:
            sc.drive(cluster)
        finally:
            cluster.close()
        facts = observed_facts(path)
        facts["events"] = sum(1 for _ in open(path, encoding="utf-8"))
        facts["bytes"] = path.stat().st_size
        summary["scenarios"][name] = facts
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{short} ({design['variant']}, {design['resume_order']}, "
              f"barrier={design['barrier']}) -> {out}")
        for name, f in summary["scenarios"].items():
            bits = [f"{f['events']} events"]
            for key in ("double_frees", "bad_handoffs", "writes_into_blocks_not_owned"):
                if f[key]:
                    bits.append(f"{key}={len(f[key])}")
            if f["never_finished"]:
                bits.append(f"never_finished={f['never_finished']}")
            bits.append(f"resumes={f['resumes']}")
            print(f"  {name:24s} " + ", ".join(bits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
