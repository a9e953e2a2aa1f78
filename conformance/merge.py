"""Merge several per-process logs into one order the spec can replay.

Lazy k-way merge: one pending event per file, so memory does not depend on
the length of the logs.  Among the files whose next event is *causally ready*
it takes the one with the smallest ``ts`` (events without ``ts`` come after
those with one; ties go to the file named first).  An event is ready unless
it receives a message that has not been sent yet (docs/trace-format.md):

    init_recv   needs   init_sent      (same req, session; FIFO)
    resume_recv needs   resume_sent
    abort_recv  needs   abort_sent
    status_recv needs   status_sent

When no file is ready, the first pending event (in file order) is yielded
anyway: the checker then reports that it receives a message never sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .trace import read_trace

# receive event -> (channel, is_send)
_CHANNEL = {
    "init_sent": ("ctl", True), "resume_sent": ("ctl", True), "abort_sent": ("ctl", True),
    "init_recv": ("ctl", False), "resume_recv": ("ctl", False), "abort_recv": ("ctl", False),
    "status_sent": ("st", True), "status_recv": ("st", False),
}
_INF = float("inf")


def merge_files(paths: list[str]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Yield ``(path, line_no, event)`` in a causally consistent merged order."""
    if len(paths) == 1:
        path = paths[0]
        for line, ev in read_trace(path):
            yield path, line, ev
        return
    readers = [read_trace(p) for p in paths]
    heads: list[Any] = [None] * len(paths)
    for i, r in enumerate(readers):
        heads[i] = next(r, None)
    pending: dict[tuple[Any, ...], int] = {}   # (channel, req, session) -> messages sent, not received
    while True:
        best = None
        best_key = None
        first_live = None
        for i, h in enumerate(heads):
            if h is None:
                continue
            if first_live is None:
                first_live = i
            ev = h[1]
            ch = _CHANNEL.get(ev["event"])
            if ch is not None and not ch[1]:
                if pending.get((ch[0], ev["req"], ev["session"]), 0) <= 0:
                    continue
            ts = ev.get("ts")
            key = (ts if ts is not None else _INF, i)
            if best_key is None or key < best_key:
                best, best_key = i, key
        if first_live is None:
            return
        if best is None:
            best = first_live
        line, ev = heads[best]
        ch = _CHANNEL.get(ev["event"])
        if ch is not None:
            k = (ch[0], ev["req"], ev["session"])
            n = pending.get(k, 0) + (1 if ch[1] else -1)
            if n:
                pending[k] = n
            else:
                pending.pop(k, None)
        yield paths[best], line, ev
        heads[best] = next(readers[best], None)
