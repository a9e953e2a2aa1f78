"""Tell an engine trace and its conformance verdict as a story.

``timeline_from_trace(files, verdict)`` reads the events in the order the
checker judged them (``conformance.merge.merge_files``: one merged log, or
several per-process logs merged causally), and builds the same Timeline a
counterexample gets (resumespec/report/timeline.py):

* one step per event, on the lane of its process (``encode`` is the sender,
  ``language/<rank>`` the receiving session of that rank), in the checker's
  words (``checker_native.describe``, the same sentence its verdicts use);
* messages as arrows from the send event to its receive event, matched FIFO
  per request and session as the trace format defines (``init_sent`` ->
  ``init_recv``, ``resume_sent`` -> ``resume_recv``, ``abort_sent`` ->
  ``abort_recv``, ``status_sent`` -> ``status_recv``); a round's data writes
  as an arrow from ``round_start`` to that session's ``round_end``;
* the block pools as far as the trace shows them: ``alloc`` and ``free``
  give ownership (a block freed while already free shows as freed twice),
  ``round_start`` gives which tokens were written where (``sent_tokens``,
  ``tokens``, ``dst_blocks``, the config's ``block_size``) and whether the
  aux row got the total; a block is being written from ``round_start`` to
  ``round_end``;
* the verdict's event (file and line) is the highlighted step; for an
  incomplete trace (an obligation still open at its end) the last event of
  the request concerned is.
"""

from __future__ import annotations

from typing import Any

from resumespec.conformance.checker_native import Verdict, describe
from resumespec.conformance.merge import merge_files
from resumespec.conformance.trace import MalformedTrace

from .timeline import PROPERTY_MEANING, Arrow, BlockCell, Finding, Lane, Mark, Step, Timeline

SEND_RECV = {"init_sent": ("ctl", "init_recv"), "resume_sent": ("ctl", "resume_recv"),
             "abort_sent": ("ctl", "abort_recv"), "status_sent": ("st", "status_recv")}
RECV_CHAN = {recv: chan for _, (chan, recv) in SEND_RECV.items()}


def _lane_of(proc: str) -> str:
    if proc.startswith("language/"):
        return "rx" + proc.split("/", 1)[1]
    return "sender"


def sentence(ev: dict) -> str:
    """One event in words: the checker's ``describe`` (the one place events
    are put into words, for its verdicts and for these reports), as a sentence."""
    text = describe(ev)
    return text[:1].upper() + text[1:] + "."


def _mark_text(ev: dict) -> str:
    e = ev["event"]
    if e == "poll":
        return f"poll: {ev['decision']}"
    if e in ("alloc", "free"):
        bs = ev["blocks"]
        return f"{e} " + ("None" if bs is None else ",".join(str(b) for b in bs))
    if e in ("status_sent", "status_recv"):
        return ev["status"]
    if e == "round_start":
        return f"round {ev['sent_tokens']}+{ev['tokens']}"
    return e


class _Pools:
    """Block ownership and contents per rank, as far as the trace shows them."""

    def __init__(self, nblocks: int | None, block_size: int | None):
        self.nblocks = nblocks
        self.block_size = block_size
        self.owner: dict[int, dict[Any, list]] = {}      # rank -> block -> [req]
        self.free: dict[int, dict[Any, int]] = {}        # rank -> block -> times on the free list
        self.content: dict[int, dict[Any, str]] = {}
        self.aux: dict[int, dict[Any, str]] = {}
        self.writing: dict[int, dict[Any, list]] = {}    # rank -> block -> [req] with a write in flight
        self.known: dict[int, set] = {}
        self.round_dst: dict[tuple, list] = {}           # (req, session) -> blocks of the open round

    def _rank(self, rank: int) -> None:
        if rank not in self.owner:
            self.owner[rank], self.content[rank], self.aux[rank], self.writing[rank] = {}, {}, {}, {}
            blocks = range(self.nblocks) if self.nblocks else []
            self.free[rank] = {b: 1 for b in blocks}
            self.known[rank] = set(blocks)

    def _see(self, rank: int, blocks) -> None:
        self._rank(rank)
        for b in blocks or ():
            if b not in self.known[rank]:
                self.known[rank].add(b)
                if not self.nblocks:
                    self.free[rank][b] = 1      # first seen: it was free before

    def apply(self, ev: dict) -> None:
        e = ev["event"]
        if e == "alloc" and ev["blocks"]:
            rank = ev["rank"]
            self._see(rank, ev["blocks"])
            for b in ev["blocks"]:
                if self.free[rank].get(b, 0) > 0:
                    self.free[rank][b] -= 1
                self.owner[rank].setdefault(b, []).append(ev["req"])
        elif e == "free":
            rank = ev["rank"]
            self._see(rank, ev["blocks"])
            for b in ev["blocks"]:
                holders = self.owner[rank].get(b, [])
                if ev["req"] in holders:
                    holders.remove(ev["req"])
                self.free[rank][b] = self.free[rank].get(b, 0) + 1
        elif e == "round_start":
            rank, r = ev["session"], ev["req"]
            dst = list(ev["dst_blocks"])
            self._see(rank, dst)
            bs = self.block_size or max(1, -(-ev["tokens"] // max(1, len(dst))))
            pos = ev["sent_tokens"]
            left = ev["tokens"]
            for j, b in enumerate(dst):
                if left <= 0:
                    break
                n = min(bs, left)
                self.content[rank][b] = ",".join(f"{r}.{pos + k}" for k in range(1, n + 1)) if n <= 3 else \
                    f"{r}.{pos + 1}..{r}.{pos + n}"
                if j == 0 and ev["aux_written"]:
                    self.aux[rank][b] = str(ev["total"])
                self.writing[rank].setdefault(b, []).append(r)
                pos += n
                left -= n
            self.round_dst[(r, rank)] = dst
        elif e == "round_end":
            rank, r = ev["session"], ev["req"]
            for b in self.round_dst.pop((r, rank), []):
                ws = self.writing.get(rank, {}).get(b, [])
                if r in ws:
                    ws.remove(r)
        elif e in ("heartbeat_fail",):
            pass

    def cells(self, rank: int, prev: list[BlockCell] | None) -> list[BlockCell]:
        self._rank(rank)
        out = []
        for b in sorted(self.known[rank], key=lambda x: (str(type(x)), x)):
            c = BlockCell(block=b, owners=list(self.owner[rank].get(b, [])), on_free_list=self.free[rank].get(b, 0),
                          content=self.content[rank].get(b, ""), aux=self.aux[rank].get(b, ""),
                          writing=bool(self.writing[rank].get(b)), writers=list(self.writing[rank].get(b, [])))
            before = next((p for p in prev or [] if p.block == b), None)
            c.changed = prev is not None and (before is None or (before.owners, before.on_free_list, before.content,
                                                                 before.aux) != (c.owners, c.on_free_list, c.content, c.aux))
            out.append(c)
        return out


def read_events(files: list[str]) -> tuple[list[tuple[str, int, dict]], str | None]:
    """The events in checking order, and the error that stopped reading (or None)."""
    events = []
    try:
        for path, line, ev in merge_files(list(files)):
            events.append((path, line, ev))
    except MalformedTrace as e:
        return events, e.message()
    except OSError as e:
        return events, f"{'+'.join(files)}: {e.strerror or e}"
    return events, None


def timeline_from_trace(files: list[str], verdict: Verdict, *, title: str = "",
                        max_steps: int = 400) -> Timeline:
    events, read_error = read_events(files)
    config: dict = {}
    for _, _, ev in events:
        if ev["event"] == "config":
            config.update({k: v for k, v in ev.items() if k not in ("v", "proc", "seq", "event", "ts")})
    ranks = sorted({int(ev["proc"].split("/")[1]) for _, _, ev in events if ev["proc"].startswith("language/")}
                   | {ev.get("rank") for _, _, ev in events if isinstance(ev.get("rank"), int)}
                   | {ev.get("session") for _, _, ev in events if isinstance(ev.get("session"), int)})
    if not ranks and config.get("nsess"):
        ranks = list(range(1, int(config["nsess"]) + 1))
    lanes = [Lane("sender", "Sender (encode)", "sender")]
    lanes += [Lane(f"rx{k}", f"Receiver, language/{k}", "session") for k in ranks]
    lanes += [Lane(f"pool{k}", f"Block pool, rank {k}", "pool") for k in ranks]
    name = title or " + ".join(files)
    bits = [f"{k}={v}" for k, v in config.items()]
    t = Timeline(kind="trace", title=name, subtitle=("config: " + " ".join(bits)) if bits else "", lanes=lanes)

    # Which step to highlight.
    hl_key = (verdict.file, verdict.line) if verdict.line is not None else None
    hl_index = None
    for i, (path, line, _ev) in enumerate(events, 1):
        if hl_key and line == hl_key[1] and (hl_key[0] in (None, path) or len(files) == 1):
            hl_index = i
            break
    if hl_index is None and verdict.verdict in ("incomplete",) and events:
        req = (verdict.state or {}).get("req")
        for i in range(len(events), 0, -1):
            if req is None or events[i - 1][2].get("req") == req:
                hl_index = i
                break

    # A window of at most max_steps events around the highlighted one.
    first = 1
    if len(events) > max_steps:
        centre = hl_index or 1
        after = max_steps // 8          # events shown after the highlighted one
        first = max(1, min(centre - (max_steps - after) + 1, len(events) - max_steps + 1))
    last = min(len(events), first + max_steps - 1)
    if first > 1 or last < len(events):
        t.notes.append(f"(showing events {first}..{last} of {len(events)}: step k is event k+{first - 1})")

    pools = _Pools(config.get("nblocks"), config.get("block_size"))
    pending: dict[tuple, list[Arrow]] = {}
    rounds: dict[tuple, Arrow] = {}
    prev_cells: dict[str, list[BlockCell]] = {}
    if first == 1:
        cells = {f"pool{k}": pools.cells(k, None) for k in ranks}
        t.steps.append(Step(0, "start", "Start of the trace." + (" Every block is free." if config.get("nblocks")
                                                                 else ""), pools=cells))
        prev_cells = cells
    for i in range(1, last + 1):
        path, line, ev = events[i - 1]
        pools.apply(ev)
        if i < first - 1:
            continue
        if i == first - 1:
            cells = {f"pool{k}": pools.cells(k, None) for k in ranks}
            t.steps.append(Step(0, "skipped", f"Events 1..{i} are not drawn; the pools as they stand after "
                                              f"event {i} ({path}:{line}).", pools=cells))
            prev_cells = cells
            continue
        row = i - first + 1        # step index in the drawing (= the event's number when nothing is cut)
        lane = _lane_of(ev["proc"])
        e = ev["event"]
        tone = "bad" if i == hl_index and verdict.verdict != "conforms" else "normal"
        cells = {f"pool{k}": pools.cells(k, prev_cells.get(f"pool{k}")) for k in ranks}
        step = Step(row, e, sentence(ev), marks=[Mark(lane, _mark_text(ev), tone)], pools=cells,
                    where=f"{path}:{line}", line=line, tone=tone, event=ev,
                    details=[f"{k}: {v}" for k, v in ev.items() if k not in ("v",)])
        t.steps.append(step)
        prev_cells = cells
        r, s = ev.get("req"), ev.get("session")
        if e in SEND_RECV:
            chan = SEND_RECV[e][0]
            src, dst = (lane, "sender") if chan == "ctl" else ("sender", f"rx{s}")
            label = _mark_text(ev) if chan == "st" else (e.split("_")[0] + (
                f" @{ev['sent_tokens']}" if "sent_tokens" in ev else "") + (
                " b" + ",".join(str(b) for b in ev["blocks"]) if ev.get("blocks") else ""))
            a = Arrow(src, dst, row, None, label, "ctl" if chan == "ctl" else "status", fate="pending")
            t.arrows.append(a)
            pending.setdefault((chan, r, s), []).append(a)
        elif e in RECV_CHAN:
            q = pending.get((RECV_CHAN[e], r, s))
            if q:
                a = q.pop(0)
                a.end, a.fate = row, "received"
        elif e == "round_start":
            a = Arrow("sender", f"pool{s}", row, None,
                      f"{r}.{ev['sent_tokens'] + 1}.. \u2192 b" + ",".join(str(b) for b in ev["dst_blocks"]),
                      "write", fate="pending", block=(ev["dst_blocks"] or [None])[0])
            holders = {b: pools.owner.get(s, {}).get(b, []) for b in ev["dst_blocks"]}
            a.bad = any(r not in h for h in holders.values())
            t.arrows.append(a)
            rounds[(r, s)] = a
        elif e == "round_end":
            a = rounds.pop((r, s), None)
            if a is not None:
                a.end, a.fate = row, "landed" if ev["ok"] else "dropped"
        elif e in ("alloc", "free") and ev.get("blocks"):
            k = ev["rank"]
            if e == "alloc":
                t.arrows.append(Arrow(f"pool{k}", f"rx{k}", row, row, _mark_text(ev), "alloc"))
            else:
                t.arrows.append(Arrow(f"rx{k}", f"pool{k}", row, row, _mark_text(ev), "free"))

    v = verdict
    why = []
    if v.verdict != "conforms":
        if v.message:
            why.append(("What happened: " if v.line is not None else "") + v.message
                       + (f" ({v.file}:{v.line})" if v.line is not None and v.file else "") + ".")
        if v.expected:
            why.append(f"The spec allows: {v.expected}.")
        for o in (v.unfinished or [])[1:6]:
            why.append(f"Also open: {o.get('property')}: {o.get('message')}.")
    if read_error and v.verdict != "malformed":
        why.append(f"Reading stopped: {read_error}")
    step_index = None
    if hl_index is not None and first <= hl_index <= last:
        step_index = hl_index - first + 1 if first > 1 else hl_index
    t.finding = Finding(v.verdict, prop=v.prop if v.verdict != "conforms" else None,
                        meaning=PROPERTY_MEANING.get(v.prop or "", ""), why=why,
                        step=step_index if v.verdict != "conforms" else None)
    if v.verdict == "violates" and step_index is not None:
        for st in t.steps:
            if st.index > step_index:
                st.tone = "after"
    if v.verdict == "malformed":
        t.finding.prop = None
        t.finding.why = [f"The trace is malformed: {v.message}"] + ([f"Expected: {v.expected}."] if v.expected else [])
    if v.verdict == "conforms":
        t.finding.why = [f"{v.events:,} events, every one explained by a step of the spec; no obligation left open."]
    return t
