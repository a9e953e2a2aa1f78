---------------------------- MODULE ResumeCorrected ----------------------------
(***************************************************************************)
(* The corrected design of the resume protocol, on its own.               *)
(*                                                                         *)
(* ResumeBase holds what every design shares: the constants, each language *)
(* rank's pool of blocks and its allocator (AllocChoices), the network     *)
(* (ctl: language -> encode, st: encode -> language, both FIFO; wire: data *)
(* writes that land in any order), the sender's steps (SenderRecvInit,     *)
(* SenderRecvResume, SenderStartRound, WriteLand), the receiver's steps   *)
(* that no design changes (ReceiverInit, PollFailed, PrefillDone), the     *)
(* faults WriteError and Heartbeat, and the properties.  This module adds  *)
(* what makes the design correct:                                          *)
(*                                                                         *)
(*  1. A status names its round.  After round k the sender tells each      *)
(*     session [status, round k, its offset after k, the total]            *)
(*     (SenderEndRound); the receiver keeps the newest one (Info) and      *)
(*     never infers an offset from its buffers.  Failed is final: a later  *)
(*     Transferring cannot raise it again (NewStatus).                     *)
(*  2. Each round that ended partial is handled once per session, in two   *)
(*     idempotent steps: CorrectedCache copies the round's tokens out of   *)
(*     the blocks (the round has ended: nothing is in flight), frees them  *)
(*     and records the round (CachedRound); CorrectedResume allocates what *)
(*     it can (at least one block, at most what remains and Cap) and sends *)
(*     resume with the round and the offset.  With no free block it holds  *)
(*     nothing while it retries, so two requests never wait on each other. *)
(*  3. Abort is a message (Abort, SenderRecvAbort): the receiver keeps its *)
(*     blocks until the sender, with no write into the room in flight,    *)
(*     answers Failed.                                                     *)
(*  4. The sender's barrier is part of the design (ASSUME Barrier): a     *)
(*     round writes a session only after that session resumed.             *)
(*                                                                         *)
(* spec/README.md argues why this is safe and live; the models in         *)
(* spec/models/MC_corrected_*.tla check it.  The design's own state per   *)
(* request and session (ResumeBase's rxDesign) is a record of two fields,  *)
(* the newest status (Info) and the last round cached (CachedRound);      *)
(* rxResumes counts resumes for the properties.                           *)
(***************************************************************************)
EXTENDS ResumeBase

ASSUME Barrier

(* Status update: monotone (the higher wins), and Failed is final. *)
NewStatus(old, new) ==
    IF new = Failed \/ old = Failed THEN Failed ELSE Max(old, new)

(* Tokens a resume asks for: what remains, capped by Cap, and no more than *)
(* the free blocks hold (0 when none is free: the session retries later).  *)
ResumeTokens(remaining, nfree) == Min(CappedTokens(remaining), nfree * BlockSize)

(***************************************************************************)
(* The receiver's own state of session s of request r, rxDesign[r][s]:    *)
(*   info   the newest status message: [status, round, sent, total];      *)
(*   round  the last round whose tokens were cached (0: none).            *)
(***************************************************************************)
DesignInit == [info |-> StMsg(Bootstrapping, 0, 0, 0), round |-> 0]
Init == BaseInit /\ rxDesign = [r \in Reqs |-> [s \in Sess |-> DesignInit]]

Info(r, s) == rxDesign[r][s].info
CachedRound(r, s) == rxDesign[r][s].round

-----------------------------------------------------------------------------
(***************************************************************************)
(* Sender                                                                  *)
(***************************************************************************)

(* Every write of the room has completed: sent += tokens; the room's       *)
(* status becomes Transferring (partial) or Success and goes to every      *)
(* session, with the round number, the session's new offset and the total.*)
SenderEndRound(r) ==
    /\ txPhase[r] = "writing"
    /\ NoWritesFor(r)
    /\ LET newSent == [s \in Sess |-> txSent[r][s] + txTok[r][s]]
           status == IF txPartial[r] THEN Transferring ELSE Success
       IN /\ txSent' = [txSent EXCEPT ![r] = newSent]
          /\ SendStatusAll(r, [s \in Sess |-> StMsg(status, txRound[r], newSent[s], Total[r])])
    /\ txPhase' = [txPhase EXCEPT ![r] = IF txPartial[r] THEN "await" ELSE "done"]
    /\ txPartials' = [txPartials EXCEPT ![r] = IF txPartial[r] THEN @ + 1 ELSE @]
    /\ UNCHANGED <<poolVars, rxVars, txAlloc, txDst, txReady, txTok, txRound, txPartial,
                   txDead, txQueue, txLeft, ctl, wire, faultsUsed, errors>>

(* Abort is a message.  The sender answers it once none of its writes into *)
(* that room is in flight, with status Failed.                             *)
SenderRecvAbort(r, s) ==
    /\ ctl[r][s] # <<>> /\ Head(ctl[r][s]).type = "abort"
    /\ NoWritesFor(r)
    /\ ctl' = [ctl EXCEPT ![r][s] = Tail(@)]
    /\ IF txPhase[r] # "dead"
       THEN /\ txPhase' = [txPhase EXCEPT ![r] = IF @ = "done" THEN "done" ELSE "failed"]
            /\ st' = [st EXCEPT ![r][s] = Append(@, FailedTo(r, s))]
       ELSE UNCHANGED <<txPhase, st>>
    /\ UNCHANGED <<poolVars, rxVars, txSent, txAlloc, txDst, txReady, txTok, txRound,
                   txPartials, txPartial, txDead, txQueue, txLeft, wire, faultsUsed, errors>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Receiver                                                                *)
(***************************************************************************)

(* A status message arrives at a language rank: the status is latched     *)
(* (NewStatus) and the message kept if its round is not older.            *)
DeliverStatus(r, s) ==
    /\ st[r][s] # <<>>
    /\ LET m == Head(st[r][s]) IN
       /\ rxStatus' = [rxStatus EXCEPT ![r][s] = NewStatus(@, m.status)]
       /\ rxDesign' = [rxDesign EXCEPT ![r][s].info = IF m.round >= @.round THEN m ELSE @]
    /\ st' = [st EXCEPT ![r][s] = Tail(@)]
    /\ UNCHANGED <<poolVars, rxPhase, rxBlocks, rxCache, rxResumes, handed, txVars, ctl, wire,
                   faultsUsed, errors>>

(* Success: what earlier rounds cached, then the last round's tokens, as  *)
(* many as the status's total says remain.  The scheduler polls the MIN   *)
(* of the ranks' statuses (CombinedStatus), so one step covers every      *)
(* session of the request.                                                 *)
HandOver(r, s) ==
    rxCache[r][s] \o ReadBuf(s, rxBlocks[r][s], Info(r, s).total - Len(rxCache[r][s]))

PollSuccess(r) ==
    /\ rxPhase[r] = "queued"
    /\ CombinedStatus(r) = Success
    /\ handed' = [handed EXCEPT ![r] = [s \in Sess |-> HandOver(r, s)]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "prefill"]
    /\ errors' = IF \E s \in Sess : WriteInFlight(s, rxBlocks[r][s])
                 THEN errors \cup {"read_during_write"} ELSE errors
    /\ UNCHANGED <<poolVars, rxStatus, rxDesign, rxBlocks, rxCache, rxResumes, txVars,
                   netVars, faultsUsed>>

(***************************************************************************)
(* Transferring.  A status names its round k, the session's offset after  *)
(* it and the total.  For each round it sees end partial, a session (1)   *)
(* caches this round's tokens, known exactly from the status, (2) frees    *)
(* the blocks they came from (nothing is in flight: the round has ended),  *)
(* (3) allocates as many blocks as are free, up to what remains (at least  *)
(* one; otherwise it retries on a later poll, with no blocks held), (4)    *)
(* resumes with round k.  Each session takes these steps on its own: the  *)
(* design does not rely on the ranks staying in lockstep.                  *)
(***************************************************************************)
CorrectedCache(r, s) ==
    LET info == Info(r, s)
        fresh == ReadBuf(s, rxBlocks[r][s], info.sent - Len(rxCache[r][s]))
    IN /\ info.round > CachedRound(r, s)
       /\ info.status = Transferring
       /\ rxCache' = [rxCache EXCEPT ![r][s] = @ \o fresh]
       /\ rxDesign' = [rxDesign EXCEPT ![r][s].round = info.round]
       /\ free' = [free EXCEPT ![s] = @ \o rxBlocks[r][s]]
       /\ rxBlocks' = [rxBlocks EXCEPT ![r][s] = <<>>]
       /\ errors' = IF WriteInFlight(s, rxBlocks[r][s])
                    THEN errors \cup {"read_during_write"} ELSE errors
       /\ UNCHANGED <<ctl, rxResumes>>

CorrectedResume(r, s) ==
    LET info == Info(r, s)
        need == ResumeTokens(info.total - info.sent, Len(free[s]))
    IN /\ CachedRound(r, s) = info.round
       /\ rxResumes[r][s] < CachedRound(r, s)     \* cached round k, resume k not sent yet
       \* a session whose tokens all arrived (its allocation was larger than
       \* another session's) still resumes, with no blocks: the sender's
       \* barrier waits for every session
       /\ info.total > info.sent => need > 0     \* else no block is free: retry later
       /\ \E c \in AllocChoices(free[s], need) :
            /\ free' = [free EXCEPT ![s] = c[2]]
            /\ rxBlocks' = [rxBlocks EXCEPT ![r][s] = c[1]]
            /\ ctl' = [ctl EXCEPT ![r][s] = Append(@, CtlMsg("resume", c[1], info.sent,
                                                              Len(c[1]) * BlockSize, info.round))]
            /\ rxResumes' = [rxResumes EXCEPT ![r][s] = @ + 1]
       /\ UNCHANGED <<rxCache, rxDesign, errors>>

PollTransferringCorrected(r, s) ==
    /\ rxPhase[r] = "queued"
    /\ CombinedStatus(r) = Transferring
    /\ CorrectedCache(r, s) \/ CorrectedResume(r, s)
    /\ UNCHANGED <<data, aux, rxPhase, rxStatus, handed, txVars, st, wire, faultsUsed>>

(* The scheduler's poll of one request. *)
ReceiverPoll(r) ==
    \/ PollSuccess(r)
    \/ PollFailed(r)
    \/ \E s \in Sess : PollTransferringCorrected(r, s)

(* The receiver aborts a request: it sends abort on every session and     *)
(* keeps the blocks until the sender's Failed arrives (PollFailed).        *)
Abort(r) ==
    /\ FaultAvailable("abort")
    /\ rxPhase[r] = "queued"
    /\ faultsUsed' = faultsUsed \cup {"abort"}
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "aborting"]
    /\ ctl' = [ctl EXCEPT ![r] = [s \in Sess |-> Append(ctl[r][s], CtlMsg("abort", <<>>, 0, 0, 0))]]
    /\ UNCHANGED <<free, data, aux, rxStatus, rxDesign, rxBlocks, rxCache, rxResumes,
                   handed, txVars, st, wire, errors>>

-----------------------------------------------------------------------------
\* The protocol's own steps: everything but the faults.
ProtocolNext ==
    \/ \E r \in Reqs :
         \/ ReceiverInit(r) \/ ReceiverPoll(r) \/ PrefillDone(r)
         \/ SenderStartRound(r) \/ SenderEndRound(r) \/ SenderFailDead(r)
         \/ \E s \in Sess : SenderRecvInit(r, s) \/ SenderRecvResume(r, s)
                            \/ SenderRecvAbort(r, s) \/ DeliverStatus(r, s)
    \/ \E s \in Sess : \E w \in wire[s] : WriteLand(s, w)

(* Next repeats ProtocolNext's disjuncts inline, then the faults: TLC names  *)
(* each action after the operator it finds in Next, and the core's         *)
(* equivalence test reads those names from -dump dot,actionlabels (with    *)
(* ProtocolNext \/ faults every protocol step would be labelled           *)
(* "ProtocolNext").  The two lists must stay the same.                     *)
Next ==
    \/ \E r \in Reqs :
         \/ ReceiverInit(r) \/ ReceiverPoll(r) \/ PrefillDone(r)
         \/ SenderStartRound(r) \/ SenderEndRound(r) \/ SenderFailDead(r)
         \/ \E s \in Sess : SenderRecvInit(r, s) \/ SenderRecvResume(r, s)
                            \/ SenderRecvAbort(r, s) \/ DeliverStatus(r, s)
    \/ \E s \in Sess : \E w \in wire[s] : WriteLand(s, w)
    \/ \E r \in Reqs : WriteError(r) \/ Heartbeat(r) \/ Abort(r)

(***************************************************************************)
(* Fairness.  Every protocol step that stays enabled is eventually taken   *)
(* (WF): messages are delivered, writes land, the sender works.  The       *)
(* receiver's poll and init compete for blocks: an allocation that is      *)
(* possible again and again must eventually happen (SF), which is what the *)
(* scheduler's loop over every queued request on every iteration gives.    *)
(* Faults have no fairness: they may happen, never must.                   *)
(***************************************************************************)
Fairness ==
    /\ \A r \in Reqs :
         /\ SF_vars(ReceiverInit(r)) /\ SF_vars(ReceiverPoll(r)) /\ WF_vars(PrefillDone(r))
         /\ WF_vars(SenderStartRound(r)) /\ WF_vars(SenderEndRound(r))
         /\ WF_vars(SenderFailDead(r))
         /\ \A s \in Sess : /\ WF_vars(SenderRecvInit(r, s)) /\ WF_vars(SenderRecvResume(r, s))
                            /\ WF_vars(SenderRecvAbort(r, s)) /\ WF_vars(DeliverStatus(r, s))
    /\ \A s \in Sess : WF_vars(\E w \in wire[s] : WriteLand(s, w))

Spec == Init /\ [][Next]_vars /\ Fairness

(***************************************************************************)
(* Progress: one weak fairness condition on the protocol's steps as a      *)
(* whole ("the system does not stop while a protocol step is possible").  *)
(* Fairness implies it on every behaviour of [][Next]_vars: a behaviour    *)
(* either stutters forever in one state, where Fairness leaves no protocol *)
(* step enabled, or takes infinitely many non-stuttering steps, of which   *)
(* all but finitely many are ProtocolNext steps (each fault happens at     *)
(* most once).  So SpecProgress allows every behaviour Spec allows, and a *)
(* property that holds under SpecProgress holds under Spec.  The models of *)
(* this design check it with the liveness-as-safety invariant below and   *)
(* StepsMakeProgress (ResumeBase explains why that is exact).              *)
(***************************************************************************)
SpecProgress == Init /\ [][Next]_vars /\ WF_vars(ProtocolNext)

(***************************************************************************)
(* A VIEW for the deep models: TLC fingerprints CorrectedView instead of   *)
(* the whole state, so states that differ only in what it leaves out are  *)
(* explored once.  It leaves out what no step of this design and no        *)
(* property (TypeOK aside, a type check) can ever observe:                 *)
(*                                                                         *)
(*  - aux: this design never reads an aux row (its status carries the      *)
(*    total);                                                              *)
(*  - the data of every block that no queued request holds (free blocks,  *)
(*    and the blocks of a request that is aborting or in prefill, which    *)
(*    reads nothing more).  Only PollSuccess and CorrectedCache read data, *)
(*    through the block list of a queued request.  A block enters such a   *)
(*    list only by allocation (ReceiverInit, CorrectedResume), and from    *)
(*    then on this design reads a slot only after the current round's      *)
(*    write into it has landed: the round's status is sent once all its    *)
(*    writes landed (SenderEndRound: NoWritesFor), and a read takes the    *)
(*    tokens that status says the round wrote (info.sent, or the total,    *)
(*    minus what is cached), which are the slots RoundWrites covered.      *)
(*    So whatever such a block held is overwritten before it is read:      *)
(*    two states that differ only there have the same steps, their         *)
(*    successors differ only in slots that are again overwritten before    *)
(*    being read, and every property has the same value in both.           *)
(*                                                                         *)
(* The claim about reads is a property of this design (IndInv states it,   *)
(* ResumeCorrectedInductive.tla), not of every design: the historical      *)
(* ones read stale blocks, which is their bug.  So the quick models check  *)
(* this design without the view, on the whole state space (where          *)
(* HandedDataIsSource would catch a stale read), and tests/test_models.py  *)
(* runs quick models with and without it: the same verdicts.               *)
(***************************************************************************)
ReadableBlock(s, b) == \E r \in Reqs : rxPhase[r] = "queued" /\ b \in Range(rxBlocks[r][s])
NoData == [k \in Slots |-> NoTok]
CorrectedView ==
    <<free, [s \in Sess |-> [b \in Blocks |-> IF ReadableBlock(s, b) THEN data[s][b] ELSE NoData]],
      rxPhase, rxStatus, rxDesign, rxBlocks, rxCache, rxResumes, handed,
      txVars, netVars, faultsUsed, errors>>

\* StepsMakeProgress (ResumeBase): the design's own work is the rounds cached.
Measure == MeasureWith(Sum([r \in Reqs |-> Sum([s \in Sess |-> CachedRound(r, s)], NSess)], NReq))
StepsMakeProgress == [][Measure' > Measure]_vars

AtRest == ~ENABLED <<ProtocolNext>>_vars
\* One invariant, so that TLC evaluates ENABLED once per state; a violation's
\* last state shows which of the four goals failed.  TLC evaluates a
\* disjunction left to right: InFlight is a cheap sufficient condition for
\* ENABLED <<ProtocolNext>>_vars (a write in flight can land, a status in
\* flight can be delivered; both steps change wire or st), so the ENABLED
\* search runs only where nothing is in flight (on the deep model with two
\* sessions and every fault, still 60% of the states: most follow a fault).
InFlight == \/ \E s \in Sess : wire[s] # {}
            \/ \E r \in Reqs : \E s \in Sess : st[r][s] # <<>>
LivenessAtRest == InFlight \/ ENABLED <<ProtocolNext>>_vars \/ GoalsAtRest
=============================================================================
