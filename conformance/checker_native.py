"""The native streaming checker: replays a trace through the spec's state, event by event.

``NativeChecker.feed(line, event)`` takes one event of the merged trace (see
docs/trace-format.md for the merge) and applies the spec action it belongs
to (spec/ResumeProtocol.tla; the names are docs/model.md's).  It stops at the
first event that

* no spec step can explain (a status received that nobody sent, a round that
  does not start where the last resume said, ...): property ``SpecStep``; or
* reaches a state where a safety property is false: one function per
  property in ``conformance/properties.py``.

``finish()`` then judges what a finite log can say about liveness: requests
still unfinished, blocks never given back, rooms the sender never closed
(verdict *incomplete*), and, with ``bound=K``, every round that ended partial
must be answered (a resume, or the request ending) within K events.

What the log does not show is filled in as the spec allows it: a data write
lands at some point between its ``round_start`` and its ``round_end`` (the
spec's ``WriteLand``), so the checker treats the write as *in flight* in
between, and a property that fails for some landing order fails.

The state holds only what is live: blocks held, writes and messages in
flight, requests not finished (plus the ids of finished requests, to reject
events about them).  Nothing grows with the length of the trace.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any, cast

from resumespec.reference.protocol import designs as _designs
from resumespec.reference.protocol import rank as core_rank
from resumespec.reference.protocol import receiver as core_rx
from resumespec.reference.protocol import sender as core_tx
from resumespec.reference.protocol.heartbeat import heartbeat
from resumespec.reference.protocol.messages import (
    CancelWrites,
    Ctl,
    SendStatus,
    StatusMsg,
)
from resumespec.reference.protocol.params import Params
from resumespec.reference.protocol.pool import FreeList, Pool, nblk
from resumespec.reference.protocol.rank import STAND_IN_BASE
from resumespec.reference.protocol.receiver import (
    RxSession,
    corrected_cache_due,
    corrected_resume_due,
    heartbeat_lost,
    historical_view,
)
from resumespec.reference.protocol.sender import TxRoom, session_partial, session_writes
from resumespec.reference.protocol.sender import TxSession as TxSessionCore

from . import properties as P
from .properties import SPEC_STEP, PropertyViolation
from .trace import NOT_A_RANK_STEP, STATUS_RANK, STATUSES, decode_lines

FAILED, BOOTSTRAPPING, WAITING, TRANSFERRING, SUCCESS = range(5)

# Spec actions a trace can exercise (coverage).  Every name is an operator of
# spec/ResumeBase.tla and the design modules (a test checks it).
SPEC_ACTIONS = (
    "ReceiverInit", "SenderRecvInit", "SenderStartRound", "WriteLand", "SenderEndRound",
    "DeliverStatus", "PollSuccess", "PollFailed", "PollTransferringHistorical",
    "PollTransferringCorrected", "PollReadOnly", "SenderRecvResume", "SenderRecvAbort",
    "PrefillDone", "WriteError", "Heartbeat", "Abort", "SenderFailDead", "SenderQueuedRound",
    "SenderWriteSession",
)

# a poll's combined status -> the decisions the receiver may take (else: wait)
_POLL_DECISIONS = {FAILED: ("fail",), SUCCESS: ("handoff",),
                   TRANSFERRING: ("wait", "resume", "retry_alloc")}
# the core's room phases, as the hot paths test them
_INIT, _AWAIT, _WRITING, _FAILED = core_tx.INIT, core_tx.AWAIT, core_tx.WRITING, core_tx.FAILED
_ROUND_MAY_START = frozenset((_INIT, _AWAIT))             # SenderStartRound's phases
_ROUND_SHOWN = frozenset((_INIT, _AWAIT, _WRITING))        # a round_start may be logged
# allocator orders that decide which blocks an allocation returns (see _free_list)
_ORDERED = ("fifo", "lifo")

_RANK_OF: dict[str, int] = {}   # proc -> language rank, filled by NativeChecker._rank

HISTORY = 12          # events of the request told in a violation's story
RECENT = 4096         # ... taken from this many last events, which are remembered


class Violation(PropertyViolation):
    """Raised inside the checker: the trace leaves the spec at this event
    (``prop``, ``message``, ``expected`` as for a property)."""


def step_error(message: str, expected: str) -> Violation:
    return Violation(SPEC_STEP, message, expected)


@dataclass(slots=True)
class Write:
    """A data write in flight into one block (spec: an element of wire[s])."""
    req: int
    session: int
    round_sent: int       # the round's starting offset
    first: int | None     # position (1-based) of the block's first token; None: block size unknown
    count: int            # tokens written into the block
    aux: int | None       # aux value written (the total), or None
    # the session's round_start is logged (the spec's SenderStartRound writes
    # every session at once; until a session logs its part, its writes count
    # for the reads only, as TLC's UnloggedWrites)
    logged: bool = True


@dataclass(slots=True)
class TxSession:
    """What the log has shown of one session of a room; the room's state
    (txSent, txAlloc, txDst, txReady, ...) is the core's ``TxRoom``."""
    source: str = "init"  # "init" or "resume": the last message that set the destination
    plan: tuple = ()      # the core's writes of the current round for this session:
                          # (offset, tokens, blocks, aux written, partial)
    started: bool = False
    ended: bool = False
    expect: StatusMsg | None = None   # the status the core sends this session next


@dataclass
class Config:
    block_size: int | None = None
    nblocks: int | None = None
    nsess: int | None = None
    variant: str | None = None
    barrier: bool | None = None
    fork_sender: bool | None = None   # ForkSender: the engine fork's failed-write rule
    init_tokens: int | None = None
    cap: int | None = None
    order: str | None = None
    resume_order: str | None = None


@dataclass
class Verdict:
    verdict: str                         # conforms | violates | incomplete | malformed
    checker: str = "native"
    prop: str | None = None
    message: str = ""
    expected: str = ""
    file: str | None = None
    line: int | None = None
    event: dict | None = None
    story: list = field(default_factory=list)
    state: dict = field(default_factory=dict)
    unfinished: list = field(default_factory=list)
    events: int = 0
    coverage: dict = field(default_factory=dict)
    seconds: float = 0.0
    exit_code: int | None = None         # TLC trace validation: the CLI exit code of an error

    def to_json(self) -> dict:
        d = {"verdict": self.verdict, "checker": self.checker, "events": self.events,
             "seconds": round(self.seconds, 6)}
        if self.verdict != "conforms":
            d.update(property=self.prop, message=self.message, expected=self.expected,
                     file=self.file, line=self.line, event=self.event, story=self.story,
                     state=self.state)
        if self.unfinished:
            d["unfinished"] = self.unfinished
        d["coverage"] = self.coverage
        return d


# One event in words: a template over its fields (``extra``: the status
# message's round, sent_tokens and total, when logged); the events whose
# words depend on their values are told by ``describe`` itself.
_WORDS = {
    "free": "rank {rank} freed blocks {blocks} of req {req}",
    "init_sent": "req {req} sent init on session {session}: blocks {blocks}, "
                 "{allocated_tokens} tokens",
    "status_recv": "req {req} received {status} on session {session}{extra}",
    "poll": "req {req} polled: combined status {status}, decided {decision}",
    "buffer_read": "req {req} read blocks {blocks} on session {session}: aux total "
                   "{aux_total}, {tokens} tokens",
    "resume_sent": "req {req} sent resume on session {session}: offset {sent_tokens}, blocks "
                   "{blocks}, {allocated_tokens} tokens",
    "handoff": "req {req} handed {tokens} tokens (session {session}) to prefill",
    "prefill_done": "req {req} finished prefill",
    "abort": "req {req} was aborted",
    "abort_sent": "req {req} sent abort on session {session}",
    "heartbeat_fail": "the language side lost the encode heartbeat: req {req} Failed",
    "init_recv": "the sender got init of req {req} from session {session}: blocks {blocks}",
    "resume_recv": "the sender got resume of req {req} from session {session}: offset "
                   "{sent_tokens}, blocks {blocks}",
    "abort_recv": "the sender got abort of req {req} from session {session}",
    "status_sent": "the sender sent {status} for req {req} to session {session}{extra}",
    "write_error": "a write of req {req} failed",
}


def describe(ev: dict) -> str:
    """One event in words."""
    e = ev["event"]
    words = _WORDS.get(e)
    if words is not None:
        return words.format_map({**ev, "extra": _extra(ev)})
    r = ev.get("req")
    s = ev.get("session")
    if e == "alloc":
        got = "None (too few free blocks)" if ev["blocks"] is None else f"blocks {ev['blocks']}"
        return f"rank {ev['rank']} allocated {ev['tokens']} tokens for req {r}: {got}"
    if e == "fail":
        return f"req {r} failed" + (f" ({ev['reason']})" if ev.get("reason") else "")
    if e == "round_start":
        return (f"the sender started a round of req {r} for session {s}: tokens "
                f"{ev['sent_tokens']}..{ev['sent_tokens'] + ev['tokens']} of {ev['total']} into "
                f"blocks {ev['dst_blocks']}" + (" (partial)" if ev["partial"] else ""))
    if e == "round_end":
        return (f"the sender's round of req {r} for session {s} ended "
                + ("ok" if ev["ok"] else "with an error") + f" at offset {ev['sent_tokens']}")
    if e == "config":
        return "configuration: " + ", ".join(f"{k}={v}" for k, v in ev.items()
                                           if k not in ("v", "proc", "seq", "event", "ts"))
    return e


def _extra(ev: dict) -> str:
    parts = [f"{k} {ev[k]}" for k in ("round", "sent_tokens", "total") if k in ev]
    return f" ({', '.join(parts)})" if parts else ""


class State:
    """The spec's state, as far as the trace determines it (see module doc)."""

    def __init__(self) -> None:
        self.config = Config()
        self.config_values: dict = {}              # every config field logged
        self.block_size: int | None = None
        # language ranks: allocator and blocks
        self.owner: dict[tuple, int] = {}          # (rank, block) -> req holding it
        self.held: dict[tuple, set] = {}           # (rank, req) -> blocks it holds there
        self.held_count: Counter = Counter()        # req -> blocks held (all ranks)
        self.inflight: dict[tuple, Write] = {}     # (rank, block) -> write in flight
        self.writes_of: dict[int, dict] = {}       # req -> rank -> blocks in inflight
        self.content: dict[tuple, tuple] = {}      # (rank, block) -> (req, first, count) landed
        # (rank, block) -> aux slot 0 landed; a tuple of the values it may hold
        # when a write carrying an aux row was cut by a fault (it may have landed)
        self.aux: dict[tuple, Any] = {}
        # receiver
        self.rx_phase: dict[tuple, str] = {}       # (req, s) -> receiver phase on rank s
        self.rx_status: dict[tuple, int] = {}      # (req, s) -> local status
        self.rx_blocks: dict[tuple, list] = {}     # (req, s) -> current blocks
        self.rx_resumes: dict[tuple, int] = {}     # (req, s) -> resumes sent
        self.rx_decision: dict[tuple, str] = {}    # (req, s) -> decision of the last poll
        self.rx_sessions: dict[int, set] = {}      # req -> sessions that sent init
        # refinement (see NativeChecker._core): the declared design's state of
        # each rank, as the protocol core keeps it, and the poll being replayed
        self.rx_core: dict[tuple, RxSession] = {}  # (req, s) -> the core's RxSession
        self.rx_ctx: dict[tuple, list] = {}        # (req, s) -> [combined, nfree, aux, decision]
        self.rx_inbox: dict[tuple, list] = {}      # (req, s) -> statuses (status, round, sent,
                                                   # total) not yet given to the core
        self.rx_names: dict[tuple, tuple] = {}     # (req, s) -> blocks rx_core's stand-ins name
        self.used: Counter = Counter()             # rank -> blocks held there (all requests)
        # sender
        self.total: dict[int, int] = {}            # req -> Total[r]
        self.tx_phase: dict[int, str] = {}         # req -> init/writing/await/done/failed/dead
        self.tx_session: dict[tuple, TxSession] = {}
        self.tx_sessions: dict[int, set] = {}      # req -> sessions that sent init (sender side)
        self.tx_core: dict[int, TxRoom] = {}       # req -> the core's room (sender.py)
        self.tx_ended: dict[int, int] = {}         # req -> sessions whose round ended
        self.tx_partials: dict[int, int] = {}      # req -> rounds ended partial (tx_core's)
        self.free_list: dict[int, FreeList] = {}   # rank -> its pool's free list (fifo/lifo)
        self.tx_status_sent: dict[tuple, int] = {} # (req, s) -> last status sent
        self.tx_dead: set[int] = set()             # txDead: sessions the sender counts dead
        self.fail_dead: dict[int, set] = {}        # req -> sessions written before a dead one
        # network: FIFO channels
        self.ctl: dict[tuple, deque] = {}          # (req, s) -> language -> encode messages
        self.st: dict[tuple, deque] = {}           # (req, s) -> encode -> language statuses
        # bookkeeping
        self.finished: set[int] = set()            # requests forgotten after they closed
        self.counted: dict[int, set] = {}          # req -> lockstep steps counted (coverage)
        # what a request leaves behind, dropped when it is forgotten (_maybe_forget)
        self.per_rank_maps: tuple[dict, ...] = (
            self.rx_phase, self.rx_status, self.rx_blocks, self.rx_resumes, self.rx_decision,
            self.tx_session, self.tx_status_sent, self.ctl, self.st, self.rx_core, self.rx_ctx,
            self.rx_inbox, self.rx_names)                  # by (req, rank)
        self.per_req_maps: tuple[dict, ...] = (
            self.rx_sessions, self.total, self.tx_phase, self.counted, self.writes_of,
            self.tx_ended, self.tx_sessions, self.tx_core, self.tx_partials)   # by req

    # -- writes in flight ----------------------------------------------------
    def land_writes(self, req: int) -> int:
        """Every write of ``req`` in flight lands (WriteLand); how many."""
        inflight, content, aux = self.inflight, self.content, self.aux
        n = 0
        for k in self._write_keys(req):
            w = inflight.get(k)
            if w is None or w.req != req:
                continue
            del inflight[k]
            if w.first is not None and w.count:
                content[k] = (req, w.first, w.count)
            if w.aux is not None:
                aux[k] = w.aux
            n += 1
        return n

    def cut_writes(self, req: int) -> None:
        """A fault stops every write of ``req`` in flight (the spec's WriteError
        and Heartbeat empty the wire of the room).  Each may have landed before
        the fault or not (WriteLand can come first): what its block holds is
        no longer known (the aux row: the old value or the written one)."""
        inflight, content, aux = self.inflight, self.content, self.aux
        for k in self._write_keys(req):
            w = inflight.get(k)
            if w is None or w.req != req:
                continue
            del inflight[k]
            if w.count:
                content.pop(k, None)
            if w.aux is not None:
                old = aux.get(k)
                if old is not None:       # (None: never written, anything may be read)
                    alts = old if type(old) is tuple else (old,)
                    aux[k] = alts if w.aux in alts else alts + (w.aux,)

    def _write_keys(self, req: int) -> list:
        """Forget the index of ``req``'s writes; the keys it held."""
        ranks = self.writes_of.pop(req, None)
        if not ranks:
            return []
        return [(k, b) for k, blocks in ranks.items() for b in blocks]

    def writes_in_flight(self, req: int, rank: int, logged: bool = False) -> list:
        """Blocks of ``rank`` with a write of ``req`` in flight (``logged``:
        only those whose round_start the log has shown)."""
        inflight = self.inflight
        blocks = self.writes_of.get(req, {}).get(rank, ())
        return sorted(b for b in blocks
                      if (w := inflight.get((rank, b))) is not None and w.req == req
                      and (w.logged or not logged))

    # -- helpers used by the property checks --------------------------------
    def held_by(self, rank: int, req: int) -> list:
        return sorted(self.held.get((rank, req), ()))

    def rx_alive(self, req: int, s: int) -> bool:
        return self.rx_phase.get((req, s)) in ("queued", "aborting")

    def rx_phase_word(self, req: int, s: int) -> str:
        return {"prefill": "been handed to prefill", "done": "finished",
                "failed": "failed", "failing": "failed", "new": "not started"}.get(
                    self.rx_phase.get((req, s), "new"), "ended")

    def summary(self, req: int | None) -> dict:
        """The state around one request, for a verdict."""
        if req is None:
            return {}
        sessions = sorted(self.rx_sessions.get(req, set()) | self.tx_sessions.get(req, set()))
        room = self.tx_core.get(req)
        out: dict[str, Any] = {
            "req": req,
            "finished": req in self.finished,
            "sender_phase": self.tx_phase.get(req),
            "total": self.total.get(req),
            "rounds_started": room.round if room else 0,
            "rounds_ended_partial": room.partials if room else 0,
            "sessions": {},
        }
        for s in sessions:
            tx = room.session(s) if room and s <= len(room.sessions) else None
            st = self.rx_status.get((req, s))
            out["sessions"][str(s)] = {
                "receiver_phase": self.rx_phase.get((req, s), "new"),
                "receiver_status": STATUSES[st] if st is not None else None,
                "receiver_blocks": self.rx_blocks.get((req, s)),
                "blocks_held": self.held_by(s, req),
                "resumes_sent": self.rx_resumes.get((req, s), 0),
                "sender_sent_tokens": tx.sent if tx else None,
                "sender_allocated": tx.alloc if tx else None,
                "sender_dst": list(tx.dst) if tx else None,
                "writes_in_flight": self.writes_in_flight(req, s),
                "messages_to_sender": [m[0] for m in self.ctl.get((req, s), ())],
                "statuses_in_flight": [STATUSES[m[0]] for m in self.st.get((req, s), ())],
            }
        return out


MEMO = 8192          # core outcomes remembered (by the rank's normal form), at most


class NativeChecker:
    """Feed events of one merged trace; ask for the verdict at the end."""

    def __init__(self, bound: int | None = None):
        self.state = State()
        self.bound = bound
        self.count = 0
        self.coverage: Counter = Counter()
        self.next_seq: dict[str, int] = {}
        self.deadlines: deque = deque()      # (deadline, req, session, token)
        self.open_partial: dict[tuple, int] = {}   # (req, s) -> token of the open obligation
        self._token = 0
        self.verdict: Verdict | None = None
        # The last RECENT events, for a violation's story, remembered by batch:
        # [position of the batch's first event - 1, line before it, file,
        #  events, their text or None, how many of them were remembered].
        # A batch with its text keeps only the text (decoded again for a
        # story), so its events are freed as soon as they are checked.
        self.recent: deque = deque()
        self.remembered = 0                  # events remembered so far
        self.late: list = []                 # bounded-response obligations missed
        self.configs = 0                     # config events fed
        # proc -> (req, step): a step that frees all of req's blocks on that rank
        # (prefill's end, a poll that saw Failed, an abort) whose `free` events
        # are still being logged
        self.freeing: dict = {}
        self._p1: Params | None = None       # the declared design, one rank (see _core)
        self._p1_known = False
        self._latches = False                # the design's Failed latches (design table)
        self._memo: dict = {}                # core outcomes by normal form (see _outcomes)
        self._txp: dict = {}                 # (sessions, block size) -> the sender's Params
        self._tx_bs: int | None = None       # block size the first init shows (no config)
        self._handlers = {name: getattr(self, "on_" + name) for name in (
            "alloc", "free", "init_sent", "status_recv", "poll", "buffer_read", "resume_sent",
            "handoff", "fail", "prefill_done", "abort", "abort_sent", "heartbeat_fail",
            "init_recv", "resume_recv", "abort_recv", "round_start", "round_end",
            "status_sent", "write_error", "config")}

    # -- driving --------------------------------------------------------------
    def feed(self, line: int, ev: dict, file: str | None = None) -> Verdict | None:
        """Apply one event.  Returns a Verdict when the trace left the spec."""
        return self.feed_batch(line - 1, (ev,), file)

    def feed_batch(self, before: int, events: Sequence[dict], file: str | None = None,
                   text: bytes | None = None) -> Verdict | None:
        """Apply the events on lines ``before + 1, before + 2, ...`` one by one
        (as ``feed`` does); stops at the first that leaves the spec and returns
        its Verdict.  ``text``: the events' lines (see trace.read_trace_batches),
        kept instead of the events to tell a later violation's story."""
        if self.verdict is not None:
            return self.verdict
        batch: list[Any] = [self.remembered, before, file, events if text is None else None, text, 0]
        self.recent.append(batch)
        next_seq = self.next_seq
        handlers = self._handlers
        freeing = self.freeing
        deadlines = self.deadlines
        # the count of events fed, at line L: L + shift (kept in self.count
        # only where a handler reads it: with a bound, for its deadlines)
        shift = self.count - before
        bounded = self.bound is not None
        line = before
        for line, ev in enumerate(events, before + 1):
            if bounded:
                self.count = line + shift
            proc = ev["proc"]
            want = next_seq.get(proc, 0)
            if ev["seq"] != want:
                self.count = line + shift
                self._remember(batch, line - before - 1)   # all but this one
                self._bad_seq(line, ev, want, file)
            next_seq[proc] = want + 1
            try:
                if freeing:     # a step that frees is pending on some process
                    pending = freeing.get(proc)
                    # (its frees may come between other requests' events)
                    if (pending is not None and ev.get("req") == pending[0]
                            and ev["event"] not in NOT_A_RANK_STEP):
                        self._close_freeing(proc, ev)
                handlers[ev["event"]](ev)
                if deadlines and deadlines[0][0] < line + shift:
                    self._check_deadlines()
            except PropertyViolation as v:     # (a Violation is one too)
                self.count = line + shift
                self._remember(batch, line - before)
                self.verdict = self._violation(v, line, file, ev)
                return self.verdict
        self.count = line + shift
        # (what _remember does, here without a call: feed comes here per event)
        batch[5] = n = line - before
        remembered = self.remembered = batch[0] + n
        recent = self.recent
        while len(recent) > 1 and remembered - recent[1][0] >= RECENT:
            recent.popleft()
        return None

    def _remember(self, batch: list, n: int) -> None:
        """The first ``n`` events of ``batch`` were fed; keep the batches that
        hold the last RECENT events."""
        batch[5] = n
        self.remembered = batch[0] + n
        recent = self.recent
        while len(recent) > 1 and self.remembered - recent[1][0] >= RECENT:
            recent.popleft()

    def _recent_events(self) -> list:
        """The last RECENT events fed, oldest first: (line, file, event)."""
        out: list = []
        for _, before, file, events, text, n in self.recent:
            if events is None:
                events = decode_lines(text)
            out.extend((before + i + 1, file, events[i]) for i in range(n))
        return out[-RECENT:]

    def _close_freeing(self, proc: str, ev: dict) -> None:
        """The first event of a freeing step's request on ``proc`` after the
        step, other than its frees: the step must have freed every block."""
        req, what = self.freeing[proc]
        del self.freeing[proc]
        rank = self._rank(ev)
        left = self.state.held_by(rank, req)
        if left:
            raise step_error(
                f"after {what} of req {req}, rank {rank} freed only part of its blocks "
                f"(still holds {left})",
                f"{what} gives back every block of the request in the same step")

    def _bad_seq(self, line, ev, want, file):
        from .trace import MalformedTrace
        seq, proc = ev["seq"], ev["proc"]
        what = "an event is missing" if seq > want else "a line is repeated or out of order"
        raise MalformedTrace(line, "seq", f"seq {want} for {proc} ({what})", file, seq)

    def _violation(self, v, line, file, ev) -> Verdict:
        st = self.state
        req = ev.get("req")
        story = self._story(req)
        return Verdict("violates", prop=v.prop, message=v.message, expected=v.expected,
                       file=file, line=line, event=ev, story=story, state=st.summary(req),
                       events=self.count, coverage=self.coverage_report())

    def finish(self) -> Verdict:
        if self.verdict is not None:
            return self.verdict
        open_now = self._open_obligations()
        unfinished = self.late + open_now
        if self.count and self.count == self.configs:
            # The spec has at least one request (NReq >= 1): a log of the
            # configuration alone is the prefix of a run in which none began.
            unfinished.append({"property": "EveryRequestEnds", "req": None,
                               "message": "the log holds only the configuration: no request "
                                          "began", "expected": "the events of at least one "
                                                              "request"})
        cov = self.coverage_report()
        if open_now and self.count != self.configs:
            # (a missed --bound is no obligation of the end state: it does not count)
            dead = self._dead_end(open_now)
            if dead is not None:
                dead.unfinished += self.late
                return dead
        if unfinished:
            first = unfinished[0]
            return Verdict("incomplete", prop=first["property"], message=first["message"],
                           expected=first["expected"], unfinished=unfinished,
                           state=self.state.summary(first.get("req")),
                           story=self._story(first.get("req")),
                           events=self.count, coverage=cov)
        return Verdict("conforms", events=self.count, coverage=cov)

    def _story(self, req):
        """The last events about ``req`` (among the last RECENT), in words."""
        recent = self._recent_events()
        mine = [x for x in recent if x[2].get("req") == req][-HISTORY:]
        files = {x[1] for x in mine}
        def where(f, ln):
            if f is None or len(files) == 1:
                return f"line {ln}"
            return f"{os.path.basename(f)}:{ln}"
        story = [f"{where(f, ln)} ({e['proc']}): {describe(e)}" for (ln, f, e) in mine]
        if len(mine) == HISTORY or (mine and len(recent) == RECENT and recent[0] is mine[0]):
            story.insert(0, "(earlier events not shown)")
        return story

    def coverage_report(self) -> dict:
        return {a: self.coverage.get(a, 0) for a in SPEC_ACTIONS}

    # -- going on after a violation (the live monitor, conformance/monitor.py) ----
    def live_requests(self) -> set[int]:
        """The requests the checker holds state for (started, not yet forgotten)."""
        st = self.state
        return ({k[0] for k in st.rx_phase} | set(st.tx_phase) | set(st.held_count)
                | set(st.rx_sessions) | set(st.tx_sessions) | set(st.total))

    def successor(self) -> NativeChecker:
        """A fresh checker to go on with after this one stopped: the same
        bound, the run's config and each process's next seq carried over, no
        request state (its caller keeps the live requests away from it)."""
        new = NativeChecker(bound=self.bound)
        new.next_seq = dict(self.next_seq)
        st, nst = self.state, new.state
        nst.config = Config(**vars(st.config))
        nst.config_values = dict(st.config_values)
        nst.block_size = st.block_size
        return new

    # -- liveness on a finite log ----------------------------------------------
    def _open_partial(self, req: int, s: int) -> None:
        if self.bound is None:
            return
        self._token += 1
        self.open_partial[(req, s)] = self._token
        self.deadlines.append((self.count + self.bound, req, s, self._token))

    def _close_partial(self, req: int, s: int | None = None) -> None:
        if not self.open_partial:
            return
        if s is None:
            for key in [k for k in self.open_partial if k[0] == req]:
                del self.open_partial[key]
        else:
            self.open_partial.pop((req, s), None)

    def _check_deadlines(self) -> None:
        while self.deadlines and self.deadlines[0][0] < self.count:
            _, req, s, token = self.deadlines.popleft()
            if self.open_partial.get((req, s)) == token:
                del self.open_partial[(req, s)]
                if len(self.late) < 100:
                    self.late.append({
                        "property": "NoWaitForUnrequestedRound", "req": req,
                        "message": f"req {req}: a round ended partial (status Transferring "
                                   f"sent to session {s}) and no resume or end of the request "
                                   f"followed within {self.bound} events",
                        "expected": f"a resume_sent for req {req} session {s}, or the request "
                                    f"ending, within {self.bound} events (--bound)"})

    def _open_obligations(self) -> list:
        st = self.state
        out = []
        reported = set()
        for (req, s), phase in st.rx_phase.items():
            if phase in ("new", "queued", "aborting", "failing"):
                if self._dead_wait(req, s):
                    out.append({"property": "NoWaitForUnrequestedRound", "req": req,
                                "message": f"req {req} (rank {s}) waits for data while the "
                                           f"sender waits for a resume that was never sent",
                                "expected": "a resume from the receiver, or the request ending"})
                else:
                    out.append({"property": "EveryRequestEnds", "req": req,
                                "message": f"req {req} never ended on rank {s} (still {phase})",
                                "expected": "a handoff or a fail for every request"})
            elif phase == "prefill":
                out.append({"property": "BlocksEventuallyFree", "req": req,
                            "message": f"req {req} was handed to prefill on rank {s} but "
                                       f"prefill never finished",
                            "expected": "prefill_done and the free of its blocks"})
            elif req not in reported and st.held_count.get(req):
                reported.add(req)
                out.append({"property": "BlocksEventuallyFree", "req": req,
                            "message": f"req {req} ended ({phase}) but still holds "
                                       f"{st.held_count[req]} block(s)",
                            "expected": "free of every block of an ended request"})
        named = {o["req"] for o in out}
        for req, n in st.held_count.items():
            if n and req not in named:
                reported.add(req)    # (blocks allocated, the request never began: no phase)
                out.append({"property": "BlocksEventuallyFree", "req": req,
                            "message": f"the log ends while req {req} holds {n} block(s)",
                            "expected": "every block allocated is freed by the end of the log"})
        for req, phase in st.tx_phase.items():
            if phase not in ("done", "failed", "dead"):
                out.append({"property": "SenderRoomsClose", "req": req,
                            "message": f"the sender never closed room {req} (still {phase})",
                            "expected": "Success, Failed or the sender's death for every room"})
        out.sort(key=lambda o: (o["req"], o["property"]))
        return out

    # -- the end of the log: can the spec still take a step? -------------------
    # A finite log ends in some spec state.  When no step of the spec's Next
    # (the faults the config allows included) is enabled there, every
    # continuation stutters in that state forever: each obligation still open
    # is then violated, not merely unfinished (docs/conformance.md,
    # "Liveness on a finite log").  ``_end_step`` answers conservatively: any
    # doubt (a step the log may have cut off, a rank the core does not know)
    # counts as a step still possible.
    def _dead_end(self, unfinished: list) -> Verdict | None:
        """The verdict ``violates`` when the log ends where no spec step is
        enabled (None: some step is)."""
        if self._end_step() is not None:
            return None
        st = self.state
        obligations = []
        for o in unfinished:
            req = o["req"]
            if o["property"] == "EveryRequestEnds" and self._spec_dead_wait(req):
                o = dict(o, property="NoWaitForUnrequestedRound",
                         message=f"req {req}: the receiver waits for data while the sender "
                                 f"waits for a resume that was never sent",
                         expected="a resume from the receiver, or the request ending")
            obligations.append(o)
        obligations.sort(key=lambda o: (o["req"] is None, o["req"] or 0, o["property"]))
        first = obligations[0]
        req = first.get("req")
        waits = {str(r): self._who_waits(r) for r in sorted(self.live_requests())}
        state = {"dead_end": True, "requests": waits, "messages_in_flight": 0,
                 "writes_in_flight": 0,
                 "faults_left": sorted(self._faults_left()),
                 "request": st.summary(req)}
        # the event told: the request's last one (where it stopped for good)
        last = next((x for x in reversed(self._recent_events()) if x[2].get("req") == req),
                    (None, None, None))
        return Verdict("violates", prop=first["property"],
                       message=(f"the log ends where no spec step is enabled (every "
                                f"continuation stutters forever): {first['message']}"),
                       expected=first["expected"], unfinished=obligations, state=state,
                       file=last[1], line=last[0], event=last[2],
                       story=self._story(req), events=self.count,
                       coverage=self.coverage_report())

    def _faults_left(self) -> set:
        """Faults the config allows (or the log shows) that may still happen:
        those that have not happened, and the heartbeat loss, which fails
        the open rooms one by one once the encode side died (the spec's
        Heartbeat stays enabled after it fired)."""
        st = self.state
        allowed = set(st.config_values.get("faults") or ())
        used = set()
        for fault, action in (("abort", "Abort"), ("heartbeat", "Heartbeat"),
                              ("write_error", "WriteError")):
            if self.coverage.get(action):
                used.add(fault)
        return (allowed | used) - (used - {"heartbeat"})

    def _spec_dead_wait(self, req: int) -> bool:
        """The spec's DeadWait(r) (messages aside: none is in flight at a dead end)."""
        st = self.state
        ranks = st.rx_sessions.get(req, ())
        return (st.tx_phase.get(req) == "await" and bool(ranks)
                and all(st.rx_phase.get((req, s)) == "queued" for s in ranks))

    def _who_waits(self, req: int) -> dict:
        """Who waits for whom at a dead end, and the blocks held per rank."""
        st = self.state
        ranks = sorted(st.rx_sessions.get(req, set()) | st.tx_sessions.get(req, set()))
        tx = st.tx_phase.get(req)
        rx = {str(s): st.rx_phase.get((req, s), "new") for s in ranks}
        out: dict[str, Any] = {
            "receiver_phase": rx, "sender_phase": tx,
            "blocks_held": {str(s): st.held_by(s, req) for s in ranks}}
        if any(p == "queued" for p in rx.values()):
            out["receiver_waits_for"] = ("a status from the sender (a poll now would change "
                                         "nothing)")
        if tx == "await":
            out["sender_waits_for"] = "a resume from the receiver"
        return out

    def _end_step(self) -> str | None:
        """A spec step still enabled where the log ends, in words (None: none
        is, apart from stuttering)."""
        st = self.state
        for proc, (req, what) in self.freeing.items():
            # (the step is complete once the rank holds none of req's blocks)
            if st.held.get((_RANK_OF.get(proc) or int(proc[9:]), req)):
                return f"req {req}: the frees of {what} are still being logged"
        if self.count == self.configs:
            return "a request may begin (ReceiverInit)"
        left = self._faults_left()
        nsess = st.config.nsess
        for req in sorted(self.live_requests()):
            rx_ranks = st.rx_sessions.get(req, set())
            ranks = rx_ranks | st.tx_sessions.get(req, set())
            if not rx_ranks or (nsess is not None and len(rx_ranks) < nsess):
                return f"req {req}: the receiver's init is still being logged"
            for s in ranks:
                key = (req, s)
                if st.st.get(key):    # (DeliverStatus: the core's deliver_status takes any)
                    return f"req {req}: a status to session {s} is in flight"
                if st.writes_in_flight(req, s):
                    return f"req {req}: a write into session {s}'s blocks may still land"
                tx = st.tx_session.get(key)
                if tx is not None and tx.expect is not None:
                    return f"req {req}: the sender still owes session {s} a status"
            room = st.tx_core.get(req)
            if room is None:       # (no sender event yet: its room would be new, init enabled)
                return f"req {req}: the sender has not taken its first step"
            for s in ranks:
                m = (st.ctl.get((req, s)) or (None,))[0]
                if m is not None and self._recv_enabled(room, s, m):
                    return f"req {req}: the sender may receive the {m[0]} of session {s}"
            # the sender's own steps, asked of the core (no write is in flight here)
            if core_tx.sender_start_round(room, writes=False) is not None:
                return f"req {req}: the sender may start a round ({room.phase})"
            if core_tx.sender_end_round(room, False) is not None:
                return f"req {req}: the sender may end its round"
            if len({st.rx_phase.get((req, s), "new") for s in rx_ranks}) > 1:
                # (the ranks take the receiver's steps in lockstep)
                return f"req {req}: a receiver step is still being logged on some rank"
            for s in rx_ranks:
                key = (req, s)
                phase = st.rx_phase.get(key, "new")
                held = st.held.get((s, req), set())
                if phase == "new":
                    return f"req {req}: rank {s} is new: its init is still being logged"
                if phase == "failing":   # (the poll that saw Failed logs its `fail`)
                    return f"req {req}: rank {s}'s fail is still being logged"
                if phase in ("queued", "aborting"):
                    if held != set(st.rx_blocks.get(key) or ()):
                        return f"req {req}: a resume of rank {s} is still being logged"
                    if st.rx_decision.get(key) in ("resume", "resume_none"):
                        return f"req {req}: rank {s}'s resume is still being logged"
                elif held and phase != "prefill":
                    return f"req {req}: rank {s}'s blocks may still be freed"
            # the receiver's steps, asked of the core on the request's state
            rx = self._rx_of(req, rx_ranks)
            for step in core_rx.prefill_done(rx, req):
                return f"req {req}: prefill may end ({step.action})"
            if "abort" in left and core_rx.abort(rx, req):
                return f"req {req}: an abort (a fault the config allows) may still come"
            if "heartbeat" in left and heartbeat(rx, room, req) is not None:
                return f"req {req}: a heartbeat loss (a fault the config allows) may still come"
            combined = rx.combined_status(req)
            if combined != TRANSFERRING:
                for step in core_rx.receiver_poll(rx, req, {}):
                    return f"req {req}: a poll would see {STATUSES[combined]} ({step.action})"
            elif rx.requests[req].phase == core_rx.QUEUED:
                # (what a resume poll does depends on the aux rows the ranks
                # read and their free blocks: asked rank by rank)
                why = self._poll_acts(req, rx_ranks)
                if why is not None:
                    return why
        return None

    def _recv_enabled(self, room: TxRoom, s: int, m: tuple) -> bool:
        """Is the sender's receipt of message ``m`` (a ``ctl`` channel's head)
        from session ``s`` a step of the core now?"""
        if s > len(room.sessions):
            return True           # (a session the room has not seen: its init is a step)
        msg = Ctl(m[0], tuple(m[1]), m[2], m[3], m[4] or 0)
        if m[0] == "init":
            return core_tx.sender_recv_init(room, s, msg) is not None
        if m[0] == "resume":
            return core_tx.sender_recv_resume(room, s, msg) is not None
        return core_tx.sender_recv_abort(room, s, msg, False) is not None

    _PHASE = {"new": core_rx.NEW, "queued": core_rx.QUEUED, "aborting": core_rx.ABORTING,
              "prefill": core_rx.PREFILL, "done": core_rx.DONE, "failing": core_rx.FAILED,
              "failed": core_rx.FAILED, "aborted": core_rx.FAILED}

    def _rx_of(self, req: int, ranks) -> core_rx.RxState:
        """The receiver's state of ``req`` as the core keeps it, its ranks in
        lockstep (numbered 1.. in rank order): each rank's core state (or a
        fresh one without a declared design: the steps asked of it here do
        not depend on the design), with the local status the log shows, a
        pool of the rank's free blocks (stand-ins; none when unknown)."""
        st = self.state
        p1 = self._p1 if self._p1_known else self._core()
        xs = []
        pools = []
        order = sorted(ranks)
        for s in order:
            x = (self._x((req, s)) if p1 is not None else None) or RxSession()
            status = st.rx_status.get((req, s), BOOTSTRAPPING)
            if x.status != status:
                x = replace(x, status=status)
            xs.append(x)
            pools.append(Pool(tuple(range(-1, -(self._nfree(s) or 0) - 1, -1))))
        p = replace(p1 or self._tx_params(1), n_sessions=len(xs))
        phase = self._PHASE[st.rx_phase.get((req, order[0]), "new")]
        return core_rx.RxState(p, {req: core_rx.RxRequest(phase, tuple(xs))}, tuple(pools))

    def _poll_acts(self, req: int, ranks) -> str | None:
        """A poll seeing Transferring: does the declared design act on some
        rank (the protocol core's rank_poll_transferring)?  Unknown: yes."""
        p = self._core()
        st = self.state
        if p is None:
            return f"req {req}: no design declared, a poll may act"
        for s in ranks:
            key = (req, s)
            x = self._x(key)
            if x is None:
                return f"req {req}: rank {s}'s state is unknown to the core"
            blocks = st.rx_blocks.get(key) or ()
            a = st.aux.get((s, blocks[0])) if blocks else 0
            alts = a if type(a) is tuple else (0 if a is None else a,)
            for aux in alts:
                for after, sent, _ in self._outcomes(req, s, [TRANSFERRING, self._nfree(s),
                                                              aux, None]):
                    if sent is not None or after != x:
                        return (f"req {req}: a poll of rank {s} would act "
                                f"({'send a resume' if sent is not None else 'cache a round'})")
        return None

    def _dead_wait(self, req: int, s: int) -> bool:
        """The spec's DeadWait, as a finite log shows it: the receiver saw the
        last status, polled and decided to wait; the sender waits for a resume;
        no message is on its way."""
        st = self.state
        sessions = st.tx_sessions.get(req, ())
        return (st.tx_phase.get(req) == "await"
                and st.rx_decision.get((req, s)) in ("wait", "retry_alloc")
                and st.rx_status.get((req, s)) == TRANSFERRING
                and not any(st.ctl.get((req, o)) for o in sessions)
                and not any(st.st.get((req, o)) for o in sessions))

    # -- bookkeeping ----------------------------------------------------------
    # Every event pays for a handler; the handlers make the common case cheap:
    # they test ``req in st.finished`` and ``_RANK_OF.get(proc) != s``
    # themselves and call _known / _same_rank (which word the error) only when
    # that test fails, and call _maybe_forget only for a request holding no block.
    def _known(self, req: int, ev: dict) -> None:
        if req in self.state.finished:
            raise step_error(f"{ev['event']} for req {req}, which had already finished and "
                             f"closed", "no more events for a finished request")

    def _maybe_forget(self, req: int) -> None:
        """Drop every trace of a request once both sides are done with it."""
        st = self.state
        if st.held_count.get(req):
            return
        if st.tx_phase.get(req) not in ("done", "failed", "dead", None):
            return
        room = st.tx_core.get(req)
        if room is not None and (room.queue or room.left) and room.phase == _FAILED:
            return     # (QueuedRounds: a failed room still runs the rounds its resumes queued)
        sessions = st.rx_sessions.get(req, set()) | st.tx_sessions.get(req, set())
        if not sessions:
            return
        for s in sessions:
            if st.rx_phase.get((req, s)) not in ("done", "failed"):
                return
        for s in sessions:
            if st.ctl.get((req, s)) or st.st.get((req, s)):
                return
            # a status the sender's last step sent and has not logged yet (the
            # spec sends to every session in one step; the log shows them one
            # by one, and the receivers may end before the last is logged)
            tx = st.tx_session.get((req, s))
            if tx is not None and tx.expect is not None:
                return
        for s in sessions:
            key = (req, s)
            for d in st.per_rank_maps:
                d.pop(key, None)
        for d in st.per_req_maps:
            d.pop(req, None)
        st.held_count.pop(req, None)
        if self.open_partial:
            self._close_partial(req)
        # A step of this request that frees blocks has nothing left to check:
        # the request holds no block and can never get one again.
        if self.freeing:
            for proc in [p for p, (r, _) in self.freeing.items() if r == req]:
                del self.freeing[proc]
        st.finished.add(req)

    def _rank(self, ev: dict) -> int:
        """The logging language rank ("language/3" -> 3)."""
        proc = ev["proc"]
        rank = _RANK_OF.get(proc)
        if rank is None:
            rank = _RANK_OF[proc] = int(proc[9:])
        return rank

    def _same_rank(self, ev: dict, s: int, what: str) -> None:
        rank = self._rank(ev)
        if rank != s:
            raise step_error(f"{ev['proc']} logged {what} {s}", f"{what} {rank} (the logging rank)")

    # -- refinement: the declared design's decisions, from the protocol core -------
    # The trace's config names the design (variant) and its constants.  Each
    # rank's state is the core's RxSession (resumespec.reference.protocol),
    # moved on by the core's own functions at the decision points: init,
    # status received, and a poll that sees Transferring (what it reads, its
    # allocation, its resume).  A logged decision or resume field the core
    # does not allow at that point leaves the spec (SpecStep), with what the
    # design would have done.  Without a config naming the variant and the
    # block size, the checker checks the safety properties only.
    def _core(self) -> Params | None:
        if self._p1_known:
            return self._p1
        self._p1_known = True
        self._memo = {}
        c = self.state.config
        if c.variant is None or c.block_size is None:
            return None
        try:
            p = Params(c.variant, 1, c.block_size, c.init_tokens or 1, c.cap or 0,
                       _designs.AllocOrder(c.order or "fifo"),
                       None if c.resume_order is None else _designs.ResumeOrder(c.resume_order),
                       True if c.barrier is None else bool(c.barrier))
        except ValueError:
            return None   # (a config the core cannot run: the properties alone)
        self._p1 = core_rank.one_rank_params(p)
        return self._p1

    # A rank's core state is kept in normal form (rank.normal_form: its
    # blocks named -1000001, -1000002, ...; st.rx_names says which real
    # blocks those are), so that the core's outcomes, which depend on the
    # state but not on the names of the blocks, are asked once per distinct
    # state and remembered (self._memo, bounded).
    def _x(self, key: tuple) -> RxSession | None:
        """The core's state of a rank, in normal form (None: no design
        declared, or no init seen), after the statuses it received since it
        was last asked (``DeliverStatus`` through the core, deferred to the
        decision that needs it: most statuses are a request's last)."""
        st = self.state
        x = st.rx_core.get(key)
        box = st.rx_inbox.pop(key, None) if st.rx_inbox else None
        if box and x is not None:
            mk = ("status", x, tuple(box))
            after = self._memo.get(mk)
            if after is None:
                assert self._p1 is not None
                after = x
                for msg in box:          # (a status changes no block: still normal form)
                    after = core_rank.rank_deliver(self._p1, 0, after, StatusMsg(*msg))
                self._keep(mk, after)
            x = st.rx_core[key] = after
        return x

    def _init_of(self, key: tuple, blocks: tuple) -> Ctl:
        """ReceiverInit on rank ``key[1]`` through the core (remembered per
        block count); keeps the rank's state; the init message it sends."""
        mk = ("init", len(blocks))
        hit = self._memo.get(mk)
        if hit is None:
            assert self._p1 is not None
            x, c = core_rank.rank_init(self._p1, 0, tuple(range(-1, -len(blocks) - 1, -1)))
            xn, src = core_rank.normalized(x)
            hit = (xn, c, src)
            self._keep(mk, hit)
        xn, c, src = hit
        if len(c.blocks) != len(blocks):
            return c          # (the caller says what the design would have sent)
        real = dict(zip(c.blocks, blocks))
        self.state.rx_core[key] = xn
        self.state.rx_names[key] = tuple(real[b] for b in src)
        return c

    def _nfree(self, rank: int) -> int | None:
        nb = self.state.config.nblocks
        return None if nb is None else nb - self.state.used[rank]

    def _rank_words(self, x: RxSession, key: tuple) -> str:
        p = self._p1
        assert p is not None
        if p.corrected:
            return (f"the last status it received names round {x.info.round} "
                    f"({STATUSES[x.info.status]}, {x.info.sent} of {x.info.total} tokens sent); "
                    f"it has cached round {x.round} and sent {x.resumes} resume(s)")
        names = self.state.rx_names.get(key, ())
        held = [names[STAND_IN_BASE - b] for b in x.blocks]
        return (f"it holds blocks {held}, has cached {x.cached} token(s), "
                f"sent {x.resumes} resume(s)")

    def _poll_refines(self, req: int, s: int, ev: dict, decision: str) -> None:
        """A poll that saw Transferring and decided to act: the design must
        have something to do on this rank (corrected: a round to cache or to
        resume; historical: the rank wants to resume, when that does not
        depend on what it reads)."""
        p = self._p1 if self._p1_known else self._core()
        st = self.state
        x = self._x((req, s)) if p is not None else None
        if x is None or p is None:
            return
        # [status, free blocks, aux row read (from its buffer_read), decision,
        #  aux row the rank's first block holds now (used when no read is logged)]
        bs = st.rx_blocks.get((req, s))
        st.rx_ctx[(req, s)] = [TRANSFERRING, self._nfree(s), None, decision,
                               st.aux.get((s, bs[0]), 0) if bs else 0]
        if decision == "fail":
            return   # (free_first's failure of some rank fails every rank: judged at its alloc)
        v = p.variant
        if p.corrected:
            if not (corrected_cache_due(x) or corrected_resume_due(x)):
                raise step_error(
                    f"rank {s} polled req {req} and decided {decision}, but design corrected "
                    f"has nothing to do: {self._rank_words(x, (req, s))}",
                    "wait: the corrected design caches and resumes once per round that ended "
                    "partial (corrected_cache_due and corrected_resume_due are false)")
            return
        view = historical_view(v, p.block_size, x, 0)
        if not view.reads and not view.wants:
            raise step_error(
                f"rank {s} polled req {req} and decided {decision}, but design {v} does not "
                f"resume here: {self._rank_words(x, (req, s))}",
                f"wait: design {v}'s rule is \"{_designs.design(v).summary}\", and by it "
                f"this rank already resumed")

    def _read_refines(self, req: int, s: int, ev: dict, ctx: list) -> None:
        """The first read of a historical rank's resume poll: what it reads
        (the aux row) decides whether the design resumes."""
        ctx[2] = aux = ev["aux_total"]
        p = self._p1
        x = self._x((req, s))
        if p is None or x is None or p.corrected or ctx[3] == "fail":
            return
        view = historical_view(p.variant, p.block_size, x, aux)
        if not view.wants:
            raise step_error(
                f"rank {s} of req {req} read aux total {aux} in a poll that decided "
                f"{ctx[3]}, but design {p.variant} does not resume on that: it believes "
                f"{view.sent} of {view.total} tokens arrived; {self._rank_words(x, (req, s))}",
                f"wait: design {p.variant}'s rule is \"{_designs.design(p.variant).summary}\"")

    def _handoff_refines(self, req: int, s: int, ev: dict) -> None:
        """The read of a poll that saw Success: as many tokens as the design
        hands over from its blocks (PollSuccess's read, from the core)."""
        x = self._x((req, s))
        assert x is not None and self._p1 is not None
        aux = ev["aux_total"]
        mk = ("handoff", x, aux)
        n = self._memo.get(mk)
        if n is None:
            n = core_rank.rank_handoff_read(self._p1, 0, x, aux).tokens
            self._keep(mk, n)
        if ev["tokens"] != n:
            v = self._p1.variant
            raise step_error(
                f"req {req} read {ev['tokens']} token(s) from its blocks on rank {s} to hand "
                f"over, but design {v} reads {n} there ({self._rank_words(x, (req, s))}; "
                f"aux total read {aux})",
                f"{n} token(s): what the last round wrote into the rank's blocks, as design "
                f"{v} counts it")

    def _outcomes(self, req: int, s: int, ctx: list) -> list:
        """The design's outcomes of this poll on rank ``s``, from the core:
        ``(state after, in normal form with the rank's local status; the
        resume it sends or None; the blocks that state names, as stand-ins
        of before the poll and of the allocation)``.  Remembered by the
        rank's state, the combined status, the free blocks that matter and
        the aux row read."""
        p = self._p1
        assert p is not None
        x = self._x((req, s))
        assert x is not None
        # A resume never asks for more than the total the rank believes
        # (status, cached total or aux row): free blocks beyond that many do
        # not change the outcome (and stand for "unknown" without nblocks).
        aux = ctx[2]
        if aux is None and not p.corrected and len(ctx) > 4:
            # No buffer_read logged (a log may leave reads out; TLC's trace
            # spec takes them as observations): the design's read saw what
            # the rank's first block held at the poll, by the checker's model.
            aux = ctx[4]
            if type(aux) is tuple:      # (the model knows only which values it may hold)
                return [o for a in aux
                        for o in self._outcomes(req, s, [ctx[0], ctx[1], a or 0, ctx[3]])]
            aux = aux or 0
        enough = 1 + max(x.info.total, x.p_total, aux or 0) // p.block_size + len(x.blocks)
        nfree = enough if ctx[1] is None else min(ctx[1], enough)
        mk = ("poll", x, ctx[0], nfree, aux)
        outs = self._memo.get(mk)
        if outs is None:
            outs = []
            for chain in core_rank.rank_poll_transferring(p, 0, x, ctx[0], nfree, aux):
                after, src = core_rank.normalized(core_rank.rank_of(chain[-1].state, 0), x.status)
                outs.append((after, core_rank.sent_ctl(chain), src))
            self._keep(mk, outs)
        return outs

    def _keep(self, mk: tuple, value) -> None:
        memo = self._memo
        if len(memo) >= MEMO:        # (bounded memory: start again)
            memo.clear()
        memo[mk] = value

    def _settle(self, key: tuple, after: RxSession, src: tuple, c: Ctl | None,
                blocks: tuple) -> None:
        """Keep the rank's state ``after`` (an outcome of ``_outcomes``); the
        resume ``c`` named ``blocks`` what the engine logged as ``blocks``."""
        st = self.state
        names = st.rx_names[key]
        real = dict(zip(range(STAND_IN_BASE, STAND_IN_BASE - len(names), -1), names))
        if c is not None:
            real.update(zip(c.blocks, blocks))
        st.rx_core[key] = after
        st.rx_names[key] = tuple(map(real.__getitem__, src))

    def _alloc_none_refines(self, req: int, s: int, ev: dict, ctx: list) -> None:
        """An allocation of a resume poll returned None.  Allocating first
        (alloc_first, corrected), that is the spec not taking the resume step
        now (a later poll retries): always allowed, and what the poll did
        before it (corrected: cache the round) stays.  Freeing first, the
        request fails, which the spec allows only when the allocation cannot
        succeed: the design must have no resume to send then."""
        p = self._p1
        x = self._x((req, s))
        if p is None or x is None:
            return
        outs = self._outcomes(req, s, ctx)
        resumes = [c for _, c, _ in outs if c is not None]
        if resumes and ctx[1] is not None and not p.alloc_first:
            c = resumes[0]
            raise step_error(
                f"rank {s}'s allocation for req {req} returned None with {ctx[1]} block(s) free "
                f"before the poll (and its own {len(x.blocks)} freed first)",
                f"design {p.variant} allocates {len(c.blocks)} block(s) there and sends "
                f"resume (sent_tokens {c.sent}); a free_first design fails the request only "
                f"when the allocation cannot succeed")
        for after, c, src in outs:
            if c is None:   # (corrected: the round is cached, the resume waits)
                self._settle((req, s), after, src, None, ())
                return

    def _resume_refines(self, req: int, s: int, ev: dict) -> None:
        """A resume: its fields must be those of one of the design's outcomes."""
        st = self.state
        ctx = st.rx_ctx.pop((req, s), None)
        p = self._p1
        if ctx is None or p is None or self._x((req, s)) is None:
            return
        blocks = tuple(ev["blocks"])
        got = (ev["sent_tokens"], ev["allocated_tokens"], ev.get("round", 0), len(blocks))
        ctls = []
        for after, c, src in self._outcomes(req, s, ctx):
            if c is None:
                continue
            ctls.append(c)
            if (c.sent, c.alloc, c.round, len(c.blocks)) == got:
                self._settle((req, s), after, src, c, blocks)
                return
        x = self._x((req, s))
        assert x is not None
        rnd = f", round {ev['round']}" if "round" in ev else ""
        said = (f"req {req} sent resume on session {s} with sent_tokens {ev['sent_tokens']}, "
                f"{len(blocks)} block(s) ({ev['allocated_tokens']} tokens){rnd}")
        if not ctls:
            raise step_error(f"{said}, but design {p.variant} sends no resume here: "
                             f"{self._rank_words(x, (req, s))}",
                             f"no resume: design {p.variant}'s rule is "
                             f"\"{_designs.design(p.variant).summary}\"")
        def words(c) -> str:
            r = f", round {c.round}" if p.corrected else ""
            return (f"sent_tokens {c.sent}, {len(c.blocks)} block(s) ({c.alloc} tokens){r}")
        want = " or ".join(sorted({words(c) for c in ctls}))
        raise step_error(f"{said}, which design {p.variant} cannot send here "
                         f"(before this poll {self._rank_words(x, (req, s))})", f"resume with {want}")

    # -- language side -----------------------------------------------------------
    # Each rank logs its own steps; the spec's receiver steps cover every rank
    # at once (SPMD), so the checker keeps the receiver's phase per (req, rank):
    #   new -> queued -> (aborting) -> prefill -> done
    #                              \-> failing -> failed      (poll saw Failed)
    #                              \-> aborted -> failed      (abort, historical designs)
    #                              \-> failed                 (free_first's failed resume)
    def on_alloc(self, ev: dict) -> None:
        st = self.state
        req, rank, blocks = ev["req"], ev["rank"], ev["blocks"]
        key = (req, rank)
        if _RANK_OF.get(ev["proc"]) != rank:
            self._same_rank(ev, rank, "rank")
        if blocks:
            P.check_NoSharedBlock(st, rank, req, blocks)
        if req in st.finished:
            self._known(req, ev)
        phase = st.rx_phase.get(key, "new")
        decision = st.rx_decision.get(key)
        if not (phase == "new" or (phase == "queued" and decision in ("resume", "retry_alloc"))):
            raise step_error(
                f"rank {rank} allocated blocks for req {req} ({phase}, last poll decided "
                f"{decision})", "an alloc only for a new request, or after a poll that "
                "decided resume or retry_alloc")
        if phase == "new" and st.config.init_tokens is not None:
            p1 = self._core()
            if p1 is not None and ev["tokens"] != p1.init_tokens:
                raise step_error(
                    f"rank {rank} allocated {ev['tokens']} tokens for new req {req}",
                    f"{p1.init_tokens} tokens: ReceiverInit allocates init_tokens before the "
                    f"length is known")
        if blocks is None:
            ctx = st.rx_ctx.get(key)
            if ctx is not None:
                self._alloc_none_refines(req, rank, ev, ctx)
            if decision == "resume":
                st.rx_decision[key] = "resume_none"   # nothing free: no resume now
            return
        bs = st.block_size
        if bs is not None and len(blocks) != -(-ev["tokens"] // bs):
            raise step_error(
                f"alloc of {ev['tokens']} tokens returned {len(blocks)} block(s) of {bs}",
                f"{-(-ev['tokens'] // bs)} block(s) (all or nothing)")
        nb = st.config.nblocks
        if nb is not None:
            if blocks and max(blocks) >= nb:
                b = next(b for b in blocks if b >= nb)
                raise step_error(f"alloc returned block {b}, outside the pool of {nb}",
                                 f"block ids 0..{nb - 1}")
            fl = self._free_list(rank) if st.config.order in _ORDERED else None
            if fl is not None:
                self._alloc_in_order(fl, rank, req, ev["tokens"], tuple(blocks))
        owner = st.owner
        for b in blocks:
            owner[(rank, b)] = req
        held = st.held.get((rank, req))
        if held is None:
            st.held[(rank, req)] = set(blocks)
        else:
            held.update(blocks)
        st.held_count[req] += len(blocks)
        st.used[rank] += len(blocks)

    # Which blocks an allocation returns: the core's free list (pool.FreeList,
    # the spec's free[s] with AllocChoices), per rank, when the config gives
    # the pool's size and an allocator order that decides (fifo, lifo); with
    # `any` (or no order) any free blocks may come, which the ownership
    # properties (NoSharedBlock) and the pool's range judge.
    def _free_list(self, rank: int) -> FreeList | None:
        st = self.state
        fl = st.free_list.get(rank)
        if fl is None:
            c = st.config
            if c.nblocks is None or c.order not in ("fifo", "lifo") or self._p1 is None \
                    and self._core() is None:
                return None
            if st.used[rank]:           # (blocks taken before the config was known)
                return None
            fl = st.free_list[rank] = FreeList(c.nblocks, c.order)
        return fl

    def _alloc_in_order(self, fl: FreeList, rank: int, req: int, tokens: int,
                        blocks: tuple) -> None:
        bs = self.state.block_size or 1
        why = fl.take(blocks, tokens, bs)
        if why is not None:
            want = fl.expected(nblk(tokens, bs))
            raise step_error(
                f"rank {rank}'s allocator returned blocks {list(blocks)} for req {req}, but "
                f"{why}",
                (f"blocks {list(want)}" if want is not None else "free blocks")
                + f": the {fl.order.value} allocator (config order) takes "
                + ("the head of the free list (the longest free first)"
                   if fl.order.value == "fifo" else
                   "the tail of the free list (the last freed first)"))

    def on_free(self, ev: dict) -> None:
        st = self.state
        req, rank, blocks = ev["req"], ev["rank"], ev["blocks"]
        key = (req, rank)
        if _RANK_OF.get(ev["proc"]) != rank:
            self._same_rank(ev, rank, "rank")
        P.check_NoFreeAndHeld(st, rank, req, blocks)
        P.check_NoDoubleFree(st, rank, req, blocks)
        P.check_WritesOnlyIntoOwnedBlocks_at_free(st, rank, req, blocks)
        if req in st.finished:
            self._known(req, ev)
        phase = st.rx_phase.get(key, "new")
        if not (phase in ("failing", "aborted", "done")
                or (phase == "queued" and st.rx_decision.get(key) in ("resume",
                                                                            "resume_none"))):
            raise step_error(
                f"rank {rank} freed blocks of req {req} while {phase} (last poll decided "
                f"{st.rx_decision.get(key)})",
                "a free only in a step that frees: a resume, a poll that saw Failed, "
                "prefill's end, an abort")
        owner = st.owner
        for b in blocks:
            del owner[(rank, b)]
        if blocks:
            held = st.held[(rank, req)]
            held.difference_update(blocks)
            if not held:
                del st.held[(rank, req)]
        st.held_count[req] -= len(blocks)
        st.used[rank] -= len(blocks)
        if st.free_list:
            fl = st.free_list.get(rank)
            if fl is not None:
                fl.give(tuple(blocks))
        cur = st.rx_blocks.get(key)
        if cur:
            gone = set(blocks)
            st.rx_blocks[key] = [b for b in cur if b not in gone]
        if not st.held_count.get(req):   # (a request holding blocks stays)
            self._maybe_forget(req)

    def on_init_sent(self, ev: dict) -> None:
        st = self.state
        req, s, blocks = ev["req"], ev["session"], ev["blocks"]
        key = (req, s)
        if req in st.finished:
            self._known(req, ev)
        if _RANK_OF.get(ev["proc"]) != s:
            self._same_rank(ev, s, "session")
        phase = st.rx_phase.get(key, "new")
        if phase != "new":
            raise step_error(f"req {req} sent init on session {s} again ({phase})",
                             "one init per request and session, before anything else")
        for b in blocks:
            if st.owner.get((s, b)) != req:
                raise step_error(f"req {req} sent init with block {b}, which it does not hold "
                                 f"on rank {s}", f"blocks req {req} holds: "
                                 f"{st.held_by(s, req)}")
        bs = st.block_size
        if bs is not None and ev["allocated_tokens"] != len(blocks) * bs:
            raise step_error(f"init says {ev['allocated_tokens']} tokens for {len(blocks)} "
                             f"block(s) of {bs}", f"allocated_tokens = {len(blocks) * bs}")
        sessions = st.rx_sessions.get(req)
        if sessions is None:
            sessions = st.rx_sessions[req] = set()
        if not sessions:
            self.coverage["ReceiverInit"] += 1
        sessions.add(s)
        st.rx_phase[key] = "queued"
        st.rx_blocks[key] = list(blocks)
        st.rx_status[key] = WAITING
        p1 = self._core()
        if p1 is not None:
            c = self._init_of(key, tuple(blocks))
            if (len(c.blocks), c.alloc) != (len(blocks), ev["allocated_tokens"]):
                raise step_error(
                    f"req {req} sent init on session {s} with {len(blocks)} block(s) "
                    f"({ev['allocated_tokens']} tokens)",
                    f"init with {len(c.blocks)} block(s) ({c.alloc} tokens): the receiver "
                    f"allocates init_tokens = {p1.init_tokens} before it knows the length")
        ch = st.ctl.get(key)
        if ch is None:
            ch = st.ctl[key] = deque()
        ch.append(("init", blocks, 0, ev["allocated_tokens"], None))

    def on_status_recv(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        key = (req, s)
        if req in st.finished:
            self._known(req, ev)
        if _RANK_OF.get(ev["proc"]) != s:
            self._same_rank(ev, s, "session")
        status = STATUS_RANK[ev["status"]]
        ch = st.st.get(key)
        if not ch:
            raise step_error(f"req {req} received {ev['status']} on session {s}, but no "
                             f"status message is on its way",
                             "a status_recv only after the matching status_sent")
        m = ch[0]
        if m[0] != status:
            raise step_error(f"req {req} received {ev['status']} on session {s}, but the "
                             f"next status sent was {STATUSES[m[0]]}",
                             f"status {STATUSES[m[0]]} (status messages arrive in order)")
        fields = len(ev) > 7      # (v, proc, seq, event, req, session, status: no field)
        if fields:
            for i, k in ((1, "round"), (2, "sent_tokens"), (3, "total")):
                if k in ev and m[i] is not None and ev[k] != m[i]:
                    raise step_error(f"req {req} received {k} {ev[k]}, but the sender sent "
                                     f"{m[i]}", f"{k} = {m[i]}")
        ch.popleft()
        # the local status: the spec's NewStatus (the core's merge_status)
        st.rx_status[key] = _designs.merge_status(st.rx_status.get(key, BOOTSTRAPPING), status,
                                                  self._latches)
        if key in st.rx_core:   # DeliverStatus through the core, when a decision needs it
            box = st.rx_inbox.get(key)
            msg = ((status, ev.get("round", 0), ev.get("sent_tokens", 0), ev.get("total", 0))
                   if fields else (status, 0, 0, 0))
            if box is None:
                st.rx_inbox[key] = [msg]
            else:
                box.append(msg)
        self.coverage["DeliverStatus"] += 1
        if not st.held_count.get(req):   # (a request holding blocks stays)
            self._maybe_forget(req)

    def on_poll(self, ev: dict) -> None:
        st = self.state
        req = ev["req"]
        if req in st.finished:
            self._known(req, ev)
        s = _RANK_OF.get(ev["proc"]) or self._rank(ev)
        key = (req, s)
        phase = st.rx_phase.get(key, "new")
        status = STATUS_RANK[ev["status"]]
        decision = ev["decision"]
        last = st.rx_decision.get(key)
        if phase not in ("queued", "aborting"):
            raise step_error(f"rank {s} polled req {req} while {phase}",
                             "polls only while the request waits for its embedding")
        local = st.rx_status[key]
        if status > local or (status != local and (st.config.nsess or 1) == 1
                              and len(st.rx_sessions.get(req, ())) <= 1):
            raise step_error(
                f"req {req} polled with combined status {ev['status']}, but rank {s} has "
                f"received {STATUSES[local]}",
                f"combined status = MIN over ranks <= {STATUSES[local]}")
        allowed = _POLL_DECISIONS.get(status, ("wait",))
        if st.rx_ctx:
            st.rx_ctx.pop(key, None)
        if status == TRANSFERRING and decision != "wait" and phase == "queued":
            self._poll_refines(req, s, ev, decision)
        if status == TRANSFERRING and decision == "fail" and phase == "queued":
            # free_first's failure path logged as the outcome of the poll: the
            # resume frees, its allocation returns None, the request fails.
            decision = "resume"
        if phase == "aborting" and status != FAILED:
            allowed = ("wait",)
        if decision not in allowed:
            raise step_error(f"req {req} polled {ev['status']} and decided {decision}",
                             "with " + ev["status"] + ": " + " or ".join(allowed))
        if last == "resume":
            raise step_error(f"rank {s} polled req {req} again, but its last poll decided "
                             f"resume and neither sent a resume nor failed to allocate",
                             "a poll deciding resume is followed by its resume_sent (or an "
                             "alloc returning None)")
        st.rx_decision[key] = decision
        cov = self.coverage
        if decision == "handoff":
            first_rank = self._first(req, "ended")
            P.check_NoReadDuringWrite(st, s, req, st.rx_blocks.get(key, ()))
            st.rx_phase[key] = "prefill"
            P.check_WritesOnlyIntoOwnedBlocks_at_end(st, req, s)
            if first_rank:
                cov["PollSuccess"] += 1
            if self.open_partial:     # obligations exist only with a bound
                self._close_partial(req, s)
        elif decision == "fail":
            first_rank = self._first(req, "ended")
            # (a write in flight into its blocks fails the step's free, which
            # the log may not show yet: a step cut off by the end has not happened)
            self.freeing[ev["proc"]] = (req, "the poll that saw Failed")
            st.rx_phase[key] = "failing"
            if first_rank:
                cov["PollFailed"] += 1
            if self.open_partial:     # obligations exist only with a bound
                self._close_partial(req, s)
        elif decision in ("resume", "retry_alloc"):
            cov["PollTransferringCorrected" if st.config.variant == "corrected"
                else "PollTransferringHistorical"] += 1

    def _first(self, req: int, what: str) -> bool:
        """Is this the first rank of ``req`` to log its part of ``what`` (a
        lockstep step of every rank, counted once in the coverage)?"""
        seen = self.state.counted.get(req)
        if seen is None:
            seen = self.state.counted[req] = set()
        if what in seen:
            return False
        seen.add(what)
        return True

    def on_buffer_read(self, ev: dict) -> None:
        st = self.state
        req, s, blocks = ev["req"], ev["session"], ev["blocks"]
        key = (req, s)
        if req in st.finished:
            self._known(req, ev)
        if _RANK_OF.get(ev["proc"]) != s:
            self._same_rank(ev, s, "session")
        decision = st.rx_decision.get(key)
        if decision is None or st.rx_phase.get(key) not in ("queued", "prefill",
                                                                 "aborting"):
            raise step_error(f"req {req} read its buffer on session {s} outside a poll",
                             "a buffer_read only after a poll of that request")
        cur = st.rx_blocks.get(key, [])
        if list(blocks) != cur[:len(blocks)] or (not blocks and cur):
            raise step_error(f"req {req} read blocks {blocks} on rank {s}, but its current "
                             f"blocks are {cur}", f"read the current blocks {cur}")
        P.check_NoReadDuringWrite(st, s, req, blocks)
        if decision == "wait":
            self.coverage["PollReadOnly"] += 1
        elif decision == "handoff":
            if key in st.rx_core:
                self._handoff_refines(req, s, ev)
        elif st.rx_ctx:
            ctx = st.rx_ctx.get(key)
            if ctx is not None and ctx[2] is None:
                self._read_refines(req, s, ev, ctx)
        if blocks:
            aux = st.aux.get((s, blocks[0]))
            if aux is not None and aux != ev["aux_total"]:
                if type(aux) is not tuple:
                    raise step_error(f"req {req} read aux total {ev['aux_total']} from block "
                                     f"{blocks[0]}, which holds {aux}",
                                     f"aux_total = {aux} (the last aux row written there)")
                if ev["aux_total"] not in aux:
                    raise step_error(
                        f"req {req} read aux total {ev['aux_total']} from block {blocks[0]}, "
                        f"which holds one of {list(aux)} (a fault cut a write of its aux row)",
                        f"aux_total in {list(aux)}")
                st.aux[(s, blocks[0])] = ev["aux_total"]   # which one the read shows
        bs = st.block_size
        if bs is not None:
            if ev["tokens"] > len(blocks) * bs:
                raise step_error(f"req {req} gathered {ev['tokens']} tokens from "
                                 f"{len(blocks)} block(s) of {bs}",
                                 f"at most {len(blocks) * bs} tokens")
            ids = ev.get("ids")
            if ids is not None:
                self._check_read_ids(req, s, blocks, ev["tokens"], ids, bs)

    def _check_read_ids(self, req, s, blocks, tokens, ids, bs) -> None:
        st = self.state
        if len(ids) != tokens:
            raise step_error(f"req {req} read {len(ids)} ids for {tokens} tokens",
                             "one id per token gathered")
        for i, t in enumerate(ids):
            b = blocks[i // bs]
            c = st.content.get((s, b))
            if c is None:
                continue
            k = i % bs
            if k < c[2] and c[1] is not None and (t[0] != c[0] or t[1] != c[1] + k):
                raise step_error(
                    f"req {req} read token {t[0]}:{t[1]} from slot {k} of block {b}, which "
                    f"holds {c[0]}:{c[1] + k}", f"{c[0]}:{c[1] + k}")

    def on_resume_sent(self, ev: dict) -> None:
        st = self.state
        req, s, blocks = ev["req"], ev["session"], ev["blocks"]
        key = (req, s)
        if req in st.finished:
            self._known(req, ev)
        if _RANK_OF.get(ev["proc"]) != s:
            self._same_rank(ev, s, "session")
        if (st.rx_decision.get(key) != "resume"
                or st.rx_phase.get(key) != "queued"):
            raise step_error(f"req {req} sent resume on session {s} without a poll that "
                             f"decided resume", "a poll deciding resume first")
        for b in blocks:
            if st.owner.get((s, b)) != req:
                raise step_error(f"req {req} sent resume with block {b}, which it does not "
                                 f"hold on rank {s}",
                                 f"blocks req {req} holds: {st.held_by(s, req)}")
        bs = st.block_size
        if bs is not None and ev["allocated_tokens"] != len(blocks) * bs:
            raise step_error(f"resume says {ev['allocated_tokens']} tokens for {len(blocks)} "
                             f"block(s) of {bs}", f"allocated_tokens = {len(blocks) * bs}")
        still = st.held_by(s, req)
        if still != sorted(blocks):
            old = sorted(set(still) - set(blocks))
            raise step_error(f"req {req} sent resume on session {s} still holding its old "
                             f"blocks {old}",
                             "the resume step gives back the old blocks (free) before the "
                             "resume is sent")
        P.check_AtMostOneResumePerRound(st, req, s)
        self._resume_refines(req, s, ev)
        st.rx_resumes[key] = st.rx_resumes.get(key, 0) + 1
        st.rx_blocks[key] = list(blocks)
        st.rx_decision[key] = "resumed"
        ch = st.ctl.get(key)
        if ch is None:
            ch = st.ctl[key] = deque()
        ch.append(
            ("resume", blocks, ev["sent_tokens"], ev["allocated_tokens"], ev.get("round")))
        if self.open_partial:     # obligations exist only with a bound
            self._close_partial(req, s)

    def on_handoff(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        key = (req, s)
        if req in st.finished:
            self._known(req, ev)
        if _RANK_OF.get(ev["proc"]) != s:
            self._same_rank(ev, s, "session")
        if st.rx_decision.get(key) != "handoff" or st.rx_phase.get(key) != "prefill":
            raise step_error(f"req {req} handed data to prefill on session {s} without a "
                             f"poll that saw Success", "a poll deciding handoff first")
        P.check_HandedDataIsSource(st, req, s, ev["tokens"], ev.get("ids"))
        st.rx_decision[key] = "handed"

    def on_fail(self, ev: dict) -> None:
        st = self.state
        req = ev["req"]
        if req in st.finished:
            self._known(req, ev)
        s = _RANK_OF.get(ev["proc"]) or self._rank(ev)
        key = (req, s)
        phase = st.rx_phase.get(key, "new")
        decision = st.rx_decision.get(key)
        if phase in ("failing", "aborted") or (phase == "queued"
                                               and decision in ("resume", "resume_none")):
            # PollFailed, an abort, or free_first's failure path (allocation returned None)
            if phase == "queued":
                P.check_WritesOnlyIntoOwnedBlocks_at_end(st, req, s)
            st.rx_phase[key] = "failed"
            if self.open_partial:     # obligations exist only with a bound
                self._close_partial(req, s)
            if not st.held_count.get(req):   # (a request holding blocks stays)
                self._maybe_forget(req)
            return
        raise step_error(f"rank {s} failed req {req} while {phase} (last poll decided "
                         f"{decision})",
                         "a fail after a poll that saw Failed, or after a resume whose "
                         "allocation returned None")

    def on_prefill_done(self, ev: dict) -> None:
        st = self.state
        req = ev["req"]
        if req in st.finished:
            self._known(req, ev)
        s = _RANK_OF.get(ev["proc"]) or self._rank(ev)
        key = (req, s)
        phase = st.rx_phase.get(key, "new")
        if phase != "prefill" or st.rx_decision.get(key) != "handed":
            raise step_error(f"prefill of req {req} finished on rank {s} while {phase}",
                             "prefill_done once per rank, after the handoff")
        if self._first(req, "done"):
            self.coverage["PrefillDone"] += 1
        st.rx_phase[key] = "done"
        self.freeing[ev["proc"]] = (req, "prefill_done")
        if not st.held_count.get(req):   # (a request holding blocks stays)
            self._maybe_forget(req)

    def on_abort(self, ev: dict) -> None:
        st = self.state
        req = ev["req"]
        if req in st.finished:
            self._known(req, ev)
        s = _RANK_OF.get(ev["proc"]) or self._rank(ev)
        key = (req, s)
        phase = st.rx_phase.get(key, "new")
        if phase != "queued":
            raise step_error(f"req {req} was aborted on rank {s} while {phase}",
                             "abort only while the request waits for its embedding")
        if self._first(req, "abort"):
            self.coverage["Abort"] += 1
        if st.config.variant is not None and _designs.design(st.config.variant).abort_is_message:
            st.rx_phase[key] = "aborting"
        else:
            st.rx_phase[key] = "aborted"   # a `fail` may follow
            # (a write in flight into its blocks fails the abort's free, which
            # the log may not show yet: a step cut off by the end has not happened)
            self.freeing[ev["proc"]] = (req, "abort")
            if self.open_partial:     # obligations exist only with a bound
                self._close_partial(req, s)

    def on_abort_sent(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        key = (req, s)
        if req in st.finished:
            self._known(req, ev)
        if _RANK_OF.get(ev["proc"]) != s:
            self._same_rank(ev, s, "session")
        if st.rx_phase.get(key) != "aborting":
            raise step_error(f"req {req} sent abort on session {s} while "
                             f"{st.rx_phase.get(key, 'new')}",
                             "abort_sent only after abort (corrected design)")
        ch = st.ctl.get(key)
        if ch is None:
            ch = st.ctl[key] = deque()
        ch.append(("abort", [], 0, 0, None))

    def on_heartbeat_fail(self, ev: dict) -> None:
        st = self.state
        req = ev["req"]
        if req in st.finished:
            self._known(req, ev)
        s = _RANK_OF.get(ev["proc"]) or self._rank(ev)
        key = (req, s)
        if st.rx_phase.get(key) not in ("queued", "aborting"):
            raise step_error(f"heartbeat loss failed req {req} on rank {s} while "
                             f"{st.rx_phase.get(key, 'new')}",
                             "a heartbeat loss only for a request still waiting")
        # The encode side dies: its writes stop (the core's peer_dies; a room
        # it closed dies too, its last status may not have left).  A room the
        # loss already killed, on another rank's log, does not die again.
        step = core_tx.peer_dies(self._room(req))
        if step is not None:
            self.coverage["Heartbeat"] += 1
            self._commit(req, step)
        st.rx_status[key] = FAILED
        x = self._x(key)
        if x is not None:     # the language half of Heartbeat, by the core
            assert self._p1 is not None
            st.rx_core[key] = core_rank.rank_of(heartbeat_lost(
                core_rank.one_rank_state(self._p1, req, x), req)[0].state, req)


    # -- encode side, through the protocol core's sender ----------------------------
    # Each request's room is the core's TxRoom (reference/protocol/sender.py),
    # moved on by the core's functions: init_recv -> sender_recv_init,
    # resume_recv -> sender_recv_resume, abort_recv -> sender_recv_abort, the
    # first round_start of a round -> sender_start_round (its writes, every
    # session's, go in flight at once), the last round_end -> sender_end_round,
    # a write error (or round_end ok=false) -> write_error, the heartbeat's
    # loss -> peer_dies.  Each logged sender event must be what the core's step
    # did: the writes a session's round_start shows, the offset its round_end
    # says, the status (and its fields) status_sent carries.  The sender is
    # deterministic: one outcome per step, named in a violation.
    def _tx_params(self, n: int) -> Params:
        """The sender's parameters for a room of ``n`` sessions.  Without a
        config the design is mainline's (status without fields) with the
        barrier; without a block size, the one the first init shows."""
        c = self.state.config
        bs = c.block_size or self._tx_bs or 1
        key = (n, bs)
        p = self._txp.get(key)
        if p is None:
            barrier = True if c.barrier is None else bool(c.barrier)
            fork = bool(c.fork_sender)
            try:
                p = Params(c.variant or "once", n, bs, barrier=barrier, fork_sender=fork)
            except ValueError:      # (a design the core cannot run: mainline's sender)
                p = Params("once", n, bs, barrier=barrier, fork_sender=fork)
            if len(self._txp) > 64:
                self._txp.clear()
            self._txp[key] = p
        return p

    def _room(self, req: int, s: int = 1) -> TxRoom:
        """The core's room of ``req`` (made at its first sender event, phase
        init; the total is learnt at its first round), with session ``s``."""
        st = self.state
        tx = st.tx_core.get(req)
        if tx is not None and s <= len(tx.sessions):
            return tx
        n = max(st.config.nsess or 1, s)
        if tx is None:
            tx = TxRoom.initial(self._tx_params(n), req, st.total.get(req, 1))
        else:
            n = max(n, len(tx.sessions))
            more = [core_tx.TxSession()] * (n - len(tx.sessions))
            if type(tx.sessions) is list:     # (in place: O(1) per session added)
                _listed(tx).extend(more)
                tx = tx._replace(params=self._tx_params(n))
            else:
                tx = tx._replace(params=self._tx_params(n), sessions=tx.sessions + tuple(more))
        st.tx_core[req] = tx = _held(tx)
        return tx

    # A room of a few sessions is the core's room as the core makes it, and
    # the core's steps take it whole.  A room of more than _FEW sessions keeps
    # its sessions in a list instead (the TxRoom's ``sessions``): a step of one
    # session (init, resume, abort received) is taken by the core on that
    # session's one-session view of the room and put back, so that such a
    # room costs O(1) per such step, not a copy of n sessions.  Those steps
    # read and change only the room's phase and that session.
    def _session_step(self, req: int, s: int, fn: Any, msg: Ctl,
                      *extra: Any) -> tuple[core_tx.TxStep | None, TxRoom]:
        st = self.state
        tx = st.tx_core.get(req)
        if tx is None or s > len(tx.sessions):
            tx = self._room(req, s)
        if type(tx.sessions) is tuple:           # (a few sessions: the room itself)
            step = fn(tx, s, msg, *extra)
            if step is None:
                return None, tx
            if step.effects or st.tx_phase.get(req) != step.state.phase:
                self._commit(req, step)
            else:
                st.tx_core[req] = step.state
            return step, step.state
        one = TxRoom(self._tx_params(1), req, tx.total, tx.phase, (tx.sessions[s - 1],),
                     tx.round, tx.partials, tx.partial)
        step = fn(one, 1, msg, *extra)
        if step is None:
            return None, tx
        after = step.state
        _listed(tx)[s - 1] = after.sessions[0]
        if after.phase != tx.phase:
            tx = st.tx_core[req] = tx._replace(phase=after.phase)
        st.tx_phase[req] = after.phase
        for e in step.effects:
            if isinstance(e, SendStatus):       # (to the view's session 1: session s)
                b = st.tx_session.get((req, s))
                if b is None:
                    b = st.tx_session[(req, s)] = TxSession()
                b.expect = e.msg
        return step, tx

    def _commit(self, req: int, step: core_tx.TxStep) -> None:
        """Keep the core's room after ``step`` (see _session_step); the
        statuses it sends are owed."""
        st = self.state
        tx = step.state
        st.tx_core[req] = tx = tx if len(tx.sessions) <= _FEW else _held(tx)
        st.tx_phase[req] = tx.phase
        if tx.partials:
            st.tx_partials[req] = tx.partials
        if not step.effects:
            return
        tx_session = st.tx_session
        for e in step.effects:
            if type(e) is SendStatus:
                b = tx_session.get((req, e.session))
                if b is None:
                    b = tx_session[(req, e.session)] = TxSession()
                b.expect = e.msg
            elif type(e) is CancelWrites:
                st.cut_writes(req)

    def _tx_words(self, tx: TxRoom) -> str:
        """The room's state, as the core keeps it, in words."""
        parts = []
        for s in tx.params.sessions:
            x = tx.session(s)
            parts.append(f"session {s}: offset {x.sent}, {x.alloc} tokens into {list(x.dst)}"
                         + (", init/resume received" if x.ready else ""))
        return (f"room {tx.req} is {tx.phase} after {tx.round} round(s) ("
                + "; ".join(parts) + ")")

    def _take_ctl(self, ev: dict, kind: str) -> tuple:
        st = self.state
        req, s = ev["req"], ev["session"]
        ch = st.ctl.get((req, s))
        if not ch:
            raise step_error(f"the sender received {kind} of req {req} from session {s}, but "
                             f"no such message was sent", f"{kind}_recv only after {kind}_sent")
        m = ch[0]
        if m[0] != kind:
            raise step_error(f"the sender received {kind} of req {req} from session {s}, but "
                             f"the next message on that channel is {m[0]}",
                             f"{m[0]}_recv (messages arrive in order)")
        if kind != "abort":
            for i, k in ((1, "blocks"), (2, "sent_tokens"), (3, "allocated_tokens"),
                         (4, "round")):
                if k == "sent_tokens" and kind == "init":
                    continue
                if k in ev and ev[k] != m[i] and not (k == "round" and m[i] is None):
                    raise step_error(f"the sender received {kind} of req {req} with {k} "
                                     f"{ev[k]}, but {m[i]} was sent", f"{k} = {m[i]}")
        ch.popleft()
        return m

    def on_init_recv(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        if req in st.finished:
            self._known(req, ev)
        self._take_ctl(ev, "init")
        blocks = tuple(ev["blocks"])
        if self._tx_bs is None and blocks and st.config.block_size is None:
            self._tx_bs = max(1, ev["allocated_tokens"] // len(blocks))
        step, tx = self._session_step(req, s, core_tx.sender_recv_init,
                                      Ctl("init", blocks, 0, ev["allocated_tokens"]))
        if step is None:
            raise step_error(f"the sender received init of req {req} while {tx.phase}",
                             "SenderRecvInit only while the room is open (init, writing or "
                             "await); a closed room leaves the init unread")
        sessions = st.tx_sessions.get(req)
        if sessions is None:
            sessions = st.tx_sessions[req] = set()
        sessions.add(s)
        b = st.tx_session.get((req, s))
        if b is None:
            st.tx_session[(req, s)] = TxSession()
        else:
            b.source = "init"
        self.coverage["SenderRecvInit"] += 1
        if not st.held_count.get(req):   # (a request holding blocks stays)
            self._maybe_forget(req)

    def on_resume_recv(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        if req in st.finished:
            self._known(req, ev)
        self._take_ctl(ev, "resume")
        self.coverage["SenderRecvResume"] += 1
        step, tx = self._session_step(req, s, core_tx.sender_recv_resume, Ctl(
            "resume", tuple(ev["blocks"]), ev["sent_tokens"], ev["allocated_tokens"],
            ev.get("round", 0)))
        assert step is not None          # (a resume is always a step: dropped when closed)
        if not tx.alive and not (tx.params.queued_rounds and tx.phase == _FAILED):
            if not st.held_count.get(req):   # (a request holding blocks stays)
                self._maybe_forget(req)
            return   # room closed: the resume is dropped
        b = st.tx_session.get((req, s))
        if b is None:
            b = st.tx_session[(req, s)] = TxSession()
        b.source = "resume"

    def on_abort_recv(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        if req in st.finished:
            self._known(req, ev)
        self._take_ctl(ev, "abort")
        # SenderRecvAbort waits until no write of the room is in flight; writes
        # land unobserved, so taking the abort shows they have landed.
        landed = st.land_writes(req)
        if landed:
            self.coverage["WriteLand"] += landed
        self.coverage["SenderRecvAbort"] += 1
        step, _ = self._session_step(req, s, core_tx.sender_recv_abort, Ctl("abort"), False)
        assert step is not None          # (no write in flight: always a step)

    def _no_round(self, req: int, s: int, tx: TxRoom) -> Violation:
        """Why the core's SenderStartRound is not enabled: the words."""
        said = f"the sender started a round of req {req} for session {s}"
        if tx.phase == core_tx.WRITING:
            b = self.state.tx_session.get((req, s))
            why = (" and this session's round already started" if b is not None and b.started
                   else "")
            return step_error(f"{said} while writing{why}",
                              "a round starts after init, or after the last round ended "
                              "partial (SenderStartRound: the room is init or await)")
        if tx.phase not in (core_tx.INIT, core_tx.AWAIT):
            return step_error(f"{said} while {tx.phase}",
                              "a round starts after init, or after the last round ended "
                              "partial (SenderStartRound: the room is init or await)")
        p = tx.params
        late = [o for o in p.sessions if not tx.session(o).ready]
        what = "init" if tx.phase == core_tx.INIT else "resume"
        if tx.phase == core_tx.INIT or p.barrier:
            if s in late:
                return step_error(f"{said} without a new {what} from it ({self._tx_words(tx)})",
                                  f"a {what}_recv for this session first")
            return step_error(f"{said} before the {what} of session(s) {late} arrived "
                              f"({self._tx_words(tx)})",
                              f"a round starts once every session's {what} has arrived"
                              + ("" if tx.phase == core_tx.INIT else " (barrier)"))
        return step_error(f"{said} without a new init or resume from any session "
                          f"({self._tx_words(tx)})",
                          "a resume_recv first (no barrier: any one session's resume)")

    def _start_round(self, req: int, tx: TxRoom, s: int) -> None:
        """SenderStartRound through the core: every session's writes go in
        flight now (unlogged until that session's round_start shows them).
        With ``fork_sender`` and a dead session, the round is the start of a
        SenderFailDead: the live sessions the fork writes before it meets
        the dead one (their writes planned as a round's, the room unchanged
        until the Failed, ``_fail_dead``)."""
        st = self.state
        dead = st.tx_dead
        step = core_tx.sender_start_round(tx, writes=False, dead=dead)
        if step is None and dead and tx.params.fork_sender:
            if s in dead:
                raise step_error(
                    f"the sender started a round of req {req} for session {s}, which it "
                    f"counts as dead since a write error",
                    "status_sent Failed to that session, and no round (the fork's sender, "
                    "fork_sender)")
            if req in st.fail_dead:
                return                       # (planned at the first session's round_start)
            step = core_tx.sender_start_round(tx, writes=False)
            if step is not None:
                st.fail_dead[req] = set()
        if step is None:
            raise self._no_round(req, s, tx)
        inflight = st.inflight
        ranks = st.writes_of.get(req)
        if ranks is None:
            ranks = st.writes_of[req] = {}
        tx_session = st.tx_session
        after = step.state
        total = tx.total
        for o, x in enumerate(tx.sessions, 1):
            ws = session_writes(tx, o)      # (block, first, count, aux)
            b = tx_session.get((req, o))
            if b is None:
                b = tx_session[(req, o)] = TxSession()
            sent = x.sent
            b.plan = (sent, after.sessions[o - 1].tok, list(map(_first, ws)),
                      bool(ws) and ws[0][3] > 0, session_partial(total, sent, x.alloc))
            b.started = b.ended = False
            if ws:
                keys = ranks.get(o)
                if keys is None:
                    keys = ranks[o] = set()
                for blk, first, count, aux in ws:
                    inflight[(o, blk)] = Write(req, o, sent, first, count, aux or None, False)
                    keys.add(blk)
        st.tx_ended[req] = 0
        if req in st.fail_dead:
            return                           # (no step yet: SenderFailDead at the Failed)
        self.coverage["SenderStartRound"] += 1
        if step.effects or after.partials != tx.partials:
            self._commit(req, step)
        else:     # (what _commit does for a step that sends nothing)
            st.tx_core[req] = after if len(after.sessions) <= _FEW else _held(after)
            st.tx_phase[req] = after.phase

    def on_round_start(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        if req in st.finished:
            self._known(req, ev)
        total = ev["total"]
        known = st.total.get(req)
        if known is not None and known != total:
            raise step_error(f"the sender says req {req} has {total} tokens, earlier {known}",
                             f"total = {known}")
        tx = st.tx_core.get(req)
        if tx is None or s > len(tx.sessions):
            tx = self._room(req, s)
        if tx.params.queued_rounds:
            self._queued_round_start(ev, req, s, tx, known, total)
            return
        if tx.phase in _ROUND_MAY_START:
            bs = st.config.block_size or self._tx_bs or 1
            if known is None or tx.params.block_size != bs:
                st.total[req] = total
                tx = st.tx_core[req] = TxRoom(self._tx_params(len(tx.sessions)), req, total,
                                              tx.phase, tx.sessions, tx.round, tx.partials,
                                              tx.partial)
            if not tx.sessions[s - 1].ready and not (tx.phase == _AWAIT
                                                and not tx.params.barrier):
                raise self._no_round(req, s, tx)
            self._start_round(req, tx, s)
        b = st.tx_session.get((req, s))
        if tx.phase not in _ROUND_SHOWN or b is None \
                or b.started or not b.plan:
            raise self._no_round(req, s, tx)
        dst = b.plan[2]
        src = b.source
        def why() -> str:     # (words only for a violation)
            d = tx.params.variant
            return f"(design {d}'s SenderStartRound from the last {src}: {self._tx_words(tx)})"
        P.check_SenderOffsetFollowsResume(ev, b.plan, src, why)
        P.check_AuxOnlyInFirstRound(ev, b.plan)
        P.check_WritesOnlyIntoOwnedBlocks_at_write(st, req, s, dst)
        inflight = st.inflight
        for blk in dst:
            w = inflight.get((s, blk))
            if w is not None and w.req == req:
                w.logged = True
        b.started = True

    def on_round_end(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        if req in st.finished:
            self._known(req, ev)
        b = st.tx_session.get((req, s))
        tx = st.tx_core.get(req)
        phase = tx.phase if tx is not None else None
        ok = ev["ok"]
        if tx is not None and tx.params.queued_rounds:
            self._queued_round_end(ev, req, s, tx, b)
            return
        failing = ok and req in st.fail_dead     # a session written before a dead one
        if (tx is None or b is None or not b.started or b.ended
                or not (phase == _WRITING or (phase == _FAILED and not ok) or failing)):
            raise step_error(f"the round of req {req} for session {s} ended"
                             + (" ok" if ok else " with an error")
                             + ", but none was being written"
                             + (f" (the room is {phase})" if phase not in (None, "writing")
                                else ""), "round_end after its round_start")
        assert tx is not None
        if ok:
            self._land(ev, req, s, b.plan[0], b.plan[1], b.plan[2], False)
            if failing:
                st.fail_dead[req].add(s)
        elif phase == _WRITING:
            self._write_error(req, tx, s)   # a write failed: WriteError, for the whole room
        b.ended = True
        ended = st.tx_ended[req] = st.tx_ended.get(req, 0) + 1
        if not ok:
            tx = st.tx_core[req]
        if tx.phase != _WRITING or ended < len(tx.sessions):
            return
        # every session's round ended: SenderEndRound
        step = core_tx.sender_end_round(tx, False)
        assert step is not None
        self._commit(req, step)
        self.coverage["SenderEndRound"] += 1

    # ---- QueuedRounds: the fork's sender without the barrier --------------
    # (the four pull/13 designs: ForkSender and no Barrier).  Every resume
    # queued a round (the core's TxRoom.queue); a round is a walk over the
    # sessions, each written from what the sender holds for it when the walk
    # reaches it (SenderWriteSession), one batch at a time.  A round is not
    # logged when it starts: the first session's round_start shows it
    # (SenderQueuedRound, then SenderWriteSession); a Failed with no
    # round_start is the walk meeting a dead session.

    def _queued_next_round(self, req: int, s: int, tx: TxRoom, what: str) -> TxRoom:
        """SenderQueuedRound through the core, when no round's walk is under
        way: the room after it, or a violation naming why none could start."""
        st = self.state
        if tx.left:
            return tx
        step = core_tx.sender_queued_round(tx, bool(st.writes_of.get(req)))
        if step is None:
            said = f"the sender {what} of req {req} for session {s}"
            if tx.phase == core_tx.INIT:
                late = [o for o in tx.params.sessions if not tx.session(o).ready]
                raise step_error(f"{said} before the init of session(s) {late} arrived "
                                 f"({self._tx_words(tx)})",
                                 "the first round starts once every session's init arrived")
            raise step_error(f"{said}, but no round is queued ({self._tx_words(tx)}, "
                             f"{tx.queue} queued)",
                             "a round only when a resume queued one (SenderQueuedRound: the "
                             "fork's sender queues one round per resume it receives; a room "
                             "that succeeded runs none)")
        self._commit(req, step)
        self.coverage["SenderQueuedRound"] += 1
        return step.state

    def _queued_round_start(self, ev: dict, req: int, s: int, tx: TxRoom,
                            known: int | None, total: int) -> None:
        st = self.state
        if known is None or tx.total != total:
            st.total[req] = total
            tx = st.tx_core[req] = tx._replace(
                params=self._tx_params(len(tx.sessions)), total=total)
        for o in tx.params.sessions:
            ob = st.tx_session.get((req, o))
            if o != s and ob is not None and ob.started and not ob.ended:
                raise step_error(
                    f"the sender started writing req {req} session {s} while the batch of "
                    f"session {o} had not returned",
                    "the fork's transfer worker writes a room's sessions one after "
                    "another (SenderWriteSession: no write of the room in flight)")
        tx = self._queued_next_round(req, s, tx, "started a round")
        if s in st.tx_dead:
            raise step_error(
                f"the sender started a round of req {req} for session {s}, which it "
                f"counts as dead since a write error",
                "status_sent Failed to that session, and no round (the fork's sender, "
                "fork_sender)")
        if s not in tx.left:
            raise step_error(
                f"the sender wrote req {req} session {s} twice in one round "
                f"({self._tx_words(tx)})",
                "each session once per round (SenderWriteSession); a resume queues "
                "the next round")
        b = st.tx_session.get((req, s))
        if b is None:
            b = st.tx_session[(req, s)] = TxSession()
        x = tx.session(s)
        ws = session_writes(tx, s)
        step = core_tx.sender_write_session(tx, s, st.tx_dead, False, writes=False)
        assert step is not None
        after = step.state
        b.plan = (x.sent, after.session(s).tok, list(map(_first, ws)),
                  bool(ws) and ws[0][3] > 0, session_partial(tx.total, x.sent, x.alloc))
        b.started = b.ended = False
        src = b.source

        def why() -> str:     # (words only for a violation)
            return (f"(design {tx.params.variant}'s SenderWriteSession, the fork's sender "
                    f"without the barrier, from the last {src}: {self._tx_words(tx)})")
        P.check_SenderOffsetFollowsResume(ev, b.plan, src, why)
        P.check_AuxOnlyInFirstRound(ev, b.plan)
        P.check_WritesOnlyIntoOwnedBlocks_at_write(st, req, s, b.plan[2])
        if ws:
            inflight = st.inflight
            ranks = st.writes_of.get(req)
            if ranks is None:
                ranks = st.writes_of[req] = {}
            keys = ranks.get(s)
            if keys is None:
                keys = ranks[s] = set()
            sent = x.sent
            for blk, first, count, aux in ws:
                inflight[(s, blk)] = Write(req, s, sent, first, count, aux or None, True)
                keys.add(blk)
        self._commit(req, step)
        self.coverage["SenderWriteSession"] += 1
        b.started = True

    def _queued_round_end(self, ev: dict, req: int, s: int, tx: TxRoom,
                          b: TxSession | None) -> None:
        st = self.state
        ok = ev["ok"]
        if b is None or not b.started or b.ended \
                or tx.phase not in (core_tx.WRITING, core_tx.FAILED):
            raise step_error(f"the round of req {req} for session {s} ended"
                             + (" ok" if ok else " with an error")
                             + ", but none was being written"
                             + (f" (the room is {tx.phase})" if tx.phase != _WRITING else ""),
                             "round_end after its round_start")
        sent, tok, dst = b.plan[0], b.plan[1], b.plan[2]
        if ok:
            self._land(ev, req, s, sent, tok, dst, True)
        elif tx.phase == _WRITING:
            self._write_error(req, tx, s)   # this batch failed: WriteError
        else:
            raise step_error(f"a write of req {req} to session {s} failed in a room that "
                             f"had failed already", "one write error per run")
        b.ended = True
        tx = st.tx_core[req]
        if tx.phase != _WRITING or tx.left:
            return
        # the walk wrote every session: SenderEndRound
        step = core_tx.sender_end_round(tx, False)
        assert step is not None
        self._commit(req, step)
        self.coverage["SenderEndRound"] += 1

    def _queued_fail_dead(self, req: int, s: int, tx: TxRoom) -> bool:
        """A Failed with no round_start: the walk of a round (queued, or the
        one under way) met the dead session ``s`` (SenderWriteSession)."""
        st = self.state
        if st.writes_of.get(req):
            return False
        tx = self._queued_next_round(req, s, tx, "sent Failed")
        step = core_tx.sender_write_session(tx, s, st.tx_dead, False)
        if step is None:
            return False
        self._commit(req, step)
        self.coverage["SenderWriteSession"] += 1
        return True

    def _write_error(self, req: int, tx: TxRoom, s: int | None) -> None:
        """WriteError through the core; with ``fork_sender`` the write to
        session ``s`` failed (1 when the log does not say): only ``s`` is
        told, and the sender counts it as dead from now on."""
        if tx.params.fork_sender and (s is None or s > tx.params.n_sessions):
            s = s or 1
            tx = self._room(req, s)
        step = core_tx.write_error(tx, s if tx.params.fork_sender else None)
        if step is None:
            raise step_error(f"a write of req {req} failed while the sender was {tx.phase}",
                             "a write error only while a round is being written")
        self._commit(req, step)
        if step.dead is not None:
            self.state.tx_dead.add(step.dead)
        self.coverage["WriteError"] += 1

    def _fail_dead(self, req: int, s: int) -> bool:
        """SenderFailDead (``fork_sender``): a Failed that no step owes is the
        fork's sender failing a round of a room with a dead session; True when
        the core takes that step and tells session ``s``."""
        st = self.state
        if not st.tx_dead:
            return False
        tx = self._room(req, s)
        if not tx.params.fork_sender:
            return False
        if s not in st.tx_dead:
            return False
        if tx.params.queued_rounds:
            return self._queued_fail_dead(req, s, tx)
        written = st.fail_dead.pop(req, set())
        step = core_tx.sender_fail_dead(tx, st.tx_dead, s, written)
        if step is None:
            return False
        self._commit(req, step)
        st.cut_writes(req)      # (planned writes of sessions the loop never reached)
        self.coverage["SenderFailDead"] += 1
        return True

    def _land(self, ev: dict, req: int, s: int, sent: int, tok: int, dst, forget: bool) -> None:
        """A successful ``round_end`` of session ``s``: its offset is the
        round's start plus its tokens, and every write of the round landed
        (WriteLand, once per block).  ``forget``: drop the request's entry
        of in-flight sessions once none is left."""
        st = self.state
        if ev["sent_tokens"] != sent + tok:
            raise step_error(
                f"the round of req {req} for session {s} ended at offset "
                f"{ev['sent_tokens']}, but it started at {sent} with {tok} tokens",
                f"sent_tokens = {sent + tok}")
        ranks = st.writes_of.get(req)
        if ranks:
            ranks.pop(s, None)
            if forget and not ranks:
                del st.writes_of[req]
        landed = 0
        inflight, content = st.inflight, st.content
        for blk in dst:          # WriteLand, for every block of the round
            w = inflight.pop((s, blk), None)
            if w is None or w.req != req:
                continue
            if w.first is not None and w.count:
                content[(s, blk)] = (req, w.first, w.count)
            if w.aux is not None:
                st.aux[(s, blk)] = w.aux
            landed += 1
        if landed:
            self.coverage["WriteLand"] += landed

    def on_status_sent(self, ev: dict) -> None:
        st = self.state
        req, s = ev["req"], ev["session"]
        key = (req, s)
        if req in st.finished:
            self._known(req, ev)
        status = STATUS_RANK[ev["status"]]
        b = st.tx_session.get(key)
        expect = b.expect if b is not None else None
        if expect is None and status == FAILED and st.config.fork_sender \
                and self._fail_dead(req, s):
            b = st.tx_session.get(key)
            expect = b.expect if b is not None else None
        P.check_StatusMonotone(st, req, s, status)
        if expect is None or status != expect.status:
            want = STATUSES[expect.status] if expect is not None else "no status now"
            raise step_error(f"the sender sent {ev['status']} for req {req} to session {s}",
                             f"{want} (a status follows the end of a round, a write error, "
                             f"or an abort)")
        assert b is not None and expect is not None
        if len(ev) > 7:          # (v, proc, seq, event, req, session, status: no field to check)
            total = expect.total     # (0 for a Failed before any round: KnownTotal)
            for k, v in (("round", expect.round), ("sent_tokens", expect.sent),
                         ("total", total)):
                if k in ev and ev[k] != v:
                    raise step_error(f"the sender's status for req {req} says {k} {ev[k]}",
                                     f"{k} = {v} (the core's {STATUSES[expect.status]} "
                                     f"status: round {expect.round}, sent_tokens "
                                     f"{expect.sent}, total {total})")
        b.expect = None
        st.tx_status_sent[key] = status
        ch = st.st.get(key)
        if ch is None:
            ch = st.st[key] = deque()
        ch.append(
            (status, ev.get("round"), ev.get("sent_tokens"), ev.get("total")))
        if status == TRANSFERRING:
            self._open_partial(req, s)

    def on_write_error(self, ev: dict) -> None:
        st = self.state
        req = ev["req"]
        if req in st.finished:
            self._known(req, ev)
        tx = st.tx_core.get(req)
        s = ev.get("session")
        sessions = st.tx_sessions.get(req, ())
        if s is not None and tx is not None and s not in sessions:
            raise step_error(f"a write of req {req} to session {s} failed, but the room's "
                             f"sessions are {sorted(sessions)}",
                             "a write error names a session whose init the sender received")
        if tx is not None and tx.phase == core_tx.FAILED:
            return   # already failed by a round_end with ok=false
        self._write_error(req, tx if tx is not None else self._room(req, s or 1), s)

    def on_config(self, ev: dict) -> None:
        self.configs += 1
        c = self.state.config
        seen = self.state.config_values
        for k, v in ev.items():
            if k in ("v", "proc", "seq", "event", "ts") or k.startswith("x_"):
                continue
            if k in seen and seen[k] != v:
                raise step_error(f"{ev['proc']} logged {k}={v}, another process {seen[k]}",
                                 f"{k} = {seen[k]} (one configuration per run)")
            seen[k] = v
            if hasattr(c, k):
                setattr(c, k, v)
        self.state.block_size = c.block_size
        self._p1_known = False
        self._txp = {}
        self._latches = c.variant is not None and _designs.design(c.variant).failed_latches


_first = itemgetter(0)
_FEW = 8      # sessions a room may have and still be taken whole (see _session_step)


def _held(tx: TxRoom) -> TxRoom:
    """The room as the checker keeps it: as it is with a few sessions, else
    with its sessions in a list (see NativeChecker._session_step)."""
    if len(tx.sessions) <= _FEW:
        return tx if type(tx.sessions) is tuple else tx._replace(sessions=tuple(tx.sessions))
    if type(tx.sessions) is list:
        return tx
    return TxRoom(tx.params, tx.req, tx.total, tx.phase, cast(tuple, list(tx.sessions)),
                  tx.round, tx.partials, tx.partial, tx.queue, tx.left)


def _listed(tx: TxRoom) -> list[TxSessionCore]:
    """The list of sessions a room of more than _FEW sessions holds (``_held``)."""
    return cast(list, tx.sessions)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------
def check_native(paths: list[str], bound: int | None = None, progress=None) -> Verdict:
    """Check one merged trace or several per-process traces with the native checker.

    ``progress(events, seconds)`` is called about every 65536 events.
    """
    import time

    from .merge import merge_files
    from .trace import MalformedTrace, read_trace_batches

    t0 = time.perf_counter()
    checker = NativeChecker(bound=bound)
    paths = list(paths)
    try:
        if len(paths) == 1:       # one file: batches straight from the reader
            path = paths[0]
            feed_batch = checker.feed_batch
            next_progress = 0x10000
            for before, events, text in read_trace_batches(path):
                if feed_batch(before, events, path, text) is not None:
                    break
                if progress is not None and checker.count >= next_progress:
                    progress(checker.count, time.perf_counter() - t0)
                    next_progress = checker.count + 0x10000
        else:
            feed = checker.feed
            n = 0
            for path, line, ev in merge_files(paths):
                if feed(line, ev, path) is not None:
                    break
                n += 1
                if progress is not None and not (n & 0xFFFF):
                    progress(n, time.perf_counter() - t0)
        if checker.count == 0:
            raise MalformedTrace(1, None, "at least one event (the trace is empty)",
                                 "+".join(str(p) for p in paths))
        verdict = checker.finish()
    except MalformedTrace as e:
        verdict = Verdict("malformed", prop=None, message=e.message(), expected=e.expected,
                          file=e.path, line=e.line,
                          event={"field": e.field} if e.field is not None else None,
                          events=checker.count, coverage=checker.coverage_report())
    verdict.seconds = time.perf_counter() - t0
    return verdict
