---------------------- MODULE ResumeCorrectedInductive ----------------------
(***************************************************************************)
(* An inductive invariant for the corrected design's safety properties.   *)
(*                                                                         *)
(* IndInv holds in every initial state (Init => IndInv) and is preserved   *)
(* by every step (IndInv /\ Next => IndInv'), and it implies Safety.  So   *)
(* Safety holds in every reachable state, without enumerating the         *)
(* reachable states.  TLC checks the step on bounded constants: the model *)
(* MC_corrected_inductive starts from EVERY state satisfying IndInv (for  *)
(* its constants) and checks that each successor satisfies IndInv and    *)
(* Safety.                                                                 *)
(*                                                                         *)
(* IndInv is written so that TLC can use it as an initial predicate: every *)
(* variable first appears in a conjunct "x \in S" (S finite, depending    *)
(* only on variables bound before), followed by the relations that prune  *)
(* the enumeration.  As an invariant the same text is an ordinary         *)
(* predicate, so the set of initial states of the induction model is      *)
(* exactly the set of states satisfying IndInv: no state is left out.     *)
(*                                                                         *)
(* The picture behind it.  For a request r whose receiver is active       *)
(* (queued or aborting) and whose sender is healthy (not failed, not      *)
(* dead), with k = txRound[r], each session s is in one of five stages:   *)
(*   P  pending:  the init (k = 0) or resume of round k is in ctl[r][s];  *)
(*   R  ready:    the sender took it; txDst = the receiver's blocks;      *)
(*   W  writing:  round k's writes go into the receiver's blocks;         *)
(*   E  ended:    round k's status is in flight or delivered, every write *)
(*                landed, the blocks hold the round's tokens;             *)
(*   C  cached:   the receiver copied round k out and freed the blocks.   *)
(* The stage is determined by (CachedRound, rxResumes) against k and by   *)
(* the sender's phase.  A fault ends the healthy picture: after it no     *)
(* write is in flight, and the receiver neither caches nor resumes any    *)
(* more, so only the pool's partition and the counters need to hold.      *)
(***************************************************************************)
EXTENDS ResumeCorrected

\* the corrected design's own failure rule: no session is remembered as dead
ASSUME ~ForkSender


(* ---------------- finite domains ---------------- *)
InjSeqs == UNION {Injections(n, NBlocks) : n \in 0..NBlocks}   \* block lists, no repeats
Prefixes(r) == {SubSeq(Source(r), 1, n) : n \in 0..Total[r]}
Allocs == {n * BlockSize : n \in 0..NBlocks}
RxPhases == {"new", "queued", "aborting", "prefill", "done", "failed"}
TxPhases == {"init", "writing", "await", "done", "failed", "dead"}
InitInfo == StMsg(Bootstrapping, 0, 0, 0)
InfoDom(r) == {InitInfo} \cup
    {StMsg(x, j, n, Total[r]) : x \in {Failed, Transferring, Success}, j \in 0..Total[r],
                                n \in 0..Total[r]}
    \cup {StMsg(Failed, 0, 0, 0)}   \* a Failed before any round (KnownTotal)
\* the design's own state of a session (ResumeCorrected: info, round)
DesignDom == [info : UNION {InfoDom(r) : r \in Reqs}, round : 0..MaxTotal]
AbortMsg == CtlMsg("abort", <<>>, 0, 0, 0)
ReqMsgs(r) ==
    {CtlMsg("init", b, 0, Len(b) * BlockSize, 0) : b \in InjSeqs} \cup
    {CtlMsg("resume", b, n, Len(b) * BlockSize, j) : b \in InjSeqs, n \in 0..Total[r], j \in 1..Total[r]}
CtlSeqs(r) == {<<>>, <<AbortMsg>>} \cup {<<m>> : m \in ReqMsgs(r)} \cup {<<m, AbortMsg>> : m \in ReqMsgs(r)}
\* every status in flight is of the sender's current round and offset
M(r, s, x) == StMsg(x, txRound[r], txSent[r][s], KnownTotal(r))
StSeqs(r, s) == {<<>>} \cup {<<M(r, s, x)>> : x \in {Failed, Transferring, Success}}
                       \cup {<<M(r, s, x), M(r, s, Failed)>> : x \in {Failed, Transferring, Success}}
AllWrites(s) == UNION {RoundWrites(r, s) : r \in Reqs}

(* ---------------- derived notions ---------------- *)
Active(r) == rxPhase[r] \in {"queued", "aborting"}
Healthy(r) == txPhase[r] \in {"init", "writing", "await", "done"}
Live(r) == Active(r) /\ Healthy(r)
ReqIn(r, s) == SelectSeq(ctl[r][s], LAMBDA m : m.type # "abort")
HasAbort(r, s) == \E i \in DOMAIN ctl[r][s] : ctl[r][s][i].type = "abort"
\* the writes of the round that started at offset `sent` (RoundWrites with
\* the offset given: after the round ended, txSent has moved on)
RoundWritesAt(r, s, sent) ==
    LET tok == Min(Max(0, Total[r] - sent), txAlloc[r][s])
        dst == txDst[r][s]
    IN {Write(r, dst[j],
              [i \in 1..Min(BlockSize, tok - (j - 1) * BlockSize) |->
                  <<r, sent + (j - 1) * BlockSize + i>>],
              IF sent = 0 /\ j = 1 THEN Total[r] ELSE 0) :
        j \in 1..Min(NBlk(tok), Len(dst))}
LandedIn(d, w) == \A i \in 1..Len(w.toks) : d[w.b][i] = w.toks[i]
\* The stages of a session, judged against a sender phase p: the sender's
\* phase, or, once the sender failed or died, the phase it was in then
\* (its variables and the receiver's counters froze at that moment).  A
\* room fails while open; it may die while open, after it failed, or after
\* it was done (the heartbeat loss of a closed room: Heartbeat).
Ph(r) == CASE txPhase[r] = "failed" -> {"init", "writing", "await"}
           [] txPhase[r] = "dead" -> {"init", "writing", "await", "done"}
           [] OTHER -> {txPhase[r]}
\* (StageEAt: the same with the round cached given as v)
StageEAt(r, p, v) == p \in {"await", "done"} /\ v = txRound[r] - 1
StageE(r, s, p) == StageEAt(r, p, CachedRound(r, s))
StageC(r, s, p) == p = "await" /\ CachedRound(r, s) = txRound[r] /\ rxResumes[r][s] = txRound[r] - 1
StagePR(r, s, p) == p \in {"init", "await"} /\ CachedRound(r, s) = txRound[r]
                    /\ rxResumes[r][s] = txRound[r]
StageW(r, s, p) == p = "writing" /\ CachedRound(r, s) = txRound[r] - 1
\* what Info holds before the successor of round CachedRound is delivered
\* (PriorInfoAt: the same with the round cached v and n tokens cached)
PriorInfoAt(r, v, n) == IF v = 0 THEN InitInfo ELSE StMsg(Transferring, v, n, Total[r])
PriorInfo(r, s) == PriorInfoAt(r, CachedRound(r, s), Len(rxCache[r][s]))
StatusOf(i) == IF i.status = Bootstrapping THEN WaitingForInput ELSE i.status

(* ---------------- the invariant, in enumeration order ---------------- *)
PhasesOK ==
    /\ rxPhase \in [Reqs -> RxPhases]
    /\ txPhase \in [Reqs -> TxPhases]
    /\ faultsUsed \in SUBSET Faults
    /\ txDead = {}
    /\ txQueue = [r \in Reqs |-> 0]      \* (QueuedRounds only: never under the barrier)
    /\ txLeft = [r \in Reqs |-> {}]
    /\ \A r \in Reqs :
         /\ rxPhase[r] = "new" => txPhase[r] = "init"
         /\ rxPhase[r] \in {"prefill", "done"} => txPhase[r] = "done"
         /\ rxPhase[r] = "failed" => txPhase[r] \in {"done", "failed", "dead"}

RoundsOK ==
    /\ txRound \in [Reqs -> 0..MaxTotal]
    /\ txPartials \in [Reqs -> 0..MaxTotal]
    /\ txPartial \in [Reqs -> BOOLEAN]
    /\ \A r \in Reqs :
         LET k == txRound[r] IN
         /\ k <= Total[r]
         /\ \E p \in Ph(r) :
              /\ p = "init" => k = 0 /\ txPartials[r] = 0 /\ ~txPartial[r]
              /\ p \in {"writing", "await", "done"} => k >= 1
              /\ p \in {"writing", "done"} => txPartials[r] = k - 1
              /\ p = "await" => txPartials[r] = k /\ txPartial[r]
              /\ p = "done" => ~txPartial[r]

SenderAt(r, p) ==
    LET k == txRound[r] IN
    /\ p = "init" => \A s \in Sess : txSent[r][s] = 0 /\ txTok[r][s] = 0
    /\ p = "writing" =>
         /\ txPartial[r] = \E s \in Sess : Total[r] - txSent[r][s] > txAlloc[r][s]
         /\ \A s \in Sess :
              /\ ~txReady[r][s]
              /\ txTok[r][s] = Min(Total[r] - txSent[r][s], txAlloc[r][s])
              /\ txSent[r][s] < Total[r] => txSent[r][s] >= k - 1 /\ txTok[r][s] >= 1
    /\ p \in {"await", "done"} => \A s \in Sess : txSent[r][s] < Total[r] => txSent[r][s] >= k
    /\ p = "await" => \E s \in Sess : txSent[r][s] < Total[r]
    /\ p = "done" => \A s \in Sess : txSent[r][s] = Total[r]

SenderOK ==
    /\ txSent \in [Reqs -> [Sess -> 0..MaxTotal]]
    /\ txTok \in [Reqs -> [Sess -> 0..MaxTotal]]
    /\ txAlloc \in [Reqs -> [Sess -> Allocs]]
    /\ txReady \in [Reqs -> [Sess -> BOOLEAN]]
    /\ \A r \in Reqs :
         /\ \A s \in Sess : txSent[r][s] <= Total[r]
         /\ \E p \in Ph(r) : SenderAt(r, p)

ReceiverAt(r, p) ==
    \A s \in Sess :
       LET k == txRound[r] IN
       /\ StageE(r, s, p) \/ StageC(r, s, p) \/ StagePR(r, s, p) \/ StageW(r, s, p)
       /\ StageW(r, s, p) => rxResumes[r][s] = k - 1
       /\ StageE(r, s, p) =>
            /\ rxResumes[r][s] = k - 1
            /\ Len(rxCache[r][s]) = txSent[r][s] - txTok[r][s]
            /\ txTok[r][s] = Min(Total[r] - Len(rxCache[r][s]), txAlloc[r][s])
            /\ Len(rxCache[r][s]) < Total[r] => txTok[r][s] >= 1
       /\ ~StageE(r, s, p) => Len(rxCache[r][s]) = txSent[r][s]

ReceiverOK ==
    /\ rxDesign \in [Reqs -> [Sess -> DesignDom]]
    /\ rxResumes \in [Reqs -> [Sess -> 0..MaxTotal]]
    /\ rxCache \in [Reqs -> [Sess -> UNION {Prefixes(r) : r \in Reqs}]]
    /\ \A r \in Reqs :
         /\ \A s \in Sess :
              /\ rxCache[r][s] \in Prefixes(r)
              /\ rxResumes[r][s] <= CachedRound(r, s)
              /\ CachedRound(r, s) <= txPartials[r]
              /\ CachedRound(r, s) = 0 => rxCache[r][s] = <<>>
         /\ \E p \in Ph(r) : SenderAt(r, p) /\ ReceiverAt(r, p)

StatusOK ==
    /\ rxStatus \in [Reqs -> [Sess -> Failed..Success]]
    /\ \A r \in Reqs : \A s \in Sess :
         /\ Info(r, s) \in InfoDom(r)
         /\ Info(r, s).round <= txRound[r]
         /\ Info(r, s).status = Transferring => Info(r, s).round <= txPartials[r]
         /\ CachedRound(r, s) <= Info(r, s).round
         /\ rxPhase[r] = "new" => rxStatus[r][s] = Bootstrapping /\ Info(r, s) = InitInfo
         /\ rxPhase[r] # "new" => rxStatus[r][s] \in {StatusOf(Info(r, s)), Failed}
         /\ Healthy(r) /\ rxPhase[r] # "new" => rxStatus[r][s] = StatusOf(Info(r, s))
         /\ rxPhase[r] # "new" =>
              /\ Info(r, s).round = CachedRound(r, s) => Info(r, s) \in {PriorInfo(r, s), M(r, s, Failed)}
              /\ Info(r, s).round # CachedRound(r, s) =>
                   /\ Info(r, s).round = txRound[r]
                   /\ Info(r, s) \in {M(r, s, Transferring), M(r, s, Success), M(r, s, Failed)}
         /\ Active(r) /\ Healthy(r) =>
              /\ Info(r, s).status = Failed => txPhase[r] = "done"
              /\ Info(r, s).round # CachedRound(r, s) => StageE(r, s, txPhase[r])
              /\ Info(r, s).round = CachedRound(r, s) => Info(r, s) = PriorInfo(r, s)
         /\ rxPhase[r] \in {"prefill", "done"} =>
              rxStatus[r][s] = Success /\ Info(r, s) = M(r, s, Success)
         /\ txPhase[r] = "done" /\ Info(r, s).status = Failed => rxPhase[r] \in {"aborting", "failed"}
         \* no Success from a sender that did not finish
         /\ txPhase[r] = "failed" => rxStatus[r][s] # Success /\ Info(r, s).status # Success
         /\ Info(r, s).status = Success => SenderAt(r, "done")
         \* after a fault the receiver neither caches nor resumes (the heartbeat
         \* loss came while it waited, and Failed is final)
         /\ txPhase[r] = "dead" => rxStatus[r][s] = Failed
         /\ rxPhase[r] = "queued" /\ txPhase[r] = "failed" =>
              /\ rxResumes[r][s] = CachedRound(r, s)
              /\ Info(r, s).round > CachedRound(r, s) => Info(r, s).status = Failed

BlocksAt(r, s, p) ==
    /\ StageC(r, s, p) => rxBlocks[r][s] = <<>>
    /\ ~StageC(r, s, p) /\ (txReady[r][s] \/ ~StagePR(r, s, p)) =>
         /\ txDst[r][s] = rxBlocks[r][s]
         /\ txAlloc[r][s] = Len(rxBlocks[r][s]) * BlockSize
         /\ txSent[r][s] < Total[r] => rxBlocks[r][s] # <<>>

PoolOK ==
    /\ free \in [Sess -> InjSeqs]
    /\ rxBlocks \in [Reqs -> [Sess -> InjSeqs]]
    /\ \A s \in Sess :
         /\ \A r \in Reqs :
              /\ rxPhase[r] \notin {"queued", "aborting", "prefill"} => rxBlocks[r][s] = <<>>
              /\ Range(rxBlocks[r][s]) \cap Range(free[s]) = {}
         /\ \A r1, r2 \in Reqs : r1 # r2 => Range(rxBlocks[r1][s]) \cap Range(rxBlocks[r2][s]) = {}
         \* no block leaks: every block is free or held
         /\ Range(free[s]) \cup UNION {Range(rxBlocks[r][s]) : r \in Reqs} = Blocks
    /\ txDst \in [Reqs -> [Sess -> InjSeqs]]
    /\ \A r \in Reqs :
         /\ \A s \in Sess : txRound[r] = 0 /\ ~txReady[r][s] => txDst[r][s] = <<>> /\ txAlloc[r][s] = 0
         /\ \A s \in Sess : txAlloc[r][s] = Len(txDst[r][s]) * BlockSize
         /\ rxPhase[r] = "prefill" => \A s \in Sess : txDst[r][s] = rxBlocks[r][s]
         /\ Active(r) => \E p \in Ph(r) : ReceiverAt(r, p) /\ \A s \in Sess : BlocksAt(r, s, p)

CtlAt(r, s, p) ==
    LET k == txRound[r] IN
    /\ ReqIn(r, s) # <<>> =>
         /\ StagePR(r, s, p) /\ ~txReady[r][s]
         /\ ReqIn(r, s)[1] = CtlMsg(IF k = 0 THEN "init" ELSE "resume", rxBlocks[r][s],
                                   Len(rxCache[r][s]), Len(rxBlocks[r][s]) * BlockSize, k)
         /\ Len(rxCache[r][s]) < Total[r] => rxBlocks[r][s] # <<>>
    /\ StagePR(r, s, p) /\ Healthy(r) => (ReqIn(r, s) = <<>> <=> txReady[r][s])
    /\ txReady[r][s] => StagePR(r, s, p) /\ ReqIn(r, s) = <<>>

CtlOK ==
    /\ ctl \in [Reqs -> [Sess -> UNION {CtlSeqs(r) : r \in Reqs}]]
    /\ \A r \in Reqs :
         /\ \A s \in Sess :
              /\ ctl[r][s] \in CtlSeqs(r)
              /\ HasAbort(r, s) => rxPhase[r] \in {"aborting", "failed"} /\ "abort" \in faultsUsed
              /\ rxPhase[r] = "new" => ctl[r][s] = <<>> /\ ~txReady[r][s]
              /\ ReqIn(r, s) # <<>> => /\ ReqIn(r, s)[1].round = CachedRound(r, s)
                                       /\ rxResumes[r][s] = CachedRound(r, s)
                                       /\ ReqIn(r, s)[1].sent = Len(rxCache[r][s])
         /\ Active(r) => \E p \in Ph(r) : ReceiverAt(r, p) /\ \A s \in Sess : CtlAt(r, s, p)

\* the sender failed the room (it may have died since: then a Failed it sent
\* shows, delivered or in q = st[r][s])
FailedBySender(r, s, q) ==
    \/ txPhase[r] = "failed"
    \/ txPhase[r] = "dead" /\ (Info(r, s).status = Failed \/ \E i \in DOMAIN q : q[i].status = Failed)

\* one session's status channel q = st[r][s]
StElemOK(r, s, q) ==
    /\ q \in StSeqs(r, s)
    /\ \A i \in DOMAIN q : q[i].status = Transferring =>
                                        txPhase[r] \in {"await", "failed", "dead"} /\ txPartials[r] = txRound[r]
    /\ \A i \in DOMAIN q : q[i].status = Success => txPhase[r] \in {"done", "dead"}
                                                  /\ SenderAt(r, "done")
    /\ rxPhase[r] \in {"new", "prefill", "done"} => q = <<>>
    \* a finished sender says Failed only to answer an abort
    /\ txPhase[r] = "done" /\ (\E i \in DOMAIN q : q[i].status = Failed) =>
         rxPhase[r] \in {"aborting", "failed"}
    /\ txPhase[r] = "done" /\ HasAbort(r, s) =>
         /\ \A i \in DOMAIN q : q[i].status # Failed
         /\ Info(r, s).status # Failed
    \* Failed comes once from a write error, once to answer the abort
    \* a dead room's Failed was sent before the death, for a write error or an abort
    /\ txPhase[r] = "dead" /\ (\E i \in DOMAIN q : q[i].status = Failed) =>
         \/ "abort" \in faultsUsed
         \/ "write_error" \in faultsUsed /\ txRound[r] >= 1 /\ CachedRound(r, s) = txRound[r] - 1
    /\ q = <<M(r, s, Failed), M(r, s, Failed)>> =>
         txPhase[r] \in {"failed", "dead"} /\ "abort" \in faultsUsed /\ ~HasAbort(r, s)
    /\ \A i \in DOMAIN q : q[i].status = Failed /\ HasAbort(r, s) =>
         i = 1 /\ CachedRound(r, s) = txRound[r] - 1 /\ "write_error" \in faultsUsed
    \* a Transferring in flight: round k ended partial, the sender awaited resumes
    /\ (\E i \in DOMAIN q : q[i].status = Transferring) =>
         SenderAt(r, "await") /\ ReceiverAt(r, "await")
    /\ HasAbort(r, s) /\ Info(r, s).status = Failed =>
         \A i \in DOMAIN q : q[i].status # Failed
    /\ \A i \in DOMAIN q : q[i].status # Failed => CachedRound(r, s) = txRound[r] - 1
    /\ Active(r) /\ Healthy(r) =>
         /\ ~StageE(r, s, txPhase[r]) => q = <<>>
         /\ (\E i \in DOMAIN q : q[i].status = Failed) => txPhase[r] = "done"
         /\ StageE(r, s, txPhase[r]) =>
              LET x == IF txPhase[r] = "await" THEN Transferring ELSE Success IN
              /\ q # <<>> /\ q[1].status # Failed =>
                   q[1] = M(r, s, x) /\ Info(r, s).round = CachedRound(r, s)
              /\ (q = <<>> \/ q[1].status = Failed) =>
                   Info(r, s).round = txRound[r]
              /\ Info(r, s).round = txRound[r] => Info(r, s) \in {M(r, s, x), M(r, s, Failed)}
              /\ q = <<M(r, s, Failed)>> => Info(r, s) = M(r, s, x)
    /\ q # <<>> /\ q[1].status # Failed =>
         Info(r, s).round = CachedRound(r, s)
    \* queued and failed by the sender: a write error (the only Failed sent
    \* so far), also when the room died after it (a Failed it sent shows)
    /\ rxPhase[r] = "queued" /\ FailedBySender(r, s, q) =>
         /\ q \in {<<>>, <<M(r, s, Failed)>>}
         /\ q # <<>> => Info(r, s).status # Failed
         /\ txRound[r] >= 1 /\ CachedRound(r, s) = txRound[r] - 1
         /\ rxResumes[r][s] = CachedRound(r, s)

StOK ==
    /\ st \in [Reqs -> [Sess -> UNION {StSeqs(r, s) : r \in Reqs, s \in Sess}]]
    /\ \A r \in Reqs : \A s \in Sess : StElemOK(r, s, st[r][s])

WireOK ==
    /\ wire \in [Sess -> SUBSET UNION {AllWrites(s) : s \in Sess}]
    /\ \A s \in Sess : \A w \in wire[s] :
         /\ txPhase[w.r] = "writing"
         /\ w \in RoundWrites(w.r, s)
         /\ Active(w.r)

(* The tests weaken IndInv by dropping the blocks' contents from it        *)
(* (cfg: CheckData <- DontCheckData) and expect TLC to find a step out.    *)
CheckData == TRUE
DontCheckData == FALSE

\* the blocks of rank s hold d (= data[s]): every landed write of a live round
DataOK(s, d) ==
    CheckData => \A r \in Reqs : Active(r) /\ Healthy(r) =>
         /\ txPhase[r] = "writing" => \A w \in RoundWrites(r, s) \ wire[s] : LandedIn(d, w)
         /\ StageE(r, s, txPhase[r]) => \A w \in RoundWritesAt(r, s, Len(rxCache[r][s])) : LandedIn(d, w)

PoolDataOK ==
    /\ data \in [Sess -> [Blocks -> [Slots -> Tok]]]
    /\ \A s \in Sess : DataOK(s, data[s])
    /\ aux \in [Sess -> [Blocks -> {0} \cup Range(Total)]]

\* which faults happened, as the phases show
FaultsOK ==
    /\ ("heartbeat" \in faultsUsed <=> \E r \in Reqs : txPhase[r] = "dead")
    /\ (\E r \in Reqs : rxPhase[r] = "aborting") => "abort" \in faultsUsed
    /\ (\E r \in Reqs : txPhase[r] = "failed") => faultsUsed \cap {"write_error", "abort"} # {}

RestOK ==
    /\ handed = [r \in Reqs |-> [s \in Sess |->
                   IF rxPhase[r] \in {"prefill", "done"} THEN Source(r) ELSE <<>>]]
    /\ FaultsOK
    /\ errors = {}

IndInv ==
    /\ PhasesOK /\ RoundsOK /\ SenderOK /\ ReceiverOK /\ StatusOK /\ PoolOK
    /\ CtlOK /\ StOK /\ WireOK /\ PoolDataOK /\ RestOK

(***************************************************************************)
(* Enumerating IndInv fast. TLC computes the initial states of IndSpec     *)
(* conjunct by conjunct: "x \in S" binds x to each element of S in turn,   *)
(* and a later conjunct prunes. "x \in [Reqs -> [Sess -> S]]" binds the    *)
(* whole function at once, so with two sessions or two requests every      *)
(* combination of the elements is tried before any constraint prunes (28 x *)
(* 28 status records in rxDesign, ...). IndInit binds each such variable   *)
(* from a set built element by element (ElemFuns), each element drawn only *)
(* from the values that constraints of IndInv on that element alone allow  *)
(* (the *Vals operators below), and then evaluates IndInv itself, whose    *)
(* conjunct "x \in [...]" is by then only a test. So IndInit = Filters /\  *)
(* IndInv. Each filter is a copy of conjuncts of IndInv for one element,   *)
(* with the existential "\E p \in Ph(r)" taken per element (implied by     *)
(* IndInv's one p for all sessions): IndInv implies every filter, hence    *)
(* IndInit and IndInv have the same states. tests/test_inductive.py checks *)
(* that they enumerate the same number of states where IndInv can be       *)
(* enumerated directly.                                                    *)
(***************************************************************************)
\* the tuples <<f[1], ..., f[n]>> with f[i] \in S(i): functions on 1..n,
\* enumerated element by element (n at most 3 here: the models are small)
Tup(n, S(_)) ==
    CASE n = 1 -> {<<a>> : a \in S(1)}
      [] n = 2 -> {<<a, b>> : a \in S(1), b \in S(2)}
      [] n = 3 -> {<<a, b, c>> : a \in S(1), b \in S(2), c \in S(3)}
ElemFuns(S(_, _)) == Tup(NReq, LAMBDA r : Tup(NSess, LAMBDA s : S(r, s)))
ASSUME NReq <= 3 /\ NSess <= 3

\* SenderAt, per session
SentVals(r, s) == {v \in 0..Total[r] : \E p \in Ph(r) :
    /\ p = "init" => v = 0
    /\ p = "writing" /\ v < Total[r] => v >= txRound[r] - 1
    /\ p \in {"await", "done"} /\ v < Total[r] => v >= txRound[r]
    /\ p = "done" => v = Total[r]}
TokVals(r, s) == {v \in 0..MaxTotal : \E p \in Ph(r) :
    /\ p = "init" => v = 0
    /\ p = "writing" => v <= Total[r] - txSent[r][s]
    /\ p = "writing" /\ txSent[r][s] < Total[r] => v >= 1}
AllocVals(r, s) == {v \in Allocs : \E p \in Ph(r) :
    p = "writing" => txTok[r][s] = Min(Total[r] - txSent[r][s], v)}
\* SenderAt ("writing": ~txReady) and PoolOK (round 0, not ready: nothing allocated)
ReadyVals(r, s) == {v \in BOOLEAN :
    /\ \E p \in Ph(r) : p = "writing" => ~v
    /\ txRound[r] = 0 /\ ~v => txAlloc[r][s] = 0}
\* ReceiverOK and ReceiverAt: the session is in one of the stages E, C, PR, W
RoundVals(r, s) == {v \in 0..txPartials[r] : \E p \in Ph(r) :
    \/ p \in {"writing", "await", "done"} /\ v = txRound[r] - 1
    \/ p \in {"init", "await"} /\ v = txRound[r]}
ResumesVals(r, s) == {v \in 0..CachedRound(r, s) : \E p \in Ph(r) :
    LET k == txRound[r] IN
    \/ StageE(r, s, p) /\ v = k - 1
    \/ StageW(r, s, p) /\ v = k - 1
    \/ p = "await" /\ CachedRound(r, s) = k /\ v = k - 1          \* StageC
    \/ p \in {"init", "await"} /\ CachedRound(r, s) = k /\ v = k}  \* StagePR
\* (CacheValsAt: with the round cached given as v)
CacheValsAt(r, s, v) == {c \in Prefixes(r) :
    /\ v = 0 => c = <<>>
    /\ \E p \in Ph(r) :
         /\ StageEAt(r, p, v) => Len(c) = txSent[r][s] - txTok[r][s]
         /\ ~StageEAt(r, p, v) => Len(c) = txSent[r][s]}
CacheVals(r, s) == CacheValsAt(r, s, CachedRound(r, s))
\* StatusOK, with Info(r, s) = i and CachedRound(r, s) = v; rxCache is bound
\* after rxDesign, so PriorInfo is taken for each cache CacheValsAt allows
InfoValsAt(r, s, v) == {i \in InfoDom(r) :
    /\ i.round <= txRound[r]
    /\ i.status = Transferring => i.round <= txPartials[r]
    /\ v <= i.round
    /\ rxPhase[r] = "new" => i = InitInfo
    /\ rxPhase[r] # "new" =>
         /\ i.round = v => \/ i = M(r, s, Failed)
                           \/ \E c \in CacheValsAt(r, s, v) : i = PriorInfoAt(r, v, Len(c))
         /\ i.round # v =>
              /\ i.round = txRound[r]
              /\ i \in {M(r, s, Transferring), M(r, s, Success), M(r, s, Failed)}}
\* ReceiverOK and StatusOK: the design's own state, [info, round]
DesignVals(r, s) ==
    UNION {{[info |-> i, round |-> v] : i \in InfoValsAt(r, s, v)} : v \in RoundVals(r, s)}
StatusVals(r, s) == {x \in Failed..Success :
    /\ rxPhase[r] = "new" => x = Bootstrapping
    /\ rxPhase[r] # "new" => x \in {StatusOf(Info(r, s)), Failed}}
\* PoolOK
BlocksVals(r, s) == {b \in InjSeqs :
    /\ rxPhase[r] \notin {"queued", "aborting", "prefill"} => b = <<>>
    /\ Range(b) \cap Range(free[s]) = {}}
DstVals(r, s) == {d \in InjSeqs :
    /\ txRound[r] = 0 /\ ~txReady[r][s] => d = <<>>
    /\ txAlloc[r][s] = Len(d) * BlockSize
    /\ rxPhase[r] = "prefill" => d = rxBlocks[r][s]}
\* CtlOK, with ctl[r][s] = c
CtlVals(r, s) == {c \in CtlSeqs(r) :
    LET req == SelectSeq(c, LAMBDA m : m.type # "abort") IN
    /\ (\E i \in DOMAIN c : c[i].type = "abort") => rxPhase[r] \in {"aborting", "failed"}
    /\ rxPhase[r] = "new" => c = <<>> /\ ~txReady[r][s]
    /\ req # <<>> => /\ req[1].round = CachedRound(r, s)
                     /\ rxResumes[r][s] = CachedRound(r, s)
                     /\ req[1].sent = Len(rxCache[r][s])}
\* StOK, with st[r][s] = q
StVals(r, s) == {q \in StSeqs(r, s) : StElemOK(r, s, q)}
\* PoolDataOK, per rank
DataVals(s) == {d \in [Blocks -> [Slots -> Tok]] : DataOK(s, d)}

IndInit ==
    /\ PhasesOK /\ FaultsOK /\ RoundsOK
    /\ txSent \in ElemFuns(SentVals) /\ txTok \in ElemFuns(TokVals)
    /\ txAlloc \in ElemFuns(AllocVals) /\ txReady \in ElemFuns(ReadyVals)
    /\ SenderOK
    /\ rxDesign \in ElemFuns(DesignVals) /\ rxResumes \in ElemFuns(ResumesVals)
    /\ rxCache \in ElemFuns(CacheVals)
    /\ ReceiverOK
    /\ rxStatus \in ElemFuns(StatusVals)
    /\ StatusOK
    /\ free \in [Sess -> InjSeqs]
    /\ rxBlocks \in ElemFuns(BlocksVals) /\ txDst \in ElemFuns(DstVals)
    /\ PoolOK
    /\ ctl \in ElemFuns(CtlVals)
    /\ CtlOK
    /\ st \in ElemFuns(StVals)
    /\ StOK /\ WireOK
    /\ data \in Tup(NSess, DataVals)
    /\ PoolDataOK /\ RestOK

(* The induction step as a TLC model: start anywhere in IndInv (IndInit    *)
(* has the same states, enumerated faster), take one step.                 *)
IndSpec == IndInit /\ [][Next]_vars
\* the same, enumerating IndInv as written (tests compare the two)
IndSpecPlain == IndInv /\ [][Next]_vars

(* Init => IndInv is checked as an invariant of the ordinary spec. *)
InitSpec == Init /\ [][Next]_vars
=============================================================================
