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
seconds (default 90). Distinct states per second come from TLC's own time
for a finished run and from the last progress report (TLC reports once a
minute) for a stopped one. ``--record`` writes the numbers into each
model's ``throughput`` field in spec/manifest.json. Each run's time to the
verdict (to the counterexample for a failing model) is measured too: wall
time from the JVM's launch, TLC's own time from its "Starting...", and CPU
seconds; ``--repeat=N`` alternates before/after N times and reports medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
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
    # seconds from launching the JVM to TLC's "Starting..." (2185) and to the
    # message that gives the verdict (success 2193, a violation, a deadlock):
    # for a failing model the latter is the time to the counterexample (the
    # trace TLC prints after it is not counted); CPU seconds (user + system)
    # of the whole TLC process
    starting_s: float | None = None
    verdict_s: float | None = None
    cpu_s: float | None = None

    @property
    def tlc_verdict_s(self) -> float | None:
        """TLC's own time to the verdict: JVM start-up and SANY left out."""
        if self.verdict_s is None or self.starting_s is None:
            return None
        return self.verdict_s - self.starting_s

    @property
    def rate(self) -> float | None:
        t = self.tlc_s if self.tlc_s else self.wall_s
        return self.distinct / t if self.distinct and t else None

    def to_json(self) -> dict:
        return {"label": self.label, "distinct_states": self.distinct, "states_generated": self.generated,
                "wall_s": round(self.wall_s, 2), "tlc_s": self.tlc_s, "complete": self.complete,
                "verdict": self.verdict, "distinct_per_s": round(self.rate, 1) if self.rate else None,
                "verdict_s": _r3(self.verdict_s), "tlc_verdict_s": _r3(self.tlc_verdict_s),
                "cpu_s": _r3(self.cpu_s)}


def _r3(x: float | None) -> float | None:
    return round(x, 3) if x is not None else None


# TLC message codes that give a verdict: success, an invariant or property
# violated (initial state or later), a deadlock, a temporal property violated
VERDICT_CODES = {2193, 2107, 2108, 2110, 2112, 2114, 2116}
STARTING_CODE = 2185
_STARTMSG = re.compile(r"@!@!@STARTMSG (\d+):")


def measure(run: tlc.ModelRun, settings: tlc.TlcSettings, label: str) -> Measured:
    seen: list[tlc.ProgressStats] = []
    seen_at: list[float] = []
    marks: dict[str, float] = {}
    start = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)

    def on_line(line: str) -> None:
        st = tlc.parse_progress(line)
        if st:
            seen.append(st)
            seen_at.append(time.monotonic() - start)
        m = _STARTMSG.search(line)
        if m:
            code = int(m.group(1))
            if code == STARTING_CODE:
                marks.setdefault("starting", time.monotonic() - start)
            elif code in VERDICT_CODES:
                marks.setdefault("verdict", time.monotonic() - start)

    def cpu() -> float:
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (now.ru_utime - cpu0.ru_utime) + (now.ru_stime - cpu0.ru_stime)

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
                        settings.timeout_s or 0.0, seen_at[-1] if seen_at else None, False, "timeout",
                        marks.get("starting"), None, cpu())
    return Measured(label, r.distinct_states, r.states_generated, r.runtime_s, r.tlc_time_s, True, r.verdict,
                    marks.get("starting"), marks.get("verdict"), cpu())


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


def _median_run(runs: list[Measured]) -> Measured:
    """The run with the median time to the verdict (wall time for a stopped one)."""
    key = [(m.verdict_s if m.verdict_s is not None else m.wall_s, i) for i, m in enumerate(runs)]
    key.sort()
    return runs[key[(len(key) - 1) // 2][1]]


def _median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def _over(before: float | None, after: float | None) -> float | None:
    """before / after: how many times less time the run after needs."""
    return round(before / after, 2) if before and after else None


def compare(manifest: mf.Manifest, settings: tlc.TlcSettings, rev: str, set_: str, names: list[str],
            budget: float, record: bool, as_json: bool, repeat: int = 1) -> int:
    """Before (the spec at ``rev``) and after (the current one), side by side.

    With ``repeat`` > 1 each model runs before/after that many times,
    alternating, and every number is the median over the repeats.
    """
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
    lines = [f"TLC before ({rev}) and after (this checkout), 1 worker, at most {budget:g} s per run"
             + (f", median of {repeat} runs each" if repeat > 1 else "") + ":",
             f"  {'model':<34} {'before':>22} {'after':>22}  states/s  to verdict (TLC's own, CPU)"]
    with tempfile.TemporaryDirectory(prefix="bench-tlc-before-") as tmp:
        old_dir = Path(tmp)
        (old_dir / "ResumeProtocol.tla").write_text(spec_text)
        for entry in entries:
            assert entry is not None
            old_tla = _git_show(rev, f"spec/models/MC_{entry.name}.tla")
            old_cfg = _git_show(rev, f"spec/models/MC_{entry.name}.cfg")
            after_settings = dataclasses.replace(one, lncheck_final=entry.expected.kind == "success")
            old_run = None
            if old_tla is not None and old_cfg is not None:
                (old_dir / f"MC_{entry.name}.tla").write_text(old_tla)
                (old_dir / f"MC_{entry.name}.cfg").write_text(old_cfg)
                old_run = tlc.ModelRun(old_dir / f"MC_{entry.name}.tla", old_dir / f"MC_{entry.name}.cfg",
                                       label=f"{entry.name} before", check_deadlock=entry.check_deadlock,
                                       library_dirs=(old_dir,))
            afters: list[Measured] = []
            befores: list[Measured] = []
            for _ in range(max(1, repeat)):
                afters.append(measure(model_run_for(manifest, entry), after_settings, f"{entry.name} after"))
                if old_run is not None:
                    befores.append(measure(old_run, one, f"{entry.name} before"))
            # wall-clock rates for both (JVM start-up included in both)
            for m in afters + befores:
                if m.complete:
                    m.tlc_s = m.wall_s
            after = _median_run(afters)
            before = _median_run(befores) if befores else None
            rate_a = _median([m.rate for m in afters])
            rate_b = _median([m.rate for m in befores])
            ratio = rate_a / rate_b if rate_a and rate_b else None
            # times to the verdict (to the counterexample for a failing model):
            # wall from the JVM's launch, TLC's own (from its "Starting..."), CPU
            times = {k: (_median([getattr(m, k) for m in befores]), _median([getattr(m, k) for m in afters]))
                     for k in ("verdict_s", "tlc_verdict_s", "cpu_s")}
            complete = bool(befores) and all(m.complete for m in afters + befores)
            ratios = {k: _over(b, a) if complete else None for k, (b, a) in times.items()}
            metric = "time_to_verdict" if entry.expected.kind == "success" else "time_to_counterexample"
            row = {"model": entry.name, "before": before.to_json() if before else None,
                   "after": after.to_json(), "ratio": round(ratio, 2) if ratio else None,
                   "repeat": max(1, repeat), "time_metric": metric,
                   "before_times": {k: _r3(b) for k, (b, _) in times.items()},
                   "after_times": {k: _r3(a) for k, (_, a) in times.items()},
                   "time_ratio": ratios["verdict_s"], "tlc_time_ratio": ratios["tlc_verdict_s"],
                   "cpu_ratio": ratios["cpu_s"],
                   "same_verdict": before is not None and before.verdict == after.verdict}
            rows.append(row)

            def cell(m: Measured | None, rate: float | None) -> str:
                if m is None:
                    return "(not at " + rev + ")"
                r = f"{rate:,.0f}/s" if rate else "?/s"
                return f"{r} {'' if m.complete else '>='}{_fmt(m.distinct)}"

            def x(v: float | None) -> str:
                return f"x{v:.1f}" if v else "-"
            tv = times["verdict_s"]
            lines.append(f"  {entry.name:<34} {cell(before, rate_b):>22} {cell(after, rate_a):>22}  "
                         f"{x(ratio):>8}  {x(ratios['verdict_s'])} "
                         f"({(tv[0] or 0):.2f} s -> {(tv[1] or 0):.2f} s; "
                         f"{x(ratios['tlc_verdict_s'])}, {x(ratios['cpu_s'])})"
                         + ("" if metric == "time_to_verdict" else " to the counterexample"))
            if before is not None and before.verdict != after.verdict:
                lines[-1] += f"  VERDICT DIFFERS: {before.verdict} -> {after.verdict}"
            print(lines[-1], file=sys.stderr, flush=True)
    ratios_all = [r["ratio"] for r in rows if r["ratio"]]
    if ratios_all:
        geo = 1.0
        for r in ratios_all:
            geo *= r
        geo **= 1 / len(ratios_all)
        lines.append(f"  distinct states/s after/before: min x{min(ratios_all):.1f}, geometric mean x{geo:.1f}, "
                     f"max x{max(ratios_all):.1f} over {len(ratios_all)} model(s)")
    time_ratios = [r["time_ratio"] for r in rows if r["time_ratio"]]
    if time_ratios:
        lines.append(f"  time to verdict before/after (wall, JVM start-up included): min x{min(time_ratios):.1f}, "
                     f"max x{max(time_ratios):.1f} over {len(time_ratios)} complete model(s)")
    if record:
        today = datetime.date.today().isoformat()
        for obj in manifest.raw.get("models", []):
            row = next((r for r in rows if r["model"] == obj.get("name")), None)
            if row is None:
                continue
            obj["throughput"] = {
                "before_rev": rev, "budget_s": budget, "measured": today, "workers": 1,
                "before_distinct_per_s": row["before"]["distinct_per_s"] if row["before"] else None,
                "before_complete": row["before"]["complete"] if row["before"] else None,
                "after_distinct_per_s": row["after"]["distinct_per_s"],
                "after_complete": row["after"]["complete"],
                "after_over_before": row["ratio"],
                "repeat": row["repeat"],
                "time_metric": row["time_metric"],
                "before_verdict_s": row["before_times"]["verdict_s"],
                "after_verdict_s": row["after_times"]["verdict_s"],
                "time_before_over_after": row["time_ratio"],
                "before_tlc_verdict_s": row["before_times"]["tlc_verdict_s"],
                "after_tlc_verdict_s": row["after_times"]["tlc_verdict_s"],
                "tlc_time_before_over_after": row["tlc_time_ratio"],
                "before_cpu_s": row["before_times"]["cpu_s"],
                "after_cpu_s": row["after_times"]["cpu_s"],
                "cpu_before_over_after": row["cpu_ratio"],
                "before_verdict": row["before"]["verdict"] if row["before"] else None,
                "after_verdict": row["after"]["verdict"],
            }
        manifest.path.write_text(json.dumps(manifest.raw, indent=2) + "\n")
        lines.append(f"recorded in {manifest.path}")
    if as_json:
        print(json.dumps({"before_rev": rev, "budget_s": budget, "models": rows}, indent=2))
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
    parser.add_argument("--repeat", type=int, default=1,
                        help="with --compare: runs per model and side, alternating; medians are reported")
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
                       args.repeat)
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
