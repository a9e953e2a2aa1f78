"""TLC trace validation: replay a (short) trace through spec/ResumeProtocol.tla with TLC.

The approach of Microsoft CCF and etcd-raft: the trace becomes a TLA+
sequence of records (TLC 2.15 has no Json module) in a generated module that
EXTENDS ResumeProtocol and adds a cursor ``l``.  Each record is one spec
action, paired with the events that action logs; the generated ``TraceNext``
lets the spec take that action, with the values it chooses constrained to what
the log shows, and advances ``l``.  Actions the log cannot show (``WriteLand``)
step freely without moving ``l``.  TLC then explores every behaviour of the
spec that matches the log:

* a state with ``l = Len(Trace) + 1`` is reachable: the trace conforms
  (invariant ``TraceNotDone`` is violated; ``TraceNotFinished`` tells apart a
  trace that ends with requests still open: verdict incomplete);
* a reachable state violates one of the spec's safety invariants: violates
  that property (BFS finds the earliest);
* neither: no behaviour of the spec explains the trace (violates ``SpecStep``;
  the native checker says at which event).

Grouping events into actions (``steps_of``) follows the logging order of
docs/trace-format.md.  The spec's receiver steps cover every rank at once
(SPMD) while per-rank logs interleave freely, so this checker takes traces
with one session per room (NSess = 1); longer or wider traces are the native
checker's job.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from resumespec import exitcodes

from .checker_native import Verdict
from .merge import merge_files
from .trace import MalformedTrace, STATUS_RANK

SPEC_DIR = Path(__file__).resolve().parent.parent / "spec"
SPEC_MODULE = "ResumeProtocol"

# Invariants checked on every trace state, in this order.
SAFETY_INVARIANTS = ("NoSharedBlock", "NoFreeAndHeld", "NoDoubleFree",
                     "WritesOnlyIntoOwnedBlocks", "NoReadDuringWrite", "HandedDataIsSource",
                     "AtMostOneResumePerRound")


class NotForTlc(Exception):
    """The trace is outside what TLC trace validation handles."""


@dataclass
class Step:
    """One spec action and the fields of its events the trace spec checks."""
    action: str
    req: int
    session: int = 0
    line: int = 0
    blocks: list = field(default_factory=list)      # alloc'd / resumed blocks (spec ids)
    sent: int = -1                                  # resume offset, round offset
    tokens: int = -1                                # round tokens, handed tokens
    status: int = -1
    ids: list | None = None
    failed: bool = False                            # free_first failure path taken
    freed: list | None = None                       # blocks the group's free events gave back
    aux: bool = False                               # round_start: aux_written
    partial: bool = False                           # round_start: partial
    complete: bool = True                           # all the group's events were logged
    read: bool = False                              # the group read the buffer
    resumed: bool = False                           # its resume_sent was logged
    fail_logged: bool = False                       # its fail was logged
    alloc: int = -1                                 # allocated_tokens of init/resume
    reads: list = field(default_factory=list)       # blocks of each buffer_read

    def tla(self) -> str:
        ids = "<<>>" if not self.ids else "<<" + ", ".join(
            f"<<{a}, {b}>>" for a, b in self.ids) + ">>"
        blocks = "<<" + ", ".join(str(b) for b in self.blocks) + ">>"
        return (f'[a |-> "{self.action}", r |-> {self.req}, s |-> {self.session}, '
                f'blocks |-> {blocks}, sent |-> {self.sent}, tokens |-> {self.tokens}, '
                f'status |-> {self.status}, ids |-> {ids}, hasIds |-> '
                f'{"TRUE" if self.ids is not None else "FALSE"}, '
                f'failed |-> {"TRUE" if self.failed else "FALSE"}, '
                f'freed |-> <<{", ".join(str(b) for b in (self.freed or []))}>>, '
                f'hasFreed |-> {"TRUE" if self.freed is not None else "FALSE"}, '
                f'aux |-> {"TRUE" if self.aux else "FALSE"}, '
                f'partial |-> {"TRUE" if self.partial else "FALSE"}, alloc |-> {self.alloc}, '
                f'reads |-> <<{", ".join("<<" + ", ".join(map(str, rb)) + ">>" for rb in self.reads)}>>, '
                f'line |-> {self.line}]')


@dataclass
class TraceModel:
    steps: list
    constants: dict
    reqs: dict           # trace req id -> spec req id
    events: int


def _load(paths: list[str]) -> list[tuple[int, dict]]:
    out = []
    next_seq: dict = {}
    for path, line, ev in merge_files(list(paths)):
        want = next_seq.get(ev["proc"], 0)
        if ev["seq"] != want:
            raise MalformedTrace(line, "seq", f"seq {want} for {ev['proc']}", path, ev["seq"])
        next_seq[ev["proc"]] = want + 1
        out.append((line, ev))
        if len(out) > 5000:
            raise NotForTlc("TLC trace validation is for short traces (at most 5000 events); "
                            "use the native checker")
    return out


def steps_of(events: list[tuple[int, dict]]) -> TraceModel:
    """Group the events of a one-session trace into spec actions.

    An event that belongs to no action the spec could take here (a free
    outside a step that frees, a handoff without its poll, a second init, an
    event of another session) becomes an ``Impossible`` step: TLC then finds
    no behaviour, as the native checker finds no spec step.
    """
    config: dict = {}
    reqs: dict = {}
    total: dict = {}
    faults: set = set()
    max_block = -1
    conflict_lines = []
    for line, ev in events:
        if ev["event"] == "config":
            for k, v in ev.items():
                if k in ("v", "proc", "seq", "event", "ts"):
                    continue
                if k in config and config[k] != v:
                    conflict_lines.append(line)      # two processes, two configurations
                config[k] = v
    if conflict_lines:
        # Two processes, two configurations: no single model explains the run.
        bs = config.get("block_size") or 1
        constants = {"NReq": 1, "NSess": 1, "BlockSize": bs, "NBlocks": 1, "InitTokens": bs,
                     "Cap": 0, "Order": "any", "Variant": "once", "ResumeOrder": "alloc_first",
                     "Barrier": True, "Faults": [], "Total": [1]}
        return TraceModel([Step("Impossible", 1, 1, conflict_lines[0])], constants, {},
                          len(events))
    if (config.get("nsess") or 1) > 1 or any(
            ev["proc"].startswith("language/") and ev["proc"] != "language/1"
            for _l, ev in events):
        raise NotForTlc("TLC trace validation handles one session per room (NSess = 1); "
                        "use the native checker for wider traces")
    if "block_size" not in config:
        raise NotForTlc("TLC trace validation needs the block size: log a `config` event "
                        "with block_size")
    bs = config["block_size"]
    variant = config.get("variant", "once")
    corrected = variant == "corrected"
    resume_order = config.get("resume_order") or (
        "alloc_first" if variant in ("once", "corrected") else "free_first")
    free_first = resume_order == "free_first"

    def rid(r):
        if r not in reqs:
            reqs[r] = len(reqs) + 1
        return reqs[r]

    steps: list[Step] = []
    open_lang: dict = {}      # req -> the language step being built
    open_enc: dict = {}       # req -> the encode step waiting for its status_sent
    init_allocs: dict = {}    # req -> (blocks, tokens) of the init alloc
    inited: set = set()
    held: dict = {}           # req -> blocks held (spec ids), as the log shows them
    # Messages sent and received so far, per (channel, req): a receive logged
    # before its send is no step of the spec, whatever the steps' places.
    sent_n: dict = {}
    recv_n: dict = {}

    def sent(kind, r):
        sent_n[(kind, r)] = sent_n.get((kind, r), 0) + 1

    def received(kind, r) -> bool:
        n = recv_n.get((kind, r), 0) + 1
        recv_n[(kind, r)] = n
        return n <= sent_n.get((kind, r), 0)

    def impossible(r, line):
        steps.append(Step("Impossible", r, 1, line))

    def close(r):
        """The language step of r is over: was all of it logged?  A step that
        misses events while the log goes on cannot be matched."""
        st = open_lang.pop(r, None)
        if st is not None and not _logged_whole(st, held.get(r, set()), corrected):
            st.action = "Impossible"

    for line, ev in events:
        e = ev["event"]
        if e == "config":
            continue
        r = rid(ev["req"])
        s = ev.get("session") or ev.get("rank") or 1
        for key in ("blocks", "dst_blocks"):
            for b in ev.get(key) or ():
                max_block = max(max_block, b)
        if s != 1:
            impossible(r, line)              # a session this one-session trace has not
            continue
        blocks = [b + 1 for b in (ev.get("blocks") or [])]
        st = open_lang.get(r)
        if e == "alloc":
            if ev["blocks"] is not None and len(blocks) != -(-ev["tokens"] // bs):
                impossible(r, line)          # not what the allocator returns
            elif st is None:
                if r in inited or r in init_allocs:
                    impossible(r, line)
                elif ev["blocks"] is not None:
                    init_allocs[r] = (blocks, ev["tokens"])
                    held.setdefault(r, set()).update(blocks)
            elif corrected and st.action in ("CorrectedCache", "CorrectedRetry"):
                if st.action == "CorrectedRetry":
                    steps.remove(st)
                if ev["blocks"] is not None:
                    nxt = Step("CorrectedResume", r, 1, line, status=st.status, blocks=blocks)
                    nxt.complete = False     # until its resume_sent
                    steps.append(nxt)
                    open_lang[r] = nxt
                    held.setdefault(r, set()).update(blocks)
            elif st.action == "PollResume" and not st.blocks and not st.failed:
                if ev["blocks"] is not None:
                    st.blocks = blocks
                    held.setdefault(r, set()).update(blocks)
                elif free_first:
                    st.failed = True          # the failure path: the request fails now
                    st.complete = True
                else:
                    st.action = "PollWait"    # alloc_first: nothing changes, retry later
                    st.complete = True
            elif st.action == "PollWait" and ev["blocks"] is None:
                pass                          # retry_alloc: still None
            else:
                impossible(r, line)
            continue
        if e == "free":
            if st is not None and st.action in ("PollResume", "PollFailed", "PrefillDone",
                                                "Abort", "CorrectedCache"):
                st.freed = (st.freed or []) + blocks
                held.setdefault(r, set()).difference_update(blocks)
            else:
                impossible(r, line)          # a free no action makes
            continue
        if e == "init_sent":
            alloc = init_allocs.pop(r, None)
            if r in inited or alloc is None or alloc[0] != blocks:
                impossible(r, line)
                continue
            inited.add(r)
            sent("ctl", r)
            steps.append(Step("ReceiverInit", r, 1, line, blocks=alloc[0], tokens=alloc[1],
                              sent=ev["allocated_tokens"]))
            continue
        if e in ("init_recv", "resume_recv", "abort_recv") and not received("ctl", r):
            impossible(r, line)
            continue
        if e == "status_recv" and not received("st", r):
            impossible(r, line)
            continue
        if e == "init_recv":
            steps.append(Step("SenderRecvInit", r, 1, line, blocks=blocks,
                              tokens=ev["allocated_tokens"]))
            continue
        if e == "resume_recv":
            steps.append(Step("SenderRecvResume", r, 1, line, blocks=blocks,
                              sent=ev["sent_tokens"], tokens=ev["allocated_tokens"]))
            continue
        if e == "abort_recv":
            open_enc[r] = Step("SenderRecvAbort", r, 1, line)
            steps.append(open_enc[r])
            continue
        if e == "round_start":
            total[r] = ev["total"]
            steps.append(Step("SenderStartRound", r, 1, line, sent=ev["sent_tokens"],
                              tokens=ev["tokens"], aux=ev["aux_written"], partial=ev["partial"],
                              blocks=[b + 1 for b in ev["dst_blocks"]]))
            continue
        if e == "round_end":
            if ev["ok"]:
                open_enc[r] = Step("SenderEndRound", r, 1, line, sent=ev["sent_tokens"])
            else:
                faults.add("write_error")
                open_enc[r] = Step("WriteError", r, 1, line)
            steps.append(open_enc[r])
            continue
        if e == "write_error":
            faults.add("write_error")
            prev = open_enc.get(r)
            if prev is not None and prev.action == "WriteError" and prev.status == -1:
                continue                     # already failed by round_end ok=false
            open_enc[r] = Step("WriteError", r, 1, line)
            steps.append(open_enc[r])
            continue
        if e == "status_sent":
            st_enc = open_enc.pop(r, None)
            if st_enc is None or st_enc.status != -1:
                impossible(r, line)          # a status no action of the spec sends here
            else:
                st_enc.status = STATUS_RANK[ev["status"]]
                sent("st", r)
            continue
        if e == "status_recv":
            steps.append(Step("DeliverStatus", r, 1, line, status=STATUS_RANK[ev["status"]]))
            continue
        if e == "poll":
            close(r)
            d = ev["decision"]
            status = STATUS_RANK[ev["status"]]
            if d == "fail" and status == STATUS_RANK["Transferring"]:
                d = "resume"                # free_first's failure path (see the native checker)
            action = {"handoff": "PollSuccess", "fail": "PollFailed", "resume": "PollResume",
                      "wait": "PollWait", "retry_alloc": "PollWait"}[d]
            if corrected and d == "resume":
                action = "CorrectedCache"     # copy out and free; CorrectedResume follows
            elif corrected and d == "retry_alloc":
                action = "CorrectedRetry"     # becomes CorrectedResume if the alloc succeeds
            step = Step(action, r, 1, line, status=status)
            steps.append(step)
            open_lang[r] = step
            continue
        if e == "buffer_read":
            if st is not None and st.freed is not None:
                impossible(r, line)          # reads blocks its own step already freed
            elif st is not None and st.action in ("PollWait", "PollRead", "PollResume",
                                                "PollSuccess", "CorrectedCache",
                                                "CorrectedRetry"):
                st.read = True
                st.reads.append(blocks)
                if st.action == "PollWait":
                    st.action = "PollRead"
            else:
                impossible(r, line)
            continue
        if e == "resume_sent":
            if st is not None and st.action in ("PollResume", "CorrectedResume") \
                    and st.blocks == blocks and st.sent == -1 and not st.failed:
                st.sent = ev["sent_tokens"]
                st.alloc = ev["allocated_tokens"]
                st.resumed = True
                sent("ctl", r)
            else:
                impossible(r, line)
            continue
        if e == "handoff":
            if st is not None and st.action == "PollSuccess" and st.tokens == -1:
                st.tokens = ev["tokens"]
                if ev.get("ids") is not None:
                    st.ids = [(reqs.get(a, 0), b) for a, b in ev["ids"]]
            else:
                impossible(r, line)
            continue
        if e == "fail":
            if st is not None and st.action == "PollResume" and not st.resumed:
                st.failed = True
                st.fail_logged = True
            elif st is not None and st.action in ("PollFailed", "Abort"):
                st.fail_logged = True
            else:
                impossible(r, line)
            close(r)
            continue
        if e == "prefill_done":
            close(r)
            steps.append(Step("PrefillDone", r, 1, line))
            open_lang[r] = steps[-1]
            continue
        if e == "abort":
            close(r)
            faults.add("abort")
            steps.append(Step("Abort", r, 1, line))
            open_lang[r] = steps[-1]
            continue
        if e == "abort_sent":
            if not (st is not None and st.action == "Abort" and corrected):
                impossible(r, line)
            sent("ctl", r)
            continue
        if e == "heartbeat_fail":
            faults.add("heartbeat")
            steps.append(Step("Heartbeat", r, 1, line))
            continue
    # Steps still open when the log ends were cut off by its end: they have not
    # happened yet (what was logged of them, a read, is kept), unless the log
    # shows a later step of the same request.
    cut = [st for r, st in open_lang.items()
           if not _logged_whole(st, held.get(r, set()), corrected)]
    cut += [st for st in open_enc.values() if st.status == -1]
    for st in cut:
        k = next(i for i, x in enumerate(steps) if x is st)
        if any(x.req == st.req for x in steps[k + 1:]):
            st.action = "Impossible"
        elif st.read and st.action in ("PollResume", "CorrectedResume", "CorrectedCache",
                                       "PollSuccess"):
            st.action = "PollRead"
        else:
            del steps[k]
    for st in steps:
        if st.action == "CorrectedRetry":
            st.action = "PollWait"
    nreq = max(len(reqs), 1)
    totals = [total.get(i, config.get("init_tokens") or bs) for i in range(1, nreq + 1)]
    constants = {
        "NReq": nreq, "NSess": 1, "BlockSize": bs,
        "NBlocks": max(config.get("nblocks") or 0, max_block + 1, 1),
        "InitTokens": config.get("init_tokens") or bs,
        "Cap": config.get("cap", 0),
        "Order": config.get("order", "any"),
        "Variant": variant,
        "ResumeOrder": resume_order,
        "Barrier": config.get("barrier", True),
        "Faults": sorted(set(config.get("faults") or ()) | faults),
        "Total": totals,
    }
    return TraceModel(steps, constants, reqs, len(events))


def _logged_whole(st: "Step", held_now: set, corrected: bool) -> bool:
    """Did the log show every event of this step?"""
    a = st.action
    if a == "PollResume":
        return st.resumed or st.failed
    if a == "CorrectedResume":
        return st.resumed
    if a == "PollSuccess":
        return st.tokens != -1
    if a == "PollFailed":
        return st.fail_logged and not held_now
    if a in ("PrefillDone", "CorrectedCache"):
        return st.freed is not None and (a == "CorrectedCache" or not held_now)
    if a == "Abort":
        return corrected or not held_now    # historical designs free in the same step
    return True



TRACE_SPEC = r"""---- MODULE {name} ----
\* Generated by resumespec.conformance.tlc_trace from {source}; do not edit.
EXTENDS {spec}, TLC

VARIABLE l

TotalDef == <<{totals}>>
FaultsDef == {{{faults}}}

Trace == <<
{steps}
>>

Ev == Trace[l]
LastCtl(r, s) == ctl'[r][s][Len(ctl'[r][s])]

\* A logged read with nothing else logged of its step (a poll that waits, or a
\* step the log cuts off): the hazard is recorded as ReadHazard does.
ObservedRead(r, s) ==
  /\ rxPhase[r] \in {{"queued", "aborting"}}
  /\ errors' = IF WriteInFlight(s, rxBlocks[r][s])
               THEN errors \cup {{"read_during_write"}} ELSE errors
  /\ UNCHANGED <<poolVars, rxVars, txVars, netVars, faultsUsed>>

\* Every buffer_read of the step read (a prefix of) the current blocks.
ReadsCurrent(r, s) ==
  \A i \in 1..Len(Ev.reads) :
    LET rb == Ev.reads[i] IN
    /\ Len(rb) <= Len(rxBlocks[r][s])
    /\ SubSeq(rxBlocks[r][s], 1, Len(rb)) = rb
    /\ rb = <<>> => rxBlocks[r][s] = <<>>

\* Each logged action, constrained to what the log shows.
Observed ==
  /\ l <= Len(Trace)
  /\ ReadsCurrent(Ev.r, 1)
  /\ LET r == Ev.r  s == 1 IN
     CASE Ev.a = "ReceiverInit" ->
            /\ ReceiverInit(r) /\ rxBlocks'[r][s] = Ev.blocks
            /\ Ev.tokens = InitTokens /\ LastCtl(r, s).alloc = Ev.sent
       [] Ev.a = "SenderRecvInit" ->
            /\ SenderRecvInit(r, s)
            /\ Head(ctl[r][s]).blocks = Ev.blocks /\ Head(ctl[r][s]).alloc = Ev.tokens
       [] Ev.a = "SenderRecvResume" ->
            /\ SenderRecvResume(r, s)
            /\ Head(ctl[r][s]).blocks = Ev.blocks /\ Head(ctl[r][s]).alloc = Ev.tokens
            /\ Head(ctl[r][s]).sent = Ev.sent
       [] Ev.a = "SenderRecvAbort" ->
            SenderRecvAbort(r, s) /\ Ev.status = Failed
       [] Ev.a = "SenderStartRound" ->
            /\ SenderStartRound(r)
            /\ txSent[r][s] = Ev.sent /\ txTok'[r][s] = Ev.tokens
            /\ txPartial'[r] = Ev.partial
            /\ {{w.b : w \in {{x \in wire'[s] : x.r = r}}}} = Range(Ev.blocks)
            /\ (\E w \in wire'[s] : w.r = r /\ w.aux > 0) = Ev.aux
       [] Ev.a = "SenderEndRound" ->
            /\ SenderEndRound(r) /\ st'[r][s][Len(st'[r][s])].status = Ev.status
            /\ txSent'[r][s] = Ev.sent
       [] Ev.a = "WriteError" ->
            WriteError(r) /\ Ev.status = Failed
       [] Ev.a = "DeliverStatus" ->
            DeliverStatus(r, s) /\ Head(st[r][s]).status = Ev.status
       [] Ev.a = "PollSuccess" ->
            /\ CombinedStatus(r) = Ev.status
            /\ PollSuccess(r)
            /\ Ev.tokens >= 0 => Len(handed'[r][s]) = Ev.tokens
            /\ Ev.hasIds => handed'[r][s] = Ev.ids
       [] Ev.a = "PollFailed" ->
            /\ CombinedStatus(r) = Ev.status /\ PollFailed(r)
            /\ Ev.hasFreed => Ev.freed = rxBlocks[r][s]
       [] Ev.a = "PollResume" ->
            /\ CombinedStatus(r) = Ev.status
            /\ \/ PollTransferringHistorical(r)
               \/ PollTransferringCorrected(r, s)
            /\ IF Ev.failed
               THEN /\ rxPhase'[r] = "failed"
                    /\ Ev.freed = rxBlocks[r][s] \o rxBlocks[r][s]
               ELSE /\ rxPhase'[r] = rxPhase[r]
                    /\ Ev.freed = rxBlocks[r][s]
                    /\ rxBlocks'[r][s] = Ev.blocks
                    /\ LastCtl(r, s).sent = Ev.sent
                    /\ LastCtl(r, s).alloc = Ev.alloc
                    /\ LastCtl(r, s).type = "resume"
       [] Ev.a = "CorrectedCache" ->
            /\ CombinedStatus(r) = Ev.status
            /\ PollTransferringCorrected(r, s)
            /\ rxRound'[r][s] # rxRound[r][s]
            /\ Ev.hasFreed => Ev.freed = rxBlocks[r][s]
       [] Ev.a = "CorrectedResume" ->
            /\ CombinedStatus(r) = Ev.status
            /\ PollTransferringCorrected(r, s)
            /\ rxResumes'[r][s] = rxResumes[r][s] + 1
            /\ rxBlocks'[r][s] = Ev.blocks
            /\ LastCtl(r, s).sent = Ev.sent
            /\ LastCtl(r, s).alloc = Ev.alloc
       [] Ev.a = "PollRead" ->
            /\ CombinedStatus(r) = Ev.status
            /\ ObservedRead(r, s)
       [] Ev.a = "PollWait" ->
            /\ CombinedStatus(r) = Ev.status /\ rxPhase[r] \in {{"queued", "aborting"}}
            /\ UNCHANGED vars
       [] Ev.a = "PrefillDone" -> PrefillDone(r) /\ Ev.freed = rxBlocks[r][s]
       [] Ev.a = "Abort" ->
            /\ Abort(r)
            /\ Variant # "corrected" => Ev.freed = rxBlocks[r][s]
       [] Ev.a = "Heartbeat" -> Heartbeat(r)
       [] OTHER -> FALSE
  /\ l' = l + 1

\* What the log does not show: a write lands.
Unobserved ==
  /\ \E s \in Sess : \E w \in wire[s] : WriteLand(s, w)
  /\ UNCHANGED l

TraceInit == Init /\ l = 1
TraceNext == Observed \/ Unobserved

\* Violated exactly when the whole trace was matched (the trace conforms) ...
TraceNotDone == l <= Len(Trace)
\* ... and, checked first, when moreover every request and room has closed.
AllClosed ==
  \A r \in Reqs :
    /\ rxPhase[r] \in {{"done", "failed"}}
    /\ \A s \in Sess : rxBlocks[r][s] = <<>>
    /\ txPhase[r] \in {{"done", "failed", "dead", "init"}}
TraceNotFinished == ~(l > Len(Trace) /\ AllClosed)
====
"""

CFG = """INIT TraceInit
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
  Total <- TotalDef
  Faults <- FaultsDef
INVARIANTS
  {invariants}
"""


def render(model: TraceModel, name: str = "TraceCheck", source: str = "a trace",
           invariants: tuple = SAFETY_INVARIANTS) -> tuple[str, str]:
    """The trace module and a cfg checking ``invariants``."""
    c = model.constants
    steps = ",\n".join("  " + s.tla() for s in model.steps) or ""
    module = TRACE_SPEC.format(
        name=name, source=source, spec=SPEC_MODULE, steps=steps,
        totals=", ".join(str(t) for t in c["Total"]),
        faults=", ".join(f'"{f}"' for f in c["Faults"]))
    cfg = CFG.format(invariants="\n  ".join(invariants),
                     **{k: (str(v).upper() if isinstance(v, bool) else v)
                        for k, v in c.items()})
    return module, cfg


def _verdict_from_tlc(result, model: TraceModel, seconds: float) -> Verdict:
    if result.kind == "safety":
        prop = result.property
        if prop == "TraceNotFinished":
            return Verdict("conforms", checker="tlc", events=model.events, seconds=seconds)
        if prop == "TraceNotDone":
            return Verdict("incomplete", checker="tlc", events=model.events, seconds=seconds,
                           message="the whole trace matches the spec, but requests or rooms "
                                   "are still open at its end",
                           expected="every request ends, every block is freed")
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
              keep: str | None = None) -> Verdict:
    """Check a trace with TLC.  ``keep``: a folder to leave the generated module in."""
    from resumespec.spec import tlc

    t0 = time.perf_counter()
    try:
        events = _load(paths)
        if not events:
            raise MalformedTrace(1, None, "at least one event (the trace is empty)",
                                 "+".join(paths))
        model = steps_of(events)
    except MalformedTrace as e:
        return Verdict("malformed", checker="tlc", message=e.message(), expected=e.expected,
                       file=e.path, line=e.line, seconds=time.perf_counter() - t0)
    except NotForTlc as e:
        v = Verdict("error", checker="tlc", message=str(e), seconds=time.perf_counter() - t0)
        v.exit_code = exitcodes.BAD_INPUT
        return v
    spec_file = SPEC_DIR / f"{SPEC_MODULE}.tla"
    if not spec_file.is_file():
        v = Verdict("error", checker="tlc", message=f"{spec_file} not found",
                    seconds=time.perf_counter() - t0)
        v.exit_code = exitcodes.BAD_INPUT
        return v
    source = ", ".join(Path(p).name for p in paths)
    module, safety_cfg = render(model, source=source)
    _, end_cfg = render(model, source=source, invariants=("TraceNotFinished", "TraceNotDone"))
    # Two runs.  1: every behaviour matching the trace, exhaustively, against
    # the safety invariants (one violating landing order is a violation).
    # 2: is the end of the trace reachable, and are requests closed there?
    with tempfile.TemporaryDirectory(prefix="resumespec-trace-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "TraceCheck.tla").write_text(module)
        (folder / "TraceCheck.cfg").write_text(safety_cfg)
        (folder / "TraceCheckEnd.cfg").write_text(end_cfg)
        try:
            settings = tlc.prepare_settings(workers=1, timeout_s=timeout, heap="2g")
            result = None
            for cfg_name in ("TraceCheck.cfg", "TraceCheckEnd.cfg"):
                run = tlc.ModelRun(module=folder / "TraceCheck.tla", cfg=folder / cfg_name,
                                   label="trace", check_deadlock=False,
                                   library_dirs=(SPEC_DIR,))
                result = tlc.run_tlc(run, settings)
                if result.kind != "success":
                    break
        except tlc.TlcFailure as e:
            v = Verdict("error", checker="tlc", message=e.one_line(),
                        seconds=time.perf_counter() - t0)
            v.exit_code = e.exit_code
            return v
    return _verdict_from_tlc(result, model, time.perf_counter() - t0)


if __name__ == "__main__":   # debugging aid: print the generated module
    import sys

    m = steps_of(_load(sys.argv[1:]))
    mod, cfg = render(m)
    print(mod)
    print(cfg)
    print(json.dumps(m.constants))
