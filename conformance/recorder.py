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
  appends to one file (each line is one ``write`` under a lock).

Lines are block-buffered (written in 8-64 KiB bursts) unless
``RESUMESPEC_TRACE_FLUSH=1``: then every line is written as it is logged
(one ``write`` per event), which a live monitor (``resumespec conform
--follow``) needs to see events as they happen.

When off, ``recorder_for`` returns a recorder whose ``log`` does nothing
(one attribute lookup and a call; ``enabled`` is False).  When on, ``log``
validates the fields against the trace catalogue (set
``RESUMESPEC_TRACE_CHECK=0`` to skip that in production) and is thread-safe.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any

from .trace import TraceWriter

ENV_TRACE = "RESUMESPEC_TRACE"
ENV_CHECK = "RESUMESPEC_TRACE_CHECK"
ENV_FLUSH = "RESUMESPEC_TRACE_FLUSH"


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


class Recorder:
    """Tracing enabled: writes one JSON line per event for one process."""

    enabled = True

    def __init__(self, writer: TraceWriter):
        self._writer = writer
        self.proc = writer.proc

    def log(self, event: str, **fields: Any) -> None:
        self._writer.write(event, **fields)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


_registry: dict[tuple[str, str], Recorder] = {}
_shared_files: dict[str, Any] = {}
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
        if path.suffix == ".jsonl" and Path(target).suffix == ".jsonl":
            f = _shared_files.get(str(path))
            if f is None:
                f = open(path, "a", encoding="utf-8", buffering=1 if flush else 1 << 16)
                _shared_files[str(path)] = f
            writer = TraceWriter(f, proc, check=check)
        elif flush:     # line-buffered: closed by close_all like a shared file
            f = open(path, "a", encoding="utf-8", buffering=1)
            _shared_files[str(path)] = f
            writer = TraceWriter(f, proc, check=check)
        else:
            writer = TraceWriter(path, proc, check=check)
        rec = Recorder(writer)
        _registry[key] = rec
        return rec


def close_all() -> None:
    """Flush and close every recorder (also run at interpreter exit)."""
    with _guard:
        for rec in _registry.values():
            rec.close()
        for f in _shared_files.values():
            if not f.closed:
                f.close()
        _registry.clear()
        _shared_files.clear()


atexit.register(close_all)
