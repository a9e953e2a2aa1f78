------------------------- MODULE TraceResumeProtocol -------------------------
(***************************************************************************)
(* Trace validation of ResumeProtocol (the approach of CCF's Trace*.tla):  *)
(* a log of the engine, grouped into spec actions by                        *)
(* conformance/tlc_trace.py, is the constant Trace; a cursor l walks it.   *)
(* Each logged action is the spec's action constrained to what every       *)
(* session's events show; what the log cannot show (a write landing)      *)
(* steps freely.  The trace data comes from a generated module that        *)
(* EXTENDS this one and a cfg that binds the constants below:              *)
(*   Trace <- TraceData, CutAtEnd <- CutData, UnloggedWrites <- ...,       *)
(*   Total <- TotalData, Faults <- FaultsData,                             *)
(*   AllocChoices <- TraceAllocChoices,                                    *)
(*   RepeatableFaults <- TraceRepeatableFaults, ShowStateAt = a cursor     *)
(* See docs/conformance.md, "TLC trace validation".                        *)
(***************************************************************************)
EXTENDS ResumeProtocol, TLC

CONSTANTS
    Trace,          \* the logged actions: a sequence of step records (see tlc_trace.Step)
    CutAtEnd,       \* the log ends inside a step of every session (a rank logged its
                    \* part, another did not yet): the step is taken, the trace cannot
                    \* count as finished
    UnloggedWrites, \* <<request, session, k>>: the round Trace[k] started for those
                    \* sessions was not logged (the log ends first)
    ShowStateAt     \* run 3: the cursor to print the spec state at (0 in runs 1 and 2)

VARIABLE l          \* the next step of Trace to match

(***************************************************************************)
(* The log, as the steps below read it.  The cfg binds Trace to the       *)
(* generated module's TraceData (Trace <- TraceData), and TLC evaluates   *)
(* such a bound constant anew at every reference: the whole log, record  *)
(* by record, several times in every step.  A constant-level definition  *)
(* it evaluates once, at start-up, so the steps read Log.  A deployed run *)
(* of 906 steps conforms in 35 s; reading Trace, in 519 s                 *)
(* (python -m bench tlc_trace --log, docs/conformance.md).                *)
(***************************************************************************)
Log == Trace

\* request r's writes to session s belong to a round the log did not show
NotLoggedFor(r, s) == \E u \in UnloggedWrites : u[1] = r /\ u[2] = s /\ l > u[3]
NotLogged(w, s) == NotLoggedFor(w.r, s)

\* The part of a session that logged nothing of the step: the spec chooses.
Unlogged == [known |-> FALSE, blocks |-> <<>>, sent |-> -1, tokens |-> -1, status |-> -1,
              ids |-> <<>>, hasIds |-> FALSE, kind |-> "", freed |-> <<>>, hasFreed |-> FALSE,
              aux |-> FALSE, partial |-> FALSE, alloc |-> -1, reads |-> <<>>, raux |-> <<>>,
              stRound |-> -1, stSent |-> -1, stTotal |-> -1]


(***************************************************************************)
(* The allocator, as the trace sees it.  With Order = "any" the spec's     *)
(* AllocChoices enumerates every injection of k positions into the free    *)
(* list (n^k of them) before the step's constraints keep the one the log  *)
(* shows: the time of a trace grew with the pool.  In a step whose every   *)
(* session's part was logged, a choice whose blocks no session logged      *)
(* cannot match, so only the logged block lists are offered (with every   *)
(* free-list rest they can leave) and, when none of them is a choice, one *)
(* choice that is (the step then fails to match, as it would with all).   *)
(* The answer "no choice" ({}), which decides wait or fail, is unchanged.  *)
(* Elsewhere (a part the end of the log cut off; after the trace) it is    *)
(* the spec's AllocChoices, written out again in FullAllocChoices; the     *)
(* tests check that the two agree.                                         *)
(***************************************************************************)
FullAllocChoices(fl, n) ==
    LET k == NBlk(n) IN
    IF k = 0 THEN {<<<<>>, fl>>}
    ELSE IF Len(fl) < k THEN {}
    ELSE CASE Order = "fifo" -> {<<SubSeq(fl, 1, k), SubSeq(fl, k + 1, Len(fl))>>}
           [] Order = "lifo" -> {<<Reverse(SubSeq(fl, Len(fl) - k + 1, Len(fl))),
                                   SubSeq(fl, 1, Len(fl) - k)>>}
           [] Order = "any"  -> {<<[i \in 1..k |-> fl[p[i]]], Without(fl, Range(p))>> :
                                   p \in Injections(k, Len(fl))}

\* The sets of distinct positions of fl holding bs[1], bs[2], ... in turn.
RECURSIVE PositionSets(_, _)
PositionSets(fl, bs) ==
    IF bs = <<>> THEN {{}}
    ELSE UNION {{Q \cup {i} : Q \in {R \in PositionSets(fl, Tail(bs)) : i \notin R}} :
                i \in {j \in 1..Len(fl) : fl[j] = Head(bs)}}

\* Without(q, P), in linear time.
Keep(q, P) ==
    LET idx == SelectSeq([i \in 1..Len(q) |-> i], LAMBDA i : i \notin P)
    IN [j \in 1..Len(idx) |-> q[idx[j]]]

StepLoggedWhole ==
    /\ l <= Len(Log)
    /\ IF Log[l].s > 0 THEN Log[l].p[Log[l].s].known
                         ELSE \A s \in Sess : Log[l].p[s].known

TraceAllocChoices(fl, n) ==
    LET k == NBlk(n) IN
    IF Order # "any" \/ k = 0 \/ Len(fl) < k \/ ~StepLoggedWhole
    THEN FullAllocChoices(fl, n)
    ELSE LET logged == {Log[l].p[s].blocks : s \in Sess}
             fits == UNION {{<<bs, Keep(fl, Q)>> : Q \in PositionSets(fl, bs)} :
                            bs \in {b \in logged : Len(b) = k}}
         IN IF fits # {} THEN fits
            ELSE {<<SubSeq(fl, 1, k), SubSeq(fl, k + 1, Len(fl))>>}

Ev == Log[l]
P(s) == Ev.p[s]                 \* what session s's events show of this step
Known(s) == P(s).known
LastCtl(r, s) == ctl'[r][s][Len(ctl'[r][s])]

\* Every buffer_read of the step read (a prefix of) the session's blocks.
ReadsCurrent(r, s) ==
  \A i \in 1..Len(P(s).reads) :
    LET rb == P(s).reads[i] IN
    /\ Len(rb) <= Len(rxBlocks[r][s])
    /\ SubSeq(rxBlocks[r][s], 1, Len(rb)) = rb
    /\ rb = <<>> => rxBlocks[r][s] = <<>>
    \* the aux row it saw, where a write with an aux row has landed
    /\ rb # <<>> /\ aux[s][rb[1]] # 0 => aux[s][rb[1]] = P(s).raux[i]

\* A logged read with nothing else of its step changing state (a poll that
\* waits, or a step the log cuts off): the hazard is recorded as ReadHazard does.
ObservedReads(r) ==
  IF \E s \in Sess : Known(s) /\ P(s).reads # <<>> /\ WriteInFlight(s, rxBlocks[r][s])
  THEN errors \cup {"read_during_write"} ELSE errors

\* A status message fits what its status_sent / status_recv logged (the
\* corrected design logs round, sent_tokens and total).
StFits(m, q) ==
  /\ q.stRound >= 0 => m.round = q.stRound
  /\ q.stSent >= 0 => m.sent = q.stSent
  /\ q.stTotal >= 0 => m.total = q.stTotal
LastSt(r, s) == st'[r][s][Len(st'[r][s])]

\* Each logged action, constrained to what every session's events show.
Observed ==
  /\ l <= Len(Log)
  /\ \A s \in Sess : Known(s) => ReadsCurrent(Ev.r, s)
  /\ LET r == Ev.r  s1 == Ev.s IN
     CASE Ev.a = "ReceiverInit" ->
            /\ ReceiverInit(r)
            /\ \A s \in Sess : Known(s) =>
                 /\ rxBlocks'[r][s] = P(s).blocks /\ P(s).tokens = InitTokens
                 /\ LastCtl(r, s).alloc = P(s).sent
       [] Ev.a = "SenderRecvInit" ->
            /\ SenderRecvInit(r, s1)
            /\ Head(ctl[r][s1]).blocks = P(s1).blocks /\ Head(ctl[r][s1]).alloc = P(s1).tokens
       [] Ev.a = "SenderRecvResume" ->
            /\ SenderRecvResume(r, s1)
            /\ Head(ctl[r][s1]).blocks = P(s1).blocks /\ Head(ctl[r][s1]).alloc = P(s1).tokens
            /\ Head(ctl[r][s1]).sent = P(s1).sent
            /\ P(s1).stRound >= 0 => Head(ctl[r][s1]).round = P(s1).stRound
       [] Ev.a = "SenderRecvAbort" ->
            SenderRecvAbort(r, s1) /\ P(s1).status = Failed /\ StFits(LastSt(r, s1), P(s1))
       [] Ev.a = "SenderStartRound" ->
            /\ SenderStartRound(r)
            \* the round is partial when some session's share is (each logs its own)
            /\ (\E s \in Sess : Known(s) /\ P(s).partial) => txPartial'[r]
            /\ (\A s \in Sess : Known(s) /\ ~P(s).partial) => ~txPartial'[r]
            /\ \A s \in Sess : Known(s) =>
                 /\ txSent[r][s] = P(s).sent /\ txTok'[r][s] = P(s).tokens
                 /\ {w.b : w \in {x \in wire'[s] : x.r = r}} = Range(P(s).blocks)
                 /\ (\E w \in wire'[s] : w.r = r /\ w.aux > 0) = P(s).aux
       [] Ev.a = "SenderEndRound" ->
            /\ SenderEndRound(r)
            /\ \A s \in Sess : Known(s) =>
                 /\ LastSt(r, s).status = P(s).status /\ StFits(LastSt(r, s), P(s))
                 /\ txSent'[r][s] = P(s).sent
       [] Ev.a = "WriteError" ->
            /\ WriteError(r)
            \* the fork's sender: the write to session s1 failed, only s1 is told
            /\ ForkSender => s1 \in txDead' /\ Len(st'[r][s1]) > Len(st[r][s1])
            /\ \A s \in Sess : Known(s) =>
                 P(s).status = Failed /\ StFits(LastSt(r, s), P(s))
       [] Ev.a = "SenderFailDead" ->
            \* Failed to the dead session s1; the sessions logged before it written
            /\ SenderFailDead(r) /\ s1 \in txDead /\ Len(st'[r][s1]) > Len(st[r][s1])
            /\ P(s1).status = Failed /\ StFits(LastSt(r, s1), P(s1))
            /\ \A s \in Sess \ {s1} :
                 IF Known(s)
                 THEN /\ txSent[r][s] = P(s).sent /\ txSent'[r][s] = txSent[r][s] + P(s).tokens
                      /\ {w.b : w \in RoundWrites(r, s)} = Range(P(s).blocks)
                      /\ (\E w \in RoundWrites(r, s) : w.aux > 0) = P(s).aux
                 ELSE txSent'[r][s] = txSent[r][s]
       [] Ev.a = "SenderWriteSession" ->
            \* QueuedRounds: one session's batch, from what the sender holds now
            /\ SenderWriteSession(r, s1) /\ s1 \notin txDead
            /\ txSent[r][s1] = P(s1).sent /\ txTok'[r][s1] = P(s1).tokens
            /\ {w.b : w \in {x \in wire'[s1] : x.r = r}} = Range(P(s1).blocks)
            /\ (\E w \in wire'[s1] : w.r = r /\ w.aux > 0) = P(s1).aux
            /\ txPartial'[r] = P(s1).partial
       [] Ev.a = "SenderWriteDead" ->
            \* QueuedRounds: the walk meets the dead session s1: Failed to it
            /\ SenderWriteSession(r, s1) /\ s1 \in txDead
            /\ P(s1).status = Failed /\ StFits(LastSt(r, s1), P(s1))
       [] Ev.a = "DeliverStatus" ->
            /\ DeliverStatus(r, s1) /\ Head(st[r][s1]).status = P(s1).status
            /\ StFits(Head(st[r][s1]), P(s1))
       [] Ev.a = "PollSuccess" ->
            /\ CombinedStatus(r) = Ev.status
            /\ PollSuccess(r)
            /\ \A s \in Sess : Known(s) =>
                 /\ P(s).tokens >= 0 => Len(handed'[r][s]) = P(s).tokens
                 /\ P(s).hasIds => handed'[r][s] = P(s).ids
       [] Ev.a = "PollFailed" ->
            /\ CombinedStatus(r) = Ev.status /\ PollFailed(r)
            /\ \A s \in Sess : Known(s) /\ P(s).hasFreed => P(s).freed = rxBlocks[r][s]
       [] Ev.a = "PollResume" ->
            /\ CombinedStatus(r) = Ev.status
            /\ PollTransferringHistorical(r)
            /\ \A s \in Sess : Known(s) =>
                 CASE P(s).kind = "fail" ->
                        /\ rxPhase'[r] = "failed"
                        /\ P(s).freed = rxBlocks[r][s] \o rxBlocks[r][s]
                   [] P(s).kind = "resume" ->
                        /\ rxPhase'[r] = rxPhase[r]
                        /\ P(s).freed = rxBlocks[r][s]
                        /\ rxBlocks'[r][s] = P(s).blocks
                        /\ ctl'[r][s] # ctl[r][s]
                        /\ LastCtl(r, s).sent = P(s).sent
                        /\ LastCtl(r, s).alloc = P(s).alloc
                        /\ LastCtl(r, s).type = "resume"
                   [] OTHER ->                     \* this rank waited
                        /\ ctl'[r][s] = ctl[r][s]
                        /\ rxPhase'[r] = "failed" /\ P(s).hasFreed =>
                              P(s).freed = rxBlocks[r][s]
       [] Ev.a = "CorrectedCache" ->
            /\ CombinedStatus(r) = Ev.status
            /\ PollTransferringCorrected(r, s1)
            /\ rxDesign'[r][s1].round # rxDesign[r][s1].round
            /\ P(s1).hasFreed => P(s1).freed = rxBlocks[r][s1]
       [] Ev.a = "CorrectedResume" ->
            /\ CombinedStatus(r) = Ev.status
            /\ PollTransferringCorrected(r, s1)
            /\ rxResumes'[r][s1] = rxResumes[r][s1] + 1
            /\ rxBlocks'[r][s1] = P(s1).blocks
            /\ LastCtl(r, s1).sent = P(s1).sent
            /\ LastCtl(r, s1).alloc = P(s1).alloc
            /\ P(s1).stRound >= 0 => LastCtl(r, s1).round = P(s1).stRound
       [] Ev.a = "PollWait" ->
            \* one rank's wait, with other ranks: its logs may lag, so only its own
            \* status bounds the combined one (as in the native checker)
            /\ IF s1 > 0 /\ NSess > 1 THEN Ev.status <= rxStatus[r][s1]
                                       ELSE CombinedStatus(r) = Ev.status
            /\ rxPhase[r] \in {"queued", "aborting"}
            /\ errors' = ObservedReads(r)
            /\ UNCHANGED <<poolVars, rxVars, txVars, netVars, faultsUsed>>
       [] Ev.a = "Read" ->            \* a read outside the step that decides (see steps_of)
            /\ errors' = ObservedReads(r)
            /\ UNCHANGED <<poolVars, rxVars, txVars, netVars, faultsUsed>>
       [] Ev.a = "PrefillDone" ->
            /\ PrefillDone(r)
            /\ \A s \in Sess : Known(s) /\ P(s).hasFreed => P(s).freed = rxBlocks[r][s]
       [] Ev.a = "Abort" ->
            /\ Abort(r)
            /\ Variant # "corrected" =>
                 \A s \in Sess : Known(s) /\ P(s).hasFreed => P(s).freed = rxBlocks[r][s]
       [] Ev.a = "Heartbeat" -> Heartbeat(r)
       [] OTHER -> FALSE
  /\ l' = l + 1

(***************************************************************************)
(* What the log does not show: a write lands; with QueuedRounds, a round   *)
(* starts (it logs nothing until it writes its first session).  The round *)
(* start is taken only where the log shows that round's first write       *)
(* (SenderWriteSession or SenderWriteDead of the same request next), or   *)
(* after the trace.  That loses no behaviour the log can tell apart: an   *)
(* earlier start changes only txLeft, txReady, txTok, txRound and the     *)
(* phase (await -> writing) of a room that writes nothing until then, and *)
(* no logged step of that room in between reads them (a resume queues a  *)
(* round either way; a heartbeat loss kills the room either way) nor does *)
(* any invariant checked here.  Taken anywhere, each room with a round    *)
(* queued doubled the states at every step of the log: a deployed run of  *)
(* 20 requests had not reached step 40 of 138 after 10 minutes; now it     *)
(* conforms in about 3.5 minutes (docs/conformance.md).                    *)
(***************************************************************************)
QueuedRoundMayStart(r) ==
    IF l > Len(Log) THEN TRUE
    ELSE Log[l].r = r /\ Log[l].a \in {"SenderWriteSession", "SenderWriteDead"}

(***************************************************************************)
(* Writes land a request's group at a time.  The spec lands one write    *)
(* per step, in any order (WriteLand), so a round of k blocks in flight   *)
(* offers 2^k sets of landed writes at every step of the log until its    *)
(* status: a deployed run of 20 requests with rounds of up to 28 blocks   *)
(* was not through after 14 minutes; landing groups, it conforms in under *)
(* 9 (docs/conformance.md).  Here the writes of one request to one rank   *)
(* that are in flight land in one step (LandNow, as SenderFailDead lands  *)
(* its writes); a group with two writes into one block lands write by     *)
(* write.                                                                 *)
(* Only the states where part of a group has landed are skipped, and no   *)
(* verdict needs them:                                                    *)
(*  - a logged step that looks at a request's blocks on a rank either     *)
(*    needs all of its writes landed (SenderEndRound; SenderRecvAbort in  *)
(*    the corrected design) or records a read while any of them is in     *)
(*    flight as a hazard (NoReadDuringWrite): where some behaviour reads  *)
(*    after a partial landing, one that landed none of the group reads    *)
(*    too and has the hazard; where one reads after all of them landed,   *)
(*    landing them together at the last of those steps reads the same;    *)
(*  - WritesOnlyIntoOwnedBlocks and the hazards only grow with the writes *)
(*    in flight, so a state with none of the group landed violates them   *)
(*    wherever one with part of it landed does; and a write can land in a *)
(*    block its request does not own only after a state that violates     *)
(*    WritesOnlyIntoOwnedBlocks;                                          *)
(*  - another request's data is not read out of these blocks (they are    *)
(*    not its own) without such a violation first.                        *)
(* One verdict can change its reason: a read logged with the token ids it *)
(* handed over (hasIds) that shows part of a round and not the rest       *)
(* matches no state here.  That read is a hazard either way; the verdict  *)
(* is still "violates", with SpecStep for NoReadDuringWrite.              *)
(***************************************************************************)
Group(s, r) == {w \in wire[s] : w.r = r}
OneWritePerBlock(ws) == \A w1, w2 \in ws : w1.b = w2.b => w1 = w2

GroupLand(s, r) ==
    LET ws == Group(s, r) IN
    /\ wire' = [wire EXCEPT ![s] = @ \ ws]
    /\ data' = [data EXCEPT ![s] = LandNow(s, ws)]
    /\ aux' = [aux EXCEPT ![s] = LandNowAux(s, ws)]
    /\ UNCHANGED <<free, rxVars, txVars, ctl, st, faultsUsed, errors>>

WritesLand(s) ==
    \E r \in {w.r : w \in wire[s]} :
        /\ ~NotLoggedFor(r, s)
        /\ IF OneWritePerBlock(Group(s, r)) THEN GroupLand(s, r)
           ELSE \E w \in Group(s, r) : WriteLand(s, w)

Unobserved ==
  /\ \/ \E s \in Sess : WritesLand(s)
     \/ \E r \in Reqs : QueuedRoundMayStart(r) /\ SenderQueuedRound(r)
  /\ UNCHANGED l

(* A log may show a write error or an abort more than once (ResumeBase's  *)
(* RepeatableFaults); a heartbeat loss keeps its own rule (Heartbeat).    *)
TraceRepeatableFaults == {"write_error", "abort"}

\* WritesOnlyIntoOwnedBlocks for the writes the log shows: a log that ends
\* between the sessions' round_start events of one round shows some of its
\* writes; the others (UnloggedWrites) have not been issued
\* as far as the log tells, so they neither land nor count.
LoggedWritesOnlyIntoOwnedBlocks ==
    /\ "write_into_unowned" \notin errors
    /\ \A s \in Sess : \A w \in wire[s] :
        \/ NotLogged(w, s)
        \/ rxPhase[w.r] \in {"queued", "aborting"} /\ w.b \in Range(rxBlocks[w.r][s])

TraceInit == Init /\ l = 1
TraceNext == Observed \/ Unobserved

(***************************************************************************)
(* Run 1, every behaviour that matches the log, against the safety        *)
(* invariants.  A violated invariant would make TLC print the behaviour    *)
(* that reaches it, state by state, and no verdict reads it: with a pool   *)
(* of 256 blocks of 256 tokens on two ranks every state holds 131,072     *)
(* token slots, and TLC's printer took most of a 75-second profile over   *)
(* one such behaviour without finishing.                                  *)
(* So run 1 checks SafetyWatch, which is always TRUE: the first state BFS *)
(* finds that violates one of the invariants (the first in FirstViolated's *)
(* order) has its invariant and cursor printed and kept in TLC register 4,*)
(* and the constraint NoViolationYet then stops the search (TLC expands   *)
(* no state it finds after that one).                                     *)
(***************************************************************************)
FirstViolated ==
    CASE ~NoSharedBlock -> "NoSharedBlock"
      [] ~NoFreeAndHeld -> "NoFreeAndHeld"
      [] ~NoDoubleFree -> "NoDoubleFree"
      [] ~LoggedWritesOnlyIntoOwnedBlocks -> "LoggedWritesOnlyIntoOwnedBlocks"
      [] ~NoReadDuringWrite -> "NoReadDuringWrite"
      [] ~HandedDataIsSource -> "HandedDataIsSource"
      [] ~AtMostOneResumePerRound -> "AtMostOneResumePerRound"
      [] OTHER -> ""
TraceInitSafety == TraceInit /\ TLCSet(4, "")
SafetyWatch ==  \* always TRUE
    \/ TLCGet(4) # ""
    \/ LET v == FirstViolated IN
         \/ v = ""
         \/ TLCSet(4, v) /\ PrintT(<<"trace-violation", v, l>>)
NoViolationYet == TLCGet(4) = ""

\* Every request and room has closed.
AllClosed ==
  \A r \in Reqs :
    /\ rxPhase[r] \in {"done", "failed"}
    /\ \A s \in Sess : rxBlocks[r][s] = <<>>
    /\ txPhase[r] \in {"done", "failed", "dead", "init"}

(***************************************************************************)
(* Run 2, the end of the log.  Its invariants are always TRUE: they print *)
(* what conformance/tlc_trace.py decides from, and TLC explores every     *)
(* state consistent with the log (no violation stops it, so TLC prints no *)
(* error trace, which on a long log took longer than the search).  TLC     *)
(* register 1 holds the furthest cursor reached so                        *)
(* far (one worker); each time a state goes further Furthest prints the  *)
(* cursor, so the last such line gives the longest prefix of the log     *)
(* that some behaviour matches.  TraceEnd prints, once for each kind, an *)
(* end state (l = Len(Log) + 1) and its kind:                             *)
(*  "closed": every request and room closed, and the log cut no step     *)
(*            off: the trace conforms (one such state is enough);        *)
(*  "live":   some step of Next (the faults of Faults included) is       *)
(*            enabled, or the log cut a step off: the trace may go on,   *)
(*            it is incomplete (when no end state is closed);            *)
(*  "dead":   neither: the behaviour stutters forever in a state that is *)
(*            not closed.  When every end state is dead, the liveness    *)
(*            property that state fails is violated (tlc_trace.py names  *)
(*            it from the state printed).                               *)
(* No end state at all: no behaviour of the spec explains the log         *)
(* (SpecStep); run 3 (ShowState) then prints the state where it stops.    *)
(***************************************************************************)
SpecState ==    \* every variable but the block contents (data)
    [free |-> free, aux |-> aux, rxPhase |-> rxPhase, rxStatus |-> rxStatus,
     rxDesign |-> rxDesign, rxBlocks |-> rxBlocks, rxCache |-> rxCache, rxResumes |-> rxResumes,
     handed |-> handed, txPhase |-> txPhase, txSent |-> txSent, txAlloc |-> txAlloc,
     txDst |-> txDst, txReady |-> txReady, txTok |-> txTok, txRound |-> txRound,
     txPartials |-> txPartials, txPartial |-> txPartial, txDead |-> txDead,
     txQueue |-> txQueue, txLeft |-> txLeft, ctl |-> ctl, st |-> st,
     wire |-> wire, faultsUsed |-> faultsUsed, errors |-> errors]

TraceInitEnd == TraceInit /\ TLCSet(1, 0) /\ TLCSet(2, {})
Furthest ==     \* always TRUE
    \/ l <= TLCGet(1)
    \/ TLCSet(1, l) /\ PrintT(<<"trace-furthest", l>>)

EndStepEnabled == ENABLED (<<Next>>_vars /\ UNCHANGED l)
EndKind == IF AllClosed /\ ~CutAtEnd THEN "closed"
           ELSE IF CutAtEnd \/ EndStepEnabled THEN "live" ELSE "dead"
TraceEnd ==     \* always TRUE
    \/ l <= Len(Log)
    \/ LET k == EndKind IN
         \/ k \in TLCGet(2)
         \/ TLCSet(2, TLCGet(2) \cup {k}) /\ PrintT(<<"trace-end", k, SpecState>>)

(***************************************************************************)
(* Run 3, only after run 2 found no end state: the spec state where the  *)
(* log stops matching, the first state BFS finds with the cursor at      *)
(* ShowStateAt (the furthest cursor run 2 printed).  Printing the state   *)
(* at every new furthest cursor in run 2 instead cost more than the whole *)
(* search on long logs (each print holds every token handed over).       *)
(***************************************************************************)
TraceInitShow == TraceInit /\ TLCSet(3, FALSE)
ShowState ==    \* always TRUE
    \/ l # ShowStateAt
    \/ TLCGet(3)
    \/ TLCSet(3, TRUE) /\ PrintT(<<"trace-state", l, SpecState>>)
=============================================================================
