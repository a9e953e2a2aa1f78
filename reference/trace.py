"""Trace events: every step logs one JSON object per event (docs/trace-format.md).

All events go through ``TraceLog.emit``; the per-process ``seq`` counters and
the common fields are added there, so the format lives in one place.
When the conformance part's writer (``resumespec.conformance.trace``) is
importable, ``write_jsonl`` delegates to it.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any

TRACE_VERSION = 1


class TraceLog:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._seq: dict[str, int] = {}
        self._held: list[tuple[str, str, dict]] | None = None

    @contextmanager
    def hold(self):
        """Hold back the events emitted inside the block (a poll logs its
        decision first, the events of that decision after it); the caller
        re-emits them with ``release``."""
        self._held = []
        held = self._held
        try:
            yield held
        finally:
            self._held = None

    def release(self, held: list, proc: str, first: tuple[str, dict]) -> None:
        """Log ``first`` for ``proc``, then that process's held events."""
        self._log(proc, first[0], first[1])
        for p, event, fields in held:
            if p == proc:
                self._log(p, event, fields)

    def emit(self, proc: str, event: str, **fields: Any) -> dict[str, Any] | None:
        if self._held is not None:
            self._held.append((proc, event, fields))
            return None
        return self._log(proc, event, fields)

    def _log(self, proc: str, event: str, fields: dict) -> dict[str, Any]:
        seq = self._seq.get(proc, 0)
        self._seq[proc] = seq + 1
        ev = {"v": TRACE_VERSION, "proc": proc, "seq": seq, "event": event}
        ev.update(fields)
        self.events.append(ev)
        return ev

    def write_jsonl(self, path: str) -> None:
        """One merged file, lines in the order the steps happened. Written
        through the conformance part's ``TraceWriter`` (which checks every
        event against the schema) when that module is importable."""
        try:
            from resumespec.conformance.trace import TraceWriter
        except ImportError:
            TraceWriter = None
        with open(path, "w", encoding="utf-8") as fh:
            if TraceWriter is None:
                for ev in self.events:
                    fh.write(json.dumps(ev, separators=(",", ":")) + "\n")
                return
            writers: dict[str, Any] = {}
            for ev in self.events:
                w = writers.get(ev["proc"])
                if w is None:
                    w = writers[ev["proc"]] = TraceWriter(fh, ev["proc"], timestamps=False)
                fields = {k: v for k, v in ev.items() if k not in ("v", "proc", "seq", "event")}
                w.write(ev["event"], **fields)


def encode_proc() -> str:
    return "encode"


def language_proc(rank: int) -> str:
    return f"language/{rank}"
