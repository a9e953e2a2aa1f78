#!/usr/bin/env python3
"""Record deployed runs of a ZhengWG/sglang checkout: separate processes, real
pyzmq, the real Mooncake transfer engine over TCP on loopback, gloo across the
language ranks (docs/deployed-fork.md).

    python scripts/record_deployed_fork.py --fork /tmp/sglang-cca20b094 \\
        --commit cca20b094 --out conformance/corpus/deployed/

writes ``OUT/<commit>/<scenario>/`` (``encode.jsonl``, ``language-<r>.jsonl``:
one trace per process; ``result.json``: what the driver saw; ``logs/``: each
process's stderr, not meant to be committed) and prints, per scenario, what
happened and the native checker's verdict on the merged traces.  The
checkout is imported, never copied: ``git archive <commit> python/sglang |
tar -x -C DIR``; ``--fork`` takes any checkout, patched or not.

Exit codes: 0 when every scenario ran (whatever its verdict), 20 when a run
failed (a process crashed, or the driver could not start it), 2 for bad
arguments, 9 when the checkout cannot be imported, 14 when pyzmq or Mooncake
is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# Runs whose verdict on this branch depends on spec rules another branch adds
# (issue 10: the fork's dead-session rule, and Failed sent only to the
# session whose write failed): re-check them once those rules are merged.
DEPENDS_ON = {
    "write_error": "dead session: after a failed write the fork fails every later "
                   "request on that session with no round written",
    "tp2_write_error": "dead session, and Failed sent only to the session whose write "
                       "failed (the other rank learns it through the all-reduce)",
}


def _update_expected(path: Path, key: str, entry: dict) -> None:
    data = json.loads(path.read_text()) if path.exists() else {
        "about": "Expected verdicts of `resumespec conform` (native checker; `tlc`: TLC "
                 "trace validation) on the per-process traces of deployed runs of "
                 "ZhengWG/sglang, recorded by scripts/record_deployed_fork.py; see "
                 "docs/deployed-fork.md. `depends_on`: a fork behaviour the spec of this "
                 "branch has no step for.",
        "runs": {}}
    data["runs"][key] = entry
    data["runs"] = dict(sorted(data["runs"].items()))
    path.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    from resumespec import exitcodes
    from resumespec.conformance.adapters.sglang_deployed import (
        SCENARIOS,
        design_config,
        run,
        scenario_config,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fork", required=True, help="a checkout of ZhengWG/sglang (any commit, "
                    "patched or not): the folder holding python/sglang or sglang")
    ap.add_argument("--commit", required=True,
                    help="the design it runs: d1bceb411, 7a7a71977, caff70bd5, 2141e0842 or "
                    "cca20b094 (written into the traces' config event)")
    ap.add_argument("--out", required=True, help="folder; traces go to OUT/<commit>/<scenario>/")
    ap.add_argument("--scenario", action="append", choices=SCENARIOS,
                    help="record only these (repeatable; default: all)")
    ap.add_argument("--label", help="folder name instead of the commit (e.g. a patched build)")
    ap.add_argument("--design", default="",
                    help="the spec variant the traces' config claims (default: the commit's; "
                    "e.g. corrected for a checkout patched to the corrected design)")
    ap.add_argument("--keep-logs", action="store_true", help="keep each process's stderr")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--expected", metavar="FILE",
                    help="write each run's verdict into this expected.json (an entry "
                    "per <label>/<scenario>; entries of other runs are kept)")
    ap.add_argument("--tlc", action="append", default=[], metavar="SCENARIO",
                    help="with --expected: also record TLC's verdict for this scenario "
                    "(repeatable; short runs only)")
    args = ap.parse_args(argv)

    from resumespec.conformance.adapters.sglang_cluster import design_of
    from resumespec.conformance.adapters.sglang_loader import ForkLoadError, find_python_root
    try:
        short, _ = design_of(args.commit)
    except KeyError:
        print(f"record_deployed_fork: unknown commit {args.commit!r} (expected one of "
              "d1bceb411 7a7a71977 caff70bd5 2141e0842 cca20b094)", file=sys.stderr)
        return exitcodes.USAGE
    if args.design:
        from resumespec.reference.protocol.designs import design
        try:
            design(args.design)
        except ValueError as e:
            print(f"record_deployed_fork: {e}", file=sys.stderr)
            return exitcodes.USAGE
    try:
        find_python_root(Path(args.fork).resolve())
    except ForkLoadError as e:
        print(f"record_deployed_fork: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    try:
        import mooncake.engine  # noqa: F401
        import zmq  # noqa: F401
    except ImportError as e:
        print(f"record_deployed_fork: {e} (pip install -e '.[deployed]'; Mooncake needs "
              "Debian's libibverbs1)", file=sys.stderr)
        return exitcodes.NEEDS_TORCH

    from resumespec.conformance.checker_native import check_native

    summary = []
    rc = exitcodes.OK
    for name in args.scenario or SCENARIOS:
        cfg = scenario_config(name, str(Path(args.fork).resolve()), short, args.design)
        out = Path(args.out) / (args.label or short) / name
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.jsonl"):
            old.unlink()
        try:
            res = run(cfg, out)
        except Exception as e:     # the driver could not start or talk to a process
            print(f"{name}: run failed: {e}", file=sys.stderr)
            rc = exitcodes.SIM_FAILED
            continue
        for p in (out / "trace").glob("*.jsonl"):
            p.replace(out / p.name)
        shutil.rmtree(out / "trace", ignore_errors=True)
        if not args.keep_logs:
            shutil.rmtree(out / "logs", ignore_errors=True)
        res["config"] = {k: v for k, v in cfg.__dict__.items() if k not in ("fork", "lengths")}
        res["lengths"] = cfg.lengths
        (out / "result.json").write_text(json.dumps(res, indent=1) + "\n")
        traces = sorted(str(p) for p in out.glob("*.jsonl"))
        v = check_native(traces)
        if res["crashes"]:
            rc = exitcodes.SIM_FAILED
        row = {"scenario": name, "commit": short, "verdict": v.verdict, "property": v.prop,
               "message": v.message.splitlines()[0] if v.message else "",
               "outcomes": res["outcomes"], "hung": res.get("hung", []),
               "not_source": res["not_source"], "crashes": res["crashes"],
               "killed": res["killed"], "run_s": res.get("run_s"), "wall_s": res["wall_s"],
               "events": sum(1 for t in traces for _ in open(t, encoding="utf-8"))}
        summary.append(row)
        if args.expected:
            entry = {"commit": short, "design": cfg.design or None, "scenario": name,
                     "verdict": v.verdict,
                     "property": v.prop, "reason": row["message"],
                     "outcomes": res["outcomes"], "events": row["events"]}
            if name in DEPENDS_ON and design_config(cfg)["fork_sender"]:
                # (a patched build runs the corrected design's own sender rule)
                entry["depends_on"] = DEPENDS_ON[name]
            if name in args.tlc:
                from resumespec.conformance.tlc_trace import check_tlc
                t = check_tlc(traces, timeout=900, progress=sys.stderr)
                entry["tlc"] = {"verdict": t.verdict, "property": t.prop}
                row["tlc"] = entry["tlc"]
            _update_expected(Path(args.expected), f"{args.label or short}/{name}", entry)
        if not args.json:
            print(f"{short} {name}: {v.verdict} {v.prop or ''} | outcomes {res['outcomes']} "
                  f"hung {len(row['hung'])} not-source {row['not_source']} "
                  f"crashes {res['crashes']} | {row['events']} events, run {row['run_s']} s, "
                  f"wall {row['wall_s']} s", flush=True)
            if v.verdict != "conforms":
                print(f"    {row['message']}", flush=True)
    if args.json:
        print(json.dumps(summary, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
