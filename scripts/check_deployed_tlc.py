#!/usr/bin/env python3
"""Check the committed deployed runs with TLC trace validation and compare
with their expected verdicts (conformance/corpus/deployed/expected.json).

    python scripts/check_deployed_tlc.py                 # every committed run
    python scripts/check_deployed_tlc.py --missing       # runs with no TLC verdict yet
    python scripts/check_deployed_tlc.py cca20b094/kill  # some runs
    python scripts/check_deployed_tlc.py --missing --update

Per run, one line: the run, its events, the expected verdict (TLC's as
recorded, ``tlc``, where there is one: it may name another first property
than the native checker, with a note saying why; else the native
checker's), TLC's verdict and the seconds TLC took; TLC's progress goes to
stderr.  A run TLC cannot take (a pool too large, too many events) or does
not finish within ``--timeout`` gets no verdict and is listed as such.
``--update`` writes TLC's verdict into expected.json (``tlc``) for the runs
that have none yet where it agrees with the native checker's; a
disagreement is never written (it is a finding to look into; record it by
hand, with a ``note``, once it is understood).  ``--json``: one JSON
object per run on stdout instead.

Exit codes: 0 when no TLC verdict disagrees (some may be missing), 13 when
one does, 2 for an unknown run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CORPUS = REPO / "conformance" / "corpus" / "deployed"


def main(argv: list[str] | None = None) -> int:
    from resumespec import exitcodes
    from resumespec.conformance.tlc_trace import check_tlc

    ap = argparse.ArgumentParser(prog="check_deployed_tlc.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", help="runs as <commit>/<scenario> (default: all)")
    ap.add_argument("--missing", action="store_true", help="only runs with no TLC verdict yet")
    ap.add_argument("--update", action="store_true",
                    help="record TLC's verdict in expected.json where it agrees")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per TLC run (default 900)")
    ap.add_argument("--heap", default="3g", help="the JVM's heap (default 3g)")
    ap.add_argument("--json", action="store_true", help="one JSON object per run")
    ap.add_argument("--corpus", type=Path, default=CORPUS,
                    help="the folder of runs and expected.json (default: the committed one)")
    args = ap.parse_args(argv)

    corpus = args.corpus
    path = corpus / "expected.json"
    data = json.loads(path.read_text())
    runs = data["runs"]
    unknown = [r for r in args.runs if r not in runs]
    if unknown:
        print(f"unknown run(s): {', '.join(unknown)} (see {path})",
              file=sys.stderr)
        return exitcodes.USAGE
    names = args.runs or sorted(runs, key=lambda n: (runs[n]["events"], n))
    if args.missing:
        names = [n for n in names if "tlc" not in runs[n]]

    disagree = 0
    for name in names:
        want = runs[name]
        traces = sorted(str(p) for p in (corpus / name).glob("*.jsonl"))
        t0 = time.perf_counter()
        v = check_tlc(traces, timeout=args.timeout, heap=args.heap, progress=sys.stderr)
        seconds = round(time.perf_counter() - t0, 1)
        # TLC's recorded verdict where there is one (it may name another
        # first property, with a note saying why), else the native checker's
        expect = want.get("tlc") or want
        expected = (expect["verdict"], expect["property"])
        judged = v.verdict in ("conforms", "violates", "incomplete")
        agrees = judged and (v.verdict, v.prop) == expected
        if judged and not agrees:
            disagree += 1
        row = {"run": name, "events": want["events"], "expected": expected[0],
               "expected_property": expected[1], "tlc": v.verdict, "tlc_property": v.prop,
               "seconds": seconds, "agrees": agrees if judged else None,
               "message": "" if agrees else (v.message or "").splitlines()[0][:300]}
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            tlc = f"{v.verdict} {v.prop or ''}".strip()
            mark = "agrees" if agrees else ("DISAGREES" if judged else "no verdict")
            print(f"{name:34} {want['events']:>5} events  expected "
                  f"{(expected[0] + ' ' + (expected[1] or '')).strip():42} "
                  f"tlc {tlc:42} {seconds:>7} s  {mark}", flush=True)
            if not agrees and row["message"]:
                print(f"    {row['message']}", flush=True)
        if args.update and agrees and "tlc" not in want:
            data = json.loads(path.read_text())      # others may have written meanwhile
            data["runs"][name]["tlc"] = {"verdict": v.verdict, "property": v.prop}
            path.write_text(json.dumps(data, indent=1) + "\n")
    return exitcodes.CHECKERS_DISAGREE if disagree else exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
