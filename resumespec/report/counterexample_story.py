"""Tell a TLC counterexample as a story: ``timeline_from_counterexample``.

Each step is told by the protocol core (``resumespec.reference.protocol``):
the states before and after become worlds of the core's abstract host
(``spechost.World.from_spec``), ``steps.steps_to`` finds the core step that
leads from one to the other, and the sentence says what that step is
(``ReceiverInit``, ``SenderRecvResume``, a poll outcome, a write landing,
...) and what its effects do: blocks allocated and freed, blocks read
(cached, handed to prefill, or read while a write is in flight), messages
sent, data writes started, dropped or landed, the request failed.  The
state before and after supply only what the effects do not say: what the
sender had sent when a resume arrives (so the resume "skips token 1.2"),
what a landing write overwrites, who holds a block now, what prefill got.
Nothing is written per model.  A step no core step explains (a spec the
core does not follow yet) is told from the variables it changes.

The block pools drawn after every step and the verdict's "why" read the
states themselves: the "why" evaluates the violated property's definition
on the last state (safety) or on the loop (liveness) (``explain_*``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from resumespec.reference.protocol import messages as fx
from resumespec.reference.protocol.designs import VARIANTS, Status
from resumespec.reference.protocol.receiver import historical_view
from resumespec.reference.protocol.spechost import World, Write, status_name
from resumespec.reference.protocol.steps import CoreStep, steps_to
from resumespec.spec import tla_values as tv
from resumespec.spec.counterexample import Trace, TraceState

from .timeline import PROPERTY_MEANING, Arrow, BlockCell, Finding, Lane, Mark, Step, Timeline

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


def join_and(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


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
# One step in words: the core's action and effects


class Told:
    """What one step did, as the protocol core reports it: the core step
    (action, request, session, effects) between the worlds before and after,
    and what the host saw (messages taken off a channel, writes dropped)."""

    def __init__(self, step: CoreStep, before: World, after: World, totals: dict):
        self.move, self.effects = step
        self.before, self.after, self.totals = before, after, totals
        self.r, self.s = self.move.req, self.move.session
        self.sent: list[tuple[str, int, int, Any]] = []       # (chan, r, s, msg)
        self.received: list[tuple[str, int, int, Any]] = []
        self.writes_added: list[tuple[int, Write]] = []
        self.writes_removed: list[tuple[int, Write, str]] = []   # (s, write, "landed" | "dropped")
        self.allocated: dict[int, list[int]] = {}
        self.freed: dict[int, list[int]] = {}
        self.reads: list[fx.Read] = []
        a, r, s = self.move.action, self.r, self.s
        if a.startswith("SenderRecv") and s is not None:
            self.received.append(("ctl", r, s, before.ctl[(r, s)][0]))
        elif a == "DeliverStatus" and s is not None:
            self.received.append(("st", r, s, before.st[(r, s)][0]))
        if self.move.write is not None and s is not None:
            self.writes_removed.append((s, self.move.write, "landed"))
        for e in self.effects:
            if isinstance(e, fx.SendCtl):
                self.sent.append(("ctl", e.req, e.session, e.msg))
            elif isinstance(e, fx.SendStatus):
                self.sent.append(("st", e.req, e.session, e.msg))
            elif isinstance(e, fx.WriteBlock):
                w = Write(e.req, e.block, tuple((e.req, e.first + k) for k in range(e.count)), e.aux)
                self.writes_added.append((e.session, w))
            elif isinstance(e, fx.CancelWrites):
                self.writes_removed += [(i + 1, w, "dropped") for i, ws in enumerate(before.wire)
                                        for w in sorted(ws, key=_write_key) if w.r == e.req]
            elif isinstance(e, fx.Alloc) and e.blocks:
                self.allocated.setdefault(e.session, []).extend(e.blocks)
            elif isinstance(e, fx.Free) and e.blocks:
                self.freed.setdefault(e.session, []).extend(e.blocks)
            elif isinstance(e, fx.Read):
                self.reads.append(e)

    def in_flight(self, rd: fx.Read) -> list[Write]:
        """Writes in flight (before the step) into blocks ``rd`` reads: the hazard."""
        return sorted((w for w in self.before.wire[rd.session - 1] if w.b in rd.blocks), key=_write_key)

    def owners(self, s: int, b: int) -> list[int]:
        """Requests holding block ``b`` of rank ``s`` after the step."""
        return [q for q in self.after.reqs if b in self.after.rx.held(q, s)]

    def status_text(self) -> str:
        """The ranks' statuses of the step's request before it, "Transferring" or "Failed/Success"."""
        q = self.before.rx.requests[self.r]
        return "/".join(sorted({status_name(x.status) for x in q.sessions}))

    def effects_text(self) -> str:
        return f"core: {self.move.action}(r={self.r}" + (f", s={self.s}" if self.s else "") + ") -> " + (
            "; ".join(_effect_text(e) for e in self.effects) or "no effect")


def _write_key(w: Write) -> tuple:
    return (w.r, w.b, w.toks, w.aux)


def _effect_text(e: Any) -> str:
    """An effect, compactly, for the step's details."""
    if isinstance(e, (fx.Alloc, fx.Free)):
        return f"{type(e).__name__.lower()} {blocks_text(e.blocks)} of rank {e.session}"
    if isinstance(e, fx.Read):
        return f"read {plural(e.tokens, 'token')} of {blocks_text(e.blocks)} of rank {e.session} ({e.purpose})"
    if isinstance(e, (fx.SendCtl, fx.SendStatus)):
        chan = "ctl" if isinstance(e, fx.SendCtl) else "st"
        return f"send {short_label(chan, e.msg)} to {'the sender' if chan == 'ctl' else f'session {e.session}'}"
    if isinstance(e, fx.WriteBlock):
        return f"write {e.req}.{e.first}+{e.count} into block {e.block} of rank {e.session}" + (
            f" (aux {e.aux})" if e.aux else "")
    if isinstance(e, fx.CancelWrites):
        return "cancel the room's writes in flight"
    if isinstance(e, fx.HandOff):
        return "hand off to prefill"
    if isinstance(e, fx.FailRequest):
        return f"fail ({e.reason})"
    return type(e).__name__


def _msg_text(chan: str, m: Any) -> str:
    """A status or control message (the core's StatusMsg / Ctl) in words."""
    if chan == "st":
        extra = f" (round {m.round}, {m.sent} of {m.total})" if m.round else ""
        return status_name(m.status) + extra
    if m.type in ("init", "resume"):
        off = f"offset {m.sent}, " if m.type == "resume" else ""
        return f"{m.type}: {off}{blocks_text(m.blocks)}, {plural(m.alloc, 'token')}"
    return str(m.type)


def short_label(chan: str, m: Any) -> str:
    """A message as an arrow's label: "init b3", "resume @2 b3", "Transferring"."""
    if chan == "st":
        return _msg_text("st", m)
    bs = ",".join(str(b) for b in m.blocks)
    if m.type == "init":
        return f"init b{bs}"
    if m.type == "resume":
        rnd = f" r{m.round}" if m.round else ""
        return f"resume{rnd} @{m.sent} b{bs}"
    return str(m.type)


def _where(freed_or_alloc: dict[int, list[int]]) -> str:
    return join_and([f"{blocks_text(bs)} of rank {s}" for s, bs in freed_or_alloc.items()])


def sentence_for(t: Told) -> tuple[str, list[Mark]]:
    """The step's sentence and the boxes it puts on lanes, from the core's action and effects."""
    a, r = t.move.action, t.r
    s = t.s if t.s is not None else 0      # the session, for the actions on one session
    before, after = t.before, t.after
    marks: list[Mark] = []
    if a == "ReceiverInit":
        inits = [(x[2], x[3]) for x in t.sent if x[0] == "ctl"]
        for s2, m in inits:
            marks.append(Mark(f"rx{s2}", f"init {blocks_text(m.blocks)}"))
        alloc = inits[0][1].alloc if inits else 0
        where = join_and([f"{blocks_text(bs)} on rank {s2}" for s2, bs in t.allocated.items()])
        return f"Request {r} allocates {where or 'no block'} and sends init ({plural(alloc, 'token')}).", marks
    if a == "SenderRecvInit":
        m = t.received[0][3]
        marks.append(Mark("sender", "init received"))
        return (f"The sender receives init of request {r} from session {s}: it will write into "
                f"{blocks_text(m.blocks)} ({plural(m.alloc, 'token')})."), marks
    if a == "SenderRecvResume":
        m = t.received[0][3]
        room = before.tx[r]
        old_sent = room.session(s).sent
        text = (f"The sender receives resume of request {r} from session {s}: offset {m.sent}, "
                f"into {blocks_text(m.blocks)}.")
        if not room.alive:
            text += f" The room is closed ({room.phase}): the resume is dropped."
            marks.append(Mark("sender", "resume dropped", "bad"))
        elif m.sent > old_sent:
            skipped = ", ".join(f"{r}.{i}" for i in range(old_sent + 1, m.sent + 1))
            text += (f" It has sent only {plural(old_sent, 'token')} so far, so it skips token"
                     f"{'s' if m.sent - old_sent > 1 else ''} {skipped}.")
            marks.append(Mark("sender", f"offset {old_sent}->{m.sent}", "bad"))
        elif m.sent < old_sent:
            text += f" It has sent {old_sent} already: it will send tokens again."
        if not marks:
            marks.append(Mark("sender", f"resume at {m.sent}"))
        return text, marks
    if a == "SenderRecvAbort":
        answers = [x[3] for x in t.sent if x[0] == "st"]
        marks.append(Mark("sender", "abort received"))
        if not answers:
            return (f"The sender receives abort of request {r} from session {s}; the room is dead: "
                    "the abort is dropped."), marks
        closed = "closes the room and " if before.tx[r].alive and after.tx[r].phase == "failed" else ""
        return (f"The sender receives abort of request {r} from session {s}, no write being in flight: it "
                f"{closed}answers {_msg_text('st', answers[0])}."), marks
    if a == "SenderStartRound":
        room = after.tx[r]
        parts = [f"{toks(w.toks)} into block {w.b} of rank {s2}" + (f" (aux row := {w.aux})" if w.aux else "")
                 for s2, w in t.writes_added]
        total = t.totals.get(r)
        sent_after = max((before.tx[r].session(x).sent + room.session(x).tok for x in after.params.sessions),
                         default=0)
        if room.partial:
            tail = f"; {plural(sent_after, 'token')} of {total} after it: more will remain" if total \
                else "; more will remain"
        else:
            tail = f"; this is the last round ({total} of {total})" if total else ""
        marks.append(Mark("sender", f"round {room.round}"))
        return (f"The sender starts round {room.round} of request {r}: writes "
                f"{join_and(parts) or 'nothing'}{tail}."), marks
    if t.move.write is not None:
        w = t.move.write
        old = before.data[s - 1][w.b - 1]
        text = f"The write of {toks(w.toks)} lands in block {w.b} of rank {s}"
        if any(x != NO_TOKEN for x in old):
            text += f" (it held {toks(old)})"
        if w.aux:
            text += f"; the aux row says {w.aux} tokens in all"
        owners = t.owners(s, w.b)
        if w.r not in owners:
            who = f"request {owners[0]}'s block" if owners else "a free block"
            text += f": but it is now {who}, not request {w.r}'s"
            marks.append(Mark(f"pool{s}", f"write into {who}", "bad"))
        return text + ".", marks
    if a == "SenderEndRound":
        sts = [(x[2], x[3]) for x in t.sent if x[0] == "st"]
        status = status_name(sts[0][1].status) if sts else "?"
        total = t.totals.get(r)
        sent = [after.tx[r].session(x).sent for x in after.params.sessions]
        amount = f"{sent[0]} of {total}" if total and len(set(sent)) == 1 else "/".join(map(str, sent))
        to = join_and([f"session {x}" for x, _ in sts])
        marks.append(Mark("sender", status))
        return (f"Round {after.tx[r].round} of request {r} ends with {amount} tokens sent; "
                f"the sender sends {status} to {to}."), marks
    if a == "DeliverStatus":
        m = t.received[0][3]
        was = before.rx.requests[r].session(s).status
        now = after.rx.requests[r].session(s).status
        text = f"Session {s} of request {r} receives {_msg_text('st', m)}"
        if was == now and m.status != was:
            text += f"; its status stays {status_name(was)} (the status only goes up)"
        elif was == Status.FAILED and now != Status.FAILED:
            text += f": this raises its Failed status back to {status_name(now)}"
            marks.append(Mark(f"rx{s}", f"Failed -> {status_name(now)}", "bad"))
        if not marks:
            marks.append(Mark(f"rx{s}", status_name(now)))
        return text + ".", marks
    if a.startswith("Poll"):
        return _poll_sentence(t)
    if a == "PrefillDone":
        text = f"Prefill of request {r} finishes"
        if t.freed:
            one = sum(len(bs) for bs in t.freed.values()) == 1
            text += f"; {_where(t.freed)} {'goes' if one else 'go'} back to the pool"
        marks += [Mark(f"rx{x}", "done") for x in t.freed] or [Mark("rx1", "done")]
        return text + ".", marks
    dropped = [f"{toks(w.toks)} into block {w.b}" for _s, w, fate in t.writes_removed if fate == "dropped"]
    never = f"; the write{'s' if len(dropped) > 1 else ''} of {join_and(dropped)} never land" + (
        "s" if len(dropped) == 1 else "") if dropped else ""
    if a == "WriteError":
        marks.append(Mark("sender", "write error", "bad"))
        if after.params.fork_sender and t.s is not None:
            return (f"A data write of request {r} to session {t.s} fails: the sender gives up the "
                    f"room, counts session {t.s} as dead and sends Failed to it alone{never}."), marks
        return (f"A data write of request {r} fails: the sender gives up the room and sends Failed"
                f"{never}."), marks
    if a == "SenderFailDead":
        marks.append(Mark("sender", f"session {s} dead", "bad"))
        written = sorted({e.session for e in t.effects if type(e).__name__ == "WriteBlock"})
        first = (f"it writes session{'s' if len(written) > 1 else ''} "
                 f"{join_and([str(x) for x in written])} first, then " if written else "")
        return (f"Request {r} could start a round, but the sender counts session {s} as dead: "
                f"{first}it fails the room and sends Failed to session {s} alone, "
                f"writing nothing there."), marks
    if a == "SenderQueuedRound":
        room = after.tx[r]
        left = after.tx[r].queue
        marks.append(Mark("sender", f"round {room.round}"))
        failed = " (the room has failed, but it is still in the sender's table)" \
            if before.tx[r].phase == "failed" else ""
        return (f"The sender's transfer worker takes round {room.round} of request {r}{failed}: "
                f"it will write the sessions one after another, each from its offset and blocks "
                f"when it reaches it ({left} more round{'s' if left != 1 else ''} queued)."), marks
    if a == "SenderWriteSession":
        if any(type(e).__name__ == "SendStatus" for e in t.effects):
            marks.append(Mark("sender", f"session {s} dead", "bad"))
            return (f"The sender's walk of request {r}'s round reaches session {s}, which it "
                    f"counts as dead: it fails the room, sends Failed to session {s} and ends the "
                    f"walk."), marks
        x = after.tx[r].session(s)
        blocks = sorted({e.block for e in t.effects if type(e).__name__ == "WriteBlock"})
        marks.append(Mark(f"pool{s}", f"writing {x.tok} tokens"))
        where = f" into block{'s' if len(blocks) > 1 else ''} {join_and([str(b) for b in blocks])}" \
            if blocks else ""
        return (f"The sender writes session {s}'s share of request {r}'s round: {x.tok} tokens "
                f"from offset {x.sent - x.tok}{where}."), marks
    if a == "Heartbeat":
        marks.append(Mark("sender", "dead", "bad"))
        for x in after.params.sessions:
            if after.rx.requests[r].session(x).status == Status.FAILED != before.rx.requests[r].session(x).status:
                marks.append(Mark(f"rx{x}", "Failed"))
        return (f"The encode side of request {r} dies (heartbeat lost): the receiver marks the request "
                f"Failed{never}."), marks
    if a == "Abort":
        text = f"The receiver aborts request {r}"
        if t.freed:
            text += f" and frees {_where(t.freed)}"
        if any(x[0] == "ctl" for x in t.sent):
            text += " and tells the sender (abort message)"
        else:
            text += "; the sender is not told"
        pending = sorted((w for ws in after.wire for w in ws if w.r == r), key=_write_key)
        if pending and t.freed:
            many = len(pending) > 1
            text += (f", while its write{'s' if many else ''} into "
                     f"{join_and([blocks_text([w.b]) for w in pending])} {'are' if many else 'is'} still in flight")
        for x in (list(t.freed) or [1]):
            marks.append(Mark(f"rx{x}", "abort", "bad" if pending and t.freed else "normal"))
        return text + ".", marks
    return f"{a} of request {r}: {'; '.join(_effect_text(e) for e in t.effects) or 'no effect'}.", marks


def _poll_sentence(t: Told) -> tuple[str, list[Mark]]:
    a, r = t.move.action, t.r
    before, after = t.before, t.after
    marks: list[Mark] = []
    status = t.status_text()
    if any(isinstance(e, fx.HandOff) for e in t.effects):
        gets = []
        want = _source(r, t.totals)
        for s in after.params.sessions:
            got = after.handed[(r, s)]
            ok = want is None or got == want
            gets.append(f"session {s} gets {toks(got)}" + ("" if ok else f" (the sender sent {toks(want)})"))
            marks.append(Mark(f"rx{s}", "handed" if ok else "wrong data", "good" if ok else "bad"))
        return f"The receiver sees Success and hands request {r} to prefill: {join_and(gets)}.", marks
    if any(isinstance(e, fx.FailRequest) for e in t.effects):
        twice = {s: [b for b, n in Counter(bs).items() if n > 1] for s, bs in t.freed.items()}
        if any(twice.values()):
            s = next(s for s, bs in twice.items() if bs)
            marks.append(Mark(f"rx{s}", "double free", "bad"))
            return (f"The receiver sees {status} and resumes request {r} freeing first: it frees "
                    f"{blocks_text(twice[s])} of rank {s}, the allocation finds too few free blocks, so it fails "
                    f"the request, and the failure path frees {blocks_text(twice[s])} again."), marks
        marks.append(Mark("rx1", "failed", "bad"))
        freeing = f", freeing {_where(t.freed)}" if t.freed else ""
        return f"The receiver sees {status} and fails request {r}{freeing}.", marks
    parts: list[str] = []
    for s in after.params.sessions:
        bits: list[str] = []
        for e in t.effects:
            if isinstance(e, fx.Read) and e.session == s and e.purpose == "cache":
                got = after.cache[(r, s)][len(before.cache[(r, s)]):]
                cached_round = after.rx.requests[r].session(s).round
                rnd_text = f" round {cached_round}:" if cached_round != before.rx.requests[r].session(s).round else ""
                bits.append(f"caches{rnd_text} {toks(got)}")
            elif isinstance(e, fx.Free) and e.session == s and e.blocks:
                bits.append(f"frees {blocks_text(e.blocks)}")
            elif isinstance(e, fx.Alloc) and e.session == s and e.blocks:
                if bits and bits[-1] == f"frees {blocks_text(e.blocks)}":     # the allocator gives them back
                    bits[-1] = f"frees and reallocates {blocks_text(e.blocks)}"
                else:
                    bits.append(f"allocates {blocks_text(e.blocks)}")
            elif isinstance(e, fx.SendCtl) and e.session == s and e.msg.type == "resume":
                m = e.msg
                n = after.rx.requests[r].session(s).resumes
                partials = after.tx[r].partials
                rnd = f" for round {m.round}" if m.round else ""
                k = max(1, n - partials + 1)        # the k-th resume since the last round ended partial
                bit = f"resumes{rnd}{ORDINAL.get(k, f' for the {k}th time')} with offset {m.sent}"
                if n > partials:
                    bit += f", although only {plural(partials, 'round')} ended partial"
                    marks.append(Mark(f"rx{s}", f"resume #{n}", "bad"))
                else:
                    marks.append(Mark(f"rx{s}", f"resume at {m.sent}"))
                sent_now = after.tx[r].session(s).sent
                if m.sent > sent_now:
                    bit += f" (the sender has sent only {sent_now})"
                bits.append(bit)
        if bits:
            parts.append(f"on session {s} it " + join_and(bits))
    for rd in t.reads:
        hit = t.in_flight(rd)
        if hit:
            parts.append(f"it reads {blocks_text(rd.blocks)} on rank {rd.session} while the write of "
                         f"{toks(hit[0].toks)} into block {hit[0].b} is still in flight")
            marks.append(Mark(f"rx{rd.session}", "read during write", "bad"))
            break
    if not parts:
        what = "reads its blocks and waits" if a == "PollReadOnly" else "waits"
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


def explain(prop: str | None, kind: str, trace: Trace, totals: dict, step_of: dict,
            last_world: World | None = None) -> tuple[list[str], int | None]:
    """Sentences saying why ``prop`` fails, and the step to highlight."""
    if not trace.states:
        return [], None
    last = trace.states[-1].values
    last_step = len(trace.states) - 1
    fn = EXPLAIN.get(prop or "")
    if kind == "liveness" or (fn is None and trace.is_lasso):
        return explain_liveness(prop, trace, totals, last_world), (step_of.get(trace.loop_to, last_step)
                                                       if trace.loop_to is not None else last_step)
    if fn is None:
        return ([f"{prop} is false in the state after step {last_step}."] if prop else []), last_step
    return fn(prop, trace, last, totals) or [f"{prop} fails in the last state."], last_step


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
                belongs = f"do{'es' if len(foreign) == 1 else ''} not belong to request {r}'s embedding"
                out += [f"Token{'s' if len(ts) > 1 else ''} {toks(ts)} {what}." for ts, what in (
                    (missing, "never reached prefill"), (foreign, f"{belongs} (stale block contents)")) if ts]
    return out


def explain_double_free(prop, trace, last, totals):
    out = []
    for s in dom(last.get("free")):
        fl = at(last, "free", s, default=())
        twice = [(b, n) for b, n in Counter(fl).items() if n > 1]
        for b, n in twice:
            # the steps after which block b is on the free list more often than before
            times = [Counter(at(st.values, "free", s, default=()))[b] for st in trace.states]
            steps = [i for i in range(1, len(times)) if times[i] > times[i - 1]]
            when = (f"it was freed twice at step {steps[0]}" if len(steps) == 1 else
                    f"it was freed at steps {join_and([str(i) for i in steps])}")
            out += [f"{prop} fails: block {b} of rank {s} is on the free list {n} times "
                    f"(free list <<{', '.join(map(str, fl))}>>): {when}.",
                    "The allocator may now give the same block to two requests."]
    return out


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
    return out


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
    return out


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
    return out


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


# What a historical design's "have I already resumed?" memory holds, in the
# engine's words (the core's ``historical_view`` makes the decision).
MEMORY = {
    "flag": lambda x: f"its flag resume_triggered is {'TRUE' if x.flag else 'FALSE'}",
    "indices": lambda x: (f"its last_resume_indices are {blocks_text(x.last_idx)}, its current blocks "
                          f"{blocks_text(x.blocks)}"),
    "once": lambda x: f"it has cached {plural(x.cached, 'token')}",
    "sent_tokens": lambda x: f"its last_resume_at_sent_tokens is {x.last_sent}",
    "cached_sent": lambda x: f"its last_resume_at_sent_tokens is {x.last_sent}",
}


def _why_no_resume(world: World | None, r: int) -> list[str]:
    """Why no rank of request ``r`` resumes: the design's decision, as the
    core's ``historical_view`` makes it on the last state, per session."""
    if world is None or world.params.corrected:
        return []
    d, out = world.params.design, []
    aux = world.aux_seen(r)
    for s in world.params.sessions:
        x = world.rx.requests[r].session(s)
        seen = historical_view(d.variant, world.params.block_size, x, aux[s])
        if not seen.wants:
            out.append(f"Session {s} does not resume again: the {d.variant} design's test ({d.summary}) says no: "
                       f"{MEMORY[d.variant](x)}, and it sees {seen.sent} of {seen.total} tokens (the aux row "
                       f"of its first block says {aux[s]}). The sender has sent {world.tx[r].session(s).sent} of "
                       f"{world.totals[r - 1]} tokens.")
    return out


def explain_liveness(prop, trace, totals, last_world=None):
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
            out.extend(_why_no_resume(last_world, r))
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


def core_steps(trace: Trace, variant: str | None, constants: str | None) -> list[tuple[CoreStep, World, World] | None]:
    """For each step k (1..) of the trace, the core step that leads from
    state k-1 to state k, with both worlds, or None where no core step does
    (or the model's constants cannot build a world).  ``variant`` None: the
    first design whose core explains every step."""
    n = len(trace.states) - 1
    if n < 1 or not constants:
        return [None] * max(n, 0)
    best: list[tuple[CoreStep, World, World] | None] = [None] * n
    for v in ([variant] if variant in VARIANTS else list(VARIANTS)):
        init = _initial_world(v, constants)
        try:
            worlds = [World.from_spec(init.params, init.totals, init.n_blocks, init.faults, st.values)
                      for st in trace.states] if init is not None else None
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            worlds = None
        if worlds is None:
            return best
        out: list[tuple[CoreStep, World, World] | None] = []
        for k in range(1, n + 1):
            label = trace.states[k].action
            found = steps_to(worlds[k - 1], worlds[k], label.name if label is not None else None)
            out.append((found[0], worlds[k - 1], worlds[k]) if found else None)
        if sum(x is not None for x in out) > sum(x is not None for x in best):
            best = out
        if all(x is not None for x in out):
            break
    return best


def _initial_world(variant: str, constants: str | None) -> World | None:
    """The model's initial world (the core's params, Total, NBlocks, faults), or
    None when the constants do not say enough."""
    try:
        return World.from_model(variant, constants or "")
    except (ValueError, KeyError):
        return None


def timeline_from_counterexample(trace: Trace, *, title: str, prop: str | None, kind: str,
                                 constants: str | None = None, hint: str = "",
                                 subtitle: str = "", variant: str | None = None) -> Timeline:
    """Build the Timeline of a TLC counterexample.

    ``kind`` is the result kind ("safety", "liveness", "deadlock", "success");
    ``constants`` the manifest's one-line summary (it gives ``Total``, the
    length of each request's embedding, which the states do not hold, and
    the rest of the model the core needs); ``variant`` the design (None:
    the design whose core explains the trace).
    """
    init = _initial_world(variant if variant in VARIANTS else VARIANTS[0], constants)
    totals = dict(enumerate(init.totals, 1)) if init is not None else {}
    first = trace.states[0].values if trace.states else {}
    ranks = dom(first.get("free")) or dom(first.get("data"))
    sessions = ranks or [1]
    lanes = [Lane("sender", "Sender (encode)", "sender")]
    lanes += [Lane(f"rx{s}", f"Receiver, session {s}", "session") for s in sessions]
    lanes += [Lane(f"pool{s}", f"Block pool, rank {s}", "pool") for s in ranks]
    t = Timeline(kind="counterexample", title=title, subtitle=subtitle, lanes=lanes)
    told = core_steps(trace, variant, constants)
    pending: dict[tuple, list] = {}      # (chan, r, s) -> [Arrow] not yet received, FIFO
    writes: dict[tuple, Arrow] = {}      # (s, write) -> Arrow in flight
    prev_cells: dict[str, list[BlockCell]] = {}
    step_of = {st.number: i for i, st in enumerate(trace.states)}
    prev: TraceState | None = None
    unexplained = []
    for i, st in enumerate(trace.states):
        cells = {f"pool{s}": pool_cells(st.values, s, prev_cells.get(f"pool{s}")) for s in ranks}
        if prev is None:
            free_all = all(c.on_free_list for cs in cells.values() for c in cs)
            sentence = ("Initial state: every block is free." if free_all else "Initial state.")
            step = Step(0, "Init", sentence, pools=cells, where="initial state")
        else:
            action = st.action.name if st.action else "?"
            where = f"{st.action.module}:{st.action.line}" if st.action and st.action.module else ""
            details = [f"{p}: {tv.format_value(o)} -> {tv.format_value(n)}" for p, o, n in _diff(prev, st)]
            found = told[i - 1]
            if found is None:
                unexplained.append(i)
                changed = sorted({p.split("[")[0].split(".")[0] for p, _o, _n in _diff(prev, st)})
                step = Step(i, action, f"{action}: no step of the protocol core leads here; it changes "
                                       f"{', '.join(changed) or 'nothing'}.", pools=cells, where=where,
                            details=details)
            else:
                tl = Told(found[0], found[1], found[2], totals)
                sentence, marks = sentence_for(tl)
                step = Step(i, action, sentence, marks=marks, pools=cells, where=where,
                            details=[tl.effects_text()] + details)
                _arrows(t, tl, i, pending, writes)
        t.steps.append(step)
        prev_cells = cells
        prev = st
    if unexplained:
        t.notes.append(f"(steps {', '.join(map(str, unexplained))}: no step of the protocol core "
                       f"{'(design ' + variant + ') ' if variant else ''}leads from the state before to the "
                       "state after; told from the changed variables only)")
    last_world = told[-1][2] if told and told[-1] is not None else None
    why, hl = explain(prop, kind, trace, totals, step_of, last_world)
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


def _arrows(t: Timeline, tl: Told, i: int, pending: dict, writes: dict) -> None:
    """The step's messages, writes, allocations and frees as arrows."""
    for chan, r, s, m in tl.sent:
        src, dst = (f"rx{s}", "sender") if chan == "ctl" else ("sender", f"rx{s}")
        arrow = Arrow(src, dst, i, None, short_label(chan, m), "ctl" if chan == "ctl" else "status",
                      fate="pending")
        t.arrows.append(arrow)
        pending.setdefault((chan, r, s), []).append(arrow)
    for chan, r, s, m in tl.received:
        q = pending.get((chan, r, s))
        if q:
            arrow = q.pop(0)
            arrow.end, arrow.fate = i, "received"
        else:   # sent before the trace began (never in our specs): draw it within the step
            src, dst = (f"rx{s}", "sender") if chan == "ctl" else ("sender", f"rx{s}")
            t.arrows.append(Arrow(src, dst, i, i, short_label(chan, m), "ctl" if chan == "ctl" else "status"))
    for s, w in tl.writes_added:
        arrow = Arrow("sender", f"pool{s}", i, None, f"{toks(w.toks)} → b{w.b}", "write",
                      fate="pending", block=w.b)
        t.arrows.append(arrow)
        writes[(s, w)] = arrow
    for s, w, fate in tl.writes_removed:
        arrow = writes.pop((s, w), None)
        if arrow is not None:
            arrow.end, arrow.fate = i, fate
            arrow.bad = fate == "landed" and w.r not in tl.owners(s, w.b)
    for s, bs in tl.allocated.items():
        t.arrows.append(Arrow(f"pool{s}", f"rx{s}", i, i, f"alloc {blocks_text(bs)}", "alloc"))
    for s, bs in tl.freed.items():
        t.arrows.append(Arrow(f"rx{s}", f"pool{s}", i, i, f"free {blocks_text(bs)}", "free"))


def _diff(prev: TraceState, cur: TraceState):
    from resumespec.spec.counterexample import state_changes

    return state_changes(prev, cur)
