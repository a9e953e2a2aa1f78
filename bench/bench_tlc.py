"""TLC throughput and the effect of each state-space reduction, side by side.

    python -m bench tlc [--model=NAME] [--timeout=SECONDS] [--workers=N] [--json]
    python -m bench tlc --compare[=REV] [--models=A,B] [--budget=S] [--repeat=N] [--record]
    python -m bench tlc --recorded [--json]

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
seconds (default 90). Each pair prints three main ratios (rates after over
before, times before over after):

- distinct states per second (wall clock, JVM start-up included). A run
  stopped at the budget counts the states of TLC's last progress report
  (once a minute) over the time of that report.
- time to the verdict, when the after run finishes (``>=`` when the before
  run stopped at the budget): seconds from the JVM's launch to the TLC
  message that gives the verdict (success, or the violation: for a failing
  model the time to the counterexample, the trace printed after it left
  out).
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

The x10 target of issue 11 is claimed on the coverage ratio for a model
that completes (the same space, explored to the same verdict, per second of
wall clock) and on the time to the counterexample for a failing model. Two
more ratios are shown for information: search, TLC's own time to the
verdict (from its "Starting..." message, JVM start-up and parsing left
out), and the CPU seconds (user + system) of the TLC process.
Each row also says whether the comparison is bound by start-up (the after
run's search under 2 s, or shorter than the JVM's start-up and SANY's
parsing before it): its ratios then measure start-up, not the search. Both
sides run the current model's constants: a model resized since REV runs
REV's module and cfg with them put in (``before_model``).
``--repeat=N`` runs each model N times before and after, alternating, and
reports medians. ``--record`` writes the numbers into each model's
``throughput`` field in spec/manifest.json; ``--recorded`` prints what the
manifest holds (either schema the bench has written) without running TLC.
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
    # TLC's own time to the verdict: from its "Starting..." message (2185) to
    # the message giving the verdict; JVM start-up and SANY's parsing left out
    search_s: float | None = None
    # seconds from launching the JVM to the verdict message (for a failing
    # model: to the counterexample, the trace printed after it not counted)
    verdict_s: float | None = None
    cpu_s: float | None = None      # user + system seconds of the TLC process

    @property
    def rate(self) -> float | None:
        t = self.tlc_s if self.tlc_s else self.wall_s
        return self.distinct / t if self.distinct and t else None

    def to_json(self) -> dict:
        return {"label": self.label, "distinct_states": self.distinct, "states_generated": self.generated,
                "wall_s": round(self.wall_s, 2), "tlc_s": self.tlc_s, "complete": self.complete,
                "verdict": self.verdict, "distinct_per_s": round(self.rate, 1) if self.rate else None,
                "search_s": _r3(self.search_s), "verdict_s": _r3(self.verdict_s), "cpu_s": _r3(self.cpu_s)}

    @property
    def to_verdict_s(self) -> float:
        """Wall seconds to the verdict; the whole run where no verdict message was seen."""
        return self.verdict_s if self.verdict_s is not None else self.wall_s


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
    marks: dict[str, float] = {}  # seconds from launch to "Starting..." and to the verdict
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
                        cpu_s=cpu())
    search = marks["verdict"] - marks["starting"] if "verdict" in marks and "starting" in marks else None
    return Measured(label, r.distinct_states, r.states_generated, r.runtime_s, r.tlc_time_s, True, r.verdict,
                    search, marks.get("verdict"), cpu())


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


# constants this checkout's spec declares and the spec at BEFORE_REV did not,
# each with the value that means what that spec did without it
ADDED_CONSTANTS = {"ForkSender": "FALSE"}
_CFG_CONSTANT = re.compile(r"^(\s+)(\w+)(\s*=\s*)(.+?)\s*$")
_MC_DEFINITION = re.compile(r"^(MC\w+)\s*==\s*(.*?)\s*$")


class NotComparable(ValueError):
    """A model whose constants the spec at the before revision cannot express."""


def _cfg_constants(text: str) -> dict[str, str]:
    return {m.group(2): m.group(4) for m in map(_CFG_CONSTANT.match, text.splitlines()) if m}


def _mc_definitions(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in map(_MC_DEFINITION.match, text.splitlines()) if m}


def before_model(old_tla: str, old_cfg: str, cur_tla: str, cur_cfg: str) -> tuple[str, str, list[str]]:
    """The before revision's model (its module and cfg: its spec, its checks,
    its fairness) with the constants of this checkout's model, so that both
    sides explore the same protocol instance when a model was resized after
    that revision. Returns the module, the cfg and the names of the constants
    whose value changed. Raises NotComparable when this checkout's model sets
    a constant that revision did not have to anything but its "as before"
    value (``ADDED_CONSTANTS``), or defines an MC operator it lacks."""
    old_consts, cur_consts = _cfg_constants(old_cfg), _cfg_constants(cur_cfg)
    changed: list[str] = []
    for name, value in cur_consts.items():
        if name not in old_consts:
            if ADDED_CONSTANTS.get(name) != value:
                raise NotComparable(f"constant {name} = {value} does not exist in the spec before")
        elif old_consts[name] != value:
            changed.append(name)
    cfg_lines = []
    for line in old_cfg.splitlines():
        m = _CFG_CONSTANT.match(line)
        if m and m.group(2) in cur_consts and m.group(2) in changed:
            line = f"{m.group(1)}{m.group(2)}{m.group(3)}{cur_consts[m.group(2)]}"
        cfg_lines.append(line)
    old_defs, cur_defs = _mc_definitions(old_tla), _mc_definitions(cur_tla)
    missing = sorted(set(cur_defs) - set(old_defs))
    if missing:
        raise NotComparable(f"{', '.join(missing)} not defined in the model before")
    tla_lines = []
    for line in old_tla.splitlines():
        m = _MC_DEFINITION.match(line)
        if m and cur_defs[m.group(1)] != m.group(2):
            changed.append(m.group(1))
            line = f"{m.group(1)} == {cur_defs[m.group(1)]}"
        tla_lines.append(line)
    return "\n".join(tla_lines) + "\n", "\n".join(cfg_lines) + "\n", changed


# A comparison is start-up bound when the after run's search (TLC's own time
# from "Starting..." to the verdict) is shorter than this, or shorter than
# the JVM's start-up, SANY's parsing and TLC's set-up before it: its
# wall-clock ratios then measure start-up more than the search.
STARTUP_BOUND_SEARCH_S = 2.0


def startup_bound(after_search_s: float | None, after_verdict_s: float | None) -> bool | None:
    """Whether a before/after comparison is bound by start-up (see
    ``STARTUP_BOUND_SEARCH_S``); None when the after run's times are unknown
    (it stopped, or TLC's messages were not seen)."""
    if after_search_s is None or after_verdict_s is None:
        return None
    return after_search_s < STARTUP_BOUND_SEARCH_S or after_search_s < after_verdict_s - after_search_s


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
    VIEW and the before run did not finish); the search times (TLC's own
    time to the verdict) and the CPU seconds, before over after."""
    ratio = after.rate / before.rate if before and before.rate and after.rate else None
    unreduced: int | None = after.distinct if after.complete and not has_view else None
    if after.complete and has_view:
        unreduced = before.distinct if before is not None and before.complete else count_without_view()
    coverage_rate = (unreduced / after.wall_s if after.complete and unreduced and after.wall_s
                     else after.rate)      # a stopped run: distinct/s, a lower bound
    coverage = coverage_rate / before.rate if before and before.rate and coverage_rate else None
    time_ratio = None
    time_at_least = False
    if before is not None and after.complete and after.to_verdict_s:
        time_ratio = (before.to_verdict_s if before.complete else budget) / after.to_verdict_s
        time_at_least = not before.complete
    both = before is not None and before.complete and after.complete
    search_ratio = (before.search_s / after.search_s if both and before and before.search_s and after.search_s
                    else None)
    cpu_ratio = before.cpu_s / after.cpu_s if both and before and before.cpu_s and after.cpu_s else None
    return {"ratio": round(ratio, 2) if ratio else None,
            "time_to_verdict_ratio": round(time_ratio, 2) if time_ratio else None,
            "time_to_verdict_at_least": time_at_least,
            "unreduced_distinct_states": unreduced,
            "coverage_per_s": round(coverage_rate, 1) if coverage_rate else None,
            "coverage_ratio": round(coverage, 2) if coverage else None,
            "search_ratio": round(search_ratio, 2) if search_ratio else None,
            "cpu_ratio": round(cpu_ratio, 2) if cpu_ratio else None}


def median_run(runs: list[Measured]) -> Measured:
    """One run standing for ``runs`` (the repeats of one side of one model):
    the median run, finished runs first (by time to the verdict; stopped
    ones by rate), with its times replaced by the medians over the runs
    that finished, or stopped, as it did. Rates are wall-clock rates, as
    ``compare`` sets them, so a finished run's rate is over the median time."""
    if len(runs) == 1:
        return runs[0]
    ranked = sorted(runs, key=lambda m: (not m.complete, m.to_verdict_s if m.complete else -(m.rate or 0.0)))
    mid = ranked[(len(ranked) - 1) // 2]
    alike = [m for m in runs if m.complete == mid.complete]

    def med(name: str) -> float | None:
        vals = [getattr(m, name) for m in alike if getattr(m, name) is not None]
        return statistics.median(vals) if vals else None
    wall = med("wall_s")
    return dataclasses.replace(mid, wall_s=wall if wall is not None else mid.wall_s,
                               tlc_s=wall if mid.complete else mid.tlc_s, search_s=med("search_s"),
                               verdict_s=med("verdict_s"), cpu_s=med("cpu_s"))


def claim_metric(fails: bool) -> str:
    """The ratio the x10 target of issue 11 is claimed on: coverage for a
    model that completes (equal to distinct states per second when it has no
    VIEW), the time to the counterexample for a failing model."""
    return "time_to_verdict_ratio" if fails else "coverage_ratio"


# The names each version of ``--record`` gave a ratio in a ``throughput``
# entry, the current name first: the time-only version (before the merge
# with coverage) wrote the right-hand ones.
RECORDED_ALIASES = {
    "time_to_verdict_ratio": ("time_to_verdict_ratio", "time_before_over_after"),
    "search_ratio": ("search_ratio", "tlc_time_before_over_after"),
    "cpu_ratio": ("cpu_ratio", "cpu_before_over_after"),
    "before_search_s": ("before_search_s", "before_tlc_verdict_s"),
    "after_search_s": ("after_search_s", "after_tlc_verdict_s"),
}


def recorded(name: str, t: dict, fails: bool, has_view: bool) -> dict:
    """One model's ``throughput`` entry, as any version of ``--record``
    wrote it, in the current names; a ratio not recorded is None. An entry
    without a coverage ratio, of a model without a VIEW, has its distinct
    states ratio as coverage (what the bench computes for such a model)."""
    row: dict = {"model": name, "before_rev": t.get("before_rev"), "measured": t.get("measured"),
                 "budget_s": t.get("budget_s"), "repeat": t.get("repeat", 1),
                 "ratio": t.get("after_over_before"), "view": t.get("view", has_view),
                 "before_complete": t.get("before_complete"), "after_complete": t.get("after_complete"),
                 "time_to_verdict_at_least": t.get("time_to_verdict_at_least",
                                                   t.get("before_complete") is False),
                 "time_metric": t.get("time_metric", "time_to_counterexample" if fails else "time_to_verdict"),
                 "claim": t.get("claim", claim_metric(fails))}
    for key, names in RECORDED_ALIASES.items():
        row[key] = next((t[n] for n in names if t.get(n) is not None), None)
    coverage = t.get("coverage_over_before")
    if coverage is None and not row["view"]:
        coverage = row["ratio"]
    row["coverage_ratio"] = coverage
    bound = t.get("startup_bound")
    row["startup_bound"] = bound if bound is not None else startup_bound(row["after_search_s"],
                                                                          t.get("after_verdict_s"))
    for k in ("before_verdict_s", "after_verdict_s", "before_cpu_s", "after_cpu_s", "before_verdict",
              "after_verdict", "unreduced_distinct_states", "before_distinct_per_s", "after_distinct_per_s"):
        row[k] = t.get(k)
    return row


def show_recorded(manifest: mf.Manifest, as_json: bool) -> int:
    """Print the ``throughput`` entries of the manifest (no TLC run)."""
    rows = []
    for entry in manifest.models:
        t = entry.raw.get("throughput")
        if not t:
            continue
        has_view = entry.cfg.exists() and tlc.TlcConfig.read(entry.cfg).has("VIEW")
        rows.append(recorded(entry.name, t, entry.expected.kind != "success", has_view))
    if as_json:
        print(json.dumps({"models": rows}, indent=2))
        return exitcodes.OK
    if not rows:
        print(f"bench tlc: no model in {manifest.path} has a recorded throughput")
        return exitcodes.OK

    def x(v: float | None, at_least: bool = False) -> str:
        return f"{'>=' if at_least else ''}x{v:.1f}" if v else "-"
    lines = [f"recorded in {manifest.path} (after over before; '-': not recorded):",
             f"  {'model':<31} {'measured':>10} {'rev':>8} {'distinct/s':>10} {'verdict in':>10} "
             f"{'coverage':>9} {'search':>7} {'cpu':>6}  {'bound':<8}  claim"]
    for r in rows:
        claim = r[r["claim"]]
        lines.append(f"  {r['model']:<31} {str(r['measured']):>10} {str(r['before_rev']):>8} {x(r['ratio']):>10} "
                     f"{x(r['time_to_verdict_ratio'], r['time_to_verdict_at_least']):>10} "
                     f"{x(r['coverage_ratio']):>9} {x(r['search_ratio']):>7} {x(r['cpu_ratio']):>6}  "
                     f"{bound_cell(r['startup_bound']):<8}  "
                     f"{x(claim, r['claim'] == 'time_to_verdict_ratio' and r['time_to_verdict_at_least'])} "
                     f"({'coverage' if r['claim'] == 'coverage_ratio' else 'time to counterexample'})")
    lines.append(summary_line(rows))
    print("\n".join(lines))
    return exitcodes.OK


def summary_line(rows: list[dict]) -> str:
    """How many models reach x10 on the claim's metric, and which
    comparisons are start-up bound (their ratios say little about search)."""
    claimed = [r for r in rows if r.get(r["claim"])]
    at_ten = [r for r in claimed if r[r["claim"]] >= 10]
    bound = [r["model"] for r in rows if r.get("startup_bound")]
    return (f"  x10 or more on the claim's metric: {len(at_ten)} of {len(claimed)} model(s); start-up bound: "
            + (", ".join(bound) if bound else "none"))


def bound_cell(bound: bool | None) -> str:
    return "-" if bound is None else ("start-up" if bound else "search")


def _geo(values: list[float]) -> float:
    g = 1.0
    for v in values:
        g *= v
    return g ** (1 / len(values))


def compare(manifest: mf.Manifest, settings: tlc.TlcSettings, rev: str, set_: str, names: list[str],
            budget: float, record: bool, as_json: bool, unreduced_timeout: float = 1800.0,
            repeat: int = 1) -> int:
    """Before (the spec at ``rev``) and after (the current one), side by side.

    With ``repeat`` > 1 each model runs before/after that many times,
    alternating, and each side is its median run (``median_run``)."""
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
             + (f", median of {repeat} alternating runs" if repeat > 1 else ""),
             "(rates: distinct states per second of wall clock; verdict in: wall time to the verdict, to the",
             " counterexample for a failing model; coverage: states of the before model's space per second;",
             " search: TLC's own time to the verdict, without JVM start-up and parsing; cpu: CPU seconds;",
             " bound: start-up when the after run's search took under "
             f"{STARTUP_BOUND_SEARCH_S:g} s or less than its start-up (its ratios then",
             " measure the JVM's start-up and SANY's parsing more than the search), else search):",
             f"  {'model':<31} {'before':>20} {'after':>20} {'distinct/s':>10} {'verdict in':>10} "
             f"{'coverage':>9} {'search':>7} {'cpu':>6}  {'bound':<8}  claim on"]
    with tempfile.TemporaryDirectory(prefix="bench-tlc-before-") as tmp:
        old_dir = Path(tmp)
        (old_dir / "ResumeProtocol.tla").write_text(spec_text)
        for entry in entries:
            assert entry is not None
            old_tla = _git_show(rev, f"spec/models/MC_{entry.name}.tla")
            old_cfg = _git_show(rev, f"spec/models/MC_{entry.name}.cfg")
            after_settings = dataclasses.replace(one, lncheck_final=entry.expected.kind == "success")
            old_run = None
            resized: list[str] = []
            not_comparable = None
            if old_tla is not None and old_cfg is not None:
                try:
                    old_tla, old_cfg, resized = before_model(old_tla, old_cfg, entry.module.read_text(),
                                                             entry.cfg.read_text())
                except NotComparable as exc:
                    not_comparable = str(exc)
                    old_tla = old_cfg = None
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
            after = median_run(afters)
            before = median_run(befores) if befores else None
            has_view = tlc.TlcConfig.read(entry.cfg).has("VIEW")
            fails = entry.expected.kind != "success"
            row = {"model": entry.name, "before": before.to_json() if before else None,
                   "after": after.to_json(), "view": has_view, "repeat": max(1, repeat),
                   "time_metric": "time_to_counterexample" if fails else "time_to_verdict",
                   "claim": claim_metric(fails),
                   "same_verdict": before is not None and before.verdict == after.verdict,
                   "resized_since_before_rev": resized, "not_comparable": not_comparable,
                   "startup_bound": startup_bound(after.search_s, after.verdict_s),
                   **ratios(before, after, has_view, budget,
                            lambda e=entry: _unreduced(manifest, e, one, unreduced_timeout))}
            ratio, time_ratio, coverage = row["ratio"], row["time_to_verdict_ratio"], row["coverage_ratio"]
            time_at_least, search_ratio = row["time_to_verdict_at_least"], row["search_ratio"]
            cpu_ratio = row["cpu_ratio"]
            rows.append(row)

            def cell(m: Measured | None, missing: str = "(not comparable)" if not_comparable
                     else f"(not at {rev})") -> str:
                if m is None:
                    return missing
                rate = f"{m.rate:,.0f}/s" if m.rate else "?/s"
                return f"{rate} {'' if m.complete else '>='}{_fmt(m.distinct)}"

            def x(v: float | None, at_least: bool = False) -> str:
                return f"{'>=' if at_least else ''}x{v:.1f}" if v else "-"
            lines.append(f"  {entry.name:<31} {cell(before):>20} {cell(after):>20} {x(ratio):>10} "
                         f"{x(time_ratio, time_at_least):>10} {x(coverage):>9} {x(search_ratio):>7} "
                         f"{x(cpu_ratio):>6}  {bound_cell(row['startup_bound']):<8}  "
                         f"{'coverage' if not fails else 'time to counterexample'}")
            if resized:
                lines[-1] += f"  (before run with this checkout's {', '.join(resized)})"
            if not_comparable:
                lines[-1] += f"  (no before run: {not_comparable})"
            if before is not None and before.complete and before.verdict != after.verdict:
                lines[-1] += f"  VERDICT DIFFERS: {before.verdict} -> {after.verdict}"
            print(lines[-1], file=sys.stderr, flush=True)
    for key, what in (("ratio", "distinct states/s"), ("claim", "the claim's metric")):
        values = [r[r[key]] if key == "claim" else r[key] for r in rows]
        values = [v for v in values if v]
        if values:
            lines.append(f"  {what} after/before: min x{min(values):.1f}, geometric mean "
                         f"x{_geo(values):.1f}, max x{max(values):.1f} over {len(values)} model(s)")
    lines.append(summary_line(rows))
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
                "cpu_ratio": row["cpu_ratio"],
                "repeat": row["repeat"],
                "time_metric": row["time_metric"],
                "claim": row["claim"],
                "before_verdict_s": row["before"]["verdict_s"] if row["before"] else None,
                "after_verdict_s": row["after"]["verdict_s"],
                "before_search_s": row["before"]["search_s"] if row["before"] else None,
                "after_search_s": row["after"]["search_s"],
                "before_cpu_s": row["before"]["cpu_s"] if row["before"] else None,
                "after_cpu_s": row["after"]["cpu_s"],
                "before_verdict": row["before"]["verdict"] if row["before"] else None,
                "after_verdict": row["after"]["verdict"],
                "startup_bound": row["startup_bound"],
                "resized_since_before_rev": row["resized_since_before_rev"],
            }
        manifest.path.write_text(json.dumps(manifest.raw, indent=2) + "\n")
        lines.append(f"recorded in {manifest.path}")
    if as_json:
        print(json.dumps({"before_rev": rev, "budget_s": budget, "repeat": max(1, repeat),
                          "claim": {"completes": claim_metric(False), "fails": claim_metric(True)},
                          "models": rows}, indent=2))
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
    parser.add_argument("--recorded", action="store_true",
                        help="print the before/after numbers recorded in the manifest (no TLC run)")
    parser.add_argument("--unreduced-timeout", type=float, default=1800.0,
                        help="with --compare: limit of the run that counts a VIEW model's states without the VIEW")
    parser.add_argument("--model", help="model for the throughput measurement")
    parser.add_argument("--timeout", type=float, default=120.0, help="per TLC run (default 120 s)")
    parser.add_argument("--workers", type=int, default=tlc.default_workers())
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--manifest")
    args = parser.parse_args(argv)
    if args.recorded:
        try:
            return show_recorded(mf.load_manifest(args.manifest), args.json)
        except mf.ManifestError as exc:
            print(f"bench tlc: {exc}", file=sys.stderr)
            return exitcodes.BAD_INPUT
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
                       args.unreduced_timeout, args.repeat)
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
