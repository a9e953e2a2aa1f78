"""TLC throughput and the effect of each state-space reduction, side by side.

    python -m bench tlc [--model=NAME] [--timeout=SECONDS] [--workers=N] [--json]

1. Throughput: distinct states per second on one fixed model (``--model``;
   default: the quick-set BFS success model with the most recorded distinct
   states in spec/manifest.json), with 1 worker and with N workers, so the
   ratio shows what the extra cores buy. States per second use TLC's own
   "Finished in" time (no JVM start-up); the wall time is printed too.
2. Reductions: for each reduction a model's cfg uses (SYMMETRY, VIEW,
   CONSTRAINT bounding counters), the model is run as configured and with
   that one line removed, and the ratios of distinct states and time are
   printed. Per reduction the smallest quick-set BFS model (by recorded
   runtime) that uses it is taken. Removing a reduction may make the state
   space explode: such a run stops at --timeout and is reported as at least
   the states TLC had found.

3. Liveness: on the fixed model, TLC time as configured vs without its
   PROPERTY lines vs with ``-lncheck final`` (liveness checked once at the
   end instead of periodically).

While the manifest lists no model, the toy tests/fixtures/tla/SymPool.tla
stands in (it uses all three reductions).

``--compare[=REV]`` instead measures the spec before and after, side by side:
for each model of ``--set`` (default deep) that exists at REV (default
e32fa3e, the spec before issue 11), REV's ResumeProtocol.tla and MC files
(read with ``git show`` into a temporary folder) run as REV's runner ran them
(liveness checked periodically), then the current model as ``resumespec
check`` runs it; one worker each, each run stopped after ``--budget``
seconds (default 90). Each pair prints three ratios, after over before:

- distinct states per second (wall clock, JVM start-up included). A run
  stopped at the budget counts the states of TLC's last progress report
  (once a minute) over the time of that report.
- time to the verdict, when both runs finish (``>=`` when only the after
  run does: the before run took longer than the budget).
- coverage: states *of the space the before model explores* per second. A
  model with a VIEW fingerprints fewer states than the space it covers
  (ResumeCorrected.tla argues why that loses nothing), so its distinct
  states per second fall although the verdict comes sooner; the coverage
  rate of a finished run is the distinct states of the model without its
  VIEW (the before run's count when it finished; otherwise measured once
  with the VIEW removed, recorded as ``unreduced_distinct_states`` and
  reused while the constants stay the same) over the after run's wall
  time. For a stopped run, or a model without a VIEW, it is the distinct
  states per second (each fingerprinted state stands for at least one
  state of the space: a lower bound).

The x10 target of issue 11 is claimed on the coverage ratio: the same
space, explored to the same verdict, per second of wall clock. The search
time alone (from TLC's "Starting..." line to its last line, JVM start-up
and parsing left out) is shown too, for information. ``--record`` writes
the numbers into each model's ``throughput`` field in spec/manifest.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from resumespec import exitcodes
from resumespec.spec import manifest as mf
from resumespec.spec import tlc
from resumespec.spec.cli import model_run_for

REDUCTIONS = {
    "SYMMETRY": "symmetry (interchangeable model values)",
    "VIEW": "view (fingerprint only part of the state)",
    "CONSTRAINT": "state constraint (bounded counters)",
}
TOY = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tla"


@dataclass
class Measured:
    label: str
    distinct: int | None
    generated: int | None
    wall_s: float
    tlc_s: float | None
    complete: bool            # False: stopped by the timeout
    verdict: str
    search_s: float | None = None   # from TLC's "Starting..." line to its last line


    @property
    def rate(self) -> float | None:
        t = self.tlc_s if self.tlc_s else self.wall_s
        return self.distinct / t if self.distinct and t else None

    def to_json(self) -> dict:
        return {"label": self.label, "distinct_states": self.distinct, "states_generated": self.generated,
                "wall_s": round(self.wall_s, 2), "tlc_s": self.tlc_s, "complete": self.complete,
                "verdict": self.verdict, "distinct_per_s": round(self.rate, 1) if self.rate else None,
                "search_s": round(self.search_s, 2) if self.search_s is not None else None}


def measure(run: tlc.ModelRun, settings: tlc.TlcSettings, label: str) -> Measured:
    seen: list[tlc.ProgressStats] = []
    seen_at: list[float] = []
    start = time.monotonic()
    search: list[float] = []      # when TLC printed "Starting...", and its last line

    def on_line(line: str) -> None:
        now = time.monotonic() - start
        if line.startswith("Starting..."):
            search[:] = [now, now]
        elif search:
            search[1] = now
        st = tlc.parse_progress(line)
        if st:
            seen.append(st)
            seen_at.append(time.monotonic() - start)

    progress = tlc.ProgressDisplay(f"bench {label}")
    try:
        r = tlc.run_tlc(run, settings, progress, on_line=on_line)
    except tlc.TlcFailure as failure:
        if failure.exit_code != exitcodes.TIMEOUT:
            raise
        last = seen[-1] if seen else None
        # the rate of a stopped run: states at TLC's last report over the
        # time of that report (JVM start-up included, as in a finished run's
        # wall time; TLC's own time is not printed for a stopped run)
        return Measured(label, last.distinct if last else None, last.generated if last else None,
                        settings.timeout_s or 0.0, seen_at[-1] if seen_at else None, False, "timeout")
    return Measured(label, r.distinct_states, r.states_generated, r.runtime_s, r.tlc_time_s, True, r.verdict,
                    search[1] - search[0] if search else None)


def _fmt(n: int | None, complete: bool = True) -> str:
    if n is None:
        return "?"
    return f"{n:,}" if complete else f">={n:,}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "?"
    return f"x{a / b:.2f}"


def _toy_runs() -> tuple[tlc.ModelRun, dict[str, tlc.ModelRun]]:
    run = tlc.ModelRun(TOY / "SymPool.tla", TOY / "SymPool.cfg", label="toy SymPool",
                       cfg_text=(TOY / "SymPool.cfg").read_text().replace("NBlocks = 6", "NBlocks = 8"))
    return run, {kw: run for kw in REDUCTIONS}


def _manifest_runs(manifest: mf.Manifest, name: str | None) -> tuple[tlc.ModelRun, dict[str, tlc.ModelRun]] | None:
    candidates = [m for m in manifest.in_set("quick") if m.mode == "bfs"]
    if name:
        entry = manifest.by_name(name)
        if entry is None:
            raise SystemExit(f"bench tlc: unknown model {name!r}")
        fixed = entry
    else:
        successes = [m for m in candidates if m.expected.kind == "success"]
        if not successes:
            return None
        fixed = max(successes, key=lambda m: m.distinct_states or 0)
    per_reduction: dict[str, tlc.ModelRun] = {}
    for kw in REDUCTIONS:
        using = [m for m in candidates if m.expected.kind == "success" and tlc.TlcConfig.read(m.cfg).has(kw)]
        if using:
            smallest = min(using, key=lambda m: m.runtime_s if m.runtime_s is not None else float("inf"))
            per_reduction[kw] = model_run_for(manifest, smallest)
    return model_run_for(manifest, fixed), per_reduction


BEFORE_REV = "e32fa3e"
REPO = Path(__file__).resolve().parent.parent


def _git_show(rev: str, path: str) -> str | None:
    p = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def _unreduced(manifest: mf.Manifest, entry: mf.ModelEntry, settings: tlc.TlcSettings,
               timeout: float) -> int | None:
    """Distinct states of ``entry``'s model without its VIEW: the recorded
    count while the constants are the same, else one run to measure it."""
    old = entry.raw.get("throughput") or {}
    if old.get("unreduced_distinct_states") and old.get("constants") == entry.raw.get("constants"):
        return int(old["unreduced_distinct_states"])
    run = model_run_for(manifest, entry)
    config = tlc.TlcConfig.read(entry.cfg)
    bare = dataclasses.replace(run, cfg_text=config.without("VIEW").render(), short_run=False,
                               label=f"{entry.name} without VIEW")
    m = measure(bare, dataclasses.replace(settings, timeout_s=timeout), bare.label)
    return m.distinct if m.complete else None


def ratios(before: Measured | None, after: Measured, has_view: bool, budget: float,
           count_without_view: Callable[[], int | None]) -> dict:
    """After over before for one model (rates from wall-clock time, as
    ``compare`` sets them): distinct states per second; time to the verdict
    (a lower bound when the before run stopped at ``budget``); coverage,
    the before model's space per second (``count_without_view`` is asked
    for the size of that space only when the after run finished with a
    VIEW and the before run did not finish); the search times."""
    ratio = after.rate / before.rate if before and before.rate and after.rate else None
    unreduced: int | None = after.distinct if after.complete and not has_view else None
    if after.complete and has_view:
        unreduced = before.distinct if before is not None and before.complete else count_without_view()
    coverage_rate = (unreduced / after.wall_s if after.complete and unreduced and after.wall_s
                     else after.rate)      # a stopped run: distinct/s, a lower bound
    coverage = coverage_rate / before.rate if before and before.rate and coverage_rate else None
    time_ratio = None
    time_at_least = False
    if before is not None and after.complete and after.wall_s:
        time_ratio = (before.wall_s if before.complete else budget) / after.wall_s
        time_at_least = not before.complete
    search_ratio = (before.search_s / after.search_s if before and before.complete and after.complete
                    and before.search_s and after.search_s else None)
    return {"ratio": round(ratio, 2) if ratio else None,
            "time_to_verdict_ratio": round(time_ratio, 2) if time_ratio else None,
            "time_to_verdict_at_least": time_at_least,
            "unreduced_distinct_states": unreduced,
            "coverage_per_s": round(coverage_rate, 1) if coverage_rate else None,
            "coverage_ratio": round(coverage, 2) if coverage else None,
            "search_ratio": round(search_ratio, 2) if search_ratio else None}


def _geo(values: list[float]) -> float:
    g = 1.0
    for v in values:
        g *= v
    return g ** (1 / len(values))


def compare(manifest: mf.Manifest, settings: tlc.TlcSettings, rev: str, set_: str, names: list[str],
            budget: float, record: bool, as_json: bool, unreduced_timeout: float = 1800.0) -> int:
    """Before (the spec at ``rev``) and after (the current one), side by side."""
    spec_text = _git_show(rev, "spec/ResumeProtocol.tla")
    if spec_text is None:
        print(f"bench tlc: git cannot show spec/ResumeProtocol.tla at {rev} (is this a git checkout?)",
              file=sys.stderr)
        return exitcodes.BAD_INPUT
    entries = [manifest.by_name(n) for n in names] if names else manifest.in_set(set_)
    if any(e is None for e in entries):
        print(f"bench tlc: unknown model in {names}", file=sys.stderr)
        return exitcodes.USAGE
    one = dataclasses.replace(settings, workers=1, timeout_s=budget, lncheck_final=False)
    rows: list[dict] = []
    lines = [f"TLC before ({rev}) and after (this checkout), 1 worker, at most {budget:g} s per run",
             "(rates: distinct states per second of wall clock; coverage: states of the before model's",
             " space per second; search: time without JVM start-up and parsing):",
             f"  {'model':<31} {'before':>20} {'after':>20} {'distinct/s':>10} {'verdict in':>10} "
             f"{'coverage':>9} {'search':>7}"]
    with tempfile.TemporaryDirectory(prefix="bench-tlc-before-") as tmp:
        old_dir = Path(tmp)
        (old_dir / "ResumeProtocol.tla").write_text(spec_text)
        for entry in entries:
            assert entry is not None
            old_tla = _git_show(rev, f"spec/models/MC_{entry.name}.tla")
            old_cfg = _git_show(rev, f"spec/models/MC_{entry.name}.cfg")
            after_settings = dataclasses.replace(one, lncheck_final=entry.expected.kind == "success")
            after = measure(model_run_for(manifest, entry), after_settings, f"{entry.name} after")
            before = None
            if old_tla is not None and old_cfg is not None:
                (old_dir / f"MC_{entry.name}.tla").write_text(old_tla)
                (old_dir / f"MC_{entry.name}.cfg").write_text(old_cfg)
                old_run = tlc.ModelRun(old_dir / f"MC_{entry.name}.tla", old_dir / f"MC_{entry.name}.cfg",
                                       label=f"{entry.name} before", check_deadlock=entry.check_deadlock,
                                       library_dirs=(old_dir,))
                before = measure(old_run, one, f"{entry.name} before")
            # wall-clock rates for both (JVM start-up included in both)
            if after.complete:
                after.tlc_s = after.wall_s
            if before is not None and before.complete:
                before.tlc_s = before.wall_s
            has_view = tlc.TlcConfig.read(entry.cfg).has("VIEW")
            row = {"model": entry.name, "before": before.to_json() if before else None,
                   "after": after.to_json(), "view": has_view,
                   **ratios(before, after, has_view, budget,
                            lambda e=entry: _unreduced(manifest, e, one, unreduced_timeout))}
            ratio, time_ratio, coverage = row["ratio"], row["time_to_verdict_ratio"], row["coverage_ratio"]
            time_at_least, search_ratio = row["time_to_verdict_at_least"], row["search_ratio"]
            rows.append(row)

            def cell(m: Measured | None) -> str:
                if m is None:
                    return "(not at " + rev + ")"
                rate = f"{m.rate:,.0f}/s" if m.rate else "?/s"
                return f"{rate} {'' if m.complete else '>='}{_fmt(m.distinct)}"

            def x(v: float | None, at_least: bool = False) -> str:
                return f"{'>=' if at_least else ''}x{v:.1f}" if v else "-"
            lines.append(f"  {entry.name:<31} {cell(before):>20} {cell(after):>20} {x(ratio):>10} "
                         f"{x(time_ratio, time_at_least):>10} {x(coverage):>9} {x(search_ratio):>7}")
            print(lines[-1], file=sys.stderr, flush=True)
    for key, what in (("ratio", "distinct states/s"), ("coverage_ratio", "coverage (the claim)")):
        values = [r[key] for r in rows if r[key]]
        if values:
            lines.append(f"  {what} after/before: min x{min(values):.1f}, geometric mean "
                         f"x{_geo(values):.1f}, max x{max(values):.1f} over {len(values)} model(s)")
    if record:
        today = datetime.date.today().isoformat()
        for obj in manifest.raw.get("models", []):
            row = next((r for r in rows if r["model"] == obj.get("name")), None)
            if row is None:
                continue
            obj["throughput"] = {
                "before_rev": rev, "budget_s": budget, "measured": today, "workers": 1,
                "constants": obj.get("constants"),
                "before_distinct_per_s": row["before"]["distinct_per_s"] if row["before"] else None,
                "before_complete": row["before"]["complete"] if row["before"] else None,
                "before_wall_s": row["before"]["wall_s"] if row["before"] else None,
                "after_distinct_per_s": row["after"]["distinct_per_s"],
                "after_complete": row["after"]["complete"],
                "after_wall_s": row["after"]["wall_s"],
                "after_over_before": row["ratio"],
                "view": row["view"],
                "unreduced_distinct_states": row["unreduced_distinct_states"],
                "time_to_verdict_ratio": row["time_to_verdict_ratio"],
                "time_to_verdict_at_least": row["time_to_verdict_at_least"],
                "coverage_per_s": row["coverage_per_s"],
                "coverage_over_before": row["coverage_ratio"],
                "search_ratio": row["search_ratio"],
            }
        manifest.path.write_text(json.dumps(manifest.raw, indent=2) + "\n")
        lines.append(f"recorded in {manifest.path}")
    if as_json:
        print(json.dumps({"before_rev": rev, "budget_s": budget, "claim": "coverage_ratio", "models": rows},
                         indent=2))
    else:
        print("\n".join(lines))
    return exitcodes.OK


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench tlc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", nargs="?", const=BEFORE_REV, metavar="REV",
                        help=f"before/after throughput against the spec at REV (default {BEFORE_REV})")
    parser.add_argument("--set", default="deep", choices=("quick", "deep"), help="models for --compare")
    parser.add_argument("--models", default="", help="comma-separated model names for --compare")
    parser.add_argument("--budget", type=float, default=90.0, help="seconds per run for --compare")
    parser.add_argument("--record", action="store_true", help="with --compare: write the manifest")
    parser.add_argument("--unreduced-timeout", type=float, default=1800.0,
                        help="with --compare: limit of the run that counts a VIEW model's states without the VIEW")
    parser.add_argument("--model", help="model for the throughput measurement")
    parser.add_argument("--timeout", type=float, default=120.0, help="per TLC run (default 120 s)")
    parser.add_argument("--workers", type=int, default=tlc.default_workers())
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--manifest")
    args = parser.parse_args(argv)
    try:
        settings = tlc.prepare_settings(workers=args.workers, timeout_s=args.timeout)
        manifest = mf.load_manifest(args.manifest)
    except tlc.TlcFailure as exc:
        print(f"bench tlc: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except mf.ManifestError as exc:
        print(f"bench tlc: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if args.compare:
        names = [n for n in args.models.split(",") if n]
        return compare(manifest, settings, args.compare, args.set, names, args.budget, args.record, args.json,
                       args.unreduced_timeout)
    chosen = _manifest_runs(manifest, args.model)
    source = "spec/manifest.json"
    if chosen is None:
        chosen = _toy_runs()
        source = "toy (the manifest has no quick BFS success model yet)"
    fixed, per_reduction = chosen
    report: dict = {"source": source, "tlc_jar": str(settings.jar.path), "workers": settings.workers}

    # 1. Throughput, 1 worker vs N workers.
    one = tlc.TlcSettings(**{**settings.__dict__, "workers": 1})
    runs = [measure(fixed, one, f"{fixed.label} workers=1")]
    if settings.workers > 1:
        runs.append(measure(fixed, settings, f"{fixed.label} workers={settings.workers}"))
    report["throughput"] = [m.to_json() for m in runs]
    lines = [f"TLC throughput on {fixed.label} ({source}), jar {settings.jar.path.name} ({settings.jar.source}):"]
    for m in runs:
        rate = f"{m.rate:,.0f} distinct/s" if m.rate else "? distinct/s"
        lines.append(f"  {m.label:<40} {_fmt(m.distinct, m.complete):>12} distinct  "
                     f"{m.wall_s:6.1f}s wall  {(m.tlc_s or 0):6.1f}s TLC  {rate}")
    if len(runs) == 2:
        lines.append(f"  speed-up {settings.workers} workers / 1 worker: {_ratio(runs[1].rate, runs[0].rate)}")

    # 2. Reductions, each removed alone.
    report["reductions"] = []
    configured: dict[tuple[str, str], Measured] = {}   # one "as configured" run per model
    if not per_reduction:
        lines.append("No quick-set BFS success model uses SYMMETRY, VIEW or CONSTRAINT.")
    for kw, run in per_reduction.items():
        base_text = run.cfg_text if run.cfg_text is not None else run.cfg.read_text()
        config = tlc.TlcConfig.parse(base_text)
        if not config.has(kw):
            continue
        key = (str(run.module), base_text)
        if key not in configured:
            configured[key] = measure(run, settings, f"{run.label} as configured")
        with_it = configured[key]
        without_run = tlc.ModelRun(run.module, run.cfg, label=run.label, check_deadlock=run.check_deadlock,
                                   simulate=run.simulate, library_dirs=run.library_dirs,
                                   cfg_text=config.without(kw).render())
        without = measure(without_run, settings, f"{run.label} without {kw}")
        state_ratio = _ratio(without.distinct, with_it.distinct)
        time_ratio = _ratio(without.wall_s, with_it.wall_s)
        if not without.complete:
            state_ratio, time_ratio = ">=" + state_ratio, ">=" + time_ratio
        lines.append(f"{REDUCTIONS[kw]} on {run.label}:")
        for m in (with_it, without):
            lines.append(f"  {m.label:<40} {_fmt(m.distinct, m.complete):>12} distinct  {m.wall_s:6.1f}s wall  {m.verdict}")
        lines.append(f"  without/with: distinct states {state_ratio}, wall time {time_ratio}")
        if with_it.verdict != without.verdict and without.complete:
            lines.append(f"  note: the verdict changes without {kw} ({with_it.verdict} -> {without.verdict})")
        report["reductions"].append({"reduction": kw, "model": run.label, "with": with_it.to_json(),
                                     "without": without.to_json(), "distinct_ratio": state_ratio,
                                     "time_ratio": time_ratio})

    # 3. What liveness checking costs on the fixed model: the PROPERTY lines
    #    removed, and liveness checked once at the end (-lncheck final).
    fixed_text = fixed.cfg_text if fixed.cfg_text is not None else fixed.cfg.read_text()
    fixed_cfg = tlc.TlcConfig.parse(fixed_text)
    report["liveness"] = None
    if fixed_cfg.properties:
        as_configured = runs[-1]
        safety_only = measure(
            tlc.ModelRun(fixed.module, fixed.cfg, label=fixed.label, check_deadlock=fixed.check_deadlock,
                         library_dirs=fixed.library_dirs, cfg_text=fixed_cfg.without("PROPERTY", "PROPERTIES").render()),
            settings, f"{fixed.label} without PROPERTY")
        final_only = None
        if settings.jar.has_lncheck:
            final_settings = tlc.TlcSettings(**{**settings.__dict__, "lncheck_final": True})
            final_only = measure(fixed, final_settings, f"{fixed.label} -lncheck final")
        lines.append(f"liveness checking ({len(fixed_cfg.properties)} properties) on {fixed.label}:")
        for m in (as_configured, safety_only, final_only):
            if m is not None:
                lines.append(f"  {m.label:<40} {_fmt(m.distinct, m.complete):>12} distinct  {m.wall_s:6.1f}s wall  "
                             f"{(m.tlc_s or 0):6.1f}s TLC  {m.verdict}")
        lines.append(f"  with/without liveness: TLC time {_ratio(as_configured.tlc_s, safety_only.tlc_s)}")
        if final_only is not None:
            lines.append(f"  periodic/final liveness check: TLC time {_ratio(as_configured.tlc_s, final_only.tlc_s)}")
        report["liveness"] = {"as_configured": as_configured.to_json(), "without_property": safety_only.to_json(),
                              "lncheck_final": final_only.to_json() if final_only else None}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(lines))
    return exitcodes.OK


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
