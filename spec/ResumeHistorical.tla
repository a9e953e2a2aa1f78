--------------------------- MODULE ResumeHistorical ---------------------------
(***************************************************************************)
(* The five receiver designs the engine went through (SGLang's EPD        *)
(* disaggregation, fork ZhengWG/sglang), selected by the constant Variant: *)
(*   "flag"        d1bceb411  a boolean resume_triggered                   *)
(*   "indices"     7a7a71977  last_resume_indices vs the current blocks    *)
(*   "sent_tokens" caff70bd5  partial_sent + tokens read from the buffer   *)
(*   "cached_sent" 2141e0842  the cached count after the first resume      *)
(*   "once"        cca20b094  mainline: resume only if nothing is cached   *)
(* They share ResumeBase (pools, network, sender, faults, properties) and  *)
(* the poll below; they differ only in the rows of one table, Rule: "have *)
(* I already resumed?", "do I read the current blocks now?", and the total *)
(* and the offset a session believes.  What each gets wrong is in          *)
(* spec/README.md and in the models that show it (spec/models/MC_*.tla).   *)
(*                                                                         *)
(* Their status carries nothing but the status, and is monotone           *)
(* (max(old, new), except that Failed always overwrites): after a resume  *)
(* it is still Transferring, so "round k ended partial" and "round k+1 is  *)
(* being written" look the same to the receiver.                           *)
(***************************************************************************)
EXTENDS ResumeBase

CONSTANTS
    Variant,     \* "flag", "indices", "sent_tokens", "cached_sent" or "once"
    ResumeOrder  \* "alloc_first" (retry on None) or "free_first" (fail on None)

Variants == {"flag", "indices", "sent_tokens", "cached_sent", "once"}

ASSUME /\ Variant \in Variants
       /\ ResumeOrder \in {"alloc_first", "free_first"}

(* Status update as the engine does it: Failed overwrites, else the max. *)
NewStatus(old, new) == IF new = Failed THEN Failed ELSE Max(old, new)

(* Tokens the receiver asks for when it resumes with `remaining` to go. *)
ResumeTokens(remaining, nfree) == CappedTokens(remaining)

(***************************************************************************)
(* The receiver's own state of session s of request r, rxDesign[r][s]:    *)
(* the engine's fields, each used by some of the designs (Rule).          *)
(*   info      the last status message (kept as the engine's receiver     *)
(*             keeps it; no step here reads it);                          *)
(*   pSent     partial_sent_tokens;                                       *)
(*   pTotal    the cached total length (0 = nothing cached);              *)
(*   flag      "flag": resume_triggered;                                  *)
(*   lastIdx   "indices": last_resume_indices (<<>> = None);              *)
(*   lastSent  "sent_tokens", "cached_sent": last_resume_at_sent_tokens   *)
(*             (-1 = none).                                               *)
(***************************************************************************)
DesignInit == [info |-> StMsg(Bootstrapping, 0, 0, 0), pSent |-> 0, pTotal |-> 0,
               flag |-> FALSE, lastIdx |-> <<>>, lastSent |-> -1]
Init == BaseInit /\ rxDesign = [r \in Reqs |-> [s \in Sess |-> DesignInit]]

PSent(r, s) == rxDesign[r][s].pSent
PTotal(r, s) == rxDesign[r][s].pTotal
Flag(r, s) == rxDesign[r][s].flag
LastIdx(r, s) == rxDesign[r][s].lastIdx
LastSent(r, s) == rxDesign[r][s].lastSent

-----------------------------------------------------------------------------
(***************************************************************************)
(* Sender and status delivery                                              *)
(***************************************************************************)

(* Every write of the room has completed: sent += tokens; the room's       *)
(* status becomes Transferring (partial) or Success and goes to every      *)
(* session, alone (no round, no count).                                    *)
SenderEndRound(r) ==
    /\ txPhase[r] = "writing"
    /\ NoWritesFor(r)
    /\ txLeft[r] = {}     \* (QueuedRounds: every session written; the offsets advanced then)
    /\ LET newSent == IF QueuedRounds THEN txSent[r]
                      ELSE [s \in Sess |-> txSent[r][s] + txTok[r][s]]
           status == IF txPartial[r] THEN Transferring ELSE Success
       IN /\ txSent' = [txSent EXCEPT ![r] = newSent]
          /\ SendStatusAll(r, [s \in Sess |-> StMsg(status, 0, 0, 0)])
    /\ txPhase' = [txPhase EXCEPT ![r] = IF txPartial[r] THEN "await" ELSE "done"]
    /\ txPartials' = [txPartials EXCEPT ![r] = IF txPartial[r] THEN @ + 1 ELSE @]
    /\ UNCHANGED <<poolVars, rxVars, txAlloc, txDst, txReady, txTok, txRound, txPartial,
                   txDead, txQueue, txLeft, ctl, wire, faultsUsed, errors>>

(* A status message arrives at a language rank.  Its info field keeps the *)
(* message as the engine's receiver keeps the last status; no step here   *)
(* reads it.                                                               *)
DeliverStatus(r, s) ==
    /\ st[r][s] # <<>>
    /\ LET m == Head(st[r][s]) IN
       /\ rxStatus' = [rxStatus EXCEPT ![r][s] = NewStatus(@, m.status)]
       /\ rxDesign' = [rxDesign EXCEPT ![r][s].info = IF m.round >= @.round THEN m ELSE @]
    /\ st' = [st EXCEPT ![r][s] = Tail(@)]
    /\ UNCHANGED <<poolVars, rxPhase, rxBlocks, rxCache, rxResumes, handed, txVars, ctl, wire,
                   faultsUsed, errors>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Receiver: the scheduler's poll of one request.  The engine's scheduler  *)
(* runs the same loop on every language rank in lockstep (SPMD), on the   *)
(* MIN of the ranks' statuses, so one step covers all sessions.           *)
(***************************************************************************)

\* Handing over on Success: earlier rounds' cache + this round's blocks,
\* as long as the cached total says, or the blocks alone as the aux row says.
HandOver(r, s) ==
    LET bs == rxBlocks[r][s] IN
    IF PTotal(r, s) > 0
    THEN rxCache[r][s] \o ReadBuf(s, bs, PTotal(r, s) - PSent(r, s))
    ELSE ReadBuf(s, bs, AuxOf(s, bs))

PollSuccess(r) ==
    /\ rxPhase[r] = "queued"
    /\ CombinedStatus(r) = Success
    /\ handed' = [handed EXCEPT ![r] = [s \in Sess |-> HandOver(r, s)]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "prefill"]
    /\ errors' = IF \E s \in Sess : WriteInFlight(s, rxBlocks[r][s])
                 THEN errors \cup {"read_during_write"} ELSE errors
    /\ UNCHANGED <<poolVars, rxStatus, rxDesign, rxBlocks, rxCache, rxResumes, txVars, netVars,
                   faultsUsed>>

(***************************************************************************)
(* Transferring: the one table of the designs.  For session s of request r *)
(* each design computes, from what its own rank holds:                     *)
(*   resumed  "have I already resumed for this?" (the design's answer);    *)
(*   reads    does this poll read the current blocks? (flag, indices and   *)
(*            once test "already resumed" first and read only if not);     *)
(*   total    the embedding's total length as the session sees it;         *)
(*   sent     the tokens it believes it has.                               *)
(* Got reads the current blocks as far as their aux row says (the aux row  *)
(* of a reused block may be stale: it is never cleared).  sent_tokens and  *)
(* cached_sent cache the total and the offset at their first resume        *)
(* (PTotal > 0 from then on).                                              *)
(***************************************************************************)
Got(r, s) == ReadBuf(s, rxBlocks[r][s], AuxOf(s, rxBlocks[r][s]))

\* Row(q, ...): the entry of column q of a row.  TLC evaluates an operator's
\* arguments only when used, so a row costs only the column asked for.
Row(q, resumed, reads, total, sent) ==
    CASE q = "resumed" -> resumed [] q = "reads" -> reads
      [] q = "total" -> total     [] q = "sent" -> sent

Rule(r, s, q) ==
    LET bs == rxBlocks[r][s]
        aux0 == AuxOf(s, bs)                     \* the aux row: the total, or stale
        n == Len(Got(r, s))                      \* tokens the blocks hold, by the aux row
        pt == PTotal(r, s)
        ps == PSent(r, s)
        cachedTotal == IF pt > 0 THEN pt ELSE aux0
        stSent == IF pt > 0 THEN (IF n > 0 THEN ps + n ELSE ps) ELSE n
        csSent == IF pt > 0 THEN ps ELSE n
    IN \*                           already resumed?                reads now?    total        sent
       CASE Variant = "flag" ->
              Row(q, Flag(r, s),                               ~Flag(r, s),   aux0,        n)
         [] Variant = "indices" ->
              Row(q, LastIdx(r, s) = bs,                       LastIdx(r, s) # bs, aux0,   n)
         [] Variant = "once" ->
              Row(q, rxCache[r][s] # <<>>,                     rxCache[r][s] = <<>>, aux0, n)
         [] Variant = "sent_tokens" ->
              Row(q, stSent = LastSent(r, s) /\ stSent > 0,   TRUE,          cachedTotal, stSent)
         [] Variant = "cached_sent" ->
              Row(q, csSent = LastSent(r, s) /\ csSent > 0,   pt = 0,        cachedTotal, csSent)

ReadsNow(r, s) == Rule(r, s, "reads")
TotalSeen(r, s) == Rule(r, s, "total")
SentSeen(r, s) == Rule(r, s, "sent")
AlreadyResumed(r, s) == Rule(r, s, "resumed")

WantsResume(r, s) == ~AlreadyResumed(r, s) /\ TotalSeen(r, s) > SentSeen(r, s)
Need(r, s) == ResumeTokens(TotalSeen(r, s) - SentSeen(r, s), Len(free[s]))

\* Hazard bookkeeping: a read of blocks with a write in flight.
HazardAt(r, s) ==
    IF ReadsNow(r, s) /\ WriteInFlight(s, rxBlocks[r][s])
    THEN {"read_during_write"} ELSE {}
ReadHazard(r, s) == errors \cup HazardAt(r, s)

\* What a session caches when it resumes (the pull/13 designs cache only the
\* first time; mainline resumes once and caches then).
NewCache(r, s) == IF rxCache[r][s] = <<>> THEN Got(r, s) ELSE rxCache[r][s]
NewPTotal(r, s) == IF PTotal(r, s) = 0 THEN TotalSeen(r, s) ELSE PTotal(r, s)
NewPSent(r, s) ==
    IF Variant \in {"sent_tokens", "cached_sent"} \/ rxCache[r][s] = <<>>
    THEN SentSeen(r, s) ELSE PSent(r, s)
\* The session's own state after it acted: the cached total and offset; if it
\* resumed (with new blocks nb), also the design's record of "already resumed".
NewDesign(r, s, resumed, nb) ==
    [rxDesign[r][s] EXCEPT
        !.pTotal = NewPTotal(r, s),
        !.pSent = NewPSent(r, s),
        !.flag = IF resumed /\ Variant = "flag" THEN TRUE ELSE @,
        !.lastIdx = IF resumed /\ Variant = "indices" THEN nb ELSE @,
        !.lastSent = IF resumed /\ Variant \in {"sent_tokens", "cached_sent"}
                     THEN SentSeen(r, s) ELSE @]

(* What one session does in this poll:                                      *)
(*   "wait"   it does not want to resume, or (alloc_first) the allocation   *)
(*            returned None: nothing changes, it retries on a later poll;   *)
(*   "resume" with an allocation c = <<new blocks, rest of the free list>>: *)
(*            alloc_first allocates then frees the old blocks, free_first   *)
(*            frees the old blocks then allocates;                          *)
(*   "fail"   (free_first) the allocation returned None after the old       *)
(*            blocks were freed.                                            *)
NoAlloc == <<<<>>, <<>>>>
HistOption(r, s) ==
    IF ~WantsResume(r, s) THEN {[kind |-> "wait", c |-> NoAlloc]}
    ELSE IF ResumeOrder = "alloc_first"
    THEN LET cs == AllocChoices(free[s], Need(r, s)) IN
         IF cs = {} THEN {[kind |-> "wait", c |-> NoAlloc]}
         ELSE {[kind |-> "resume", c |-> x] : x \in cs}
    ELSE LET cs == AllocChoices(free[s] \o rxBlocks[r][s], Need(r, s)) IN
         IF cs = {} THEN {[kind |-> "fail", c |-> NoAlloc]}
         ELSE {[kind |-> "resume", c |-> x] : x \in cs}

(* Historical designs.  The engine's scheduler runs the same poll on every  *)
(* rank in lockstep, on the MIN of their statuses, so one step covers every *)
(* session of the request; each session decides on what its own rank holds.*)
(* If an allocation fails on the free_first path, the request fails on      *)
(* every rank through the Failed path, which frees embedding_indices: on a  *)
(* rank whose allocation failed that is still the old block list, already   *)
(* freed once.                                                               *)
PollTransferringHistorical(r) ==
    /\ rxPhase[r] = "queued"
    /\ CombinedStatus(r) = Transferring
    /\ \E o \in [Sess -> UNION {HistOption(r, s) : s \in Sess}] :
       LET acts(s) == o[s].kind # "wait"
           fails == \E s \in Sess : o[s].kind = "fail"
       IN
       /\ \A s \in Sess : o[s] \in HistOption(r, s)
       /\ \E s \in Sess : acts(s)
       /\ rxCache' = [rxCache EXCEPT ![r] = [s \in Sess |->
                        IF acts(s) THEN NewCache(r, s) ELSE rxCache[r][s]]]
       /\ rxDesign' = [rxDesign EXCEPT ![r] = [s \in Sess |->
                         IF acts(s) THEN NewDesign(r, s, ~fails, o[s].c[1])
                         ELSE rxDesign[r][s]]]
       /\ errors' = errors \cup UNION {HazardAt(r, s) : s \in Sess}
       /\ IF fails
          THEN /\ free' = [s \in Sess |-> free[s] \o rxBlocks[r][s]
                              \o (IF o[s].kind = "fail" THEN rxBlocks[r][s] ELSE <<>>)]
               /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> <<>>]]
               /\ rxPhase' = [rxPhase EXCEPT ![r] = "failed"]
               /\ UNCHANGED <<ctl, rxResumes>>
          ELSE /\ free' = [s \in Sess |->
                              IF ~acts(s) THEN free[s]
                              ELSE IF ResumeOrder = "alloc_first"
                                   THEN o[s].c[2] \o rxBlocks[r][s]
                                   ELSE o[s].c[2]]
               /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |->
                                 IF acts(s) THEN o[s].c[1] ELSE rxBlocks[r][s]]]
               /\ ctl' = [ctl EXCEPT ![r] = [s \in Sess |->
                            IF acts(s)
                            THEN Append(ctl[r][s], CtlMsg("resume", o[s].c[1], SentSeen(r, s),
                                                          Len(o[s].c[1]) * BlockSize, 0))
                            ELSE ctl[r][s]]]
               /\ rxResumes' = [rxResumes EXCEPT ![r] = [s \in Sess |->
                                  IF acts(s) THEN rxResumes[r][s] + 1 ELSE rxResumes[r][s]]]
               /\ UNCHANGED rxPhase
    /\ UNCHANGED <<data, aux, rxStatus, handed, txVars, st, wire, faultsUsed>>

(* A poll that reads the buffer and decides to wait changes nothing, except *)
(* when the read overlaps a write in flight: then the hazard is recorded.   *)
PollReadOnly(r, s) ==
    /\ rxPhase[r] = "queued"
    /\ CombinedStatus(r) = Transferring
    /\ ~WantsResume(r, s)
    /\ ReadHazard(r, s) # errors
    /\ errors' = ReadHazard(r, s)
    /\ UNCHANGED <<poolVars, rxPhase, rxStatus, rxDesign, rxBlocks, rxCache, rxResumes,
                   handed, txVars, netVars, faultsUsed>>

ReceiverPoll(r) ==
    \/ PollSuccess(r)
    \/ PollFailed(r)
    \/ PollTransferringHistorical(r)
    \/ \E s \in Sess : PollReadOnly(r, s)

(* The receiver aborts a request: it fails it locally and frees its       *)
(* blocks; nothing is sent (the sender may still be writing into them).   *)
Abort(r) ==
    /\ FaultAvailable("abort")
    /\ rxPhase[r] = "queued"
    /\ faultsUsed' = faultsUsed \cup {"abort"}
    /\ FreeAll(r)
    /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> <<>>]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "failed"]
    /\ UNCHANGED <<data, aux, rxStatus, rxDesign, rxCache, rxResumes, handed, txVars, netVars,
                   errors>>

-----------------------------------------------------------------------------
\* The protocol's own steps: everything but the faults.
ProtocolNext ==
    \/ \E r \in Reqs :
         \/ ReceiverInit(r) \/ ReceiverPoll(r) \/ PrefillDone(r)
         \/ SenderStartRound(r) \/ SenderEndRound(r) \/ SenderFailDead(r)
         \/ SenderQueuedRound(r)
         \/ \E s \in Sess : SenderRecvInit(r, s) \/ SenderRecvResume(r, s) \/ DeliverStatus(r, s)
                         \/ SenderWriteSession(r, s)
    \/ \E s \in Sess : \E w \in wire[s] : WriteLand(s, w)

(* Next repeats ProtocolNext's disjuncts inline, then the faults: TLC names  *)
(* each action after the operator it finds in Next, and the core's         *)
(* equivalence test reads those names from -dump dot,actionlabels (with    *)
(* ProtocolNext \/ faults every protocol step would be labelled           *)
(* "ProtocolNext").  The two lists must stay the same.  (No abort message  *)
(* exists in these designs, so the sender has no SenderRecvAbort.)         *)
Next ==
    \/ \E r \in Reqs :
         \/ ReceiverInit(r) \/ ReceiverPoll(r) \/ PrefillDone(r)
         \/ SenderStartRound(r) \/ SenderEndRound(r) \/ SenderFailDead(r)
         \/ SenderQueuedRound(r)
         \/ \E s \in Sess : SenderRecvInit(r, s) \/ SenderRecvResume(r, s) \/ DeliverStatus(r, s)
                         \/ SenderWriteSession(r, s)
    \/ \E s \in Sess : \E w \in wire[s] : WriteLand(s, w)
    \/ \E r \in Reqs : WriteError(r) \/ Heartbeat(r) \/ Abort(r)

(***************************************************************************)
(* Fairness, as for the corrected design (ResumeCorrected explains it):    *)
(* WF on every protocol step, SF on the receiver's init and poll, which    *)
(* compete for blocks; none on faults.  Models that show a liveness bug    *)
(* use Spec, so that the counterexample is a behaviour the engine's        *)
(* scheduler can produce; models expected to succeed use SpecProgress.    *)
(***************************************************************************)
Fairness ==
    /\ \A r \in Reqs :
         /\ SF_vars(ReceiverInit(r)) /\ SF_vars(ReceiverPoll(r)) /\ WF_vars(PrefillDone(r))
         /\ WF_vars(SenderStartRound(r)) /\ WF_vars(SenderEndRound(r))
         /\ WF_vars(SenderFailDead(r)) /\ WF_vars(SenderQueuedRound(r))
         /\ \A s \in Sess : /\ WF_vars(SenderRecvInit(r, s)) /\ WF_vars(SenderRecvResume(r, s))
                            /\ WF_vars(DeliverStatus(r, s)) /\ WF_vars(SenderWriteSession(r, s))
    /\ \A s \in Sess : WF_vars(\E w \in wire[s] : WriteLand(s, w))

Spec == Init /\ [][Next]_vars /\ Fairness
SpecProgress == Init /\ [][Next]_vars /\ WF_vars(ProtocolNext)

\* StepsMakeProgress (ResumeBase): these designs' own state adds no work.
Measure == MeasureWith(0)
StepsMakeProgress == [][Measure' > Measure]_vars

AtRest == ~ENABLED <<ProtocolNext>>_vars
LivenessAtRest == ENABLED <<ProtocolNext>>_vars \/ GoalsAtRest
=============================================================================
