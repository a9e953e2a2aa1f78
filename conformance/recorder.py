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
  ``os.write`` when 512 lines have gathered, on ``flush()``, ``close()`` and
  ``close_all()``, and at interpreter exit (``atexit``).  What a crash
  loses: an exception that ends the interpreter loses nothing (``atexit``
  writes the rest); ``kill -9``, a segfault, ``os._exit`` (which is how
  ``multiprocessing`` children end: call ``close_all()`` at the end of the
  child) lose the lines not yet written, at most 511 events.  The lines
  already written are whole lines (a kill in the middle of a large
  ``os.write`` can cut the last one, which a reader reports as truncated).
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
BUFFER_LINES = 512               # buffered mode writes when this many lines have gathered

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
        """``log`` as a closure over what it touches: the cost per event is
        mostly building the dict and serialising it, not looking names up."""
        sink, proc, check, seqbox = self._sink, self.proc, self.check, self._seq
        lock, buf = sink.lock, sink.buf
        append, per_line, fd = buf.append, sink.per_line, sink.fd
        events, version, dumps, time_ns = EVENTS, SCHEMA_VERSION, _dumps, _time_ns

        head = b'{"v":%d,"proc":%s,"seq":' % (version, dumps(proc))

        def log(event: str, **fields: Any) -> None:
            if event not in events:
                raise ValueError(f"unknown trace event {event!r}; known: {', '.join(events)}")
            with lock:
                if sink.closed:
                    raise ValueError(f"trace file {sink.path} is closed")
                seq = seqbox[0]
                ts = time_ns() // 1000 / 1e6
                if check:
                    record = {"v": version, "proc": proc, "seq": seq, "event": event, "ts": ts}
                    record.update(fields)
                    validate_event(record, seq + 1)
                    line = dumps(record, option=_NEWLINE)
                elif fields:
                    # the same line without building the record: the common
                    # head, then the fields' own object without its "{"
                    line = b'%s%d,"event":"%s","ts":%r,%s' % (
                        head, seq, event.encode(), ts, dumps(fields, option=_NEWLINE)[1:])
                else:
                    line = b'%s%d,"event":"%s","ts":%r}\n' % (head, seq, event.encode(), ts)
                seqbox[0] = seq + 1
                if per_line:
                    _write_all(fd, line)
                else:
                    append(line)
                    if len(buf) >= BUFFER_LINES:
                        sink.drain()
        return log

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
        # the lock may have been held by another thread of the parent: the
        # child's recorders keep the old lock object in their closures, so
        # release it if it is held rather than replacing it
        if sink.lock.locked():
            sink.lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
