"""``resumespec conform``: check engine traces against the spec.

    resumespec conform TRACE... [--checker native|tlc|both] [--bound K]
                       [--json] [--junit-xml FILE] [--coverage] [--merge]

Each TRACE is one trace: a JSON Lines file (a merged log), or a directory whose
``*.jsonl`` files are the per-process logs of one run.  ``--merge`` takes all
the files given as the per-process logs of a single run.  Exit code: the
worst verdict (docs/conformance.md): 0 conforms, 10 violates, 11 incomplete,
12 malformed, 13 the checkers disagree (--checker both), 9 unreadable input.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from resumespec import exitcodes

from .checker_native import SPEC_ACTIONS, Verdict, check_native
from .monitor import add_arguments as add_follow_arguments
from .monitor import follow_requested, run_follow

EXIT = {"conforms": exitcodes.OK, "violates": exitcodes.VIOLATES,
        "incomplete": exitcodes.INCOMPLETE, "malformed": exitcodes.MALFORMED,
        "disagree": exitcodes.CHECKERS_DISAGREE}
# Which exit code wins when several traces are checked.
SEVERITY = [exitcodes.OK, exitcodes.INCOMPLETE, exitcodes.VIOLATES, exitcodes.MALFORMED,
            exitcodes.CHECKERS_DISAGREE, exitcodes.BAD_INPUT]


def verdict_exit_code(v: Verdict) -> int:
    """The exit code of one verdict ("error": TLC could not run, its own code)."""
    if v.verdict == "error":
        return getattr(v, "exit_code", None) or exitcodes.TLC_ERROR
    return EXIT[v.verdict]


def severity(code: int) -> int:
    return SEVERITY.index(code) if code in SEVERITY else len(SEVERITY)


def register(sub) -> None:
    p = sub.add_parser(
        "conform", help="check engine traces against the spec (native streaming checker, TLC)",
        description="Check JSON Lines traces (docs/trace-format.md) against "
                    "spec/ResumeProtocol.tla. Verdicts: conforms, violates, incomplete, "
                    "malformed.")
    p.add_argument("traces", nargs="+", metavar="TRACE",
                   help="a trace file, or a directory of per-process logs of one run")
    p.add_argument("--checker", choices=("native", "tlc", "both"), default="native",
                   help="native (default, streaming, any length), tlc (TLC trace "
                        "validation, short traces), or both (compare verdicts)")
    p.add_argument("--bound", type=int, metavar="K", default=None,
                   help="bounded response: every round that ended partial must be answered "
                        "by a resume or the request ending within K events")
    p.add_argument("--merge", action="store_true",
                   help="the files given are the per-process logs of one run")
    p.add_argument("--json", action="store_true", help="print verdicts as JSON")
    p.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report")
    p.add_argument("--coverage", action="store_true",
                   help="report which spec actions the traces exercised, and which never")
    p.add_argument("--timeout", type=int, default=600,
                   help="seconds per trace for TLC (default 600)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_follow_arguments(p)
    p.set_defaults(func=run)


def _groups(args) -> list[list[str]] | str:
    """The traces to check, each a list of files; or an error line."""
    groups = []
    for t in args.traces:
        p = Path(t)
        if p.is_dir():
            files = sorted(str(f) for f in p.glob("*.jsonl"))
            if not files:
                return f"{t}: directory holds no *.jsonl trace files"
            groups.append(files)
        elif p.is_file():
            groups.append([t])
        else:
            kind = _not_a_file(p)
            if kind == "fifo" and args.checker == "native":
                groups.append([t])       # a pipe streams: read once, as it comes
            elif kind == "fifo":
                return (f"{t}: is a FIFO (named pipe), which can be read only once; "
                        f"--checker {args.checker} reads the trace twice: not read "
                        f"(save it to a file, or use --checker native)")
            else:
                return f"{t}: {kind}"
        for f in groups[-1]:
            if not os.access(f, os.R_OK):
                return f"{f}: not readable"
    if args.merge:
        groups = [[f for g in groups for f in g]]
    return groups


def _not_a_file(p: Path) -> str:
    """What a path that is neither a regular file nor a directory is ("fifo"
    for a named pipe, which the native checker streams), in words."""
    import stat
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        if p.is_symlink():
            return "a symbolic link to a path that does not exist: not read"
        return "no such file or directory"
    except OSError as e:
        return f"cannot be examined ({e.strerror or e}): not read"
    if stat.S_ISFIFO(mode):
        return "fifo"
    for test, what in ((stat.S_ISCHR, "a character device (such as /dev/null)"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return f"is {what}, not a trace file: not read"
    return "is not a regular file: not read"


class _Progress:
    def __init__(self, name: str, quiet: bool):
        self.name = name
        self.quiet = quiet
        self.last = time.perf_counter()

    def __call__(self, events: int, seconds: float) -> None:
        now = time.perf_counter()
        if self.quiet or now - self.last < 2.0:
            return
        self.last = now
        rate = events / seconds if seconds else 0.0
        print(f"conform: {self.name}: {events:,} events checked ({rate:,.0f}/s)",
              file=sys.stderr, flush=True)


def check_group(files: list[str], args) -> tuple[Verdict, dict]:
    """Run the chosen checker(s) on one trace; returns (verdict, extra JSON)."""
    name = "+".join(files)
    extra: dict = {}
    native = None
    if args.checker in ("native", "both"):
        native = check_native(files, bound=args.bound, progress=_Progress(name, args.quiet))
        if args.checker == "native":
            return native, extra
    from . import tlc_trace

    # TLC reports once a minute; a trace check of minutes shows those reports
    tlc = tlc_trace.check_tlc(files, timeout=args.timeout, bound=args.bound,
                              progress=None if args.quiet else sys.stderr)
    if args.checker == "tlc":
        return tlc, extra
    extra["tlc"] = tlc.to_json()
    if tlc.verdict == "error":            # TLC could not judge: say so, no comparison
        extra["native"] = native.to_json()
        return tlc, extra
    if tlc.verdict != native.verdict:
        d = Verdict("disagree", checker="both",
                    message=f"native says {native.verdict}, TLC says {tlc.verdict}",
                    expected="the same verdict from both checkers", events=native.events,
                    coverage=native.coverage, file=native.file, line=native.line,
                    event=native.event, prop=native.prop, story=native.story,
                    state=native.state)
        extra["native"] = native.to_json()
        return d, extra
    return native, extra


def text_report(name: str, v: Verdict) -> str:
    head = f"{name}: {v.verdict.upper()}"
    if v.verdict == "conforms":
        return f"{head} ({v.events:,} events, {v.seconds:.2f}s, {v.checker})"
    out = []
    if v.verdict in ("malformed", "error"):
        return f"{head}: {v.message}"
    where = f" at {v.file}:{v.line}" if v.line is not None else ""
    prop = f" {v.prop}" if v.prop else ""
    out.append(f"{head}{prop}{where}")
    out.append(f"  what happened: {v.message}")
    out.append(f"  the spec allows: {v.expected}")
    if v.event:
        out.append(f"  event: {json.dumps(v.event, separators=(',', ':'))}")
    if v.story:
        out.append("  how it got there:")
        out.extend(f"    {s}" for s in v.story)
    if len(v.unfinished) > 1:
        out.append(f"  open obligations ({len(v.unfinished)}):")
        for o in v.unfinished[:10]:
            out.append(f"    {o['property']}: {o['message']}")
        if len(v.unfinished) > 10:
            out.append(f"    ... and {len(v.unfinished) - 10} more")
    if v.state:
        out.append("  state: " + json.dumps(v.state, separators=(",", ":")))
    return "\n".join(out)


# Characters XML 1.0 cannot hold at all, not even as character references.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """``text`` with what XML 1.0 forbids (control characters, lone surrogates,
    U+FFFE/U+FFFF) replaced by U+FFFD, so the report stays well-formed."""
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(results: list[tuple[str, Verdict]]) -> str:
    failures = sum(1 for _, v in results if v.verdict in ("violates", "incomplete", "disagree"))
    errors = sum(1 for _, v in results if v.verdict == "malformed")
    total_time = sum(v.seconds for _, v in results)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name="resumespec.conform" tests="{len(results)}" '
             f'failures="{failures}" errors="{errors}" time="{total_time:.3f}">']
    for name, v in results:
        lines.append(f'  <testcase classname="resumespec.conform" name={quoteattr(_xml_text(name))} '
                     f'time="{v.seconds:.3f}">')
        if v.verdict != "conforms":
            tag = "error" if v.verdict == "malformed" else "failure"
            msg = f"{v.verdict}: {v.prop + ': ' if v.prop else ''}{v.message}"
            body = text_report(name, v)
            lines.append(f'    <{tag} type={quoteattr(v.verdict)} message={quoteattr(_xml_text(msg))}>'
                         f'{escape(_xml_text(body))}</{tag}>')
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"


def coverage_text(total: dict) -> str:
    width = max(len(a) for a in SPEC_ACTIONS)
    out = ["coverage of spec actions:"]
    for a in SPEC_ACTIONS:
        out.append(f"  {a:<{width}}  {total.get(a, 0):>10,}")
    never = [a for a in SPEC_ACTIONS if not total.get(a)]
    out.append("never exercised: " + (", ".join(never) if never else "none"))
    return "\n".join(out)


def run(args) -> int:
    if follow_requested(args):
        return run_follow(args)
    if args.bound is not None and args.bound < 1:
        print("conform: --bound must be >= 1", file=sys.stderr)
        return exitcodes.USAGE
    groups = _groups(args)
    if isinstance(groups, str):
        print(f"conform: {groups}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    results: list[tuple[str, Verdict]] = []
    extras = []
    worst = exitcodes.OK
    for files in groups:
        name = files[0] if len(files) == 1 else "+".join(files)
        try:
            v, extra = check_group(files, args)
        except OSError as e:
            print(f"conform: {name}: {e.strerror or e}", file=sys.stderr)
            return exitcodes.BAD_INPUT
        results.append((name, v))
        extras.append(extra)
        code = verdict_exit_code(v)
        if severity(code) > severity(worst):
            worst = code
        if not args.json:
            print(text_report(name, v), flush=True)
    cov_total: dict = {a: 0 for a in SPEC_ACTIONS}
    for _, v in results:
        for a, n in v.coverage.items():
            cov_total[a] = cov_total.get(a, 0) + n
    if args.json:
        doc = {"traces": [dict(v.to_json(), trace=name, **extra)
                          for (name, v), extra in zip(results, extras)],
               "exit_code": worst}
        if args.coverage:
            doc["coverage"] = {"counts": cov_total,
                               "never": [a for a in SPEC_ACTIONS if not cov_total.get(a)]}
        print(json.dumps(doc, indent=2))
    else:
        if len(results) > 1:
            counts: dict = {}
            for _, v in results:
                counts[v.verdict] = counts.get(v.verdict, 0) + 1
            print(f"{len(results)} traces: " + ", ".join(f"{n} {k}" for k, n in
                                                         sorted(counts.items())))
        if args.coverage:
            print(coverage_text(cov_total))
    if args.junit_xml:
        try:
            Path(args.junit_xml).write_text(junit_xml(results), encoding="utf-8")
        except OSError as e:
            print(f"conform: cannot write {args.junit_xml}: {e.strerror or e}", file=sys.stderr)
            return exitcodes.BAD_INPUT
    return worst
