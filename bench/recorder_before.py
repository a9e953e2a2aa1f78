"""The recorder as it was before the compiled fields check and the
preformatted lines (``conformance/recorder.py`` at commit 338ed49), frozen
for ``python -m bench recorder`` to time side by side with today's.  Not
used by anything else.

Buffered (512 lines per ``os.write``) or per line; checked mode builds the
whole record dict and runs ``trace.validate_event`` on it; the line is
``orjson`` of the record (checked) or the fields spliced after a common head
(unchecked), with ``ts`` formatted from a float.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from resumespec.conformance.trace import EVENTS, PROC, SCHEMA_VERSION, _is_proc, validate_event

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
