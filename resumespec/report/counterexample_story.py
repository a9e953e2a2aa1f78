"""Tell a TLC counterexample as a story: ``timeline_from_counterexample``.

Everything here is derived from the states of the trace (the variables of
docs/model.md: ``free``, ``data``, ``aux``, ``rxPhase``, ``rxBlocks``,
``ctl``, ``st``, ``wire``, ``txSent``, ``handed``, ...) and from the action
name TLC gives each step; nothing is written per model. Each step is read by
comparing it with the state before:

* which request ``r`` and session ``s`` the step touched (the keys that
  changed),
* messages sent and received: the FIFO channels ``ctl[r][s]`` (init, resume,
  abort) and ``st[r][s]`` (status) grow at the tail or lose their head,
* data writes: ``wire[s]`` gains writes (a round starts) or loses one (it
  lands, or is dropped when the sender dies),
* the allocator: ``free[s]`` loses blocks (allocated) or gains them (freed),

and the action's sentence is put together from those facts. The verdict's
"why" reads the last state (safety) or the loop (liveness) against the
property's definition (``explain_*``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from resumespec.reference.protocol.designs import STATUSES
from resumespec.spec import tla_values as tv
from resumespec.spec.counterexample import Trace, TraceState

from .timeline import PROPERTY_MEANING, Arrow, BlockCell, Finding, Lane, Mark, Step, Timeline

STATUS_NAMES = dict(enumerate(STATUSES))
HOLDING_PHASES = ("queued", "aborting", "prefill")
NO_TOKEN = (0, 0)
ORDINAL = {1: "", 2: " a second time", 3: " a third time", 4: " a fourth time"}


# ---------------------------------------------------------------------------
# Reading values


def at(values: dict, var: str, *keys: Any, default: Any = None) -> Any:
    """``values[var][k1][k2]...`` with TLA+ indexing, or ``default``."""
    v = values.get(var, default)
    for k in keys:
        try:
            v = tv.lookup(v, k)
        except (KeyError, TypeError):
            return default
    return v


def dom(value: Any) -> list:
    return tv.domain(value) if tv.is_function_like(value) else []


def is_token(v: Any) -> bool:
    return type(v) is tuple and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


def tok(t: Any) -> str:
    """Token <<r, i>> as "r.i", the empty slot as "_"."""
    if is_token(t):
        return "_" if tuple(t) == NO_TOKEN else f"{t[0]}.{t[1]}"
    return tv.format_value(t)


def toks(seq: Any) -> str:
    if not seq:
        return "nothing"
    return ", ".join(tok(t) for t in seq)


def tla_tokens(seq: Any) -> str:
    """A token sequence the way TLA+ writes it: <<1, 1>>, <<1, 3>>."""
    if not seq:
        return "<<>>"
    return ",".join(tv.format_value(t).replace(" ", "") for t in seq)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def blocks_text(bs: Any) -> str:
    bs = list(bs or ())
    if not bs:
        return "no block"
    if len(bs) == 1:
        return f"block {bs[0]}"
    return "blocks " + ", ".join(str(b) for b in bs)


def status_name(n: Any) -> str:
    return STATUS_NAMES.get(n, str(n))


def join_and(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def parse_constants(text: str | None) -> dict[str, Any]:
    """``"NReq=2 Total=<<3, 2>> Order=lifo"`` (the manifest's summary) -> values."""
    out: dict[str, Any] = {}
    if not text:
        return out
    import re

    for m in re.finditer(r"(\w+)=(<<[^>]*>>|\{[^}]*\}|\S+)", text):
        raw = m.group(2)
        try:
            out[m.group(1)] = tv.parse_value(raw)
        except tv.TlaValueError:
            out[m.group(1)] = raw
    return out


# ---------------------------------------------------------------------------
# Channels and writes between two states


def channel_diff(old: Any, new: Any) -> tuple[list, list]:
    """(received from the head, appended at the tail) between two FIFO queues."""
    old = list(old or ())
    new = list(new or ())
    for n_rm in range(len(old) + 1):
        rest = old[n_rm:]
        if new[:len(rest)] == rest:
            return old[:n_rm], new[len(rest):]
    return old, new


def set_diff(old: Any, new: Any) -> tuple[list, list]:
    old = list(old or ())
    new = list(new or ())
    return [x for x in old if x not in new], [x for x in new if x not in old]


def multiset_diff(old: Any, new: Any) -> tuple[list, list]:
    """(removed, added) between two free lists, counting repeats."""
    a, b = Counter(old or ()), Counter(new or ())
    removed = [x for x in (a - b).elements()]
    added = [x for x in (b - a).elements()]
    return removed, added


# ---------------------------------------------------------------------------
# Pools


def held(values: dict, r: Any, s: Any) -> list:
    """Blocks request r holds on rank s, as the spec's Held(r, s)."""
    phase = at(values, "rxPhase", r)
    if phase is not None and phase not in HOLDING_PHASES:
        return []
    bs = at(values, "rxBlocks", r, s, default=())
    return list(bs) if type(bs) is tuple else []


def pool_cells(values: dict, s: Any, prev: list[BlockCell] | None) -> list[BlockCell]:
    pool = at(values, "data", s)
    free_list = at(values, "free", s, default=())
    counts = Counter(free_list if type(free_list) is tuple else ())
    writers: dict[Any, list] = {}
    for w in (at(values, "wire", s, default=()) or ()):
        if isinstance(w, tv.Record) and "b" in w.keys():
            writers.setdefault(w["b"], []).append(w.get("r"))
    cells = []
    for b in dom(pool):
        owners = [r for r in dom(values.get("rxPhase", values.get("rxBlocks"))) if b in held(values, r, s)]
        slots = tv.lookup(pool, b)
        content = ",".join(tok(x) for x in slots) if type(slots) is tuple else tok(slots)
        a = at(values, "aux", s, b, default=0)
        cell = BlockCell(block=b, owners=owners, on_free_list=counts.get(b, 0), content=content,
                         aux="" if a in (0, None) else str(a), writing=b in writers, writers=writers.get(b, []))
        if prev is not None:
            before = next((c for c in prev if c.block == b), None)
            cell.changed = before is None or (before.owners, before.on_free_list, before.content, before.aux) != \
                (cell.owners, cell.on_free_list, cell.content, cell.aux)
        cells.append(cell)
    return cells


# ---------------------------------------------------------------------------
# One step in words


class StepReader:
    """Reads one step (prev -> cur) of a counterexample into facts."""

    def __init__(self, prev: dict, cur: dict, action: str, totals: dict):
        self.prev, self.cur, self.action, self.totals = prev, cur, action, totals
        self.sent: list[tuple[str, Any, Any, Any]] = []      # (chan, r, s, msg)
        self.received: list[tuple[str, Any, Any, Any]] = []
        self.writes_added: list[tuple[Any, Any]] = []        # (s, write)
        self.writes_removed: list[tuple[Any, Any]] = []
        self.allocated: dict[Any, list] = {}                 # s -> blocks taken from the free list
        self.freed: dict[Any, list] = {}                     # s -> blocks put on the free list
        for chan in ("ctl", "st"):
            for r in dom(cur.get(chan)):
                for s in dom(at(cur, chan, r)):
                    got, put = channel_diff(at(prev, chan, r, s), at(cur, chan, r, s))
                    self.received += [(chan, r, s, m) for m in got]
                    self.sent += [(chan, r, s, m) for m in put]
        for s in dom(cur.get("wire")):
            gone, new = set_diff(at(prev, "wire", s), at(cur, "wire", s))
            self.writes_removed += [(s, w) for w in gone]
            self.writes_added += [(s, w) for w in new]
        for s in dom(cur.get("free")):
            removed, added = multiset_diff(at(prev, "free", s), at(cur, "free", s))
            if removed:
                self.allocated[s] = removed
            if added:
                self.freed[s] = added

    def changed(self, var: str) -> list[tuple]:
        """Keys (r,) or (r, s) under ``var`` whose value changed."""
        out = []
        _old, new = self.prev.get(var), self.cur.get(var)
        for k in dom(new):
            o, n = at(self.prev, var, k), at(self.cur, var, k)
            if o == n:
                continue
            sub = dom(n) if tv.is_function_like(n) and not isinstance(n, tv.Record) and var not in (
                "rxPhase", "txPhase", "txRound", "txPartials", "txPartial") else []
            subs = [k2 for k2 in sub if at(self.prev, var, k, k2) != at(self.cur, var, k, k2)]
            out += [(k, k2) for k2 in subs] if subs and var not in ("data", "aux") else [(k,)]
        return out

    def request(self) -> Any:
        """The request this step is about (the first key that changed)."""
        for var in ("rxPhase", "txPhase", "rxBlocks", "handed", "rxStatus", "txSent", "rxResumes",
                    "rxCache", "rxPSent", "txRound", "txReady", "txPartials", "rxRound", "ctl", "st"):
            keys = self.changed(var)
            if keys:
                return keys[0][0]
        for _chan, r, _s, _m in self.received + self.sent:
            return r
        for _s, w in self.writes_removed + self.writes_added:
            return w["r"]
        if self.changed("errors") or self.prev.get("errors") != self.cur.get("errors"):
            for r, _s, _w in reads_during_write(self.cur):
                return r
        return None


def _msg_text(chan: str, m: Any) -> str:
    if chan == "st":
        extra = ""
        if isinstance(m, tv.Record) and m.get("round"):
            extra = f" (round {m['round']}, {m['sent']} of {m['total']})"
        return status_name(m["status"] if isinstance(m, tv.Record) else m) + extra
    if isinstance(m, tv.Record):
        t = m.get("type", "message")
        if t in ("init", "resume"):
            off = f"offset {m['sent']}, " if t == "resume" else ""
            return f"{t}: {off}{blocks_text(m.get('blocks'))}, {plural(m.get('alloc', 0), 'token')}"
        return str(t)
    return tv.format_value(m)


def short_label(chan: str, m: Any) -> str:
    """A message as an arrow's label: "init b3", "resume @2 b3", "Transferring"."""
    if chan == "st":
        return _msg_text("st", m)
    if isinstance(m, tv.Record):
        t = m.get("type", "message")
        bs = ",".join(str(b) for b in (m.get("blocks") or ()))
        if t == "init":
            return f"init b{bs}"
        if t == "resume":
            rnd = f" r{m['round']}" if m.get("round") else ""
            return f"resume{rnd} @{m['sent']} b{bs}"
        return str(t)
    return tv.format_value(m)


def sentence_for(rd: StepReader) -> tuple[str, list[Mark]]:
    """The step's sentence and the boxes it puts on lanes."""
    a, prev, cur = rd.action, rd.prev, rd.cur
    r = rd.request()
    marks: list[Mark] = []
    extras: list[str] = []

    def sessions_of(chan: str, want: str | None = None, received: bool = False) -> list:
        src = rd.received if received else rd.sent
        return [(s, m) for c, rr, s, m in src if c == chan and (want is None or
                                                               (isinstance(m, tv.Record) and m.get("type") == want))]

    if a == "ReceiverInit":
        parts = []
        for s, m in sessions_of("ctl", "init"):
            parts.append(f"{blocks_text(m['blocks'])} on rank {s}")
            marks.append(Mark(f"rx{s}", f"init {blocks_text(m['blocks'])}"))
        alloc = next((m["alloc"] for s, m in sessions_of("ctl", "init")), 0)
        text = f"Request {r} allocates {join_and(parts)} and sends init ({plural(alloc, 'token')})."
    elif a == "SenderRecvInit":
        s, m = next(iter(sessions_of("ctl", received=True)), (None, None))
        text = (f"The sender receives init of request {r} from session {s}: it will write into "
                f"{blocks_text(m['blocks'])} ({plural(m['alloc'], 'token')}).") if m else f"The sender receives init of request {r}."
        marks.append(Mark("sender", "init received"))
    elif a == "SenderRecvResume":
        s, m = next(iter(sessions_of("ctl", received=True)), (None, None))
        if m is None:
            text = f"The sender receives a resume of request {r}."
        else:
            old_sent = at(prev, "txSent", r, s)
            phase = at(prev, "txPhase", r)
            text = (f"The sender receives resume of request {r} from session {s}: offset {m['sent']}, "
                    f"into {blocks_text(m['blocks'])}.")
            if phase in ("done", "failed", "dead"):
                text += " The room is closed: the resume is dropped."
                marks.append(Mark("sender", "resume dropped", "bad"))
            elif isinstance(old_sent, int) and m["sent"] > old_sent:
                skipped = ", ".join(f"{r}.{i}" for i in range(old_sent + 1, m["sent"] + 1))
                text += (f" It has sent only {plural(old_sent, 'token')} so far, so it skips token"
                         f"{'s' if m['sent'] - old_sent > 1 else ''} {skipped}.")
                marks.append(Mark("sender", f"offset {old_sent}->{m['sent']}", "bad"))
            elif isinstance(old_sent, int) and m["sent"] < old_sent:
                text += f" It has sent {old_sent} already: it will send tokens again."
            if not marks:
                marks.append(Mark("sender", f"resume at {m['sent']}"))
    elif a == "SenderRecvAbort":
        s, m = next(iter(sessions_of("ctl", received=True)), (None, None))
        text = f"The sender receives abort of request {r} from session {s} and answers Failed."
        marks.append(Mark("sender", "abort received"))
    elif a == "SenderStartRound":
        k = at(cur, "txRound", r)
        parts = []
        for s, w in rd.writes_added:
            aux = f" (aux row := {w['aux']})" if w["aux"] else ""
            parts.append(f"{toks(w['toks'])} into block {w['b']} of rank {s}{aux}")
        total = rd.totals.get(r)
        sent_after = max((at(prev, "txSent", r, s, default=0) + at(cur, "txTok", r, s, default=0)
                          for s in dom(at(cur, "txSent", r))), default=0)
        tail = ""
        if at(cur, "txPartial", r):
            tail = f"; {plural(sent_after, 'token')} of {total} after it: more will remain" if total else \
                "; more will remain"
        elif total:
            tail = f"; this is the last round ({total} of {total})"
        text = f"The sender starts round {k} of request {r}: writes {join_and(parts) or 'nothing'}{tail}."
        marks.append(Mark("sender", f"round {k}"))
    elif a == "WriteLand":
        if rd.writes_removed:
            s, w = rd.writes_removed[0]
            b = w["b"]
            old = at(prev, "data", s, b, default=())
            text = f"The write of {toks(w['toks'])} lands in block {b} of rank {s}"
            stale = [x for x in old if tuple(x) != NO_TOKEN] if type(old) is tuple else []
            if stale:
                text += f" (it held {toks(old)})"
            if w["aux"]:
                text += f"; the aux row says {w['aux']} tokens in all"
            owners = [rr for rr in dom(cur.get("rxPhase")) if b in held(cur, rr, s)]
            if w["r"] not in owners:
                who = f"request {owners[0]}'s block" if owners else "a free block"
                text += f": but it is now {who}, not request {w['r']}'s"
                marks.append(Mark(f"pool{s}", f"write into {who}", "bad"))
            text += "."
        else:
            text = "A write lands."
    elif a == "SenderEndRound":
        k = at(cur, "txRound", r)
        sts = sessions_of("st")
        status = status_name(sts[0][1]["status"]) if sts else "?"
        total = rd.totals.get(r)
        sent = [at(cur, "txSent", r, s) for s in dom(at(cur, "txSent", r))]
        amount = f"{sent[0]} of {total}" if total and len(set(sent)) == 1 else "/".join(map(str, sent))
        to = join_and([f"session {s}" for s, _ in sts])
        text = f"Round {k} of request {r} ends with {amount} tokens sent; the sender sends {status} to {to}."
        marks.append(Mark("sender", f"{status}"))
    elif a == "DeliverStatus":
        s, m = next(iter(sessions_of("st", received=True)), (None, None))
        old, new = at(prev, "rxStatus", r, s), at(cur, "rxStatus", r, s)
        got = _msg_text("st", m) if m is not None else "a status"
        text = f"Session {s} of request {r} receives {got}"
        if old == new and m is not None and m["status"] != old:
            text += f"; its status stays {status_name(old)} (the status only goes up)"
        elif old == 0 and new != 0:
            text += f": this raises its Failed status back to {status_name(new)}"
            marks.append(Mark(f"rx{s}", f"Failed -> {status_name(new)}", "bad"))
        text += "."
        if not marks:
            marks.append(Mark(f"rx{s}", status_name(new)))
    elif a.startswith("Poll") or a in ("ReceiverPoll", "CorrectedCache", "CorrectedResume"):
        text, marks = _poll_sentence(rd, r)
    elif a == "PrefillDone":
        text = f"Prefill of request {r} finishes"
        freed = [f"{blocks_text(bs)} of rank {s}" for s, bs in rd.freed.items()]
        one_block = sum(len(bs) for bs in rd.freed.values()) == 1
        if freed:
            text += f"; {join_and(freed)} {'goes' if one_block else 'go'} back to the pool"
        text += "."
        marks += [Mark(f"rx{s}", "done") for s in rd.freed] or [Mark("rx1", "done")]
    elif a == "WriteError":
        text = f"A data write of request {r} fails: the sender gives up the room and sends Failed."
        marks.append(Mark("sender", "write error", "bad"))
    elif a == "Heartbeat":
        dropped = [f"{toks(w['toks'])} into block {w['b']}" for s, w in rd.writes_removed]
        text = (f"The encode side of request {r} dies (heartbeat lost): the receiver marks the request Failed"
                + (f"; the writes of {join_and(dropped)} never land" if dropped else "") + ".")
        marks.append(Mark("sender", "dead", "bad"))
        for s in dom(at(cur, "rxStatus", r)):
            if at(cur, "rxStatus", r, s) == 0 and at(prev, "rxStatus", r, s) != 0:
                marks.append(Mark(f"rx{s}", "Failed"))
    elif a == "Abort":
        text = f"The receiver aborts request {r}"
        if rd.freed:
            text += f" and frees {join_and([f'{blocks_text(bs)} of rank {s}' for s, bs in rd.freed.items()])}"
        if any(c == "ctl" for c, *_ in rd.sent):
            text += " and tells the sender (abort message)"
        else:
            text += "; the sender is not told"
        pending = [w for s in dom(cur.get("wire")) for w in (at(cur, "wire", s) or ()) if w["r"] == r]
        if pending and rd.freed:
            text += f", while its write{'s' if len(pending) > 1 else ''} into {join_and([blocks_text([w['b']]) for w in pending])} {'are' if len(pending) > 1 else 'is'} still in flight"
        text += "."
        for s in (list(rd.freed) or [1]):
            marks.append(Mark(f"rx{s}", "abort", "bad" if pending and rd.freed else "normal"))
    else:
        changed = sorted({p.split("[")[0].split(".")[0] for p in _changed_vars(prev, cur)})
        text = f"{a}: changes {', '.join(changed) or 'nothing'}."
    return text + "".join(extras), marks


def _changed_vars(prev: dict, cur: dict) -> list[str]:
    return [k for k in cur if prev.get(k) != cur.get(k)]


def _poll_sentence(rd: StepReader, r: Any) -> tuple[str, list[Mark]]:
    prev, cur, a = rd.prev, rd.cur, rd.action
    marks: list[Mark] = []
    old_phase, new_phase = at(prev, "rxPhase", r), at(cur, "rxPhase", r)
    statuses = {status_name(at(prev, "rxStatus", r, s)) for s in dom(at(prev, "rxStatus", r))}
    status = "/".join(sorted(statuses))
    parts: list[str] = []
    if new_phase == "prefill" and old_phase != "prefill":
        for s in dom(at(cur, "handed", r)):
            got = at(cur, "handed", r, s)
            want = _source(r, rd.totals)
            ok = want is None or tuple(got) == want
            parts.append(f"session {s} gets {toks(got)}" + ("" if ok else f" (the sender sent {toks(want)})"))
            marks.append(Mark(f"rx{s}", "handed" if ok else "wrong data", "good" if ok else "bad"))
        return f"The receiver sees Success and hands request {r} to prefill: {join_and(parts)}.", marks
    if new_phase == "failed" and old_phase != "failed":
        twice = {s: [b for b, n in Counter(bs).items() if n > 1] for s, bs in rd.freed.items()}
        if any(twice.values()) and status == "Transferring":
            s = next(s for s, bs in twice.items() if bs)
            text = (f"The receiver sees Transferring and resumes request {r} freeing first: it frees "
                    f"{blocks_text(twice[s])} of rank {s}, the allocation finds too few free blocks, so it fails "
                    f"the request, and the failure path frees {blocks_text(twice[s])} again")
            marks.append(Mark(f"rx{s}", "double free", "bad"))
            return text + ".", marks
        text = f"The receiver sees {status} and fails request {r}"
        if rd.freed:
            text += f", freeing {join_and([f'{blocks_text(bs)} of rank {s}' for s, bs in rd.freed.items()])}"
        marks.append(Mark("rx1", "failed", "bad"))
        return text + ".", marks
    hazard = "read_during_write" in (cur.get("errors") or ()) and "read_during_write" not in (prev.get("errors") or ())
    resumes = [(s, m) for c, rr, s, m in rd.sent if c == "ctl" and isinstance(m, tv.Record) and m.get("type") == "resume"]
    for s in sorted({s for s, _ in resumes} | set(rd.freed) | set(rd.allocated), key=str):
        bits = []
        cached_old, cached_new = at(prev, "rxCache", r, s), at(cur, "rxCache", r, s)
        if cached_new != cached_old and cached_new:
            bits.append(f"caches {toks(cached_new)}")
        if s in rd.freed:
            bits.append(f"frees {blocks_text(rd.freed[s])}")
        if s in rd.allocated:
            bits.append(f"allocates {blocks_text(rd.allocated[s])}")
        for s2, m in resumes:
            if s2 != s:
                continue
            n = at(cur, "rxResumes", r, s, default=0)
            partials = at(cur, "txPartials", r, default=0)
            rnd = f" for round {m['round']}" if m.get("round") else ""
            bit = f"resumes{rnd}{ORDINAL.get(n, f' for the {n}th time')} with offset {m['sent']}"
            sent_now = at(cur, "txSent", r, s)
            if isinstance(n, int) and isinstance(partials, int) and n > partials:
                bit += f", although only {plural(partials, 'round')} ended partial"
                marks.append(Mark(f"rx{s}", f"resume #{n}", "bad"))
            else:
                marks.append(Mark(f"rx{s}", f"resume at {m['sent']}"))
            if isinstance(sent_now, int) and m["sent"] > sent_now:
                bit += f" (the sender has sent only {sent_now})"
            bits.append(bit)
        parts.append(f"on session {s} it " + join_and(bits))
    if hazard:
        for rr, s, w in reads_during_write(cur):
            if rr != r:
                continue
            bs = at(cur, "rxBlocks", r, s, default=())
            parts.append(f"it reads {blocks_text(bs)} on rank {s} while the write of "
                         f"{toks(w['toks'])} into block {w['b']} is still in flight")
            marks.append(Mark(f"rx{s}", "read during write", "bad"))
            break
    _rnd_old, rnd_new = None, None
    for s in dom(at(cur, "rxRound", r)):
        if at(prev, "rxRound", r, s) != at(cur, "rxRound", r, s):
            _rnd_old, rnd_new = at(prev, "rxRound", r, s), at(cur, "rxRound", r, s)
    if rnd_new is not None and not parts:
        parts.append(f"it caches round {rnd_new}")
    if not parts:
        what = "waits" if a != "PollReadOnly" else "reads its blocks and waits"
        return f"The receiver polls request {r} ({status}) and {what}.", marks
    return f"The receiver polls request {r} ({status}): " + "; ".join(parts) + ".", marks


def reads_during_write(values: dict) -> list[tuple[Any, Any, Any]]:
    """(request, session, write) where request's current blocks have a write in flight."""
    out = []
    for r in dom(values.get("rxBlocks")):
        for s in dom(at(values, "rxBlocks", r)):
            bs = at(values, "rxBlocks", r, s, default=()) or ()
            out += [(r, s, w) for w in (at(values, "wire", s, default=()) or ()) if w["b"] in bs]
    return out


def _source(r: Any, totals: dict) -> tuple | None:
    total = totals.get(r)
    if not isinstance(total, int):
        return None
    return tuple((r, i) for i in range(1, total + 1))


# ---------------------------------------------------------------------------
# Why the property fails


def explain(prop: str | None, kind: str, trace: Trace, totals: dict, step_of: dict) -> tuple[list[str], int | None]:
    """Sentences saying why ``prop`` fails, and the step to highlight."""
    if not trace.states:
        return [], None
    last = trace.states[-1].values
    last_step = len(trace.states) - 1
    fn = EXPLAIN.get(prop or "")
    if kind == "liveness" or (fn is None and trace.is_lasso):
        return explain_liveness(prop, trace, totals), (step_of.get(trace.loop_to, last_step)
                                                       if trace.loop_to is not None else last_step)
    if fn is None:
        return ([f"{prop} is false in the state after step {last_step}."] if prop else []), last_step
    return fn(prop, trace, last, totals), last_step


def _first_step_where(trace: Trace, pred) -> int | None:
    for i, st in enumerate(trace.states):
        if pred(st.values):
            return i
    return None


def explain_handed(prop, trace, last, totals):
    out = []
    for r in dom(last.get("rxPhase")):
        if at(last, "rxPhase", r) not in ("prefill", "done"):
            continue
        want = _source(r, totals)
        for s in dom(at(last, "handed", r)):
            got = tuple(at(last, "handed", r, s, default=()))
            if want is not None and got == want:
                continue
            line = f"{prop} fails: prefill got {tla_tokens(got)} instead of {tla_tokens(want) if want else 'the sender' + chr(39) + 's embedding'}"
            line += f" (request {r}, session {s})"
            out.append(line + ".")
            if want:
                missing = [t for t in want if t not in got]
                foreign = [t for t in got if t not in want]
                if missing:
                    out.append(f"Token{'s' if len(missing) > 1 else ''} {toks(missing)} never reached prefill.")
                if foreign:
                    out.append(f"Token{'s' if len(foreign) > 1 else ''} {toks(foreign)} do{'es' if len(foreign) == 1 else ''} "
                               f"not belong to request {r}'s embedding (stale block contents).")
    return out or [f"{prop} fails in the last state."]


def explain_double_free(prop, trace, last, totals):
    out = []
    for s in dom(last.get("free")):
        fl = at(last, "free", s, default=())
        for b, n in Counter(fl).items():
            if n > 1:
                steps = [i for i in range(1, len(trace.states))
                         if Counter(at(trace.states[i].values, "free", s, default=()))[b]
                         > Counter(at(trace.states[i - 1].values, "free", s, default=()))[b]]
                when = (f"it was freed twice at step {steps[0]}" if len(steps) == 1 else
                        f"it was freed at steps {join_and([str(i) for i in steps])}")
                out.append(f"{prop} fails: block {b} of rank {s} is on the free list {n} times "
                           f"(free list <<{', '.join(map(str, fl))}>>): {when}.")
                out.append("The allocator may now give the same block to two requests.")
    return out or [f"{prop} fails in the last state."]


def explain_shared(prop, trace, last, totals):
    out = []
    for s in dom(last.get("free")):
        for cell in pool_cells(last, s, None):
            if len(cell.owners) > 1:
                out.append(f"{prop} fails: block {cell.block} of rank {s} is held by requests "
                           f"{join_and([str(r) for r in cell.owners])} at once.")
            if prop == "NoFreeAndHeld" and cell.owners and cell.on_free_list:
                out.append(f"{prop} fails: block {cell.block} of rank {s} is on the free list while request "
                           f"{cell.owners[0]} still holds it.")
    return out or [f"{prop} fails in the last state."]


def explain_owned(prop, trace, last, totals):
    out = []
    for s in dom(last.get("wire")):
        for w in at(last, "wire", s, default=()):
            r, b = w["r"], w["b"]
            if b in held(last, r, s) and at(last, "rxPhase", r) in ("queued", "aborting"):
                continue
            phase = at(last, "rxPhase", r)
            owners = [rr for rr in dom(last.get("rxPhase")) if b in held(last, rr, s)]
            now = (f"it now belongs to request {owners[0]}" if owners and owners[0] != r
                   else "it is back on the free list" if b in (at(last, "free", s) or ()) else
                   f"request {r} is {phase}")
            out.append(f"{prop} fails: the sender's write of {toks(w['toks'])} (request {r}) is in flight "
                       f"into block {b} of rank {s}, but {now}.")
            queued = [m for m in (at(last, "ctl", r, s, default=()) or ())
                      if isinstance(m, tv.Record) and m.get("type") == "resume"]
            if queued:
                out.append(f"Session {s} has already resumed into {blocks_text(queued[0]['blocks'])}, but that "
                           "resume has not reached the sender: the round started on the other session's "
                           f"resume and wrote to session {s}'s old destination.")
            elif at(last, "rxPhase", r) in ("new", "failed", "done") or b in (at(last, "free", s) or ()):
                out.append(f"The receiver let go of block {b} without waiting for the sender's writes into it.")
            out.append("When it lands it overwrites a block the receiver no longer reserves for request "
                       f"{r}.")
    return out or [f"{prop} fails in the last state."]


def explain_read_during_write(prop, trace, last, totals):
    i = _first_step_where(trace, lambda v: "read_during_write" in (v.get("errors") or ()))
    if i is None:
        return [f"{prop} fails in the last state."]
    hits = reads_during_write(trace.states[i].values)
    what = "a block"
    if hits:
        r, s, w = hits[0]
        what = f"request {r}'s {blocks_text([w['b']])} on rank {s}"
    return [f"{prop} fails: at step {i} the receiver reads {what} while the sender's write into it "
            f"({toks(hits[0][2]['toks']) if hits else 'a round'}) is still in flight, so what it reads "
            "(the token count, the aux row) may be half old, half new."]


def explain_resumes(prop, trace, last, totals):
    out = []
    for r in dom(last.get("rxResumes")):
        partials = at(last, "txPartials", r, default=0)
        for s in dom(at(last, "rxResumes", r)):
            n = at(last, "rxResumes", r, s)
            if isinstance(n, int) and n > partials:
                out.append(f"{prop} fails: session {s} of request {r} sent {plural(n, 'resume')}, but only "
                           f"{plural(partials, 'round')} ended partial.")
                out.append("The sender obeys every resume: it overwrites its offset with the later one.")
    return out or [f"{prop} fails in the last state."]


EXPLAIN = {
    "HandedDataIsSource": explain_handed,
    "NoDoubleFree": explain_double_free,
    "NoSharedBlock": explain_shared,
    "NoFreeAndHeld": explain_shared,
    "WritesOnlyIntoOwnedBlocks": explain_owned,
    "NoReadDuringWrite": explain_read_during_write,
    "AtMostOneResumePerRound": explain_resumes,
}


RX_WORDS = {"new": "has not started", "queued": "waits (queued)", "aborting": "is aborting",
            "prefill": "is in prefill", "done": "is done", "failed": "has failed"}
TX_WORDS = {"init": "waits for init", "writing": "is writing", "await": "waits for a resume",
            "done": "has sent everything", "failed": "has failed the room", "dead": "is dead"}


def _waiting_state(values: dict, r: Any) -> str:
    rx = at(values, "rxPhase", r)
    tx = at(values, "txPhase", r)
    statuses = "/".join(sorted({status_name(at(values, "rxStatus", r, s)) for s in dom(at(values, "rxStatus", r))}))
    in_flight = sum(len(at(values, c, r, s, default=()) or ()) for c in ("ctl", "st")
                    for s in dom(at(values, c, r)))
    return (f"the receiver {RX_WORDS.get(rx, rx)} with status {statuses}, the sender {TX_WORDS.get(tx, tx)}, "
            f"and {'no' if not in_flight else in_flight} message{'s are' if in_flight != 1 else ' is'} in flight")


def _why_no_resume(values: dict, r: Any, totals: dict) -> list[str]:
    """What the receiver's "have I already resumed?" memory says, per session."""
    out = []
    for s in dom(at(values, "rxBlocks", r)):
        facts = []
        blocks = at(values, "rxBlocks", r, s)
        if at(values, "rxFlag", r, s) is True:
            facts.append("its flag resume_triggered is already TRUE")
        last_idx = at(values, "rxLastIdx", r, s)
        if last_idx and last_idx == blocks:
            facts.append(f"its last_resume_indices ({blocks_text(last_idx)}) equal its current blocks")
        last_sent = at(values, "rxLastSent", r, s)
        if isinstance(last_sent, int) and not isinstance(last_sent, bool) and last_sent >= 0:
            facts.append(f"its last_resume_at_sent_tokens is still {last_sent}, the count it sees again")
        if not facts and at(values, "rxCache", r, s):
            facts.append(f"it has already cached {toks(at(values, 'rxCache', r, s))}, and this design resumes only "
                         "while nothing is cached")
        sent = at(values, "txSent", r, s)
        total = totals.get(r)
        progress = f" The sender has sent {sent} of {total} tokens." if isinstance(sent, int) and total else ""
        if facts:
            out.append(f"Session {s} does not resume again: {join_and(facts)}.{progress}")
    return out


def explain_liveness(prop, trace, totals):
    states = trace.states
    start = (trace.loop_to - 1) if trace.loop_to is not None else len(states) - 1
    loop = states[start:]
    out = []
    where = (f"From step {start} on, the steps {start}..{len(states) - 1} repeat forever"
             if trace.loop_to is not None else f"After step {len(states) - 1} nothing happens any more")
    reqs = dom(states[-1].values.get("rxPhase"))
    stuck = []
    for r in reqs:
        phases = {at(st.values, "rxPhase", r) for st in loop}
        tx = {at(st.values, "txPhase", r) for st in loop}
        if prop in ("EveryRequestEnds", "NoWaitForUnrequestedRound", None) and not phases & {"prefill", "done", "failed"}:
            stuck.append(r)
        elif prop == "SenderRoomsClose" and not tx & {"done", "failed", "dead"}:
            stuck.append(r)
        elif prop == "BlocksEventuallyFree" and phases & {"prefill", "done", "failed"} and any(
                at(st.values, "rxBlocks", r, s) for st in loop for s in dom(at(st.values, "rxBlocks", r))):
            stuck.append(r)
    name = prop or "a liveness property"
    if not stuck:
        return [f"{where}: {name} never becomes true."]
    for r in stuck:
        out.append(f"{name} fails for request {r}: {where[0].lower() + where[1:]}; there "
                   f"{_waiting_state(loop[-1].values, r)}.")
        if prop == "NoWaitForUnrequestedRound":
            out.append(f"The receiver waits for data of request {r} that the sender will only write after a "
                       "resume, and the receiver's design has decided not to send one: both wait forever.")
            out.extend(_why_no_resume(loop[-1].values, r, totals))
        elif prop == "EveryRequestEnds":
            acts = sorted({st.action.name for st in loop[1:] if st.action} |
                          ({trace.loop_action.name} if trace.loop_action else set()))
            if acts:
                out.append(f"Only {join_and(acts)} keep{'s' if len(acts) == 1 else ''} happening; request {r} is never "
                           "handed to prefill nor failed.")
    final = loop[-1].values
    if len(stuck) > 1 or any(not at(final, "free", s) for s in dom(final.get("free"))):
        for s in dom(final.get("free")):
            if at(final, "free", s):
                continue
            holders = [f"request {r} holds {blocks_text(held(final, r, s))}" for r in reqs if held(final, r, s)]
            out.append(f"Rank {s} has no free block left while {join_and(holders)}: each waiting request "
                       "keeps what it holds and needs blocks another one holds.")
    return out


# ---------------------------------------------------------------------------
# The whole trace


def timeline_from_counterexample(trace: Trace, *, title: str, prop: str | None, kind: str,
                                 constants: str | None = None, hint: str = "",
                                 subtitle: str = "") -> Timeline:
    """Build the Timeline of a TLC counterexample.

    ``kind`` is the result kind ("safety", "liveness", "deadlock", "success");
    ``constants`` the manifest's one-line summary (it gives ``Total``, the
    length of each request's embedding, which the states do not hold).
    """
    consts = parse_constants(constants)
    total = consts.get("Total")
    totals = {i + 1: t for i, t in enumerate(total)} if type(total) is tuple else {}
    first = trace.states[0].values if trace.states else {}
    ranks = dom(first.get("free")) or dom(first.get("data"))
    sessions = ranks or [1]
    lanes = [Lane("sender", "Sender (encode)", "sender")]
    lanes += [Lane(f"rx{s}", f"Receiver, session {s}", "session") for s in sessions]
    lanes += [Lane(f"pool{s}", f"Block pool, rank {s}", "pool") for s in ranks]
    t = Timeline(kind="counterexample", title=title, subtitle=subtitle, lanes=lanes)
    pending: dict[tuple, list] = {}      # (chan, r, s) -> [Arrow] not yet received, FIFO
    writes: dict[tuple, Arrow] = {}      # (s, write) -> Arrow in flight
    prev_cells: dict[str, list[BlockCell]] = {}
    step_of = {st.number: i for i, st in enumerate(trace.states)}
    prev: TraceState | None = None
    for i, st in enumerate(trace.states):
        cells = {f"pool{s}": pool_cells(st.values, s, prev_cells.get(f"pool{s}")) for s in ranks}
        if prev is None:
            free_all = all(c.on_free_list for cs in cells.values() for c in cs)
            sentence = ("Initial state: every block is free." if free_all else "Initial state.")
            step = Step(0, "Init", sentence, pools=cells, where="initial state")
        else:
            action = st.action.name if st.action else "?"
            rd = StepReader(prev.values, st.values, action, totals)
            sentence, marks = sentence_for(rd)
            where = f"{st.action.module}:{st.action.line}" if st.action and st.action.module else ""
            step = Step(i, action, sentence, marks=marks, pools=cells, where=where,
                        details=[f"{p}: {tv.format_value(o)} -> {tv.format_value(n)}"
                                 for p, o, n in _diff(prev, st)])
            for chan, r, s, m in rd.sent:
                src, dst = (f"rx{s}", "sender") if chan == "ctl" else ("sender", f"rx{s}")
                arrow = Arrow(src, dst, i, None, short_label(chan, m), "ctl" if chan == "ctl" else "status",
                              fate="pending")
                t.arrows.append(arrow)
                pending.setdefault((chan, r, s), []).append(arrow)
            for chan, r, s, m in rd.received:
                q = pending.get((chan, r, s))
                if q:
                    arrow = q.pop(0)
                    arrow.end, arrow.fate = i, "received"
                else:   # sent before the trace began (never in our specs): draw it within the step
                    src, dst = (f"rx{s}", "sender") if chan == "ctl" else ("sender", f"rx{s}")
                    t.arrows.append(Arrow(src, dst, i, i, short_label(chan, m), "ctl" if chan == "ctl" else "status"))
            for s, w in rd.writes_added:
                arrow = Arrow("sender", f"pool{s}", i, None, f"{toks(w['toks'])} → b{w['b']}", "write",
                              fate="pending", block=w["b"])
                t.arrows.append(arrow)
                writes[(s, w)] = arrow
            for s, w in rd.writes_removed:
                arrow = writes.pop((s, w), None)
                if arrow is not None:
                    arrow.end = i
                    arrow.fate = "landed" if action == "WriteLand" else "dropped"
                    owners = [rr for rr in dom(st.values.get("rxPhase")) if w["b"] in held(st.values, rr, s)]
                    arrow.bad = arrow.fate == "landed" and w["r"] not in owners
            for s, bs in rd.allocated.items():
                t.arrows.append(Arrow(f"pool{s}", f"rx{s}", i, i, f"alloc {blocks_text(bs)}", "alloc"))
            for s, bs in rd.freed.items():
                t.arrows.append(Arrow(f"rx{s}", f"pool{s}", i, i, f"free {blocks_text(bs)}", "free"))
        t.steps.append(step)
        prev_cells = cells
        prev = st
    why, hl = explain(prop, kind, trace, totals, step_of)
    verdict = {"safety": "violates", "liveness": "hangs", "deadlock": "violates", "success": "success"}.get(kind, kind)
    if kind == "deadlock" and not why:
        why = [f"No action is enabled after step {len(trace.states) - 1}: the system is deadlocked."]
    t.finding = Finding(verdict, prop=prop if kind != "deadlock" else (prop or "Deadlock"),
                        meaning=PROPERTY_MEANING.get(prop or "", ""), why=why, step=hl, hint=hint)
    if hl is not None and 0 <= hl < len(t.steps) and kind == "safety":
        t.steps[hl].tone = "bad"
    if trace.loop_to is not None:
        t.loop_to = step_of.get(trace.loop_to)
    t.stuttering = trace.stuttering
    return t


def _diff(prev: TraceState, cur: TraceState):
    from resumespec.spec.counterexample import state_changes

    return state_changes(prev, cur)
