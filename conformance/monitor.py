"""Live monitoring: check the per-process logs of a running engine as they grow.

    resumespec conform --follow DIR [--json] [--exit-on-first] [--html OUT]
                       [--interval S] [--max-lag S] [--idle-exit S] [--bound K]

DIR is what the recorder writes with ``RESUMESPEC_TRACE=DIR``: one
``*.jsonl`` file per process.  The monitor

* **tails** every ``*.jsonl`` file of DIR by name, polling (``os.stat`` and
  ``read`` every ``--interval`` seconds, 0.05 by default; no inotify): files
  that grow, files that appear (a process starts), files renamed away and
  created again (rotation) and files truncated in place (copy-truncate
  rotation).  A last line without its newline is held back while it may
  still grow; it is judged (an event if it parses, else *malformed* at that
  file and line) when no other process has its file open any more (Linux
  ``/proc``), when its file is rotated away, truncated or deleted, or when
  the monitor stops.
* **merges** the processes' events with the order rules of the offline merge
  (``conformance.merge``): among the processes whose next event is causally
  ready (a receive waits for its send), the smallest ``ts`` goes first.  An
  event is held back while a process that has not yet logged anything at or
  after its ``ts`` might still do so; that wait is bounded by ``--max-lag``
  seconds (0.25 by default) from the moment the monitor read the event.  A
  receive whose send never shows up is let through after the same bound, and
  the checker then reports it.
* **checks** the merged events one by one with the native checker's
  streaming API (``NativeChecker.feed``): memory is bounded by the requests
  in flight, the events held back (at most ``--max-lag`` seconds of logs, and
  at most ``MAX_QUEUE`` per file: a file that far ahead is not read further
  until the others catch up) and one read of ``READ_BYTES`` per file.
* **reports** a violation (or a malformed line) the moment the checker meets
  it: text, or one JSON object per line with ``--json``.  With
  ``--exit-on-first`` it stops there (exit 10, or 12 for a malformed line);
  otherwise it carries on with a fresh checker that skips the requests that
  were in flight at the violation (their state is unknown now) and checks
  every request that starts after it.  ``--html OUT`` writes the HTML report
  of the last ``--window`` events before each violation.
* **stops** on Ctrl-C or SIGTERM (or after ``--idle-exit`` seconds in which
  no file grew), judges what is left and prints a summary.  Exit code: the
  worst finding (12 malformed, 10 violates; 11 incomplete only with
  ``--idle-exit``, which treats the quiet logs as a finished run, where a
  dead end also violates: docs/conformance.md), else 0.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from resumespec import exitcodes

from .checker_native import NativeChecker, Verdict
from .merge import _CHANNEL  # the offline merge's send/receive table: one set of order rules
from .trace import MAX_LINE_BYTES, MalformedTrace, read_trace_batches

INTERVAL_S = 0.05        # polling period
MAX_LAG_S = 0.25         # how long an event waits for a process that is behind
READ_BYTES = 128 << 10   # bytes read from one file per poll, at most
MAX_QUEUE = 512          # a file with this many events held back is not read further
ROTATE_GRACE_S = 1.0     # a file renamed away is followed this long after it stops growing
CLOSED_CHECK_S = 1.0     # a last line without newline, unchanged this long: is its file
                         # still open in some process?  (checked at most this often)
WINDOW = 400             # events kept for the HTML report of a violation
_INF = float("inf")


# ---------------------------------------------------------------------------
# One log file, followed by name
# ---------------------------------------------------------------------------
def open_elsewhere(name: str, own_fd: int) -> bool | None:
    """Whether the file ``name`` is open anywhere but in our descriptor
    ``own_fd`` (Linux: the /proc/PID/fd links); None when that cannot be
    known (no /proc, or a process whose descriptors we may not read)."""
    me = str(os.getpid())
    unknown = False
    try:
        pids = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            fds = list(os.scandir(f"/proc/{pid}/fd"))
        except FileNotFoundError:
            continue                  # the process ended meanwhile
        except OSError:
            unknown = True            # not ours to look at
            continue
        for fd in fds:
            if pid == me and fd.name == str(own_fd):
                continue
            try:
                link = os.readlink(fd.path)
            except OSError:
                continue
            if link == name or link == name + " (deleted)":
                return True
    return None if unknown else False
@dataclass
class _Pending:
    ts: float
    line: int
    ev: dict
    path: str
    seen: float            # time.monotonic() when the monitor read it


class Tail:
    """Follows ``path`` across growth, rotation and truncation.

    ``poll()`` reads what was appended since the last call and returns the
    new events (as ``_Pending``) and the findings (MalformedTrace) in file
    order.  Lines are numbered per file *segment*: a rotated or truncated
    file starts again at line 1, as the new file does.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.clock = clock
        self.f: io.BufferedReader | None = None
        self.ident: tuple[int, int] | None = None   # (st_dev, st_ino) of the open segment
        self.pos = 0               # bytes of the segment consumed (complete lines)
        self.line = 0              # lines of the segment consumed
        self.rest = b""            # the last line, without its newline yet
        self.procs: set[str] = set()
        self.queue: deque[_Pending] = deque()
        self.last_ts: float | None = None    # ts of the last event read
        self.grew_at = clock()     # when the segment last grew (or was opened)
        self.gone_since: float | None = None  # when its name stopped pointing at it
        self.segments = 0
        self.at_eof = False        # the last read reached the end of the file
        self.closed_check_at = 0.0
        self.notes: list[str] = []           # what happened to the file, for the log

    # -- the file -----------------------------------------------------------------
    def _open(self) -> bool:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return False
        st = os.fstat(f.fileno())
        self.f, self.ident = f, (st.st_dev, st.st_ino)
        self.pos, self.line, self.rest = 0, 0, b""
        self.grew_at, self.gone_since = self.clock(), None
        self.segments += 1
        if self.segments > 1:
            self.notes.append("reopened (new file under the same name)")
        return True

    def _name_now(self) -> str:
        """Where the open segment lives now (Linux: its new name after a rename)."""
        if self.f is not None:
            try:
                name = os.readlink(f"/proc/self/fd/{self.f.fileno()}")
                return name[:-len(" (deleted)")] if name.endswith(" (deleted)") else name
            except OSError:
                pass
        return self.path

    def poll(self, out: list, errors: list, *, final: bool = False) -> bool:
        """Read what is new; True when anything was read.  ``final``: the
        monitor stops, so a last line without newline is judged now."""
        grew = False
        if self.f is None and not self._open():
            return False
        if len(self.queue) >= MAX_QUEUE and not final:
            return False          # far ahead of the others: let them catch up
        f = self.f
        assert f is not None
        st = os.fstat(f.fileno())
        if st.st_size < self.pos + len(self.rest):     # truncated in place
            self._end_segment(out, errors, why="truncated")
            self.notes.append("truncated: reading it again from the start")
            f.seek(0)
            self.pos, self.line, self.rest = 0, 0, b""
            self.segments += 1
        grew |= self._read(out, errors, final)
        try:
            now = os.stat(self.path)
            ident = (now.st_dev, now.st_ino)
        except FileNotFoundError:
            ident = None
        if ident != self.ident:
            if ident is not None:      # rotated: a new file has the name
                grew |= self._drain(out, errors)
                self._end_segment(out, errors, why="rotated")
                f.close()
                self.f = None
                if self._open():        # (unless it went away again meanwhile)
                    grew |= self._read(out, errors, final)
            else:                       # renamed away or deleted: follow it a while
                if self.gone_since is None:
                    self.gone_since = self.clock()
                    self.notes.append(f"renamed away or deleted (now {self._name_now()})")
                if self.clock() - max(self.gone_since, self.grew_at) >= ROTATE_GRACE_S:
                    self._end_segment(out, errors, why="rotated")
                    f.close()
                    self.f = None
        if final and self.f is not None:
            grew |= self._drain(out, errors)
            self._end_segment(out, errors, why="stopped")
        elif (self.rest and self.f is not None
              and self.clock() - max(self.grew_at, self.closed_check_at) >= CLOSED_CHECK_S):
            self.closed_check_at = self.clock()
            if open_elsewhere(self._name_now(), self.f.fileno()) is False:
                self.notes.append("closed by its writer in the middle of a line")
                self._end_segment(out, errors, why="closed")
        return grew

    def _drain(self, out, errors) -> bool:
        grew = False
        while self._read(out, errors, False):
            grew = True
        return grew

    def _read(self, out: list, errors: list, final: bool) -> bool:
        if self.f is None:
            return False
        data = self.f.read(READ_BYTES)
        self.at_eof = len(data) < READ_BYTES
        if not data:
            return False
        self.grew_at = self.clock()
        buf = self.rest + data if self.rest else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self.rest = buf
            if len(buf) > MAX_LINE_BYTES:     # not a line any more: the reader words it
                self.rest = b""
                self._parse(buf, out, errors, complete=False)
            return True
        self.rest = buf[cut + 1:]
        self._parse(buf[:cut + 1], out, errors, complete=True)
        return True

    def _end_segment(self, out: list, errors: list, why: str) -> None:
        """The segment will not grow any more: its last line is final."""
        if self.rest:
            rest, self.rest = self.rest, b""
            self._parse(rest, out, errors, complete=False, name=self._name_now())

    def _parse(self, text: bytes, out: list, errors: list, *, complete: bool,
               name: str | None = None) -> None:
        """Validate the lines of ``text`` (the reader's own checks and words)
        and append them as events; a bad line becomes a MalformedTrace in
        ``errors`` and reading goes on after it."""
        name = name or self.path
        seen = self.clock()
        while text:
            base = self.line
            try:
                for before, events, _ in read_trace_batches(io.BytesIO(text), name):
                    line = base + before
                    for ev in events:
                        line += 1
                        ts = ev.get("ts")
                        ts = _INF if ts is None else ts
                        out.append((self, _Pending(ts, line, ev, name, seen)))
                        self.procs.add(ev["proc"])
                        if ts != _INF:
                            self.last_ts = ts
            except MalformedTrace as e:
                errors.append((self, MalformedTrace(base + e.line, e.field, e.expected, name,
                                                    e.got)))
                # go on after the bad line
                k = e.line
                pos = 0
                for _ in range(k):
                    nl = text.find(b"\n", pos)
                    if nl < 0:
                        pos = len(text)
                        break
                    pos = nl + 1
                self.line = base + k
                self.pos += pos
                text = text[pos:]
                continue
            self.line = base + text.count(b"\n") + (0 if complete else 1)
            self.pos += len(text)
            break

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


# ---------------------------------------------------------------------------
# The monitor
# ---------------------------------------------------------------------------
@dataclass
class Finding:
    kind: str                  # "violates", "malformed" or "incomplete"
    verdict: Verdict
    delay: float | None = None  # seconds from reading the event's line to the report
    reported: float = 0.0       # wall-clock time of the report
    html: str | None = None
    number: int = 0

    def to_json(self) -> dict:
        d = {"type": "finding", "number": self.number, **self.verdict.to_json(),
             "reported_at": round(self.reported, 6)}
        d.pop("coverage", None)
        if self.delay is not None:
            d["delay_s"] = round(self.delay, 6)
        return d


@dataclass
class Stats:
    events: int = 0            # events fed to the checker
    skipped: int = 0           # events of requests quarantined after a violation
    files: int = 0
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)


class Monitor:
    """Follow the ``*.jsonl`` logs of ``directory`` and check them live.

    Drive it with ``poll()`` (one round: read, merge, check) and ``stop()``;
    ``run()`` does both until a signal, ``--exit-on-first`` or ``idle_exit``.
    ``on_finding(finding)``, ``on_html(finding)`` (its HTML report is
    written) and ``on_note(path, text)`` (a file appeared, rotated, ...) are
    called as things happen.
    """

    def __init__(self, directory: str, *, bound: int | None = None,
                 max_lag: float = MAX_LAG_S, exit_on_first: bool = False,
                 html: str | None = None, window: int = WINDOW,
                 on_finding: Callable[[Finding], None] | None = None,
                 on_note: Callable[[str, str], None] | None = None,
                 on_html: Callable[[Finding], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.dir = directory
        self.bound = bound
        self.max_lag = max_lag
        self.exit_on_first = exit_on_first
        self.html = html
        self.clock = clock
        self.on_finding = on_finding or (lambda f: None)
        self.on_note = on_note or (lambda p, t: None)
        self.on_html = on_html or (lambda f: None)
        self.ignored: set[str] = set()              # names that are rotated copies
        self.tails: list[Tail] = []
        self.by_path: dict[str, Tail] = {}
        self.checker = NativeChecker(bound=bound)
        self.pending: dict[tuple, int] = {}     # (channel, req, session) -> sent, not received
        self.quarantine: set[int] = set()        # requests not checked any more
        self.resync: set[str] = set()            # processes whose next seq is taken as given
        self.window: deque = deque(maxlen=window)
        self.pages = 0                           # HTML reports written
        self.findings: list[Finding] = []
        self.worst = exitcodes.OK
        self.stats = Stats()
        self.done = False                        # exit_on_first met a finding
        self.last_growth = clock()

    # -- reading --------------------------------------------------------------------
    def _scan(self) -> None:
        try:
            names = sorted(e.name for e in os.scandir(self.dir)
                           if e.name.endswith(".jsonl") and e.is_file())
        except FileNotFoundError:
            return
        # files held open cannot have their inode reused: one seen again under
        # another name is the same file, renamed
        open_idents = {t.ident for t in self.tails if t.f is not None}
        for name in names:
            path = os.path.join(self.dir, name)
            if path not in self.by_path and path not in self.ignored:
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) in open_idents:
                    # a followed file renamed to another *.jsonl name (rotation):
                    # its events were read under its old name
                    self.ignored.add(path)
                    self.on_note(path, "a rotated log already followed under another "
                                       "name: not read again")
                    continue
                t = Tail(path, self.clock)
                self.by_path[path] = t
                self.tails.append(t)
                self.tails.sort(key=lambda x: x.path)   # file order, as the offline merge
                self.stats.files += 1
                self.on_note(path, "appeared")

    def behind(self) -> bool:
        """Some followed file holds more than the monitor has read."""
        return any(t.f is not None and not t.at_eof for t in self.tails)

    def poll(self, *, final: bool = False, draining: bool = False) -> bool:
        """One round: find new files, read every file, check what can be merged.
        Returns True when some file grew.  ``final``: nothing will be
        appended any more (the monitor stops): read to the end and merge
        everything.  ``draining``: merge without waiting for processes that
        are behind but have nothing more on disk."""
        if self.done:
            return False
        self._scan()
        grew = False
        for t in self.tails:
            out: list = []     # events and bad lines, in file order
            try:
                grew |= t.poll(out, out, final=final)
            except OSError as e:
                out.append((t, MalformedTrace(t.line + 1, None,
                                              f"a readable file ({e.strerror or e})", t.path)))
            for note in t.notes:
                self.on_note(t.path, note)
            t.notes.clear()
            for _, p in out:
                if isinstance(p, MalformedTrace):
                    # reported when the merge reaches it: after the events before it
                    p = _Pending(_INF, p.line, {"__malformed__": p}, p.path or t.path,
                                 self.clock())
                t.queue.append(p)
        if grew:
            self.last_growth = self.clock()
        self._merge(final, 0.0 if draining else self.max_lag)
        return grew

    # -- merging ----------------------------------------------------------------------
    def _ready(self, p: _Pending) -> bool:
        ch = _CHANNEL.get(p.ev["event"])
        if ch is None or ch[1]:
            return True
        return self.pending.get((ch[0], p.ev["req"], p.ev["session"]), 0) > 0

    def _merge(self, final: bool, lag: float) -> None:
        now = self.clock()
        while not self.done:
            best = best_key = None
            first_live = None
            for i, t in enumerate(self.tails):
                if not t.queue:
                    continue
                h = t.queue[0]
                if "__malformed__" in h.ev:     # a bad line is reported in file order
                    best = t
                    break
                if first_live is None:
                    first_live = t
                if not self._ready(h):
                    continue
                key = (h.ts, i)
                if best_key is None or key < best_key:
                    best, best_key = t, key
            if first_live is None and best is None:
                return
            if best is None:              # nothing is causally ready
                assert first_live is not None
                h = first_live.queue[0]
                oldest = min(t.queue[0].seen for t in self.tails if t.queue)
                if not final and (now - oldest < lag or any(
                        not t.queue and t.f is not None and not t.at_eof for t in self.tails)):
                    return     # the send may still come (a file not read to its end)
                best = first_live
            else:
                h = best.queue[0]
                if not final and "__malformed__" not in h.ev:
                    # a process with nothing pending may still log something
                    # earlier: wait for it (bounded), and always for a file
                    # not read to its end yet
                    waited = now - h.seen >= lag
                    for t in self.tails:
                        if t is not best and not t.queue and t.f is not None and (
                                t.last_ts is None or t.last_ts < h.ts) and (
                                    not waited or not t.at_eof):
                            return
            best.queue.popleft()
            self._feed(best, h)

    # -- checking --------------------------------------------------------------------------
    def _feed(self, tail: Tail, p: _Pending) -> None:
        ev = p.ev
        if "__malformed__" in ev:
            err = ev["__malformed__"]
            self.resync.update(tail.procs)    # the lost line's seq is unknown
            self._found("malformed", self._malformed_verdict(err), p.seen)
            self._restart()                   # and so is what it did
            return
        ch = _CHANNEL.get(ev["event"])
        if ch is not None:
            k = (ch[0], ev["req"], ev["session"])
            n = self.pending.get(k, 0) + (1 if ch[1] else -1)
            if n:
                self.pending[k] = n
            else:
                self.pending.pop(k, None)
        proc = ev["proc"]
        chk = self.checker
        if proc in self.resync:
            self.resync.discard(proc)
            chk.next_seq[proc] = ev["seq"]
        req = ev.get("req")
        if req is not None and req in self.quarantine:
            chk.next_seq[proc] = ev["seq"] + 1
            self.stats.skipped += 1
            return
        self.window.append((p.path, p.line, ev))
        self.stats.events += 1
        try:
            v = chk.feed(p.line, ev, p.path)
        except MalformedTrace as e:       # a gap or repeat in seq
            self._found("malformed", self._malformed_verdict(e, ev), p.seen)
            self._restart(extra_req=req, consumed=ev)
            return
        if v is not None:
            self._found("violates", v, p.seen)
            self._restart(extra_req=req)

    def _malformed_verdict(self, e: MalformedTrace, ev: dict | None = None) -> Verdict:
        return Verdict("malformed", message=e.message(), expected=e.expected, file=e.path,
                       line=e.line, event=ev if ev is not None else (
                           {"field": e.field} if e.field else None),
                       events=self.stats.events)

    def _restart(self, extra_req: int | None = None, consumed: dict | None = None) -> None:
        """Go on after a finding with a fresh checker: the requests the old one
        held state for are skipped from now on; seq and config carry over."""
        if self.done:
            return
        old = self.checker
        live = old.live_requests()
        if extra_req is not None:
            live.add(extra_req)
        self.quarantine |= live
        new = old.successor()
        if consumed is not None:
            new.next_seq[consumed["proc"]] = consumed["seq"] + 1
        self.checker = new
        self.stats.restarts += 1

    def _found(self, kind: str, v: Verdict, seen: float | None) -> None:
        delay = None if seen is None else max(0.0, self.clock() - seen)
        f = Finding(kind, v, delay=delay, reported=time.time(), number=len(self.findings) + 1)
        self.findings.append(f)
        code = {"violates": exitcodes.VIOLATES, "malformed": exitcodes.MALFORMED,
                "incomplete": exitcodes.INCOMPLETE}[kind]
        from .cli import severity
        if severity(code) > severity(self.worst):
            self.worst = code
        self.on_finding(f)
        if self.html and kind == "violates":
            try:
                f.html = self._write_html(f)
            except OSError as e:
                self.on_note(self.html, f"cannot write the HTML report: {e.strerror or e}")
            else:
                self.on_html(f)
        if self.exit_on_first and kind in ("violates", "malformed"):
            self.done = True

    def _write_html(self, f: Finding) -> str:
        """The HTML report of the events before the finding (and the window as
        JSON Lines next to it, which ``resumespec report trace`` reads too)."""
        from resumespec.report.html import render_html
        from resumespec.report.trace_story import timeline_from_trace

        assert self.html is not None
        target = Path(self.html)
        self.pages += 1
        if target.suffix.lower() in (".html", ".htm"):
            html = target if self.pages == 1 else target.with_name(
                f"{target.stem}-{self.pages}{target.suffix}")
        else:
            target.mkdir(parents=True, exist_ok=True)
            html = target / f"finding-{f.number}.html"
        html.parent.mkdir(parents=True, exist_ok=True)
        win = html.with_suffix(".window.jsonl")
        v = f.verdict
        hl = None
        with open(win, "w", encoding="utf-8") as out:
            for i, (path, line, ev) in enumerate(self.window, 1):
                out.write(json.dumps(ev, separators=(",", ":")) + "\n")
                if path == v.file and line == v.line:
                    hl = i
        wv = Verdict(v.verdict, prop=v.prop, message=v.message, expected=v.expected,
                     file=str(win), line=hl, event=v.event, story=v.story, state=v.state,
                     events=v.events)
        title = (f"live monitor of {self.dir}: the last {len(self.window)} events checked "
                 f"before {v.verdict} at {v.file}:{v.line}")
        t = timeline_from_trace([str(win)], wv, title=title, max_steps=len(self.window) + 1)
        t.notes.append(f"The window starts mid-run: the pools show only what these "
                       f"{len(self.window)} events say. Its events are in {win}.")
        html.write_text(render_html(t), encoding="utf-8")
        return str(html)

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, *, judge: bool = False) -> dict:
        """Read what is left (a last line without newline is final now), check
        it, and return the summary.  ``judge``: the run is over, so open
        obligations make it incomplete, or violate where no spec step is
        enabled at the end (as the offline checker says)."""
        if not self.done:
            # what is left, in bounded steps (the merge keeps up), then the rest
            budget = time.monotonic() + 5.0
            while not self.done and self.behind() and time.monotonic() < budget:
                self.poll(draining=True)
            self.poll(final=True)
        for t in self.tails:
            t.close()
        open_reqs = None
        if not self.done:
            if judge:
                v = self.checker.finish()
                if v.verdict != "conforms":
                    # (a dead end at the end of the logs violates, as offline)
                    self._found("violates" if v.verdict == "violates" else "incomplete", v,
                                None)
            open_reqs = len(self.checker.live_requests())
        return {"type": "summary", "directory": self.dir, "files": self.stats.files,
                "events": self.stats.events, "skipped": self.stats.skipped,
                "findings": len(self.findings),
                "violations": sum(1 for f in self.findings if f.kind == "violates"),
                "malformed": sum(1 for f in self.findings if f.kind == "malformed"),
                "requests_open": open_reqs,
                "seconds": round(self.clock() - self.stats.started, 3),
                "exit_code": self.worst}

    def run(self, *, interval: float = INTERVAL_S, idle_exit: float | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> dict:
        """Poll until ``should_stop()``, a finding with exit_on_first, or
        ``idle_exit`` seconds without growth; then stop and summarise."""
        idle = False
        while not self.done and not should_stop():
            t0 = self.clock()
            self.poll()
            if idle_exit is not None and self.clock() - self.last_growth >= idle_exit:
                idle = True
                break
            behind = any(t.f is not None and not t.at_eof and len(t.queue) < MAX_QUEUE
                         for t in self.tails)
            left = interval - (self.clock() - t0)
            if left > 0 and not behind:      # catching up: no sleep
                time.sleep(left)
        return self.stop(judge=idle)


# ---------------------------------------------------------------------------
# Command line (wired into ``resumespec conform --follow``)
# ---------------------------------------------------------------------------
def add_arguments(p) -> None:
    g = p.add_argument_group(
        "live monitoring",
        "resumespec conform --follow DIR: check the logs of a running engine as they grow "
        "(docs/engine-guide.md, 'Watch a running engine')")
    g.add_argument("--follow", action="store_true",
                   help="TRACE is a directory an engine is writing into: tail its *.jsonl "
                        "files and report violations as they happen")
    g.add_argument("--exit-on-first", action="store_true",
                   help="with --follow: stop at the first violation or malformed line")
    g.add_argument("--html", metavar="DIR_OR_FILE",
                   help="with --follow: write the HTML report of the events before each "
                        "violation (a .html name, or a directory)")
    g.add_argument("--interval", type=float, default=INTERVAL_S, metavar="S",
                   help=f"with --follow: poll every S seconds (default {INTERVAL_S})")
    g.add_argument("--max-lag", type=float, default=MAX_LAG_S, metavar="S",
                   help=f"with --follow: wait at most S seconds for a process that is "
                        f"behind before checking later events (default {MAX_LAG_S})")
    g.add_argument("--idle-exit", type=float, default=None, metavar="S",
                   help="with --follow: stop when no file grew for S seconds and judge the "
                        "logs as a finished run (open requests: incomplete)")


def _print_json(doc: dict) -> None:
    print(json.dumps(doc, separators=(",", ":"), default=str), flush=True)


def follow_requested(args) -> bool:
    """--follow, or one of its options (which then need it)."""
    g = lambda name, default=None: getattr(args, name, default)
    return bool(g("follow") or g("exit_on_first") or g("html") or g("idle_exit") is not None
                or g("interval", INTERVAL_S) != INTERVAL_S or g("max_lag", MAX_LAG_S) != MAX_LAG_S)


def run_follow(args) -> int:
    """``resumespec conform --follow DIR``."""
    from .cli import text_report

    if len(args.traces) != 1:
        print("conform: --follow takes one directory", file=sys.stderr)
        return exitcodes.USAGE
    if args.checker != "native":
        print("conform: --follow checks with the native checker only", file=sys.stderr)
        return exitcodes.USAGE
    other = [o for o, on in (("--junit-xml", args.junit_xml), ("--coverage", args.coverage),
                             ("--merge", args.merge)) if on]
    if other and args.follow:
        print(f"conform: {', '.join(other)} cannot be used with --follow", file=sys.stderr)
        return exitcodes.USAGE
    if args.bound is not None and args.bound < 1:
        print("conform: --bound must be >= 1", file=sys.stderr)
        return exitcodes.USAGE
    if args.interval <= 0 or args.max_lag < 0 or (args.idle_exit is not None
                                                   and args.idle_exit <= 0):
        print("conform: --interval and --idle-exit must be > 0, --max-lag >= 0",
              file=sys.stderr)
        return exitcodes.USAGE
    if not args.follow:
        print("conform: --exit-on-first, --html, --idle-exit, --interval and --max-lag "
              "need --follow", file=sys.stderr)
        return exitcodes.USAGE
    d = args.traces[0]
    if not os.path.isdir(d):
        what = "not a directory" if os.path.exists(d) else "no such directory (create it first)"
        print(f"conform: {d}: {what}; --follow needs the directory an engine writes its "
              f"logs into (RESUMESPEC_TRACE)", file=sys.stderr)
        return exitcodes.BAD_INPUT
    as_json, quiet = args.json, args.quiet

    def on_finding(f: Finding) -> None:
        if as_json:
            _print_json(f.to_json())
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(f.reported))
            print(f"[{stamp}] " + text_report(d, f.verdict), flush=True)

    def on_html(f: Finding) -> None:
        if as_json:
            _print_json({"type": "html", "finding": f.number, "path": f.html})
        else:
            print(f"  HTML report of this violation: {f.html}", flush=True)

    def on_note(path: str, text: str) -> None:
        if as_json:
            _print_json({"type": "file", "path": path, "note": text, "at": time.time()})
        elif not quiet:
            print(f"conform --follow: {path}: {text}", file=sys.stderr, flush=True)

    mon = Monitor(d, bound=args.bound, max_lag=args.max_lag,
                  exit_on_first=args.exit_on_first, html=args.html,
                  on_finding=on_finding, on_note=on_note, on_html=on_html)
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if not quiet:
            print(f"conform --follow: watching {d} (every {args.interval}s; Ctrl-C stops)",
                  file=sys.stderr, flush=True)
        summary = mon.run(interval=args.interval, idle_exit=args.idle_exit,
                          should_stop=lambda: stop["signal"] is not None)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stop["signal"] is not None:
        summary["stopped_by"] = signal.Signals(stop["signal"]).name
    elif mon.done:
        summary["stopped_by"] = "exit-on-first"
    else:
        summary["stopped_by"] = "idle-exit"
    if as_json:
        _print_json(summary)
    else:
        open_reqs = summary["requests_open"]
        tail = (f"; {open_reqs} request(s) in flight, not judged (the run may go on)"
                if open_reqs and summary["stopped_by"] not in ("idle-exit",) else "")
        print(f"{d}: followed {summary['files']} file(s), {summary['events']:,} events "
              f"checked, {summary['skipped']:,} skipped after a finding; "
              f"{summary['violations']} violation(s), {summary['malformed']} malformed "
              f"line(s){tail}; stopped by {summary['stopped_by']}; exit {summary['exit_code']}",
              flush=True)
    return summary["exit_code"]
