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
validates the fields against the trace catalogue (set
``RESUMESPEC_TRACE_CHECK=0`` to skip that in production) and is thread-safe.

What is on disk when (docs/deployed.md measures the cost of each):

* **buffered** (the default): ``log`` serialises the event (orjson) into a
  list in the process's memory; the lines go to the file with one
  ``os.write`` when 64 KiB have gathered, on ``flush()``, ``close()`` and
  ``close_all()``, and at interpreter exit (``atexit``).  What a crash
  loses: an exception that ends the interpreter loses nothing (``atexit``
  writes the rest); ``kill -9``, a segfault, ``os._exit`` (which is how
  ``multiprocessing`` children end: call ``close_all()`` at the end of the
  child) lose the lines not yet written, at most 64 KiB (a few hundred
  events).  The lines already written are whole lines.
* **per line** (``RESUMESPEC_TRACE_FLUSH=1``, or ``flush=True``): each line
  is written with its own ``os.write`` before ``log`` returns.  A process
  killed any way loses nothing it logged (the kernel holds the bytes); only
  a crash of the machine itself can (nothing calls ``fsync``).  A live
  monitor (``resumespec conform --follow``) needs this mode to see events
  as they happen.

The lines are those ``TraceWriter`` writes (``v``, ``proc``, ``seq``,
``event``, ``ts``, then the fields; compact JSON), except that text is
written as UTF-8 rather than ``\\u`` escapes.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from .trace import EVENTS, PROC, SCHEMA_VERSION, _is_proc, validate_event

ENV_TRACE = "RESUMESPEC_TRACE"
ENV_CHECK = "RESUMESPEC_TRACE_CHECK"
ENV_FLUSH = "RESUMESPEC_TRACE_FLUSH"
BUFFER_BYTES = 1 << 16           # buffered mode writes when this much has gathered

_dumps = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE
_time_ns = time.time_ns


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
        self.size = 0
        self.closed = False

    def drain(self) -> None:
        """Write the buffered lines (the caller holds the lock)."""
        if self.buf:
            data = b"".join(self.buf)
            self.buf.clear()
            self.size = 0
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
        self.seq = 0

    def log(self, event: str, **fields: Any) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown trace event {event!r}; known: {', '.join(EVENTS)}")
        sink = self._sink
        with sink.lock:
            if sink.closed:
                raise ValueError(f"trace file {sink.path} is closed")
            seq = self.seq
            record = {"v": SCHEMA_VERSION, "proc": self.proc, "seq": seq, "event": event,
                      "ts": _time_ns() // 1000 / 1e6}
            if fields:
                record.update(fields)
            if self.check:
                validate_event(record, seq + 1)
            line = _dumps(record, option=_NEWLINE)
            self.seq = seq + 1
            if sink.per_line:
                _write_all(sink.fd, line)
            else:
                sink.buf.append(line)
                sink.size += len(line)
                if sink.size >= BUFFER_BYTES:
                    sink.drain()

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self._sink.close()


_registry: dict[tuple[str, str], Recorder] = {}
_sinks: dict[str, _Sink] = {}
_guard = threading.Lock()


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
    parent does): drop them from the child's copies."""
    for sink in _sinks.values():
        sink.buf.clear()
        sink.size = 0
        sink.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
