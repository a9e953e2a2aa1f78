"""TLC trace validation: replay a (short) trace through spec/ResumeProtocol.tla with TLC.

The approach of Microsoft CCF and etcd-raft: the trace becomes a TLA+
sequence of records (TLC 2.15 has no Json module) in a generated module that
EXTENDS ResumeProtocol and adds a cursor ``l``.  Each record is one spec
action, paired with the events that action logs; the generated ``TraceNext``
lets the spec take that action, with the values it chooses constrained to what
the log shows, and advances ``l``.  Actions the log cannot show (``WriteLand``)
step freely without moving ``l``.  TLC then explores every behaviour of the
spec that matches the log:

* a state with ``l = Len(Trace) + 1`` is reachable (``TraceEnd`` prints each
  kind of such end state): the trace conforms when one of them has every
  request and room closed; else it is incomplete when in one of them some
  spec step is still enabled, and violates the liveness property the end
  state fails when in none of them any step is (a dead end);
* a reachable state violates one of the spec's safety invariants: violates
  that property (BFS finds the earliest);
* neither: no behaviour of the spec explains the trace (violates ``SpecStep``;
  a third run prints the spec state at the furthest step some behaviour
  reached, and the verdict says which event no step explains).

Grouping events into actions (``steps_of``) follows the logging order of
docs/trace-format.md.  The spec's receiver steps cover every rank at once (the
ranks poll in lockstep, on an all-reduce) and a sender round covers every
session, while each rank (and the sender, per session) logs its own part: the
k-th part of a kind from every rank forms one step, which TLC takes where the
first part was logged and constrains with every part.  Traces up to
``MAX_EVENTS`` events and ``MAX_SESSIONS`` sessions per room; longer or wider
traces are the native checker's job.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from resumespec import exitcodes
from resumespec.reference.protocol.designs import ENGINE_RESUME_ORDER

from .checker_native import Verdict
from .merge import merge_files
from .trace import EVERY_RANK_LOGS, STATUS_RANK, MalformedTrace

SPEC_DIR = Path(__file__).resolve().parent.parent / "spec"
SPEC_MODULE = "ResumeProtocol"   # either design by Variant: instances of ResumeCorrected / ResumeHistorical
TRACE_MODULE = "TraceResumeProtocol"     # spec/TraceResumeProtocol.tla: the trace spec
MAX_EVENTS = 5000        # TLC explores every landing order: beyond this, use the native checker
MAX_SESSIONS = 4
# The checker's range (docs/trace-format.md, "Numbers TLC trace validation can
# judge").  Block ids only name blocks: they are renumbered (``block_map``).
# Token counts are numbers the spec computes with: beyond these, refused.
MAX_TOKENS = 1 << 20     # any token count, offset, total, round number
MAX_BLOCK_SIZE = 4096
MAX_POOL_SLOTS = 1 << 16 # blocks per rank (after renumbering) x block size
# Fields whose number is a magnitude the spec computes with.
MAGNITUDES = ("tokens", "sent_tokens", "allocated_tokens", "total", "aux_total", "round",
              "block_size", "init_tokens")

# (The safety invariants run 1 checks, and their order, are the trace
# spec's FirstViolated.)
# The trace module's own forms of spec invariants -> the spec's name.
TRACE_FORMS = {"LoggedWritesOnlyIntoOwnedBlocks": "WritesOnlyIntoOwnedBlocks"}


class NotForTlc(Exception):
    """The trace is outside what TLC trace validation handles."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(eq=False)     # parts and steps are compared by identity
class Part:
    """What one session's (rank's) events show of a spec action."""
    blocks: list = field(default_factory=list)      # alloc'd / resumed / round's dst blocks (spec ids)
    sent: int = -1                                  # resume offset, round offset, init's allocated tokens
    tokens: int = -1                                # round tokens, handed tokens, init tokens
    status: int = -1                                # status sent or received
    ids: list | None = None
    kind: str = ""                                  # historical poll: "wait", "resume" or "fail"
    freed: list | None = None                       # blocks its free events gave back
    aux: bool = False                               # round_start: aux_written
    partial: bool = False                           # round_start: partial
    resumed: bool = False                           # its resume_sent was logged
    fail_logged: bool = False                       # its fail was logged
    alloc: int = -1                                 # allocated_tokens of a resume
    reads: list = field(default_factory=list)       # blocks of each buffer_read
    read_aux: list = field(default_factory=list)    # the aux_total each read saw
    st_fields: tuple = (-1, -1, -1)                 # a status's round, sent_tokens, total
    known: bool = True                              # False: the spec's choice is free

    def tla(self) -> str:
        def seq(xs):
            return "<<" + ", ".join(str(x) for x in xs) + ">>"
        ids = "<<>>" if not self.ids else "<<" + ", ".join(
            f"<<{a}, {b}>>" for a, b in self.ids) + ">>"
        b = lambda x: "TRUE" if x else "FALSE"     # noqa: E731
        return (f'[known |-> {b(self.known)}, blocks |-> {seq(self.blocks)}, '
                f'sent |-> {self.sent}, tokens |-> {self.tokens}, status |-> {self.status}, '
                f'ids |-> {ids}, hasIds |-> {b(self.ids is not None)}, kind |-> "{self.kind}", '
                f'freed |-> {seq(self.freed or [])}, hasFreed |-> {b(self.freed is not None)}, '
                f'aux |-> {b(self.aux)}, partial |-> {b(self.partial)}, alloc |-> {self.alloc}, '
                f'reads |-> <<{", ".join(seq(rb) for rb in self.reads)}>>, '
                f'raux |-> {seq(self.read_aux)}, '
                f'stRound |-> {self.st_fields[0]}, stSent |-> {self.st_fields[1]}, '
                f'stTotal |-> {self.st_fields[2]}]')


@dataclass(eq=False)
class Step:
    """One spec action: its name, the request, and what each session's events show.

    ``session`` is the session of an action of one session (``DeliverStatus``,
    ``SenderRecvInit``, the corrected design's per-session poll steps); it is 0
    for an action that covers every session at once (the receiver's lockstep
    steps, a sender round), whose events every rank (or the sender, per
    session) logs separately: each session's events form one ``Part``.
    """
    action: str
    req: int
    session: int = 0
    line: int = 0
    status: int = -1                                # a poll's combined status
    parts: dict = field(default_factory=dict)       # session -> Part
    stopped: bool = False                           # a round a write error ended early

    def part(self, s: int) -> Part:
        p = self.parts.get(s)
        if p is None:
            p = self.parts[s] = Part()
        return p

    def tla(self, nsess: int) -> str:
        parts = ", ".join(self.parts[s].tla() if s in self.parts else "Unlogged"
                          for s in range(1, nsess + 1))
        return (f'[a |-> "{self.action}", r |-> {self.req}, s |-> {self.session}, '
                f'status |-> {self.status}, line |-> {self.line}, p |-> <<{parts}>>]')


@dataclass
class TraceModel:
    steps: list
    constants: dict
    reqs: dict           # trace req id -> spec req id
    events: int
    cut_at_end: bool = False
    unlogged_writes: list = field(default_factory=list)   # (req, session, step) of a cut round
    by_line: dict = field(default_factory=dict)   # line -> event, for the verdict's words
    block_ids: dict = field(default_factory=dict)  # trace block id -> spec block id


class FileLine(int):
    """A line number that knows its file.  Steps and messages carry plain
    line numbers, but with one trace per process two events share a number:
    ``TraceModel.by_line`` (the events a verdict tells of) keys on the file
    too.  Equal to an int as that int; to another FileLine only in the same
    file."""

    path: str

    def __new__(cls, line: int, path: str) -> FileLine:
        obj = super().__new__(cls, line)
        obj.path = path
        return obj

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FileLine) and other.path != self.path:
            return False
        return int(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = int.__hash__


def _load(paths: list[str]) -> list[tuple[int, dict]]:
    out: list[tuple[int, dict]] = []
    next_seq: dict = {}
    try:
        for path, line, ev in merge_files(list(paths)):
            want = next_seq.get(ev["proc"], 0)
            if ev["seq"] != want:
                raise MalformedTrace(line, "seq", f"seq {want} for {ev['proc']}", path,
                                     ev["seq"])
            next_seq[ev["proc"]] = want + 1
            out.append((FileLine(line, path), ev))
            if len(out) > MAX_EVENTS:
                break
    except MalformedTrace as e:
        e.before = out          # the well-formed events before the bad line
        raise
    if len(out) > MAX_EVENTS:
        raise NotForTlc(f"TLC trace validation is for short traces (at most {MAX_EVENTS} "
                        "events); use the native checker")
    return out


def _config_of(events) -> tuple[dict, list]:
    config: dict = {}
    conflicts = []
    for line, ev in events:
        if ev["event"] == "config":
            for k, v in ev.items():
                if k in ("v", "proc", "seq", "event", "ts"):
                    continue
                if k in config and config[k] != v:
                    conflicts.append(line)      # two processes, two configurations
                config[k] = v
    return config, conflicts


def _status_fields(ev: dict) -> tuple:
    """The corrected design's status fields (-1: not logged)."""
    return tuple(ev.get(k, -1) for k in ("round", "sent_tokens", "total"))


def _session_of(ev: dict) -> int:
    s = ev.get("session") or ev.get("rank")
    if s:
        return s
    proc = ev["proc"]
    return int(proc[9:]) if proc.startswith("language/") else 1


class _Grouper:
    """Groups the events of a trace into spec actions (see ``steps_of``)."""

    def __init__(self, bs: int, nsess: int, corrected: bool, free_first: bool,
                 bmap: dict | None = None, fork: bool = False, barrier: bool = True):
        self.bs = bs
        self.fork = fork             # ForkSender: the engine fork's failed-write rule
        # QueuedRounds (ForkSender without the barrier): a round_start is one
        # session's SenderWriteSession; the round's start (SenderQueuedRound)
        # is not logged and steps freely; SenderEndRound is its statuses
        self.queued = fork and not barrier
        self.end_sent: dict = {}     # (req, session) -> the offset its last batch ended at
        self.bmap = bmap             # trace block id -> spec block id (None: id + 1)
        self.corrected = corrected
        self.free_first = free_first
        self.nsess = nsess
        self.steps: list[Step] = []
        self.reqs: dict = {}
        self.total: dict = {}
        self.faults: set = set()
        self.groups: dict = {}       # (kind, req, k) -> the step every rank's k-th part joins
        self.count: dict = {}        # (kind, req, session) -> parts that session began
        self.open: dict = {}         # (req, session) -> (step, part) of the receiver being built
        self.awaiting: dict = {}     # (req, session) -> deque of (step, part) awaiting a status
        self.status_from: dict = {}  # (req, session) -> steps that sent its status messages
        self.status_got: dict = {}   # (req, session) -> status messages received
        self.init_allocs: dict = {}  # (req, session) -> (blocks, tokens) of the init alloc
        self.held: dict = {}         # (req, session) -> blocks held (spec ids), as logged
        self.sent_n: dict = {}       # (channel, req, session) -> messages sent
        self.recv_n: dict = {}       # (channel, req, session) -> messages received
        self.write_error: dict = {}  # req -> its WriteError step
        self.cut_at_end = False      # the log ends inside a step of every session
        self.unlogged_writes: list = []  # (req, session): round_start not logged at the end
        self.cache_due: dict = {}    # (req, session) -> a CorrectedCache part whose free is due

    # -- bookkeeping -------------------------------------------------------------
    def bl(self, blocks) -> list:
        """Block ids of the trace as the spec numbers them."""
        if self.bmap is None:
            return [b + 1 for b in blocks]
        return [self.bmap[b] for b in blocks]

    def rid(self, r) -> int:
        if r not in self.reqs:
            self.reqs[r] = len(self.reqs) + 1
        return self.reqs[r]

    def add(self, action: str, r: int, s: int, line: int, **part) -> tuple[Step, Part]:
        """A step of one session."""
        st = Step(action, r, s, line)
        p = st.part(s)
        for k, v in part.items():
            setattr(p, k, v)
        self.steps.append(st)
        return st, p

    def join(self, kind: str, action: str, r: int, s: int, line: int) -> tuple[Step, Part]:
        """Session s's part of the lockstep step its k-th ``kind`` event belongs to."""
        k = self.count.get((kind, r, s), 0)
        self.count[(kind, r, s)] = k + 1
        st = self.groups.get((kind, r, k))
        if st is None:
            st = self.groups[(kind, r, k)] = Step(action, r, 0, line)
            self.steps.append(st)
        return st, st.part(s)

    def impossible(self, r: int, s: int, line: int) -> None:
        self.add("Impossible", r, s, line)

    def sent(self, ch: str, r: int, s: int) -> None:
        self.sent_n[(ch, r, s)] = self.sent_n.get((ch, r, s), 0) + 1

    def received(self, ch: str, r: int, s: int) -> bool:
        n = self.recv_n.get((ch, r, s), 0) + 1
        self.recv_n[(ch, r, s)] = n
        return n <= self.sent_n.get((ch, r, s), 0)

    def close(self, r: int, s: int) -> None:
        """Session s's part of its current receiver step is over: was all of it
        logged?  A step that misses events while the log goes on cannot be matched."""
        self.cache_due.pop((r, s), None)
        cur = self.open.pop((r, s), None)
        if cur is not None and not _logged_whole(cur[0], cur[1], self.held.get((r, s), set()),
                                                 self.corrected):
            cur[0].action = "Impossible"

    def await_status(self, st: Step, r: int, s: int) -> None:
        self.awaiting.setdefault((r, s), deque()).append((st, st.part(s)))

    # -- events ------------------------------------------------------------------
    def feed(self, line: int, ev: dict) -> None:
        e = ev["event"]
        r = self.rid(ev["req"])
        s = _session_of(ev)
        proc = ev["proc"]
        if proc != "encode" and s != int(proc[9:]):
            self.impossible(r, int(proc[9:]), line)   # a rank logs only its own part
            return
        handler = getattr(self, "on_" + e, None)
        if handler is not None:
            handler(line, ev, r, s)

    def on_alloc(self, line, ev, r, s):
        blocks = self.bl(ev["blocks"] or ())
        cur = self.open.get((r, s))
        st: Any
        p: Any
        st, p = cur if cur else (None, None)
        if ev["blocks"] is not None and len(blocks) != -(-ev["tokens"] // self.bs):
            self.impossible(r, s, line)          # not what the allocator returns
        elif st is None:
            if (r, s) in self.init_allocs or self.count.get(("init", r, s)):
                self.impossible(r, s, line)
            elif ev["blocks"] is not None:
                self.init_allocs[(r, s)] = (blocks, ev["tokens"])
                self.held.setdefault((r, s), set()).update(blocks)
        elif self.corrected and st.action in ("CorrectedCache", "CorrectedRetry"):
            if st.action == "CorrectedRetry":
                self.steps.remove(st)
            elif p.freed is None:
                self.cache_due[(r, s)] = p       # its free may be logged after the alloc
            if ev["blocks"] is not None:
                nxt, _ = self.add("CorrectedResume", r, s, line, blocks=blocks, kind="resume")
                nxt.status = st.status
                self.open[(r, s)] = (nxt, nxt.part(s))
                self.held.setdefault((r, s), set()).update(blocks)
        elif st.action == "PollResume" and p.kind == "resume" and not p.blocks:
            if ev["blocks"] is not None:
                p.blocks = blocks
                self.held.setdefault((r, s), set()).update(blocks)
            elif self.free_first:
                p.kind = "fail"                  # the failure path: the request fails now
            else:
                p.kind = "wait"                  # alloc_first: nothing changes, retry later
        elif st.action in ("PollResume", "PollWait") and p.kind == "wait" \
                and ev["blocks"] is None:
            pass                                 # retry_alloc: still None
        else:
            self.impossible(r, s, line)

    def on_free(self, line, ev, r, s):
        blocks = self.bl(ev["blocks"])
        cur = self.open.get((r, s))
        due = self.cache_due.pop((r, s), None)
        if due is not None:
            # The events of one poll on one rank: the order of its alloc and its
            # free is not judged, only what the step did (as the native checker).
            due.freed = (due.freed or []) + blocks
            self.held.setdefault((r, s), set()).difference_update(blocks)
        elif cur is not None and cur[0].action in ("PollResume", "PollFailed", "PrefillDone",
                                                   "Abort", "CorrectedCache"):
            p = cur[1]
            p.freed = (p.freed or []) + blocks
            self.held.setdefault((r, s), set()).difference_update(blocks)
        else:
            self.impossible(r, s, line)          # a free no action makes

    def on_init_sent(self, line, ev, r, s):
        alloc = self.init_allocs.pop((r, s), None)
        blocks = self.bl(ev["blocks"])
        if alloc is None or alloc[0] != blocks or self.count.get(("init", r, s)):
            self.impossible(r, s, line)
            return
        self.sent("ctl", r, s)
        st, p = self.join("init", "ReceiverInit", r, s, line)
        p.blocks, p.tokens, p.sent = alloc[0], alloc[1], ev["allocated_tokens"]

    def _recv(self, ch, line, r, s) -> bool:
        if not self.received(ch, r, s):
            self.impossible(r, s, line)          # a receive logged before its send
            return False
        return True

    def on_init_recv(self, line, ev, r, s):
        if self._recv("ctl", line, r, s):
            self.add("SenderRecvInit", r, s, line, blocks=self.bl(ev["blocks"]),
                     tokens=ev["allocated_tokens"])

    def on_resume_recv(self, line, ev, r, s):
        if self._recv("ctl", line, r, s):
            self.add("SenderRecvResume", r, s, line, blocks=self.bl(ev["blocks"]),
                     sent=ev["sent_tokens"], tokens=ev["allocated_tokens"],
                     st_fields=(ev.get("round", -1), -1, -1))

    def on_abort_recv(self, line, ev, r, s):
        if self._recv("ctl", line, r, s):
            st, _ = self.add("SenderRecvAbort", r, s, line)
            self.await_status(st, r, s)

    def on_round_start(self, line, ev, r, s):
        if self.total.setdefault(r, ev["total"]) != ev["total"]:
            self.impossible(r, s, line)          # the sender changed its mind on the length
            return
        if self.queued:
            self.count[("start", r, s)] = self.count.get(("start", r, s), 0) + 1
            _, p = self.add("SenderWriteSession", r, s, line)
        else:
            _, p = self.join("start", "SenderStartRound", r, s, line)
        p.sent, p.tokens = ev["sent_tokens"], ev["tokens"]
        p.aux, p.partial = ev["aux_written"], ev["partial"]
        p.blocks = self.bl(ev["dst_blocks"])

    def on_round_end(self, line, ev, r, s):
        if self.count.get(("start", r, s), 0) <= self.count.get(("end", r, s), 0):
            self.impossible(r, s, line)          # no round of this session is being written
            return
        if not ev["ok"]:
            self.count[("end", r, s)] = self.count.get(("end", r, s), 0) + 1
            self.on_write_error(line, ev, r, s)
            return
        if self.queued:          # the batch returned: its writes landed (unobserved)
            self.count[("end", r, s)] = self.count.get(("end", r, s), 0) + 1
            self.end_sent[(r, s)] = ev["sent_tokens"]
            return
        st, p = self.join("end", "SenderEndRound", r, s, line)
        p.sent = ev["sent_tokens"]
        self.await_status(st, r, s)

    def on_write_error(self, line, ev, r, s):
        self.faults.add("write_error")
        if r in self.write_error:
            return                               # the room failed once; every session hears it
        # a round whose sessions were not all started when the write failed:
        # the sender stopped there (the rest is never written), the log was not cut
        begun = next((x for x in reversed(self.steps) if x.req == r
                      and x.action == "SenderStartRound"), None)
        if begun is not None and len(begun.parts) < self.nsess:
            begun.stopped = True
        if self.fork:
            # the fork's sender: the write to session s failed; only s hears it
            st = self.write_error[r] = Step("WriteError", r, s, line)
            self.steps.append(st)
            self.await_status(st, r, s)
            self._drop_unended_round(r)
            return
        self._drop_unended_round(r)
        st = self.write_error[r] = Step("WriteError", r, 0, line)
        self.steps.append(st)
        for s2 in range(1, self.nsess + 1):
            self.await_status(st, r, s2)

    def _drop_unended_round(self, r: int) -> None:
        """A write error after some sessions' round_end (ok): the round never
        ends, so the SenderEndRound those parts began is no step (their writes
        landed, which the spec steps freely)."""
        for k in range(len(self.steps) - 1, -1, -1):
            st = self.steps[k]
            if st.req == r and st.action == "SenderEndRound" and len(st.parts) < self.nsess \
                    and all(p.status < 0 for p in st.parts.values()):
                del self.steps[k]
                for s2 in st.parts:
                    q = self.awaiting.get((r, s2))
                    if q:
                        self.awaiting[(r, s2)] = deque(x for x in q if x[0] is not st)
                return

    def on_status_sent(self, line, ev, r, s):
        q = self.awaiting.get((r, s))
        if not q and self.queued:
            if STATUS_RANK[ev["status"]] == 0:
                # the walk met a dead session: Failed to it, no write
                st, p = self.add("SenderWriteDead", r, s, line)
            else:
                # the walk wrote every session: SenderEndRound, one part per status
                st, p = self.join("qend", "SenderEndRound", r, s, line)
                p.sent = self.end_sent.get((r, s), -1)
            p.status = STATUS_RANK[ev["status"]]
            p.st_fields = _status_fields(ev)
            self.sent("st", r, s)
            self.status_from.setdefault((r, s), []).append(st)
            return
        if not q and self.fork and STATUS_RANK[ev["status"]] == 0:
            # the fork's sender fails a round of a room with a dead session;
            # the live sessions its loop met first were written (their
            # round_start and round_end ok began a round that is this step)
            self._drop_unended_round(r)
            begun = next((x for x in reversed(self.steps) if x.req == r
                          and x.action == "SenderStartRound" and len(x.parts) < self.nsess
                          and s not in x.parts), None)
            if begun is not None and any(x.req == r for x in
                                         self.steps[self.steps.index(begun) + 1:]
                                         if x.action in ("SenderStartRound", "SenderEndRound",
                                                         "WriteError")):
                begun = None
            st, p = self.add("SenderFailDead", r, s, line)
            if begun is not None:
                self.steps.remove(begun)
                st.parts.update(begun.parts)
            p.status = 0
            p.st_fields = _status_fields(ev)
            self.sent("st", r, s)
            self.status_from.setdefault((r, s), []).append(st)
            return
        if not q:
            self.impossible(r, s, line)          # a status no action of the spec sends here
            return
        st, p = q.popleft()
        if st.action == "SenderEndRound" and len(st.parts) < self.nsess:
            st.action = "Impossible"             # a status before every session's round ended
        p.status = STATUS_RANK[ev["status"]]
        p.st_fields = _status_fields(ev)
        if ev.get("total", 0) > 0:
            # a status names the embedding's length: a room answered (an
            # abort) before any round started learns its Total here
            self.total.setdefault(r, ev["total"])
        self.sent("st", r, s)
        self.status_from.setdefault((r, s), []).append(st)

    def on_status_recv(self, line, ev, r, s):
        if not self._recv("st", line, r, s):
            return
        k = self.status_got.get((r, s), 0)
        self.status_got[(r, s)] = k + 1
        st, _ = self.add("DeliverStatus", r, s, line, status=STATUS_RANK[ev["status"]],
                         st_fields=_status_fields(ev))
        self.before_joined_poll(st, r, s, after=self.status_from[(r, s)][k])

    def before_joined_poll(self, st: Step, r: int, s: int, after: Step | None = None) -> None:
        """The ranks poll in lockstep (an all-reduce): if another rank already
        logged its part of the poll rank s is about to join, rank s's step
        ``st`` (just logged) came before that poll, whatever the merged order
        says; it moves there unless it must follow ``after``."""
        poll = self.groups.get(("act", r, self.count.get(("act", r, s), 0)))
        if poll is None or s in poll.parts:
            return
        i = self.steps.index(poll)
        if (after is None or self.steps.index(after) < i) and not any(
                s in x.parts for x in self.steps[i:-1]):
            self.steps.pop()
            self.steps.insert(i, st)

    def on_poll(self, line, ev, r, s):
        self.close(r, s)
        d = ev["decision"]
        status = STATUS_RANK[ev["status"]]
        if d == "fail" and status == STATUS_RANK["Transferring"]:
            d = "resume"                         # free_first's failure path (see the native checker)
        if status == STATUS_RANK["Transferring"] and self.corrected:
            # The corrected design resumes per session: no lockstep step.
            action = {"resume": "CorrectedCache", "retry_alloc": "CorrectedRetry"}.get(d, "PollWait")
            st, p = self.add(action, r, s, line)
            st.status = status
            p.kind = "wait" if d == "wait" else "resume"
            self.open[(r, s)] = (st, p)
            return
        if d in ("wait", "retry_alloc"):
            # A poll that waits changes nothing on its rank.  In a historical
            # design it may be this rank's part of a poll in which another rank
            # resumed (that rank logged its part first); otherwise it is a
            # step of its own, so a rank's log may show more or fewer waits.
            grp = self.groups.get(("act", r, self.count.get(("act", r, s), 0)))
            if grp is not None and grp.action == "PollResume" and s not in grp.parts \
                    and grp.status == status:
                st, p = self.join("act", "PollResume", r, s, line)
            else:
                st, p = self.add("PollWait", r, s, line)
                st.status = status
            p.kind = "wait"
            self.open[(r, s)] = (st, p)
            return
        action = {"handoff": "PollSuccess", "fail": "PollFailed"}.get(d, "PollResume")
        st, p = self.join("act", action, r, s, line)
        if st.status == -1:
            st.status = status
        elif st.status != status or (st.action != action and st.action != "Impossible"):
            st.action = "Impossible"             # ranks saw different combined statuses
        p.kind = "resume" if d == "resume" else "wait"
        self.open[(r, s)] = (st, p)

    def on_buffer_read(self, line, ev, r, s):
        cur = self.open.get((r, s))
        blocks = self.bl(ev["blocks"])
        ids = ev.get("ids")
        if ev["tokens"] > len(blocks) * self.bs or (ids is not None and len(ids) != ev["tokens"]):
            self.impossible(r, s, line)          # more tokens than its blocks hold, or ids
        elif cur is not None and cur[1].freed is not None:
            self.impossible(r, s, line)          # reads blocks its own step already freed
        elif cur is not None and cur[0].action == "PollWait" and cur[0].session:
            # A poll that waits changes nothing: its read is judged where it was
            # logged (writes may have landed since the poll).
            st, _ = self.add("Read", r, s, line, reads=[blocks],
                             read_aux=[ev["aux_total"]])
            self.before_joined_poll(st, r, s)
        elif cur is not None and cur[0].action in ("PollWait", "PollResume", "PollSuccess",
                                                   "CorrectedCache", "CorrectedRetry"):
            cur[1].reads.append(blocks)
            cur[1].read_aux.append(ev["aux_total"])
        else:
            self.impossible(r, s, line)

    def on_resume_sent(self, line, ev, r, s):
        cur = self.open.get((r, s))
        blocks = self.bl(ev["blocks"])
        if self.held.get((r, s), set()) - set(blocks):
            self.impossible(r, s, line)          # still holding blocks its step frees
        elif cur is not None and cur[0].action in ("PollResume", "CorrectedResume") \
                and cur[1].kind == "resume" and cur[1].blocks == blocks and not cur[1].resumed:
            p = cur[1]
            p.sent, p.alloc, p.resumed = ev["sent_tokens"], ev["allocated_tokens"], True
            p.st_fields = (ev.get("round", -1), -1, -1)
            self.sent("ctl", r, s)
        else:
            self.impossible(r, s, line)

    def on_handoff(self, line, ev, r, s):
        cur = self.open.get((r, s))
        if cur is not None and cur[0].action == "PollSuccess" and cur[1].tokens == -1:
            cur[1].tokens = ev["tokens"]
            if ev.get("ids") is not None:
                # a position beyond MAX_TOKENS is no token of the spec: -1 (none is)
                cur[1].ids = [(self.reqs.get(a, 0), b if b <= MAX_TOKENS else -1)
                              for a, b in ev["ids"]]
        else:
            self.impossible(r, s, line)

    def on_fail(self, line, ev, r, s):
        cur = self.open.get((r, s))
        if cur is not None and cur[0].action == "PollResume" and not cur[1].resumed \
                and cur[1].kind in ("resume", "fail"):
            cur[1].kind = "fail"
            cur[1].fail_logged = True
        elif cur is not None and cur[0].action in ("PollFailed", "Abort"):
            cur[1].fail_logged = True
        else:
            self.impossible(r, s, line)
        self.close(r, s)

    def _lockstep(self, kind, action, line, r, s):
        self.close(r, s)
        st, p = self.join(kind, action, r, s, line)
        self.open[(r, s)] = (st, p)

    def on_prefill_done(self, line, ev, r, s):
        self._lockstep("prefill", "PrefillDone", line, r, s)

    def on_abort(self, line, ev, r, s):
        self.faults.add("abort")
        self._lockstep("abort", "Abort", line, r, s)

    def on_abort_sent(self, line, ev, r, s):
        cur = self.open.get((r, s))
        if not (cur is not None and cur[0].action == "Abort" and self.corrected):
            self.impossible(r, s, line)
        self.sent("ctl", r, s)

    def on_heartbeat_fail(self, line, ev, r, s):
        self.faults.add("heartbeat")
        if self.count.get(("heartbeat", r, s)):
            return                               # the room is already Failed on this rank
        self.join("heartbeat", "Heartbeat", r, s, line)

    # -- the end of the log --------------------------------------------------------
    def finish(self) -> list[Step]:
        """Steps still open when the log ends were cut off by its end: they
        have not happened yet (what was logged of them, a read, is kept),
        unless the log shows a later step of the same request.  In a step of
        every session, a part cut off leaves that session's choice free."""
        cut: dict = {}       # id(step) -> (step, [parts cut])
        for (r, s), (st, p) in self.open.items():
            if not _logged_whole(st, p, self.held.get((r, s), set()), self.corrected):
                cut.setdefault(id(st), (st, []))[1].append(p)
        for q in self.awaiting.values():
            for st, p in q:
                cut.setdefault(id(st), (st, []))[1].append(p)
        for st, parts in cut.values():
            if len(parts) < len(st.parts):
                for p in parts:                 # other sessions' parts were logged whole
                    p.known = False
                self.cut_at_end = True
                continue
            k = self.steps.index(st)
            if st.action == "SenderEndRound" and all(p.status < 0 for p in st.parts.values()) \
                    and any(x.req == st.req and x.action == "Heartbeat"
                            for x in self.steps[k + 1:]):
                # The encode side died inside the round: some sessions' batches
                # returned, no status was sent, the room's heartbeat was lost
                # later.  The round never ends, so those parts begin no step
                # (their writes landed, which the spec steps freely), as after
                # a write error (_drop_unended_round).
                del self.steps[k]
            elif any(x.req == st.req for x in self.steps[k + 1:]):
                st.action = "Impossible"
            elif st.action in ("PollResume", "CorrectedResume", "CorrectedCache",
                               "PollSuccess", "PollFailed"):
                st.action = "PollWait"           # only its observation (status, reads) happened
                st.parts = {s: Part(kind="wait", reads=q.reads,
                                    read_aux=q.read_aux) for s, q in st.parts.items()}
            else:
                del self.steps[k]
        for st in self.steps:
            if st.session == 0 and st.action in EVERY_RANK_LOGS \
                    and len(st.parts) < self.nsess:
                # A step of every session that some session has not logged yet
                # (rank 1 handed over and freed, rank 2 logged nothing of it):
                # the step is taken, the log of it is not over.
                self.cut_at_end = True
            if st.action == "SenderStartRound" and len(st.parts) < self.nsess \
                    and not st.stopped:
                # The log ends between the sessions' round_start events.
                self.cut_at_end = True
                self.unlogged_writes += [(st.req, s, st) for s in range(1, self.nsess + 1)
                                         if s not in st.parts]
            if st.action == "CorrectedRetry":
                st.action = "PollWait"
            elif st.action == "PollResume" and all(p.kind == "wait" for p in st.parts.values()):
                st.action = "PollWait"           # no rank resumed
        return self.steps


def steps_of(events: list[tuple[int, dict]]) -> TraceModel:
    """Group the events of a trace into spec actions.

    The spec's receiver steps cover every rank at once (the ranks poll in
    lockstep, on an all-reduce), and a sender round covers every session.
    Each rank logs its own part of such a step; the k-th part of a kind
    (init, poll, prefill, abort, heartbeat, round start, round end) of every
    rank forms one step, placed where its first part was logged.  The
    corrected design's resumes are steps of one session.

    An event that belongs to no action the spec could take here (a free
    outside a step that frees, a handoff without its poll, a second init, a
    receive before its send) becomes an ``Impossible`` step: TLC then finds
    no behaviour, as the native checker finds no spec step.
    """
    check_range(events)
    config, conflicts = _config_of(events)
    if conflicts:
        # Two processes, two configurations: no single model explains the run.
        bs = config.get("block_size") or 1
        constants = {"NReq": 1, "NSess": 1, "BlockSize": bs, "NBlocks": 1, "InitTokens": bs,
                     "Cap": 0, "Order": "any", "Variant": "once", "ResumeOrder": "alloc_first",
                     "Barrier": True, "ForkSender": False, "Faults": [], "Total": [1]}
        return TraceModel([Step("Impossible", 1, 1, conflicts[0])], constants, {},
                          len(events))
    if "block_size" not in config:
        raise NotForTlc("TLC trace validation needs the block size: log a `config` event "
                        "with block_size")
    bs = config["block_size"]
    variant = config.get("variant", "once")
    resume_order = config.get("resume_order") or ENGINE_RESUME_ORDER.get(variant, "free_first")
    nsess = config.get("nsess") or 1
    for _line, ev in events:
        if ev["event"] != "config":
            nsess = max(nsess, _session_of(ev))
    if nsess > MAX_SESSIONS:
        raise NotForTlc(f"TLC trace validation handles up to {MAX_SESSIONS} sessions per room "
                        f"(this trace has {nsess}); use the native checker")
    need = _blocks_needed(events, bs)
    nreqs = len({ev["req"] for _, ev in events if "req" in ev})
    bmap, nblocks = block_map(events, config.get("nblocks") or 0, need, nreqs * nsess)
    if nblocks * bs > MAX_POOL_SLOTS:
        raise NotForTlc(f"the pool is too large for TLC trace validation: {nblocks} blocks of "
                        f"{bs} tokens per rank after renumbering the blocks the trace never "
                        f"names (at most {MAX_POOL_SLOTS} token slots); use the native checker")
    fork = bool(config.get("fork_sender", False))
    g = _Grouper(bs, nsess, variant == "corrected", resume_order == "free_first", bmap, fork,
                 bool(config.get("barrier", True)))
    for line, ev in events:
        if ev["event"] != "config":
            g.feed(line, ev)
    steps = g.finish()
    nreq = max(len(g.reqs), 1)
    totals = [g.total.get(i, config.get("init_tokens") or bs) for i in range(1, nreq + 1)]
    constants = {
        "NReq": nreq, "NSess": nsess, "BlockSize": bs,
        "NBlocks": nblocks,
        "InitTokens": config.get("init_tokens") or bs,
        # a cap of `need` blocks or more never binds: every larger cap is the same
        "Cap": min(config.get("cap", 0), need),
        "Order": config.get("order", "any"),
        "Variant": variant,
        "ResumeOrder": resume_order,
        "Barrier": config.get("barrier", True),
        "ForkSender": fork,
        "Faults": sorted(set(config.get("faults") or ()) | g.faults),
        "Total": totals,
    }
    # (req, session, the position in Trace of the round that did not log them)
    unlogged = [(r, s, steps.index(st) + 1)
                for r, s, st in g.unlogged_writes]
    return TraceModel(steps, constants, g.reqs, len(events), g.cut_at_end, unlogged,
                      block_ids=bmap)


def check_range(events) -> None:
    """Refuse a trace holding a number the spec computes with that TLC cannot
    (its integers stop at 2^31 - 1; sequences of that many tokens do not fit)."""
    for line, ev in events:
        for key in MAGNITUDES:
            v = ev.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v > MAX_TOKENS:
                raise NotForTlc(f"{key} = {v} (event {ev['event']}) is beyond the range of "
                                f"TLC trace validation (at most {MAX_TOKENS:,} tokens); "
                                "use the native checker", line=line)
        if ev["event"] == "config" and (ev.get("block_size") or 0) > MAX_BLOCK_SIZE:
            raise NotForTlc(f"block_size = {ev['block_size']} is beyond the range of TLC trace "
                            f"validation (at most {MAX_BLOCK_SIZE}); use the native checker",
                            line=line)


def _blocks_needed(events, bs: int) -> int:
    """The most blocks any allocation of this trace can ask for (at least 1)."""
    most = bs
    for _line, ev in events:
        for key in ("total", "tokens", "init_tokens", "allocated_tokens", "aux_total"):
            v = ev.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                most = max(most, v)
    return max(1, -(-most // bs))


def block_map(events, nblocks: int, need: int, open_steps: int) -> tuple[dict, int]:
    """Renumber block ids 1..N', keeping the blocks the trace names and at most
    ``need * (open_steps + 1)`` of each run of blocks it never names.

    Blocks the trace never names are never written and never logged as
    allocated: what they change is where the allocator's next block comes from
    (``fifo``/``lifo``: is there a block between these two?) and how many are
    free (an allocation of at most ``need`` blocks succeeds or not; the
    corrected design's resume asks for at most what is free).  A run kept
    non-empty, and at least ``need`` long for each step the end of the log
    leaves to the spec's choice, answers every such question as the whole run
    does.  The id 2147483647, or a pool of a million blocks, become small
    numbers, and TLC's time grows with the blocks the trace names, not the pool.
    """
    named = sorted({b for _, ev in events for key in ("blocks", "dst_blocks")
                    for b in (ev.get(key) or ())})
    total = max(nblocks, named[-1] + 1 if named else 0, 1)
    keep = need * (open_steps + 1)
    bmap: dict = {}
    pos, prev = 0, -1
    for b in named:
        pos += min(b - prev - 1, keep) + 1
        bmap[b] = pos
        prev = b
    pos += min(total - 1 - prev, keep)
    return bmap, max(pos, 1)


def _logged_whole(st: Step, p: Part, held_now: set, corrected: bool) -> bool:
    """Did the log show every event of this session's part of the step?"""
    a = st.action
    if a == "PollResume":
        return p.kind == "wait" or p.resumed or p.kind == "fail"
    if a == "CorrectedResume":
        return p.resumed
    if a == "PollSuccess":
        return p.tokens != -1
    if a == "PollFailed":
        return p.fail_logged and not held_now
    if a in ("PrefillDone", "CorrectedCache"):
        return p.freed is not None and (a == "CorrectedCache" or not held_now)
    if a == "Abort":
        return corrected or not held_now    # historical designs free in the same step
    return True



# The trace spec is spec/TraceResumeProtocol.tla; Python writes only the data:
# a module that EXTENDS it and defines the trace, and a cfg binding them.
TRACE_DATA = r"""---- MODULE {name} ----
\* Generated by resumespec.conformance.tlc_trace from {source}; do not edit.
\* The trace data of spec/{trace_module}.tla, bound by the cfg.
EXTENDS {trace_module}

TotalData == <<{totals}>>
FaultsData == {{{faults}}}
CutData == {cut}
UnloggedData == {{{unlogged_writes}}}

TraceData == <<
{steps}
>>
====
"""

CFG = """INIT {init}
NEXT TraceNext
CONSTANTS
  NReq = {NReq}
  NSess = {NSess}
  BlockSize = {BlockSize}
  NBlocks = {NBlocks}
  InitTokens = {InitTokens}
  Cap = {Cap}
  Order = "{Order}"
  Variant = "{Variant}"
  ResumeOrder = "{ResumeOrder}"
  Barrier = {Barrier}
  ForkSender = {ForkSender}
  Total <- TotalData
  Faults <- FaultsData
  Trace <- TraceData
  CutAtEnd <- CutData
  UnloggedWrites <- UnloggedData
  AllocChoices <- TraceAllocChoices
  RepeatableFaults <- TraceRepeatableFaults
  ShowStateAt = {show_state_at}
INVARIANTS
  {invariants}
{constraint}"""


def comment_safe(text: str) -> str:
    """``text`` for a TLA+ end-of-line comment: a file name may hold a newline,
    a backslash or ``*)``; only letters, digits and ``._-+,`` and spaces pass."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-+, ") else "?"
                   for c in text)


def render(model: TraceModel, name: str = "TraceCheck", source: str = "a trace",
           invariants: tuple = ("SafetyWatch",), init: str = "TraceInitSafety",
           constraint: str = "NoViolationYet", show_state_at: int = 0) -> tuple[str, str]:
    """The trace module and a cfg checking ``invariants`` from ``init`` under
    ``constraint`` (none if empty); by default, run 1's."""
    c = model.constants
    steps = ",\n".join("  " + s.tla(c["NSess"]) for s in model.steps) or ""
    module = TRACE_DATA.format(
        name=name, source=comment_safe(source), trace_module=TRACE_MODULE, steps=steps,
        cut="TRUE" if model.cut_at_end else "FALSE",
        unlogged_writes=", ".join(f"<<{r}, {s}, {k}>>" for r, s, k in model.unlogged_writes),
        totals=", ".join(str(t) for t in c["Total"]),
        faults=", ".join(f'"{f}"' for f in c["Faults"]))
    cfg = CFG.format(init=init, invariants="\n  ".join(invariants), show_state_at=show_state_at,
                     constraint=f"CONSTRAINT {constraint}\n" if constraint else "",
                     **{k: (str(v).upper() if isinstance(v, bool) else v)
                        for k, v in c.items()})
    return module, cfg


def _event_words(model: TraceModel, step: Step, file: str) -> tuple[str, dict | None]:
    """``line N (proc event, request r)`` for a step's first event, with the
    event's file named when the trace is several files; and the event."""
    ev = model.by_line.get(step.line)
    path = getattr(step.line, "path", file)
    where = f"line {int(step.line)}" + (f" of {Path(path).name}" if path != file else "")
    return where + (f" ({ev['proc']} {ev['event']}, request {step.req})"
                    if ev else f" (request {step.req})"), ev


def _point_at(v: Verdict, model: TraceModel, step: Step, file: str) -> str:
    """Point ``v`` at a step's first event (its file, line and event); the
    words for it."""
    what, ev = _event_words(model, step, file)
    v.file, v.line, v.event = getattr(step.line, "path", file), int(step.line), ev
    return what


def violation_verdict(model: TraceModel, name: str, cursor: int, seconds: float,
                      file: str) -> Verdict:
    """Run 1 printed the first state BFS found that violates invariant
    ``name``; its cursor says how much of the log that behaviour matched (the
    state came with the last step it matched, or with a write landing after
    it): the event told is that step's first."""
    prop = TRACE_FORMS.get(name, name)
    v = Verdict("violates", checker="tlc", prop=prop, events=model.events, seconds=seconds,
                message=f"a behaviour of the spec matching the trace violates {prop}",
                expected=f"{prop} holds in every state")
    if 2 <= cursor <= len(model.steps) + 1:
        step = model.steps[cursor - 2]
        what = _point_at(v, model, step, file)
        v.message += (f": the first such state BFS finds has matched the log's first "
                      f"{cursor - 1} of {len(model.steps)} steps, to {what}, {step.action}")
    return v


def _verdict_from_tlc(result, model: TraceModel, seconds: float) -> Verdict:
    """The verdict of a run TLC ended without a verdict of ours: a safety
    violation of a spec invariant (not one run 1 watches), no way to the
    end of the log (SpecStep), or a failure."""
    if result.kind == "safety":
        prop = TRACE_FORMS.get(result.property, result.property)
        return Verdict("violates", checker="tlc", prop=prop, events=model.events,
                       seconds=seconds,
                       message=f"a behaviour of the spec matching the trace violates {prop}",
                       expected=f"{prop} holds in every state")
    if result.kind in ("success", "deadlock"):
        return Verdict("violates", checker="tlc", prop="SpecStep", events=model.events,
                       seconds=seconds,
                       message="no behaviour of the spec matches the whole trace",
                       expected="each logged action enabled in turn")
    v = Verdict("error", checker="tlc", events=model.events, seconds=seconds,
                message=f"TLC ended with {result.verdict}")
    return v


def check_tlc(paths: list[str], timeout: int = 600, bound: int | None = None,
              keep: str | None = None, heap: str = "2g",
              progress: TextIO | None = None) -> Verdict:
    """Check a trace with TLC.  ``keep``: a folder to leave the generated module in;
    ``heap``: the JVM's heap (too small: verdict error, exit 7); ``progress``: a
    stream (stderr) to show TLC's progress on, for runs of minutes."""
    t0 = time.perf_counter()
    try:
        events = _load(paths)
        if not events:
            raise MalformedTrace(1, None, "at least one event (the trace is empty)",
                                 "+".join(paths))
        model = steps_of(events)
        model.by_line = dict(events)
    except MalformedTrace as e:
        malformed = Verdict("malformed", checker="tlc", message=e.message(),
                            expected=e.expected, file=e.path, line=e.line,
                            seconds=time.perf_counter() - t0)
        before = getattr(e, "before", None)
        if before:
            # As the streaming checker: a violation before the bad line stands.
            try:
                v = _run(steps_of(before), paths, timeout, keep, t0, heap, progress)
            except NotForTlc:
                return malformed
            if v.verdict == "violates":
                return v
        return malformed
    except NotForTlc as e:
        v = Verdict("error", checker="tlc", message=str(e), seconds=time.perf_counter() - t0,
                    file="+".join(paths) if e.line else None, line=e.line)
        v.exit_code = exitcodes.BAD_INPUT
        return v
    return _run(model, paths, timeout, keep, t0, heap, progress)


def _failure_message(e, folder: Path, keep: str | None) -> str:
    """The runner's message; where it saved TLC's output, that log and the
    generated module go together into one folder (the temporary one is
    removed), named in the message."""
    if e.log_path is None:
        return e.message
    kept = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="resumespec-trace-failed-"))
    try:
        if not keep:
            for f in folder.iterdir():
                shutil.copy(f, kept / f.name)
        shutil.move(str(e.log_path), kept / "tlc.log")
    except OSError:
        return e.one_line()
    return f"{e.message} (TLC output and the generated module kept in {kept})"


def _run(model: TraceModel, paths: list[str], timeout: int, keep: str | None,
         t0: float, heap: str = "2g", progress: TextIO | None = None) -> Verdict:
    from resumespec.spec import tlc

    spec_file = SPEC_DIR / f"{SPEC_MODULE}.tla"
    if not spec_file.is_file():
        v = Verdict("error", checker="tlc", message=f"{spec_file} not found",
                    seconds=time.perf_counter() - t0)
        v.exit_code = exitcodes.BAD_INPUT
        return v
    source = comment_safe(", ".join(Path(p).name for p in paths))
    module, safety_cfg = render(model, source=source)
    _, end_cfg = render(model, source=source, invariants=("Furthest", "TraceEnd"),
                        init="TraceInitEnd", constraint="")
    # Runs.  1: every behaviour matching the trace, exhaustively, against
    # the safety invariants (one violating landing order is a violation).
    # 2: is the end of the trace reachable, and are requests closed there?
    # (prints only; the verdict is read from what it printed)  3: only when
    # no behaviour reaches the end, the spec state where the log stops.
    with tempfile.TemporaryDirectory(prefix="resumespec-trace-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "TraceCheck.tla").write_text(module)
        (folder / "TraceCheck.cfg").write_text(safety_cfg)
        (folder / "TraceCheckEnd.cfg").write_text(end_cfg)
        settings = tlc.prepare_settings(workers=1, timeout_s=timeout, heap=heap)

        def tlc_run(cfg_name: str, label: str) -> tuple[tlc.TlcResult, list[str]]:
            run = tlc.ModelRun(module=folder / "TraceCheck.tla", cfg=folder / cfg_name,
                               label="trace", check_deadlock=False,
                               library_dirs=(SPEC_DIR,))
            # TLC's depth counts spec steps, logged or not: it ends at or
            # past the log's length, which the label gives.
            shown = tlc.ProgressDisplay(
                f"{source}: TLC {label}; the log is {len(model.steps)} spec steps)",
                stream=progress, enabled=progress is not None, announce=False)
            printed: list[str] = []
            return tlc.run_tlc(run, settings, progress=shown, on_line=printed.append), printed

        try:
            result, safety_lines = tlc_run(
                "TraceCheck.cfg", "pass 1 of 2 (every behaviour that matches the log, safety")
            if result.kind != "success":
                return _verdict_from_tlc(result, model, time.perf_counter() - t0)
            violated = printed_values(safety_lines, "trace-violation")
            if violated:
                name, cursor = violated[0]
                return violation_verdict(model, name, int(cursor), time.perf_counter() - t0,
                                         "+".join(paths))
            result, printed = tlc_run("TraceCheckEnd.cfg", "pass 2 of 2 (the end of the log")
            if result.kind != "success":
                return _verdict_from_tlc(result, model, time.perf_counter() - t0)
            ends = printed_values(printed, "trace-end")
            cursor = furthest(printed)
            if not ends and cursor is not None and 1 <= cursor <= len(model.steps):
                _, show_cfg = render(model, source=source, invariants=("ShowState",),
                                     init="TraceInitShow", constraint="",
                                     show_state_at=cursor)
                (folder / "TraceCheckShow.cfg").write_text(show_cfg)
                shown, shown_lines = tlc_run(
                    "TraceCheckShow.cfg", "once more, for the state where the log stops "
                    f"matching (step {cursor}")
                states = printed_values(shown_lines, "trace-state") \
                    if shown.kind == "success" else []
                where = (cursor, states[0][1]) if states else None
            else:
                where = None
        except tlc.TlcFailure as e:
            v = Verdict("error", checker="tlc", message=_failure_message(e, folder, keep),
                        seconds=time.perf_counter() - t0)
            v.exit_code = e.exit_code
            return v
    seconds = time.perf_counter() - t0
    kinds = {kind: state for kind, state in reversed(ends)}   # the first of each kind
    if "closed" in kinds:
        return Verdict("conforms", checker="tlc", events=model.events, seconds=seconds)
    if "live" in kinds:
        return Verdict("incomplete", checker="tlc", events=model.events, seconds=seconds,
                       message="the whole trace matches the spec, but requests or rooms "
                               "are still open at its end, and the spec can still take "
                               "a step there",
                       expected="every request ends, every block is freed")
    if "dead" in kinds:
        # every state was explored, the end was reached, and no end state
        # has a step: a dead end
        return dead_end_verdict(model, kinds["dead"], seconds, "+".join(paths))
    v = _verdict_from_tlc(result, model, seconds)      # SpecStep
    explain_mismatch(v, model, where, "+".join(paths))
    return v


def dead_end_verdict(model: TraceModel, state: dict, seconds: float,
                     file: str | None = None) -> Verdict:
    """The trace ends where no spec step is enabled (in every end state TLC
    found; ``state`` is one): the liveness property that state fails, named
    by the rule of the native checker (first by request id, then by name)."""
    trace_req = {rid: r for r, rid in model.reqs.items()}
    trace_block = {spec_id: b for b, spec_id in model.block_ids.items()}
    closed = ("done", "failed", "dead")
    failing: list[tuple[int, str]] = []
    requests: dict[str, dict] = {}
    for i, phase in enumerate(state.get("rxPhase", ()), start=1):
        req = trace_req.get(i, i)
        tx = state["txPhase"][i - 1]
        blocks = state["rxBlocks"][i - 1]
        quiet = all(not c for c in state["ctl"][i - 1]) and all(not m for m in state["st"][i - 1])
        props = []
        if phase in ("new", "queued", "aborting"):
            props.append("NoWaitForUnrequestedRound"
                         if phase == "queued" and tx == "await" and quiet
                         else "EveryRequestEnds")
        elif phase == "prefill" or any(blocks):
            props.append("BlocksEventuallyFree")
        if tx not in closed:
            props.append("SenderRoomsClose")
        failing.extend((req, p) for p in props)
        blocks_held = {str(s): [trace_block.get(b, b) for b in bs]
                       for s, bs in enumerate(blocks, start=1)}
        requests[str(req)] = {"receiver_phase": phase, "sender_phase": tx,
                              "blocks_held": blocks_held}
    req, prop = min(failing) if failing else (None, "EveryRequestEnds")
    # the event told: the request's last one (where it stopped for good)
    # (by_line is in the merged order)
    line = next((ln for ln, ev in reversed(model.by_line.items()) if ev.get("req") == req), None)
    return Verdict("violates", checker="tlc", prop=prop, events=model.events, seconds=seconds,
                   file=getattr(line, "path", file), line=None if line is None else int(line),
                   event=model.by_line.get(line),
                   message=f"the log ends where no spec step is enabled (every continuation "
                           f"stutters forever): {prop} fails for req {req}",
                   expected="a spec state at the end of the log with a step still enabled, "
                            "or every request, block and room closed",
                   state={"dead_end": True, "requests": requests, "messages_in_flight": 0,
                          "writes_in_flight": 0, "spec_state": state})


def printed_values(lines: list[str], tag: str) -> list[tuple]:
    """The values TLC printed as ``<<tag, ...>>`` (``PrintT``), in order, each
    without its tag and in JSON form; a value may span several lines."""
    from resumespec.spec.tla_values import TlaValueError, parse_value, to_json

    out: list[tuple] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            try:
                value = parse_value(" ".join(t.strip() for t in text))
                out.append(tuple(to_json(x) for x in value[1:]))
            except (TlaValueError, ValueError):
                pass
            text.clear()

    for ln in lines:
        if ln.startswith("@!@!@") or '"trace-' in ln:
            flush()
        if "".join(ln.split()).startswith(f'<<"{tag}",'):
            text.append(ln)
        elif text and not ln.startswith("@!@!@"):
            text.append(ln)
    flush()
    return out


def furthest(lines: list[str]) -> int | None:
    """The last cursor ``Furthest`` printed (``<<"trace-furthest", l>>``): the
    furthest some behaviour reached (``l - 1`` steps of the log matched)."""
    cursors = printed_values(lines, "trace-furthest")
    return int(cursors[-1][0]) if cursors else None


def explain_mismatch(v: Verdict, model: TraceModel, where: tuple[int, dict] | None,
                     file: str) -> None:
    """Say where the trace leaves the spec: the longest prefix of its steps
    that some behaviour matches, the first step none explains, the state."""
    if where is None or not 1 <= where[0] <= len(model.steps):
        return
    cursor, state = where
    step = model.steps[cursor - 1]
    what = _point_at(v, model, step, file)
    if cursor == 1:
        matched = "no behaviour of the spec matches even the first logged step"
    else:
        last = model.steps[cursor - 2]
        matched = (f"the spec matches the trace's first {cursor - 1} of {len(model.steps)} "
                   f"steps, to {_event_words(model, last, file)[0]}, {last.action}")
    v.message = f"{matched}; no spec step explains {what}: {_step_words(step)}"
    v.expected = f"a spec step that explains {what}"
    # the spec numbers blocks 1..NBlocks: say which trace block each one is
    v.state = {"spec_state": state, "trace_block_of_spec_block": {
        str(spec_id): trace_id for trace_id, spec_id in sorted(model.block_ids.items())}}


def _step_words(step: Step) -> str:
    if step.action == "Impossible":
        return "no spec action makes this event at that point"
    return f"it is part of {step.action}, which the spec cannot take there with these values"


if __name__ == "__main__":   # debugging aid: print the generated module
    import sys

    m = steps_of(_load(sys.argv[1:]))
    mod, cfg = render(m)
    print(mod)
    print(cfg)
    print(json.dumps(m.constants))
