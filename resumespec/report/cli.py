"""``resumespec report``: counterexamples and trace verdicts for people.

    resumespec report counterexample MODEL [-o OUT.html] [--itf OUT.itf.json] [--json]
    resumespec report counterexample SAVED.json ...      (the output of `counterexample --json`)
    resumespec report trace TRACE... [-o OUT.html] [--itf OUT.itf.json] [--json] [--merge]

The story goes to stdout (text, or --json); ``-o`` also writes the HTML page,
``--itf`` the ITF trace. Exit 0 when the report was made, whatever the
verdict it reports (``resumespec check`` / ``conform`` judge); other codes
as resumespec/exitcodes.py (2 usage, 9 unreadable input, 3-8 TLC problems).
See docs/reports.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from resumespec import exitcodes

from .sources import ReportInputError, trace_from_json
from .timeline import Timeline, render_story


class _Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="tell a counterexample or a trace verdict as a story, an HTML page, or ITF",
        description="Explain a TLC counterexample or an engine trace's conformance verdict: a numbered "
                    "story on stdout, a self-contained HTML swimlane page (-o), an ITF trace (--itf).")
    rsub = p.add_subparsers(dest="report_kind", metavar="KIND")
    rsub.required = True

    c = rsub.add_parser("counterexample", help="run a model (or read a saved --json counterexample) and explain it",
                        description="Run TLC on MODEL of spec/manifest.json, or read FILE.json written by "
                                    "`resumespec counterexample MODEL --json`, and explain the counterexample.")
    c.add_argument("model", metavar="MODEL|FILE.json")
    _outputs(c)
    g = c.add_argument_group("TLC (when MODEL is run)")
    g.add_argument("--jar", metavar="PATH", help="tla2tools.jar to use")
    g.add_argument("--workers", type=int, metavar="N", help="TLC worker threads (default: CPU cores)")
    g.add_argument("--heap", default="4g", metavar="SIZE", help="JVM heap (default 4g)")
    g.add_argument("--timeout", type=float, metavar="SECONDS", help="stop TLC after this many seconds")
    g.add_argument("--manifest", metavar="PATH", help="manifest to read (default: spec/manifest.json)")
    c.set_defaults(func=cmd_counterexample)

    t = rsub.add_parser("trace", help="check an engine trace (native checker) and explain the verdict",
                        description="Check a JSON Lines trace (docs/trace-format.md) with the native checker and "
                                    "explain the verdict step by step.")
    t.add_argument("traces", nargs="+", metavar="TRACE",
                   help="a trace file, or a directory of per-process logs of one run")
    t.add_argument("--merge", action="store_true", help="the files given are the per-process logs of one run")
    t.add_argument("--bound", type=int, metavar="K", help="bounded response, as `resumespec conform --bound`")
    t.add_argument("--max-steps", type=int, default=400, metavar="N",
                   help="draw at most N events, around the highlighted one (default 400)")
    _outputs(t)
    t.set_defaults(func=cmd_trace)


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--html", metavar="FILE", help="write the HTML report to FILE")
    p.add_argument("--itf", metavar="FILE", help="write the trace in ITF (Apalache/Quint JSON) to FILE")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise _Fail(exitcodes.BAD_INPUT, f"{path}: cannot write: {e.strerror or e}") from None


def _emit(t: Timeline, args, itf_doc: dict | None) -> int:
    from .html import render_html

    written = {}
    if args.html:
        _write(args.html, render_html(t))
        written["html"] = args.html
    if args.itf and itf_doc is not None:
        _write(args.itf, json.dumps(itf_doc, indent=1) + "\n")
        written["itf"] = args.itf
    if args.json:
        doc = t.to_json()
        doc["written"] = written
        text = json.dumps(doc, indent=2)
    else:
        text = render_story(t)
    try:
        print(text, flush=True)
    except BrokenPipeError:         # `resumespec report ... | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if not args.quiet:
        for kind, path in written.items():
            print(f"report: wrote {kind.upper()} to {path}", file=sys.stderr)
    return exitcodes.OK


def _fail(exc: _Fail, args) -> int:
    print(f"resumespec report: {exc.message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "exit_code": exc.code, "error": exc.message}))
    return exc.code


# ---------------------------------------------------------------------------


def _saved_counterexample(path: Path) -> tuple:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise _Fail(exitcodes.BAD_INPUT, f"{path}: cannot read: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        line = getattr(e, "lineno", 1)
        raise _Fail(exitcodes.BAD_INPUT, f"{path}:{line}: expected the JSON of `resumespec counterexample --json` "
                                         f"({e.__class__.__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("trace"), dict):
        raise _Fail(exitcodes.BAD_INPUT, f'{path}:1: expected an object with "trace" (the output of '
                                         '`resumespec counterexample MODEL --json` for a failing model)')
    try:
        trace = trace_from_json(doc["trace"], str(path))
    except ReportInputError as e:
        raise _Fail(exitcodes.BAD_INPUT, str(e)) from None
    result = doc.get("result") or {}
    info = {"name": doc.get("model") or path.stem, "variant": doc.get("variant") or "?",
            "constants": doc.get("constants") or "", "kind": result.get("kind") or "safety",
            "prop": result.get("property"), "why": doc.get("why") or "", "source": str(path)}
    if not info["why"] and doc.get("model"):
        info["why"] = _manifest_why(doc["model"])
    return trace, info


def _manifest_why(model: str) -> str:
    """The manifest's one-sentence "why" of a model, if the manifest knows it."""
    from resumespec.spec import manifest as mf

    try:
        entry = mf.load_manifest().by_name(model)
    except mf.ManifestError:
        return ""
    return (entry.why or "") if entry else ""


def _run_model(args) -> tuple:
    from resumespec.spec import cli as spec_cli
    from resumespec.spec import manifest as mf
    from resumespec.spec import tlc

    try:
        manifest = mf.load_manifest(args.manifest)
    except mf.ManifestError as e:
        raise _Fail(exitcodes.BAD_INPUT, str(e)) from None
    entry = manifest.by_name(args.model)
    if entry is None:
        known = ", ".join(m.name for m in manifest.models) or "(none)"
        raise _Fail(exitcodes.USAGE, f"unknown model {args.model!r} (or no such FILE.json); known models: {known}")
    try:
        settings = tlc.prepare_settings(jar=args.jar, workers=args.workers, heap=args.heap, timeout_s=args.timeout)
    except tlc.TlcFailure as e:
        raise _Fail(e.exit_code, e.one_line()) from None
    outcome = spec_cli.run_entry(manifest, entry, settings, args)
    if outcome.failure is not None:
        raise _Fail(outcome.failure.exit_code, outcome.failure.one_line())
    r = outcome.result
    info = {"name": entry.name, "variant": entry.variant, "constants": entry.constants, "kind": r.kind,
            "prop": r.property, "why": entry.why or "", "source": str(entry.module)}
    if r.trace is None:
        info["no_trace"] = f"{r.distinct_states or 0:,} distinct states, no violation"
    return r.trace, info


def cmd_counterexample(args) -> int:
    from .counterexample_story import timeline_from_counterexample
    from .itf import trace_to_itf

    try:
        path = Path(args.model)
        if args.model.endswith(".json") or path.is_file():
            if not path.is_file():
                raise _Fail(exitcodes.BAD_INPUT, f"{args.model}: no such file")
            trace, info = _saved_counterexample(path)
        else:
            trace, info = _run_model(args)
        if trace is None:
            raise _Fail(exitcodes.OK, f"{info['name']}: no counterexample to report ({info.get('no_trace')})")
        title = f"{info['name']}: the {info['variant']} design"
        t = timeline_from_counterexample(trace, title=title, prop=info["prop"], kind=info["kind"],
                                         constants=info["constants"], hint=info["why"],
                                         subtitle=info["constants"], variant=info["variant"])
        itf_doc = trace_to_itf(trace, source=info["source"],
                               description=f"{info['name']}: {info['kind']}"
                                           + (f" {info['prop']}" if info["prop"] else ""),
                               extra_meta={"model": info["name"], "variant": info["variant"],
                                           "constants": info["constants"], "result": info["kind"],
                                           **({"property": info["prop"]} if info["prop"] else {})})
        return _emit(t, args, itf_doc)
    except _Fail as e:
        if e.code == exitcodes.OK:
            print(e.message)
            return exitcodes.OK
        return _fail(e, args)


def cmd_trace(args) -> int:
    from resumespec.conformance.checker_native import check_native

    from .itf import timeline_to_itf
    from .trace_story import timeline_from_trace

    try:
        if args.bound is not None and args.bound < 1:
            raise _Fail(exitcodes.USAGE, "--bound must be >= 1")
        if args.max_steps < 10:
            raise _Fail(exitcodes.USAGE, "--max-steps must be >= 10")
        groups: list[list[str]] = []
        for name in args.traces:
            p = Path(name)
            if p.is_dir():
                files = sorted(str(f) for f in p.glob("*.jsonl"))
                if not files:
                    raise _Fail(exitcodes.BAD_INPUT, f"{name}: directory holds no *.jsonl trace files")
                groups.append(files)
            elif p.is_file():
                groups.append([name])
            else:
                raise _Fail(exitcodes.BAD_INPUT, f"{name}: no such file or directory")
        if args.merge:
            groups = [[f for g in groups for f in g]]
        if len(groups) != 1:
            raise _Fail(exitcodes.USAGE, "one trace per report: give one file, one directory, or --merge")
        files = groups[0]
        try:
            verdict = check_native(files, bound=args.bound)
        except OSError as e:
            raise _Fail(exitcodes.BAD_INPUT, f"{'+'.join(files)}: {e.strerror or e}") from None
        title = " + ".join(files)
        t = timeline_from_trace(files, verdict, title=title, max_steps=args.max_steps)
        return _emit(t, args, timeline_to_itf(t, source=title))
    except _Fail as e:
        return _fail(e, args)
