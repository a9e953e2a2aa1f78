"""Trace events: every step logs one JSON object per event (docs/trace-format.md).

All events go through ``TraceLog.emit``; the per-process ``seq`` counters and
the common fields are added there, so the format lives in one place.
When the conformance part's writer (``resumespec.conformance.trace``) is
importable, ``write_jsonl`` delegates to it.
"""

from __future__ import annotations

import json
from typing import Any

TRACE_VERSION = 1


class TraceLog:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._seq: dict[str, int] = {}

    def emit(self, proc: str, event: str, **fields: Any) -> dict[str, Any]:
        seq = self._seq.get(proc, 0)
        self._seq[proc] = seq + 1
        ev = {"v": TRACE_VERSION, "proc": proc, "seq": seq, "event": event}
        ev.update(fields)
        self.events.append(ev)
        return ev

    def write_jsonl(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            for ev in self.events:
                fh.write(json.dumps(ev, separators=(",", ":")) + "\n")


def encode_proc() -> str:
    return "encode"


def language_proc(rank: int) -> str:
    return f"language/{rank}"
