------------------------------ MODULE ResumeBase ------------------------------
(***************************************************************************)
(* The resume protocol of encode/language embedding transfer (SGLang EPD   *)
(* disaggregation): what every receiver design shares.  A design's module  *)
(* EXTENDS this one and adds its status rule, its poll and its abort:      *)
(*   ResumeCorrected.tla   the corrected design (reads on its own);        *)
(*   ResumeHistorical.tla  the five designs the engine went through;       *)
(*   ResumeProtocol.tla    either, chosen by Variant (trace validation).   *)
(* See spec/README.md for the model explained to a protocol designer, and  *)
(* docs/model.md for the names shared with the reference implementation   *)
(* and the conformance checker.                                            *)
(*                                                                         *)
(* Actors: the encode side (sender) holds every request's embedding; each  *)
(* language rank (a receiving session) owns a pool of fixed-size blocks    *)
(* and receives the embedding of each request into blocks it allocates.   *)
(* When the embedding is longer than the blocks given, the transfer goes   *)
(* in rounds and the receiver asks the sender to resume.                   *)
(*                                                                         *)
(* Here: the constants, the pools and their allocator, the network, the   *)
(* sender's steps, the receiver's steps that do not depend on the design   *)
(* (init, Failed, prefill), the faults heartbeat and write error, and the  *)
(* safety and liveness properties.                                         *)
(***************************************************************************)
EXTENDS Integers, Sequences, FiniteSets, TLC

CONSTANTS
    NReq,        \* number of requests (rooms), numbered 1..NReq
    NSess,       \* receiving sessions per room (language TP ranks)
    Total,       \* Total[r]: tokens of request r's embedding
    BlockSize,   \* tokens per block
    NBlocks,     \* blocks in each language rank's pool
    InitTokens,  \* tokens the receiver allocates before it knows the length
    Cap,         \* blocks per resume allocation at most; 0 = all remaining
    Order,       \* allocator reuse order: "fifo", "lifo" or "any"
    Barrier,     \* sender resumes a room only when every session resumed
    Faults,      \* subset of {"write_error", "heartbeat", "abort"}
    ForkSender   \* the engine fork's sender rule for a failed write (see WriteError)

Reqs   == 1..NReq
Sess   == 1..NSess
Blocks == 1..NBlocks
Slots  == 1..BlockSize

ASSUME /\ NReq \in Nat \ {0} /\ NSess \in Nat \ {0}
       /\ BlockSize \in Nat \ {0} /\ NBlocks \in Nat \ {0}
       /\ Total \in [Reqs -> Nat \ {0}]
       /\ InitTokens \in Nat \ {0} /\ Cap \in Nat
       /\ Order \in {"fifo", "lifo", "any"}
       /\ Barrier \in BOOLEAN
       /\ Faults \subseteq {"write_error", "heartbeat", "abort"}
       /\ ForkSender \in BOOLEAN

Failed == 0
Bootstrapping == 1
WaitingForInput == 2
Transferring == 3
Success == 4

Min(a, b) == IF a < b THEN a ELSE b
Max(a, b) == IF a > b THEN a ELSE b
Range(f) == {f[i] : i \in DOMAIN f}
MaxTotal == LET T == Range(Total) IN CHOOSE t \in T : \A u \in T : t >= u

(* Every token has an identity <<request, position>>; NoTok is an empty slot. *)
Tok == (Reqs \X (1..MaxTotal)) \cup {<<0, 0>>}
NoTok == <<0, 0>>
Source(r) == [i \in 1..Total[r] |-> <<r, i>>]

NBlk(n) == (n + BlockSize - 1) \div BlockSize    \* blocks for n tokens

VARIABLES
    \* ---- language ranks: allocator and block contents (never cleared) ----
    free,       \* free[s]: the allocator's free list (a deque) on rank s
    data,       \* data[s][b][k]: token in slot k of block b on rank s
    aux,        \* aux[s][b]: slot 0 of block b's aux row (a total length, or stale)
    \* ---- receiver, per request r and session s ----
    rxPhase,    \* rxPhase[r]: "new", "queued", "aborting", "prefill", "done", "failed"
    rxStatus,   \* rxStatus[r][s]: status as known locally (the design's NewStatus)
    rxBlocks,   \* rxBlocks[r][s]: current block list (the engine's embedding_indices)
    rxCache,    \* rxCache[r][s]: tokens cached from earlier rounds
    rxResumes,  \* resumes sent so far (for AtMostOneResumePerRound)
    handed,     \* handed[r][s]: what was handed to prefill
    rxDesign,   \* rxDesign[r][s]: the design's own receiver state (see below)
    \* ---- sender, per room r and session s ----
    txPhase,    \* "init", "writing", "await", "done", "failed", "dead"
    txSent, txAlloc, txDst, txReady, txTok,
    txRound,    \* rounds started
    txPartials, \* rounds that ended partial
    txPartial,  \* the current round is partial
    txDead,     \* sessions the sender counts as dead (ForkSender; {} otherwise)
    txQueue,    \* rounds queued for a room, not started yet (QueuedRounds; 0 otherwise)
    txLeft,     \* sessions the running round has still to write (QueuedRounds; {} otherwise)
    \* ---- network ----
    ctl,        \* ctl[r][s]: language -> encode messages (init, resume, abort), FIFO
    st,         \* st[r][s]: encode -> language status messages, FIFO
    wire,       \* wire[s]: data writes in flight to rank s (they land in any order)
    \* ---- bookkeeping ----
    faultsUsed, \* faults that happened (each at most once; see Heartbeat)
    errors      \* history: hazards observed inside a step ("read_during_write",
                \* "write_into_unowned")

(***************************************************************************)
(* The design's own receiver state.  What a receiver remembers besides its *)
(* phase, status, blocks, cache and resume count differs from design to   *)
(* design, so this module declares one variable for it, rxDesign, and     *)
(* leaves its shape to the design: rxDesign[r][s] is a record that the    *)
(* design's module defines (DesignInit), reads and changes; no step here  *)
(* reads it, and every step here leaves it unchanged.  The corrected      *)
(* design keeps the newest status and the last round it cached             *)
(* (ResumeCorrected); the historical designs keep the engine's fields      *)
(* (ResumeHistorical).  One variable for all designs keeps every shared    *)
(* step, and so its name, the same for every design: TLC names a step     *)
(* after the operator that defines it, and counterexamples, the core's    *)
(* equivalence test (tlc -dump) and the trace checker key on those names.  *)
(* A design's module gives the initial state as Init == BaseInit /\        *)
(* rxDesign = ..., and its Measure (below) the work its own state records. *)
(***************************************************************************)
rxVars == <<rxPhase, rxStatus, rxDesign, rxBlocks, rxCache, rxResumes, handed>>

txVars == <<txPhase, txSent, txAlloc, txDst, txReady, txTok, txRound,
            txPartials, txPartial, txDead, txQueue, txLeft>>
poolVars == <<free, data, aux>>
netVars == <<ctl, st, wire>>
vars == <<poolVars, rxVars, txVars, netVars, faultsUsed, errors>>

(***************************************************************************)
(* Messages.  One record shape per channel so that TLC can compare them.  *)
(***************************************************************************)
CtlMsg(type, blocks, sent, alloc, round) ==
    [type |-> type, blocks |-> blocks, sent |-> sent, alloc |-> alloc, round |-> round]
StMsg(status, round, sent, total) ==
    [status |-> status, round |-> round, sent |-> sent, total |-> total]
Write(r, b, toks, auxv) == [r |-> r, b |-> b, toks |-> toks, aux |-> auxv]

(***************************************************************************)
(* The allocator: all or nothing, whole blocks, free appends at the tail.  *)
(* AllocChoices(fl, n) is the set of <<blocks, rest>> it may return.       *)
(***************************************************************************)
Injections(k, n) == {p \in [1..k -> 1..n] : \A i, j \in 1..k : i # j => p[i] # p[j]}
Reverse(q) == [i \in 1..Len(q) |-> q[Len(q) - i + 1]]
Without(q, P) == \* q with the positions in P removed, order kept
    LET keep == SelectSeq([i \in 1..Len(q) |-> i], LAMBDA i : i \notin P)
    IN [k \in 1..Len(keep) |-> q[keep[k]]]

AllocChoices(fl, n) ==
    LET k == NBlk(n) IN
    IF k = 0 THEN {<<<<>>, fl>>}     \* nothing to allocate (a session already complete)
    ELSE IF Len(fl) < k THEN {}
    ELSE CASE Order = "fifo" -> {<<SubSeq(fl, 1, k), SubSeq(fl, k + 1, Len(fl))>>}
           [] Order = "lifo" -> {<<Reverse(SubSeq(fl, Len(fl) - k + 1, Len(fl))),
                                   SubSeq(fl, 1, Len(fl) - k)>>}
           [] Order = "any"  -> {<<[i \in 1..k |-> fl[p[i]]], Without(fl, Range(p))>> :
                                   p \in Injections(k, Len(fl))}

(***************************************************************************)
(* Reading a buffer as get_buf does: n tokens gathered block by block,     *)
(* min(BlockSize, remaining) per block, as far as the blocks reach.        *)
(***************************************************************************)
ReadBuf(s, bs, n) ==
    LET m == Max(0, Min(n, Len(bs) * BlockSize)) IN
    [i \in 1..m |-> data[s][bs[(i - 1) \div BlockSize + 1]][((i - 1) % BlockSize) + 1]]
AuxOf(s, bs) == IF bs = <<>> THEN 0 ELSE aux[s][bs[1]]
WriteInFlight(s, bs) == \E w \in wire[s] : w.b \in Range(bs)

(* Tokens a resume asks for with `remaining` to go, before the design's own *)
(* limit: all of them (Cap = 0), or at most Cap blocks.                    *)
CappedTokens(remaining) == IF Cap = 0 THEN remaining ELSE Min(remaining, Cap * BlockSize)

CombinedStatus(r) == \* the all-reduce MIN over the sessions of a room
    CHOOSE m \in {rxStatus[r][s] : s \in Sess} : \A s \in Sess : m <= rxStatus[r][s]

Held(r, s) == IF rxPhase[r] \in {"queued", "aborting", "prefill"}
              THEN Range(rxBlocks[r][s]) ELSE {}

-----------------------------------------------------------------------------
(***************************************************************************)
(* Initial state, but for rxDesign (each design's Init adds it)          *)
(***************************************************************************)
BaseInit ==
    /\ free = [s \in Sess |-> [i \in 1..NBlocks |-> i]]
    /\ data = [s \in Sess |-> [b \in Blocks |-> [k \in Slots |-> NoTok]]]
    /\ aux = [s \in Sess |-> [b \in Blocks |-> 0]]
    /\ rxPhase = [r \in Reqs |-> "new"]
    /\ rxStatus = [r \in Reqs |-> [s \in Sess |-> Bootstrapping]]
    /\ rxBlocks = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ rxCache = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ rxResumes = [r \in Reqs |-> [s \in Sess |-> 0]]
    /\ handed = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ txPhase = [r \in Reqs |-> "init"]
    /\ txSent = [r \in Reqs |-> [s \in Sess |-> 0]]
    /\ txAlloc = [r \in Reqs |-> [s \in Sess |-> 0]]
    /\ txDst = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ txReady = [r \in Reqs |-> [s \in Sess |-> FALSE]]
    /\ txTok = [r \in Reqs |-> [s \in Sess |-> 0]]
    /\ txRound = [r \in Reqs |-> 0]
    /\ txPartials = [r \in Reqs |-> 0]
    /\ txPartial = [r \in Reqs |-> FALSE]
    /\ txDead = {}
    /\ txQueue = [r \in Reqs |-> 0]
    /\ txLeft = [r \in Reqs |-> {}]
    /\ ctl = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ st = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ wire = [s \in Sess |-> {}]
    /\ faultsUsed = {}
    /\ errors = {}

-----------------------------------------------------------------------------
(***************************************************************************)
(* Receiver: a request arrives, blocks for InitTokens are allocated on     *)
(* every rank (all or nothing; otherwise it waits), init is sent.         *)
(***************************************************************************)
ReceiverInit(r) ==
    /\ rxPhase[r] = "new"
    /\ \A s \in Sess : AllocChoices(free[s], InitTokens) # {}
    /\ \E choice \in [Sess -> UNION {AllocChoices(free[s], InitTokens) : s \in Sess}] :
         /\ \A s \in Sess : choice[s] \in AllocChoices(free[s], InitTokens)
         /\ free' = [s \in Sess |-> choice[s][2]]
         /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> choice[s][1]]]
         /\ ctl' = [ctl EXCEPT ![r] = [s \in Sess |->
                     Append(ctl[r][s], CtlMsg("init", choice[s][1], 0,
                                              Len(choice[s][1]) * BlockSize, 0))]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "queued"]
    /\ rxStatus' = [rxStatus EXCEPT ![r] = [s \in Sess |-> WaitingForInput]]
    /\ UNCHANGED <<data, aux, rxDesign, rxCache, rxResumes, handed, txVars, st, wire,
                   faultsUsed, errors>>

(***************************************************************************)
(* Sender: receives init and resume messages (abort: ResumeCorrected).    *)
(* A resume overwrites sent/allocated/dst: the receiver is authoritative.  *)
(***************************************************************************)
SenderAlive(r) == txPhase[r] \notin {"done", "failed", "dead"}

SenderRecvInit(r, s) ==
    /\ ctl[r][s] # <<>> /\ Head(ctl[r][s]).type = "init"
    /\ SenderAlive(r)
    /\ LET m == Head(ctl[r][s]) IN
       /\ txDst' = [txDst EXCEPT ![r][s] = m.blocks]
       /\ txAlloc' = [txAlloc EXCEPT ![r][s] = m.alloc]
       /\ txSent' = [txSent EXCEPT ![r][s] = 0]
       /\ txReady' = [txReady EXCEPT ![r][s] = TRUE]
    /\ ctl' = [ctl EXCEPT ![r][s] = Tail(@)]
    /\ UNCHANGED <<poolVars, rxVars, txPhase, txTok, txRound, txPartials, txPartial,
                   txDead, txQueue, txLeft, st, wire, faultsUsed, errors>>

(***************************************************************************)
(* QueuedRounds: the engine fork's sender without the resume barrier (the *)
(* four pull/13 designs; derived, not a constant: ForkSender and no        *)
(* Barrier, which no model before it combined).  Its embedding thread puts *)
(* one round on the room's transfer queue for EVERY resume it receives,    *)
(* and its transfer_worker runs a round by walking the room's sessions one *)
(* after another, reading each session's offset, allocation and blocks    *)
(* when it reaches it (not when the round starts).  A room stays in the    *)
(* sender's table until its round ends Success, so a queued round also    *)
(* runs on a room that already failed; a room that succeeded has left the *)
(* table, and its queued rounds and resumes do nothing.                   *)
(***************************************************************************)
QueuedRounds == ForkSender /\ ~Barrier

\* The room is still in the sender's table: a resume updates it and queues a round.
InTable(r) == SenderAlive(r) \/ (QueuedRounds /\ txPhase[r] = "failed")

SenderRecvResume(r, s) ==
    /\ ctl[r][s] # <<>> /\ Head(ctl[r][s]).type = "resume"
    /\ IF InTable(r)
       THEN LET m == Head(ctl[r][s]) IN
            /\ txDst' = [txDst EXCEPT ![r][s] = m.blocks]
            /\ txAlloc' = [txAlloc EXCEPT ![r][s] = m.alloc]
            /\ txSent' = [txSent EXCEPT ![r][s] = m.sent]
            /\ txReady' = [txReady EXCEPT ![r][s] = TRUE]
            /\ txQueue' = IF QueuedRounds THEN [txQueue EXCEPT ![r] = @ + 1] ELSE txQueue
       ELSE UNCHANGED <<txDst, txAlloc, txSent, txReady, txQueue>>  \* room closed: dropped
    /\ ctl' = [ctl EXCEPT ![r][s] = Tail(@)]
    /\ UNCHANGED <<poolVars, rxVars, txPhase, txTok, txRound, txPartials, txPartial,
                   txDead, txLeft, st, wire, faultsUsed, errors>>


SendStatusAll(r, msgf) == st' = [st EXCEPT ![r] = [s \in Sess |-> Append(st[r][s], msgf[s])]]
NoWritesFor(r) == \A s \in Sess : \A w \in wire[s] : w.r # r

(***************************************************************************)
(* Sender: one round.  For every session, min(remaining, allocated) tokens *)
(* from offset sent into the destination blocks; the aux row (the total)   *)
(* goes into the first destination block of the first round only.         *)
(* The first round waits for every session's init; a later round waits     *)
(* for every session's resume with Barrier, for the first without it.     *)
(***************************************************************************)
RoundWrites(r, s) ==
    LET sent == txSent[r][s]
        tok == Min(Max(0, Total[r] - sent), txAlloc[r][s])
        dst == txDst[r][s]
        nb == NBlk(tok)
    IN {Write(r, dst[j],
              [k \in 1..Min(BlockSize, tok - (j - 1) * BlockSize) |->
                  <<r, sent + (j - 1) * BlockSize + k>>],
              IF sent = 0 /\ j = 1 THEN Total[r] ELSE 0) :
        j \in 1..Min(nb, Len(dst))}

RoundMayStart(r) ==
    \/ txPhase[r] = "init" /\ \A s \in Sess : txReady[r][s]
    \/ txPhase[r] = "await" /\ IF Barrier THEN \A s \in Sess : txReady[r][s]
                                           ELSE \E s \in Sess : txReady[r][s]

SenderStartRound(r) ==
    /\ ~QueuedRounds               \* (QueuedRounds: SenderQueuedRound, SenderWriteSession)
    /\ RoundMayStart(r)
    /\ txDead = {}                 \* (ForkSender: else SenderFailDead)
    /\ wire' = [s \in Sess |-> wire[s] \cup RoundWrites(r, s)]
    /\ txTok' = [txTok EXCEPT ![r] = [s \in Sess |->
                    Min(Max(0, Total[r] - txSent[r][s]), txAlloc[r][s])]]
    /\ txPartial' = [txPartial EXCEPT ![r] =
                    \E s \in Sess : Total[r] - txSent[r][s] > txAlloc[r][s]]
    /\ txReady' = [txReady EXCEPT ![r] = [s \in Sess |-> FALSE]]
    /\ txRound' = [txRound EXCEPT ![r] = @ + 1]
    /\ txPhase' = [txPhase EXCEPT ![r] = "writing"]
    /\ UNCHANGED <<poolVars, rxVars, txSent, txAlloc, txDst, txPartials, txDead, txQueue,
                   txLeft, ctl, st, faultsUsed, errors>>

(* A one-sided write lands: slots it covers are overwritten, others keep   *)
(* whatever was there; the aux row only when the write carries it.         *)
WriteLand(s, w) ==
    /\ w \in wire[s]
    /\ wire' = [wire EXCEPT ![s] = @ \ {w}]
    /\ data' = [data EXCEPT ![s][w.b] = [k \in Slots |->
                    IF k <= Len(w.toks) THEN w.toks[k] ELSE @[k]]]
    /\ aux' = [aux EXCEPT ![s][w.b] = IF w.aux > 0 THEN w.aux ELSE @]
    /\ UNCHANGED <<free, rxVars, txVars, ctl, st, faultsUsed, errors>>

(* Failed: fail the request and free whatever embedding_indices holds now. *)
FreeAll(r) == free' = [s \in Sess |-> free[s] \o rxBlocks[r][s]]

PollFailed(r) ==
    /\ rxPhase[r] \in {"queued", "aborting"}
    /\ CombinedStatus(r) = Failed
    /\ FreeAll(r)
    /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> <<>>]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "failed"]
    /\ UNCHANGED <<data, aux, rxStatus, rxDesign, rxCache, rxResumes, handed, txVars,
                   netVars, faultsUsed, errors>>

(* Prefill finished: the request's blocks go back to the pool. *)
PrefillDone(r) ==
    /\ rxPhase[r] = "prefill"
    /\ FreeAll(r)
    /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> <<>>]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "done"]
    /\ UNCHANGED <<data, aux, rxStatus, rxDesign, rxCache, rxResumes, handed, txVars,
                   netVars, faultsUsed, errors>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Faults.  A write error and an abort happen at most once per behaviour; *)
(* the encode side dies at most once, failing the open rooms one by one. *)
(***************************************************************************)
(***************************************************************************)
(* A data write fails.  Two rules, chosen by ForkSender:                   *)
(*                                                                         *)
(*  FALSE (the corrected design's rule, and every model before it): the   *)
(*  sender fails the room and tells every session Failed; nothing is      *)
(*  remembered for later rooms.                                           *)
(*                                                                         *)
(*  TRUE (the engine fork's sender, the same in all five historical       *)
(*  commits: conn_multimodal.py, transfer_worker): the write to one       *)
(*  session d fails; the sender adds d to failed_sessions (txDead), fails *)
(*  the room and sends Failed to session d ONLY; the room's other         *)
(*  sessions learn it through the language ranks' all-reduce of the poll *)
(*  (CombinedStatus).  The fork's writes are synchronous                  *)
(*  (batch_transfer_sync) and one room's sessions are written one after   *)
(*  the other, so at the error the sessions before d are written and the  *)
(*  ones after it never will be: no write of the room is left in flight.  *)
(*  The mark is cleared only when the language rank registers its buffers *)
(*  again, which the fork does only after the heartbeat declared the       *)
(*  encode side lost; the spec never clears it.                           *)
(***************************************************************************)
(* What a status names as the total: the embedding's length once a round *)
(* has started.  Before the first round the encode side may not have      *)
(* encoded the request yet, so an engine cannot know the length there: a *)
(* Failed sent before any round names round 0, offset 0 and total 0.      *)
KnownTotal(r) == IF txRound[r] = 0 THEN 0 ELSE Total[r]

FailedTo(r, d) == StMsg(Failed, txRound[r], txSent[r][d], KnownTotal(r))

(* A write error and an abort happen at most once in a behaviour: that    *)
(* bounds the models and lets EachFailureHasAFault count faults.  A real   *)
(* engine's log may show either more than once (one failing transfer call *)
(* can fail two rooms' writes), so trace validation overrides             *)
(* RepeatableFaults with the faults a log may repeat                      *)
(* (TraceResumeProtocol's TraceRepeatableFaults).                         *)
RepeatableFaults == {}
FaultAvailable(f) == f \in Faults /\ (f \notin faultsUsed \/ f \in RepeatableFaults)

\* QueuedRounds: the session whose batch is being written (one at a time).
Writing(r) == {s \in Sess : \E w \in wire[s] : w.r = r}

WriteError(r) ==
    /\ FaultAvailable("write_error")
    /\ txPhase[r] = "writing"
    /\ wire' = [s \in Sess |-> {w \in wire[s] : w.r # r}]
    /\ txPhase' = [txPhase EXCEPT ![r] = "failed"]
    /\ IF ForkSender
       THEN \E d \in IF QueuedRounds THEN Writing(r) ELSE Sess :
              /\ txDead' = txDead \cup {d}
              /\ st' = [st EXCEPT ![r][d] = Append(@, FailedTo(r, d))]
              \* QueuedRounds: the offset was advanced when d's batch was issued;
              \* a failed batch does not advance it, and the loop stops.
              /\ txSent' = IF QueuedRounds THEN [txSent EXCEPT ![r][d] = @ - txTok[r][d]]
                                           ELSE txSent
              /\ txLeft' = IF QueuedRounds THEN [txLeft EXCEPT ![r] = {}] ELSE txLeft
       ELSE /\ SendStatusAll(r, [s \in Sess |-> FailedTo(r, s)])
            /\ UNCHANGED <<txDead, txSent, txLeft>>
    /\ faultsUsed' = faultsUsed \cup {"write_error"}
    /\ UNCHANGED <<poolVars, rxVars, txAlloc, txDst, txReady, txTok, txRound,
                   txPartials, txPartial, txQueue, ctl, errors>>

(***************************************************************************)
(* ForkSender: a round of a room with a dead session.  The fork's         *)
(* transfer_worker walks the room's sessions in the order their inits     *)
(* arrived and writes each with a synchronous batch; at the first dead    *)
(* session d it fails the room, sends Failed to d only and stops.  So the  *)
(* live sessions before d (W) have been written, d and the rest have not,  *)
(* and no status goes to any but d (the others learn it by the           *)
(* all-reduce).  Any d and W can come first in some room's order, so the  *)
(* step chooses both.  W's writes land within the step (the batch has     *)
(* returned before the worker goes on); a write into a block its session  *)
(* does not hold is recorded ("write_into_unowned"), as                   *)
(* WritesOnlyIntoOwnedBlocks would see it in flight.                       *)
(***************************************************************************)
RoundTok(r, s) == Min(Max(0, Total[r] - txSent[r][s]), txAlloc[r][s])

\* Rank s's block contents after the writes ws (to distinct blocks) landed.
LandNow(s, ws) ==
    [b \in Blocks |-> IF \E w \in ws : w.b = b
                      THEN LET w == CHOOSE x \in ws : x.b = b IN
                           [k \in Slots |-> IF k <= Len(w.toks) THEN w.toks[k] ELSE data[s][b][k]]
                      ELSE data[s][b]]
LandNowAux(s, ws) ==
    [b \in Blocks |-> IF \E w \in ws : w.b = b /\ w.aux > 0
                      THEN (CHOOSE x \in ws : x.b = b /\ x.aux > 0).aux ELSE aux[s][b]]
Owns(r, s, w) == rxPhase[r] \in {"queued", "aborting"} /\ w.b \in Range(rxBlocks[r][s])

SenderFailDead(r) ==
    /\ ForkSender /\ ~QueuedRounds   \* (QueuedRounds: SenderWriteSession meets d)
    /\ txDead # {}
    /\ RoundMayStart(r)
    /\ \E d \in txDead, W \in SUBSET (Sess \ txDead) :
         LET ws(s) == IF s \in W THEN RoundWrites(r, s) ELSE {} IN
         /\ data' = [s \in Sess |-> IF s \in W THEN LandNow(s, ws(s)) ELSE data[s]]
         /\ aux' = [s \in Sess |-> IF s \in W THEN LandNowAux(s, ws(s)) ELSE aux[s]]
         /\ txSent' = [txSent EXCEPT ![r] = [s \in Sess |->
                          IF s \in W THEN txSent[r][s] + RoundTok(r, s) ELSE txSent[r][s]]]
         /\ st' = [st EXCEPT ![r][d] = Append(@, FailedTo(r, d))]
         /\ errors' = IF \E s \in W : \E w \in ws(s) : ~Owns(r, s, w)
                      THEN errors \cup {"write_into_unowned"} ELSE errors
    /\ txPhase' = [txPhase EXCEPT ![r] = "failed"]
    /\ UNCHANGED <<free, rxVars, txAlloc, txDst, txReady, txTok, txRound,
                   txPartials, txPartial, txDead, txQueue, txLeft, ctl, wire, faultsUsed>>

(***************************************************************************)
(* QueuedRounds: the worker takes the room's next round from the queue.    *)
(* The first round is the encode side's own (every init arrived); a later  *)
(* one was queued by a resume.  The worker runs one round of a room at a   *)
(* time: the last round's loop is over and its last batch has returned.   *)
(* No write is issued here: SenderWriteSession writes the sessions one by *)
(* one.  A failed room still runs its queued rounds (it is still in the    *)
(* sender's table); a room that succeeded (or whose encode side died)     *)
(* runs none.                                                              *)
(***************************************************************************)
SenderQueuedRound(r) ==
    /\ QueuedRounds
    /\ txLeft[r] = {} /\ NoWritesFor(r)
    /\ \/ txPhase[r] = "init" /\ \A s \in Sess : txReady[r][s]
          /\ UNCHANGED txQueue
       \/ txPhase[r] \in {"await", "failed"} /\ txQueue[r] > 0
          /\ txQueue' = [txQueue EXCEPT ![r] = @ - 1]
    /\ txLeft' = [txLeft EXCEPT ![r] = {s \in Sess : TRUE}]   \* (a set TLC prints as {1, 2})
    /\ txReady' = [txReady EXCEPT ![r] = [s \in Sess |-> FALSE]]
    /\ txTok' = [txTok EXCEPT ![r] = [s \in Sess |-> 0]]
    /\ txRound' = [txRound EXCEPT ![r] = @ + 1]
    /\ txPhase' = [txPhase EXCEPT ![r] = IF @ = "failed" THEN "failed" ELSE "writing"]
    /\ UNCHANGED <<poolVars, rxVars, txSent, txAlloc, txDst, txPartials, txPartial, txDead,
                   netVars, faultsUsed, errors>>

(***************************************************************************)
(* QueuedRounds: the running round reaches session s (any session it has  *)
(* not written yet: the order is the order of the room's inits, which the *)
(* spec does not keep), once the batch before it has returned.  A live     *)
(* session is written from its offset, allocation and blocks as they are  *)
(* NOW (a resume that arrived while the round wrote another session counts) *)
(* and its offset advances; the round is partial as this session's share  *)
(* is (the engine keeps the last session's).  A dead session fails the     *)
(* room, gets Failed (again, if the room had failed already) and stops the *)
(* loop: the sessions not reached yet are not written.  In a failed room   *)
(* the live sessions are still written (into blocks their ranks may have   *)
(* freed: WritesOnlyIntoOwnedBlocks).                                      *)
(***************************************************************************)
SenderWriteSession(r, s) ==
    /\ QueuedRounds
    /\ txPhase[r] \in {"writing", "failed"}     \* (not after the encode side died)
    /\ s \in txLeft[r] /\ NoWritesFor(r)
    /\ IF s \in txDead
       THEN /\ txPhase' = [txPhase EXCEPT ![r] = "failed"]
            /\ txLeft' = [txLeft EXCEPT ![r] = {}]
            /\ st' = [st EXCEPT ![r][s] = Append(@, FailedTo(r, s))]
            /\ UNCHANGED <<txSent, txTok, txPartial, wire>>
       ELSE /\ wire' = [wire EXCEPT ![s] = @ \cup RoundWrites(r, s)]
            /\ txTok' = [txTok EXCEPT ![r][s] = RoundTok(r, s)]
            /\ txSent' = [txSent EXCEPT ![r][s] = @ + RoundTok(r, s)]
            /\ txPartial' = [txPartial EXCEPT ![r] = Total[r] - txSent[r][s] > txAlloc[r][s]]
            /\ txLeft' = [txLeft EXCEPT ![r] = @ \ {s}]
            /\ UNCHANGED <<txPhase, st>>
    /\ UNCHANGED <<poolVars, rxVars, txAlloc, txDst, txReady, txRound, txPartials, txDead,
                   txQueue, ctl, faultsUsed, errors>>

(***************************************************************************)
(* The encode side dies: its writes stop; the language side's heartbeat   *)
(* checker sets every room on that peer Failed, one room per step.  The    *)
(* fault is the death; it may hit every open room, so unlike the other    *)
(* faults Heartbeat stays enabled once it fired (faultsUsed records only  *)
(* that it happened).  Each room fails at most once: txPhase goes "dead"  *)
(* with it.  A killed encode process logs one heartbeat failure per open  *)
(* request (the deployed fork's kill runs, docs/deployed-fork.md).        *)
(*                                                                         *)
(* The receiver decides, not the sender: a request still waiting may fail *)
(* whatever the sender's room is in, including a room the sender already  *)
(* closed (done or failed).  Its last status was sent but may die with    *)
(* the process before it leaves (a deployed kill run of the fork logged   *)
(* Success 0.09 ms before the kill, and the rank never received it).  In  *)
(* the spec that status stays in st[r]: a receiver may still take it,      *)
(* since a message that had left does arrive; the corrected design's      *)
(* Failed is final, so it changes nothing there.                           *)
(*                                                                         *)
(* The spec keeps a superset: it does not say that a dead encoder takes no *)
(* further step.  A room the heartbeat has not failed yet may still       *)
(* receive, write and send status, as if only some of the encode side's   *)
(* rooms had died.  Every safety and liveness property checked here holds *)
(* then of the real behaviours too (they are among the spec's); what the  *)
(* superset gives up is flagging a log where the sender acts after the    *)
(* death, which a killed process cannot write.  Guarding every sender     *)
(* step with "heartbeat" \notin faultsUsed would close that gap, but a   *)
(* room the dead encoder held and the receiver no longer waits for (an    *)
(* aborted one) would then never close (SenderRoomsClose), and Closed     *)
(* would have to count a dead encoder's rooms as closed.  Models without  *)
(* the heartbeat fault, and models of one request, have the same states   *)
(* as before.                                                              *)
(***************************************************************************)
Heartbeat(r) ==
    /\ "heartbeat" \in Faults
    /\ rxPhase[r] \in {"queued", "aborting"}
    /\ txPhase[r] # "dead"
    /\ wire' = [s \in Sess |-> {w \in wire[s] : w.r # r}]
    /\ txPhase' = [txPhase EXCEPT ![r] = "dead"]
    /\ rxStatus' = [rxStatus EXCEPT ![r] = [s \in Sess |-> Failed]]
    /\ faultsUsed' = faultsUsed \cup {"heartbeat"}
    /\ UNCHANGED <<poolVars, rxPhase, rxDesign, rxBlocks, rxCache, rxResumes, handed,
                   txSent, txAlloc,
                   txDst, txReady, txTok, txRound, txPartials, txPartial, txDead, txQueue,
                   txLeft, ctl, st, errors>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Safety properties                                                       *)
(***************************************************************************)
TypeOK ==   \* written with explicit quantifiers: TLC checks them fast
    /\ \A s \in Sess :
         /\ \A i \in DOMAIN free[s] : free[s][i] \in Blocks
         /\ \A b \in Blocks : /\ aux[s][b] \in 0..MaxTotal
                              /\ \A k \in Slots : data[s][b][k] \in Tok
         /\ \A w \in wire[s] : w.r \in Reqs /\ w.b \in Blocks
    /\ txDead \subseteq Sess /\ (~ForkSender => txDead = {})
    /\ \A r \in Reqs : /\ txQueue[r] \in Nat /\ txLeft[r] \subseteq Sess
                     /\ (~QueuedRounds => txQueue[r] = 0 /\ txLeft[r] = {})
    /\ \A r \in Reqs :
         /\ rxPhase[r] \in {"new", "queued", "aborting", "prefill", "done", "failed"}
         /\ txPhase[r] \in {"init", "writing", "await", "done", "failed", "dead"}
         /\ \A s \in Sess : /\ rxStatus[r][s] \in Failed..Success
                            /\ \A i \in DOMAIN rxBlocks[r][s] : rxBlocks[r][s][i] \in Blocks
                            /\ txSent[r][s] \in 0..Total[r]

\* No block is held by two requests on the same rank.
NoSharedBlock ==
    \A s \in Sess : \A r1, r2 \in Reqs :
        r1 # r2 => Held(r1, s) \cap Held(r2, s) = {}

\* No block is both in the free list and held by a request.
NoFreeAndHeld ==
    \A s \in Sess : \A r \in Reqs : Held(r, s) \cap Range(free[s]) = {}

\* No block is freed twice: the free list never holds a block twice.
NoDoubleFree ==
    \A s \in Sess : Cardinality(Range(free[s])) = Len(free[s])

\* Every write in flight targets a block its session currently holds.
WritesOnlyIntoOwnedBlocks ==
    /\ \A s \in Sess : \A w \in wire[s] :
         rxPhase[w.r] \in {"queued", "aborting"} /\ w.b \in Range(rxBlocks[w.r][s])
    /\ "write_into_unowned" \notin errors   \* a write that landed within its step (SenderFailDead)

\* No buffer is read while a write into one of its blocks is in flight.
NoReadDuringWrite == "read_during_write" \notin errors

\* What is handed to prefill is exactly the sender's embedding, in order.
HandedDataIsSource ==
    \A r \in Reqs : rxPhase[r] \in {"prefill", "done"} =>
        \A s \in Sess : handed[r][s] = Source(r)

\* A session resumes at most once for each round that ended partial.
AtMostOneResumePerRound ==
    \A r \in Reqs : \A s \in Sess : rxResumes[r][s] <= txPartials[r]

Safety == TypeOK /\ NoSharedBlock /\ NoFreeAndHeld /\ NoDoubleFree
          /\ WritesOnlyIntoOwnedBlocks /\ NoReadDuringWrite /\ HandedDataIsSource
          /\ AtMostOneResumePerRound

(***************************************************************************)
(* Containment of faults.  Not part of Safety: the historical designs'     *)
(* free_first resume fails a request on an allocation failure, with no    *)
(* fault at all (their models show other bugs); models that ask about     *)
(* faults name it.  A write error and an abort happen at most once and    *)
(* hit one room; a heartbeat loss hits each room it failed (txPhase       *)
(* "dead"), so no more requests may fail than rooms faults hit: a fault   *)
(* must not spread to requests it did not hit.  The fork's sender breaks  *)
(* it (ForkSender): after a write error every later request on that      *)
(* session fails, though both sides are alive.                            *)
(***************************************************************************)
FaultHits ==
    Cardinality(faultsUsed \ {"heartbeat"}) + Cardinality({r \in Reqs : txPhase[r] = "dead"})
EachFailureHasAFault ==
    Cardinality({r \in Reqs : rxPhase[r] = "failed"}) <= FaultHits

(***************************************************************************)
(* Liveness properties                                                     *)
(***************************************************************************)
Ended(r) == rxPhase[r] \in {"prefill", "done", "failed"}
Freed(r) == rxPhase[r] \in {"done", "failed"} /\ \A s \in Sess : rxBlocks[r][s] = <<>>
Closed(r) == txPhase[r] \in {"done", "failed", "dead"}

(* Ended, Freed and Closed are stable: no step leaves them (StableOutcomes  *)
(* checks it).  For a stable P, <>P is equivalent to []<>P, and for stable *)
(* P and Q, P ~> Q to []<>(~P \/ Q).  The properties are written in the    *)
(* []<> form because TLC checks that form without a tableau: the graph it  *)
(* searches for a counterexample is the state graph itself, not its        *)
(* product with the formula's automaton (seven times larger on             *)
(* corrected_any).                                                         *)
StableOutcomes ==
    [][\A r \in Reqs : /\ (Ended(r) => Ended(r)')
                      /\ (Freed(r) => Freed(r)')
                      /\ (Closed(r) => Closed(r)')]_vars

\* Every request eventually ends: handed to prefill, or failed.
EveryRequestEnds == \A r \in Reqs : []<>Ended(r)

\* Every block of an ended request eventually goes back to the pool
\* (Ended(r) ~> Freed(r), Ended and Freed being stable).
BlocksEventuallyFree == \A r \in Reqs : []<>(~Ended(r) \/ Freed(r))

\* No request waits forever for a round nobody asked for: the receiver
\* waits for data while the sender waits for a resume that is not coming.
DeadWait(r) == /\ rxPhase[r] = "queued"
               /\ txPhase[r] = "await"
               /\ \A s \in Sess : ctl[r][s] = <<>> /\ st[r][s] = <<>>
NoWaitForUnrequestedRound == \A r \in Reqs : []<>~DeadWait(r)

\* The sender eventually closes every room (success, failure, or death).
SenderRoomsClose == \A r \in Reqs : []<>Closed(r)

Liveness == EveryRequestEnds /\ BlocksEventuallyFree /\ NoWaitForUnrequestedRound
            /\ SenderRoomsClose

(***************************************************************************)
(* Liveness checked as safety, for models expected to succeed.            *)
(*                                                                         *)
(* Measure counts work done (phases reached, rounds started, resumes sent, *)
(* hazards recorded, faults used, and what the design's own state records: *)
(* MeasureWith's argument, the corrected design's rounds cached), weighted *)
(* by K, minus work pending (messages and writes in flight, a control      *)
(* message counting twice: consuming one may send one status). K exceeds   *)
(* what one step can put in flight, so every step that changes the state   *)
(* increases Measure: StepsMakeProgress (each design's module), an action  *)
(* property TLC checks on every transition. On a finite state graph a      *)
(* behaviour can therefore take only finitely many non-stuttering steps;   *)
(* under SpecProgress (each design's module) it then stutters forever in a *)
(* state where no protocol step is enabled (AtRest). So the four liveness  *)
(* properties hold on every behaviour of SpecProgress, hence of Spec,      *)
(* exactly when LivenessAtRest (each design's module) holds on every       *)
(* reachable state: <>P and []<>P reduce to P in the final state, and P ~> *)
(* Q to P => Q there (Ended and Freed are stable). TLC checks this as an   *)
(* invariant: no behaviour graph, no search for cycles. A liveness bug     *)
(* shows as a reachable state at rest that is not a goal (each of the six  *)
(* historical hangs of the quick set does: tests/test_models.py).          *)
(***************************************************************************)
RxRank(r) == CASE rxPhase[r] = "new" -> 0 [] rxPhase[r] = "queued" -> 1
               [] rxPhase[r] = "aborting" -> 2 [] rxPhase[r] = "prefill" -> 3
               [] rxPhase[r] \in {"done", "failed"} -> 4
TxRank(r) == 3 * txRound[r] + CASE txPhase[r] = "init" -> 0 [] txPhase[r] = "writing" -> 1
                                [] txPhase[r] = "await" -> 2
                                [] txPhase[r] \in {"done", "failed"} -> 3
                                [] txPhase[r] = "dead" -> 4   \* (Heartbeat closes closed rooms too)
Sum(f, n) == LET S[i \in 0..n] == IF i = 0 THEN 0 ELSE S[i - 1] + f[i] IN S[n]  \* f[1] + ... + f[n]
Done == Sum([r \in Reqs |-> RxRank(r) + TxRank(r)
                            + Sum([s \in Sess |-> rxResumes[r][s]], NSess)
                            + NSess * txRound[r] - Cardinality(txLeft[r])], NReq)
        + Cardinality(errors) + Cardinality(faultsUsed)
Pending == Sum([r \in Reqs |-> Sum([s \in Sess |-> 2 * Len(ctl[r][s]) + Len(st[r][s])], NSess)], NReq)
           + Sum([s \in Sess |-> Cardinality(wire[s])], NSess)
K == 2 * NSess + NSess * NBlocks + 1
\* designDone: the work the design's own state records (each design's module
\* defines Measure == MeasureWith(...) and StepsMakeProgress from it)
MeasureWith(designDone) == K * (Done + designDone) - Pending

\* What LivenessAtRest asks of a state where no protocol step is enabled
\* (each design's module defines LivenessAtRest with its own ProtocolNext).
EveryRequestEndsAtRest == \A r \in Reqs : Ended(r)
BlocksEventuallyFreeAtRest == \A r \in Reqs : Ended(r) => Freed(r)
NoWaitForUnrequestedRoundAtRest == \A r \in Reqs : ~DeadWait(r)
SenderRoomsCloseAtRest == \A r \in Reqs : Closed(r)
GoalsAtRest ==
    /\ EveryRequestEndsAtRest /\ BlocksEventuallyFreeAtRest
    /\ NoWaitForUnrequestedRoundAtRest /\ SenderRoomsCloseAtRest
=============================================================================
