"""The API engines call to log trace events.

    from resumespec.conformance.recorder import recorder_for

    rec = recorder_for("language/1")      # once per process (rank)
    ...
    rec.log("alloc", rank=1, req=rid, tokens=n, blocks=blocks)
    if rec.enabled:                       # guard costly argument building
        rec.log("buffer_read", req=rid, session=1, blocks=b, aux_total=t,
                tokens=n, ids=expensive_ids())

Tracing is off unless the environment variable ``RESUMESPEC_TRACE`` is set:

* ``RESUMESPEC_TRACE=/some/dir``: one file per process,
  ``/some/dir/encode.jsonl``, ``/some/dir/language-1.jsonl``, ...
* ``RESUMESPEC_TRACE=/some/file.jsonl``: every process of this OS process
  appends to one file, in the order they log.

When off, ``recorder_for`` returns a recorder whose ``log`` does nothing
(one attribute lookup and a call; ``enabled`` is False).  When on, ``log``
checks the fields against the trace catalogue (set
``RESUMESPEC_TRACE_CHECK=0`` to skip that in production) and is thread-safe.
The check is compiled per event from the catalogue (``fields_checker``) and
looks at the caller's fields only; anything it does not accept at once
(engine-private ``x_`` fields are accepted too) goes through
``trace.validate_event`` on the whole record, which raises the reader's own
error for a bad one.

What is on disk when (``python -m bench recorder`` measures each mode):

* **buffered** (the default): ``log`` formats the line and keeps it in a
  list in the process's memory.  The lines go to the file, in order, with
  one ``os.write``

  - when ``BUFFER_LINES`` (512) lines have gathered (inside that ``log``);
  - every ``FLUSH_INTERVAL_S`` (10 ms; ``RESUMESPEC_TRACE_FLUSH_MS``): a
    daemon thread, one per OS process, writes what every buffered file
    holds, so a line waits at most that long (plus the time the thread
    waits for the GIL: at most the interpreter's switch interval, 5 ms, when
    another thread is busy) however rarely the process logs;
  - on ``flush()``, ``close()``, ``close_all()`` and at interpreter exit
    (``atexit``).

  What a crash loses: an exception that ends the interpreter loses nothing
  (``atexit`` writes the rest).  ``kill -9``, a segfault or ``os._exit``
  (how ``multiprocessing`` children end: call ``close_all()`` at the end of
  the child) lose the lines logged after the last of those writes: at most
  the last 10 ms (and 511 events) before the death, and nothing logged
  before a ``flush()`` that returned.  Lines written are whole lines (a kill
  in the middle of a large ``os.write`` can cut the last one, which a
  reader reports as truncated).
* **per line** (``RESUMESPEC_TRACE_FLUSH=1``, or ``flush=True``): each line
  is written with its own ``os.write`` before ``log`` returns.  A process
  killed any way loses nothing it logged (the kernel holds the bytes); only
  a crash of the machine itself can (nothing calls ``fsync``).  A live
  monitor (``resumespec conform --follow``) sees events as they happen only
  in this mode (buffered, up to 10 ms later).

Not used: a memory-mapped file would survive ``kill -9`` of the writer at
the cost of a copy, but it must be sized ahead of the lines, and after a
kill nobody cuts the NUL bytes past the last line, which the trace reader
rejects (docs/trace-format.md, "Files").

The lines are those ``TraceWriter`` writes (``v``, ``proc``, ``seq``,
``event``, ``ts``, then the fields in the caller's order; compact JSON),
except that text is written as UTF-8 rather than ``\\u`` escapes and ``ts``
always has six decimals.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from . import trace as _trace
from .trace import (
    ENCODE,
    EVENTS,
    EXTENSION_PREFIX,
    PROC,
    SCHEMA_VERSION,
    EventSpec,
    _is_proc,
    validate_event,
)

ENV_TRACE = "RESUMESPEC_TRACE"
ENV_CHECK = "RESUMESPEC_TRACE_CHECK"
ENV_FLUSH = "RESUMESPEC_TRACE_FLUSH"
ENV_FLUSH_MS = "RESUMESPEC_TRACE_FLUSH_MS"
BUFFER_LINES = 512               # buffered mode writes when this many lines have gathered


def _interval_from_env() -> float:
    raw = os.environ.get(ENV_FLUSH_MS, "10")
    try:
        ms = float(raw)
    except ValueError:
        raise ValueError(f"{ENV_FLUSH_MS} must be a number of milliseconds, got {raw!r}") from None
    if not ms >= 0:
        raise ValueError(f"{ENV_FLUSH_MS} must be >= 0 (0: no timed writes), got {raw!r}")
    return ms / 1000


# buffered mode: the flusher thread writes every buffered file this often
# (0: never; the lines then wait for BUFFER_LINES, flush(), close() or exit);
# read from the environment by the first recorder_for that turns tracing on
FLUSH_INTERVAL_S: float | None = None

_dumps = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE


# ---------------------------------------------------------------------------
# The fields check, compiled per event from the catalogue.  It looks at the
# caller's keyword arguments only (the recorder makes v, proc, seq and ts
# itself) and answers True only for fields the catalogue accepts; False
# sends the call to validate_event on the whole record, which accepts it
# or raises the reader's error.  tests/test_recorder.py compares the two.
# ---------------------------------------------------------------------------
def _extensions(fields: dict) -> int:
    return sum(1 for k in fields if k.startswith(EXTENSION_PREFIX))


def fields_checker_source(spec: EventSpec) -> str:
    """The Python source of the fields check of ``spec``: its required
    fields present and of their types, its optional ones of their types
    when present, engine-private ``x_`` fields, nothing else."""
    req, opt = spec.required, spec.optional
    assert all(f.isidentifier() for f in req + opt)
    src = [f"def fields_{spec.name}(o):"]
    if req:
        src += ["    try:"] + [f"        f_{f} = o[{f!r}]" for f in req]
        src += ["    except KeyError:", "        return False"]
    src += ["    n = len(o)", f"    if n != {len(req)}:", f"        k = {len(req)}"]
    for f in opt:
        src += [f"        x = o.get({f!r}, _MISSING)", "        if x is not _MISSING:"]
        src += _trace._fast_field_check(spec.types[f], "x", " " * 12)
        src += ["            k += 1"]
    src += ["        if n != k and n != k + _extensions(o):", "            return False"]
    scalars = [spec.types[f].inline("f_" + f) for f in req if not spec.types[f].item]
    if scalars:
        src.append("    if not (" + "\n            and ".join(scalars) + "):")
        src.append("        return False")
    for f in req:
        if spec.types[f].item:
            src += _trace._fast_field_check(spec.types[f], "f_" + f, "    ")
    src.append("    return True")
    return "\n".join(src) + "\n"


def _compile_fields_checker(spec: EventSpec) -> Callable[[dict], bool]:
    scope = dict(vars(_trace))            # the field types' tests name the trace module's sets
    scope["_extensions"] = _extensions
    made: dict[str, Any] = {}
    exec(compile(fields_checker_source(spec), f"<fields check of {spec.name}>", "exec"),
         scope, made)
    return made[f"fields_{spec.name}"]


FIELDS_CHECKERS: dict[str, Callable[[dict], bool]] = {
    name: _compile_fields_checker(spec) for name, spec in EVENTS.items()}


def _side_allows(spec: EventSpec, proc: str) -> bool:
    return spec.side_check is None or (proc == ENCODE) == spec.side_check


class NullRecorder:
    """Tracing disabled: every call is a no-op."""

    enabled = False
    proc = None

    def log(self, event: str, **fields: Any) -> None:
        return None

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


NULL = NullRecorder()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Sink:
    """One open trace file: its descriptor, its buffer and the lock every
    recorder writing to it shares (lines go out in the order they were
    logged)."""

    def __init__(self, path: Path, per_line: bool):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.per_line = per_line
        self.lock = threading.Lock()
        self.buf: list[bytes] = []
        self.closed = False

    def drain(self) -> None:
        """Write the buffered lines (the caller holds the lock)."""
        if self.buf:
            data = b"".join(self.buf)
            self.buf.clear()
            _write_all(self.fd, data)

    def flush(self) -> None:
        with self.lock:
            if not self.closed:
                self.drain()

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.drain()
                os.close(self.fd)
                self.closed = True


class Recorder:
    """Tracing enabled: writes one JSON line per event for one process."""

    enabled = True

    def __init__(self, sink: _Sink, proc: str, check: bool = True):
        if not _is_proc(proc):
            raise ValueError(f"proc must be {PROC.expected}, got {proc!r}")
        self._sink = sink
        self.proc = proc
        self.check = check
        self._seq = [0]
        self.log = self._make_log()   # type: ignore[method-assign]

    @property
    def seq(self) -> int:
        """The sequence number the next event gets."""
        return self._seq[0]

    def _make_log(self):
        """``log`` as a closure over what it touches.  The common case costs
        the event's fields check (looked up, then called), its preformatted
        middle (looked up), one orjson call on the caller's own keyword
        dict, the lock, the clock and one bytes formatting; everything else
        (an unknown event, a field the check does not accept at once) takes
        ``slow``, the record built and validated whole."""
        sink, proc, check, seqbox = self._sink, self.proc, self.check, self._seq
        lock, buf = sink.lock, sink.buf
        append, per_line, fd = buf.append, sink.per_line, sink.fd
        dumps, now, write, limit = _dumps, time.time, os.write, BUFFER_LINES
        clock = time.time_ns
        NL = _NEWLINE

        head = b'{"v":%d,"proc":%s,"seq":' % (SCHEMA_VERSION, dumps(proc))
        # event -> the line from the "," after seq up to ts's value
        mids = {name: b',"event":%s,"ts":' % dumps(name) for name in EVENTS}
        # event -> its fields check (only the events of this process's side)
        checks = {name: FIELDS_CHECKERS[name] for name, spec in EVENTS.items()
                  if _side_allows(spec, proc)}

        def emit(line: bytes) -> None:      # under the lock
            if per_line:
                _write_all(fd, line)
            else:
                append(line)
                if len(buf) >= limit:
                    sink.drain()

        def slow(event: str, fields: dict) -> None:
            if event not in EVENTS:
                raise ValueError(f"unknown trace event {event!r}; known: {', '.join(EVENTS)}")
            with lock:
                if sink.closed:
                    raise ValueError(f"trace file {sink.path} is closed")
                seq = seqbox[0]
                record = {"v": SCHEMA_VERSION, "proc": proc, "seq": seq, "event": event,
                          "ts": round(now(), 6)}
                record.update(fields)
                if check:
                    validate_event(record, seq + 1)
                line = dumps(record, option=NL)
                seqbox[0] = seq + 1
                emit(line)

        def log(event: str, **fields: Any) -> None:
            # the checked recorder's log; ``log_unchecked`` below differs only
            # in its first three lines (one branch less per event)
            check_fields = checks.get(event)
            if check_fields is None or not check_fields(fields):
                return slow(event, fields)
            mid = mids[event]
            body = dumps(fields, option=NL) if fields else None
            with lock:
                if sink.closed:
                    raise ValueError(f"trace file {sink.path} is closed")
                seq = seqbox[0]
                sec, us = divmod(clock() // 1000, 1_000_000)    # ts: microseconds
                if body is None:
                    line = b"%s%d%s%d.%06d}\n" % (head, seq, mid, sec, us)
                else:
                    line = b"%s%d%s%d.%06d,%s" % (head, seq, mid, sec, us, body[1:])
                seqbox[0] = seq + 1
                if per_line:
                    n = write(fd, line)
                    if n != len(line):          # a regular file takes it whole; a pipe may not
                        _write_all(fd, line[n:])
                else:
                    append(line)
                    if len(buf) >= limit:
                        sink.drain()

        def log_unchecked(event: str, **fields: Any) -> None:
            mid = mids.get(event)
            if mid is None:
                return slow(event, fields)
            body = dumps(fields, option=NL) if fields else None
            with lock:
                if sink.closed:
                    raise ValueError(f"trace file {sink.path} is closed")
                seq = seqbox[0]
                sec, us = divmod(clock() // 1000, 1_000_000)
                if body is None:
                    line = b"%s%d%s%d.%06d}\n" % (head, seq, mid, sec, us)
                else:
                    line = b"%s%d%s%d.%06d,%s" % (head, seq, mid, sec, us, body[1:])
                seqbox[0] = seq + 1
                if per_line:
                    n = write(fd, line)
                    if n != len(line):
                        _write_all(fd, line[n:])
                else:
                    append(line)
                    if len(buf) >= limit:
                        sink.drain()
        return log if check else log_unchecked

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self._sink.close()


_registry: dict[tuple[str, str], Recorder] = {}
_sinks: dict[str, _Sink] = {}
_guard = threading.Lock()
_flusher: threading.Thread | None = None
_flusher_stop = threading.Event()


def _flush_loop() -> None:
    """The flusher thread: every FLUSH_INTERVAL_S, write what each buffered
    file holds; it ends once no file is open (``recorder_for`` starts
    another when one is)."""
    global _flusher
    while FLUSH_INTERVAL_S and not _flusher_stop.wait(FLUSH_INTERVAL_S):
        for sink in list(_sinks.values()):
            if sink.buf and not sink.closed:
                try:
                    sink.flush()
                except OSError:         # a full disk: log() raises it to its caller
                    pass
        with _guard:
            if not _sinks:
                _flusher = None
                return


def _start_flusher() -> None:
    """Start the flusher thread unless it runs (the caller holds _guard)."""
    global _flusher
    if FLUSH_INTERVAL_S and (_flusher is None or not _flusher.is_alive()):
        _flusher = threading.Thread(target=_flush_loop, name="resumespec-trace-flush",
                                    daemon=True)
        _flusher.start()


def trace_path_for(target: str, proc: str) -> Path:
    """Where the events of ``proc`` go for a RESUMESPEC_TRACE value."""
    p = Path(target)
    if p.suffix == ".jsonl":
        return p
    return p / (proc.replace("/", "-") + ".jsonl")


def recorder_for(proc: str, target: str | None = None, *, check: bool | None = None,
                 flush: bool | None = None):
    """The recorder of process ``proc`` ("encode" or "language/<rank>").

    ``target`` defaults to $RESUMESPEC_TRACE; without one, tracing is off and
    the shared NullRecorder is returned.  Asking twice for the same process
    and target gives the same recorder (sequence numbers continue).
    ``flush`` (default $RESUMESPEC_TRACE_FLUSH=1): write each line at once.
    A file shared by several processes keeps the mode it was opened with.
    """
    target = target if target is not None else os.environ.get(ENV_TRACE)
    if not target:
        return NULL
    if check is None:
        check = os.environ.get(ENV_CHECK, "1") != "0"
    if flush is None:
        flush = os.environ.get(ENV_FLUSH, "0") == "1"
    global FLUSH_INTERVAL_S
    if FLUSH_INTERVAL_S is None:
        FLUSH_INTERVAL_S = _interval_from_env()
    key = (target, proc)
    with _guard:
        rec = _registry.get(key)
        if rec is not None:
            return rec
        path = trace_path_for(target, proc)
        path.parent.mkdir(parents=True, exist_ok=True)
        sink = _sinks.get(str(path))
        if sink is None or sink.closed:
            sink = _sinks[str(path)] = _Sink(path, flush)
        rec = Recorder(sink, proc, check=check)
        _registry[key] = rec
        if not sink.per_line:
            _start_flusher()
        return rec


def close_all() -> None:
    """Flush and close every recorder (also run at interpreter exit)."""
    with _guard:
        for sink in _sinks.values():
            sink.close()
        _registry.clear()
        _sinks.clear()


atexit.register(close_all)


def _forget_in_child() -> None:
    """A forked child must not write the lines its parent buffered (the
    parent does): drop them from the child's copies.  The child has no
    flusher thread (only the forking thread survives a fork): start one."""
    global _flusher
    for sink in _sinks.values():
        sink.buf.clear()
        # the lock may have been held by another thread of the parent: the
        # child's recorders keep the old lock object in their closures, so
        # release it if it is held rather than replacing it
        if sink.lock.locked():
            sink.lock.release()
    # the parent's flusher thread may have held the registry's lock (it
    # takes it every interval): the child has no such thread
    if _guard.locked():
        _guard.release()
    _flusher = None
    if any(not s.per_line and not s.closed for s in _sinks.values()):
        _start_flusher()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
