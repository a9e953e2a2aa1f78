--------------------------- MODULE ResumeProtocol ---------------------------
(***************************************************************************)
(* The resume protocol of encode/language embedding transfer (SGLang EPD   *)
(* disaggregation), with the receiver's design chosen by the constant      *)
(* Variant.  See spec/README.md for the model explained to a protocol      *)
(* designer, and docs/model.md for the names shared with the reference     *)
(* implementation and the conformance checker.                            *)
(*                                                                         *)
(* Actors: the encode side (sender) holds every request's embedding; each  *)
(* language rank (a receiving session) owns a pool of fixed-size blocks    *)
(* and receives the embedding of each request into blocks it allocates.   *)
(* When the embedding is longer than the blocks given, the transfer goes   *)
(* in rounds and the receiver asks the sender to resume.                   *)
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
    Variant,     \* "flag", "indices", "sent_tokens", "cached_sent", "once", "corrected"
    ResumeOrder, \* "alloc_first" (retry on None) or "free_first" (fail on None)
    Barrier,     \* sender resumes a room only when every session resumed
    Faults       \* subset of {"write_error", "heartbeat", "abort"}

Reqs   == 1..NReq
Sess   == 1..NSess
Blocks == 1..NBlocks
Slots  == 1..BlockSize

Variants == {"flag", "indices", "sent_tokens", "cached_sent", "once", "corrected"}

ASSUME /\ NReq \in Nat \ {0} /\ NSess \in Nat \ {0}
       /\ BlockSize \in Nat \ {0} /\ NBlocks \in Nat \ {0}
       /\ Total \in [Reqs -> Nat \ {0}]
       /\ InitTokens \in Nat \ {0} /\ Cap \in Nat
       /\ Order \in {"fifo", "lifo", "any"}
       /\ Variant \in Variants
       /\ ResumeOrder \in {"alloc_first", "free_first"}
       /\ Barrier \in BOOLEAN
       /\ Faults \subseteq {"write_error", "heartbeat", "abort"}
       \* the corrected design includes the sender's barrier
       /\ Variant = "corrected" => Barrier

(* Status values, ordered as the engine orders them. *)
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
    rxStatus,   \* rxStatus[r][s]: status as known locally (monotone, Failed overwrites)
    rxInfo,     \* rxInfo[r][s]: [round, sent, total] of the last status (corrected design)
    rxBlocks,   \* rxBlocks[r][s]: current block list (the engine's embedding_indices)
    rxCache,    \* rxCache[r][s]: tokens cached from earlier rounds
    rxPSent,    \* rxPSent[r][s]: partial_sent_tokens
    rxPTotal,   \* rxPTotal[r][s]: cached total length (0 = nothing cached)
    rxFlag,     \* "flag": resume_triggered
    rxLastIdx,  \* "indices": last_resume_indices (<<>> = None)
    rxLastSent, \* "sent_tokens", "cached_sent": last_resume_at_sent_tokens (-1 = none)
    rxRound,    \* "corrected": last round whose data was cached
    rxResumes,  \* resumes sent so far (for AtMostOneResumePerRound)
    handed,     \* handed[r][s]: what was handed to prefill
    \* ---- sender, per room r and session s ----
    txPhase,    \* "init", "writing", "await", "done", "failed", "dead"
    txSent, txAlloc, txDst, txReady, txTok,
    txRound,    \* rounds started
    txPartials, \* rounds that ended partial
    txPartial,  \* the current round is partial
    \* ---- network ----
    ctl,        \* ctl[r][s]: language -> encode messages (init, resume, abort), FIFO
    st,         \* st[r][s]: encode -> language status messages, FIFO
    wire,       \* wire[s]: data writes in flight to rank s (they land in any order)
    \* ---- bookkeeping ----
    faultsUsed, \* each fault happens at most once per behaviour
    errors      \* history: hazards observed inside a step ("read_during_write")

rxVars == <<rxPhase, rxStatus, rxInfo, rxBlocks, rxCache, rxPSent, rxPTotal,
            rxFlag, rxLastIdx, rxLastSent, rxRound, rxResumes, handed>>
txVars == <<txPhase, txSent, txAlloc, txDst, txReady, txTok, txRound,
            txPartials, txPartial>>
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

(* Status update as the engine does it; the corrected design latches Failed. *)
NewStatus(old, new) ==
    IF new = Failed THEN Failed
    ELSE IF Variant = "corrected" /\ old = Failed THEN Failed
    ELSE Max(old, new)

(* Tokens the receiver asks for when it resumes with `remaining` to go. *)
ResumeTokens(remaining, nfree) ==
    LET capped == IF Cap = 0 THEN remaining ELSE Min(remaining, Cap * BlockSize)
    IN IF Variant = "corrected" THEN Min(capped, nfree * BlockSize) ELSE capped

CombinedStatus(r) == \* the all-reduce MIN over the sessions of a room
    CHOOSE m \in {rxStatus[r][s] : s \in Sess} : \A s \in Sess : m <= rxStatus[r][s]

Held(r, s) == IF rxPhase[r] \in {"queued", "aborting", "prefill"}
              THEN Range(rxBlocks[r][s]) ELSE {}

-----------------------------------------------------------------------------
(***************************************************************************)
(* Initial state                                                           *)
(***************************************************************************)
Init ==
    /\ free = [s \in Sess |-> [i \in 1..NBlocks |-> i]]
    /\ data = [s \in Sess |-> [b \in Blocks |-> [k \in Slots |-> NoTok]]]
    /\ aux = [s \in Sess |-> [b \in Blocks |-> 0]]
    /\ rxPhase = [r \in Reqs |-> "new"]
    /\ rxStatus = [r \in Reqs |-> [s \in Sess |-> Bootstrapping]]
    /\ rxInfo = [r \in Reqs |-> [s \in Sess |-> StMsg(Bootstrapping, 0, 0, 0)]]
    /\ rxBlocks = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ rxCache = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ rxPSent = [r \in Reqs |-> [s \in Sess |-> 0]]
    /\ rxPTotal = [r \in Reqs |-> [s \in Sess |-> 0]]
    /\ rxFlag = [r \in Reqs |-> [s \in Sess |-> FALSE]]
    /\ rxLastIdx = [r \in Reqs |-> [s \in Sess |-> <<>>]]
    /\ rxLastSent = [r \in Reqs |-> [s \in Sess |-> -1]]
    /\ rxRound = [r \in Reqs |-> [s \in Sess |-> 0]]
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
    /\ UNCHANGED <<data, aux, rxInfo, rxCache, rxPSent, rxPTotal, rxFlag, rxLastIdx,
                   rxLastSent, rxRound, rxResumes, handed, txVars, st, wire,
                   faultsUsed, errors>>

(***************************************************************************)
(* Sender: receives init / resume / abort messages.                        *)
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
                   st, wire, faultsUsed, errors>>

SenderRecvResume(r, s) ==
    /\ ctl[r][s] # <<>> /\ Head(ctl[r][s]).type = "resume"
    /\ IF SenderAlive(r)
       THEN LET m == Head(ctl[r][s]) IN
            /\ txDst' = [txDst EXCEPT ![r][s] = m.blocks]
            /\ txAlloc' = [txAlloc EXCEPT ![r][s] = m.alloc]
            /\ txSent' = [txSent EXCEPT ![r][s] = m.sent]
            /\ txReady' = [txReady EXCEPT ![r][s] = TRUE]
       ELSE UNCHANGED <<txDst, txAlloc, txSent, txReady>>  \* room closed: dropped
    /\ ctl' = [ctl EXCEPT ![r][s] = Tail(@)]
    /\ UNCHANGED <<poolVars, rxVars, txPhase, txTok, txRound, txPartials, txPartial,
                   st, wire, faultsUsed, errors>>

(* Corrected design only: abort is a message.  The sender answers it once   *)
(* none of its writes into that room is in flight, with status Failed.     *)
SendStatusAll(r, msgf) == st' = [st EXCEPT ![r] = [s \in Sess |-> Append(st[r][s], msgf[s])]]
NoWritesFor(r) == \A s \in Sess : \A w \in wire[s] : w.r # r

SenderRecvAbort(r, s) ==
    /\ ctl[r][s] # <<>> /\ Head(ctl[r][s]).type = "abort"
    /\ NoWritesFor(r)
    /\ ctl' = [ctl EXCEPT ![r][s] = Tail(@)]
    /\ IF txPhase[r] # "dead"
       THEN /\ txPhase' = [txPhase EXCEPT ![r] = IF @ = "done" THEN "done" ELSE "failed"]
            /\ st' = [st EXCEPT ![r][s] = Append(@, StMsg(Failed, txRound[r], txSent[r][s], Total[r]))]
       ELSE UNCHANGED <<txPhase, st>>
    /\ UNCHANGED <<poolVars, rxVars, txSent, txAlloc, txDst, txReady, txTok, txRound,
                   txPartials, txPartial, wire, faultsUsed, errors>>

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

SenderStartRound(r) ==
    /\ \/ txPhase[r] = "init" /\ \A s \in Sess : txReady[r][s]
       \/ txPhase[r] = "await" /\ IF Barrier THEN \A s \in Sess : txReady[r][s]
                                              ELSE \E s \in Sess : txReady[r][s]
    /\ wire' = [s \in Sess |-> wire[s] \cup RoundWrites(r, s)]
    /\ txTok' = [txTok EXCEPT ![r] = [s \in Sess |->
                    Min(Max(0, Total[r] - txSent[r][s]), txAlloc[r][s])]]
    /\ txPartial' = [txPartial EXCEPT ![r] =
                    \E s \in Sess : Total[r] - txSent[r][s] > txAlloc[r][s]]
    /\ txReady' = [txReady EXCEPT ![r] = [s \in Sess |-> FALSE]]
    /\ txRound' = [txRound EXCEPT ![r] = @ + 1]
    /\ txPhase' = [txPhase EXCEPT ![r] = "writing"]
    /\ UNCHANGED <<poolVars, rxVars, txSent, txAlloc, txDst, txPartials, ctl, st,
                   faultsUsed, errors>>

(* A one-sided write lands: slots it covers are overwritten, others keep   *)
(* whatever was there; the aux row only when the write carries it.         *)
WriteLand(s, w) ==
    /\ w \in wire[s]
    /\ wire' = [wire EXCEPT ![s] = @ \ {w}]
    /\ data' = [data EXCEPT ![s][w.b] = [k \in Slots |->
                    IF k <= Len(w.toks) THEN w.toks[k] ELSE @[k]]]
    /\ aux' = [aux EXCEPT ![s][w.b] = IF w.aux > 0 THEN w.aux ELSE @]
    /\ UNCHANGED <<free, rxVars, txVars, ctl, st, faultsUsed, errors>>

(* Every write of the room has completed: sent += tokens; the room's       *)
(* status becomes Transferring (partial) or Success and goes to every      *)
(* session.  Historical designs send the status alone; the corrected one   *)
(* adds the round number, the session's new offset and the total.         *)
SenderEndRound(r) ==
    /\ txPhase[r] = "writing"
    /\ NoWritesFor(r)
    /\ LET newSent == [s \in Sess |-> txSent[r][s] + txTok[r][s]]
           status == IF txPartial[r] THEN Transferring ELSE Success
       IN /\ txSent' = [txSent EXCEPT ![r] = newSent]
          /\ SendStatusAll(r, [s \in Sess |->
                IF Variant = "corrected"
                THEN StMsg(status, txRound[r], newSent[s], Total[r])
                ELSE StMsg(status, 0, 0, 0)])
    /\ txPhase' = [txPhase EXCEPT ![r] = IF txPartial[r] THEN "await" ELSE "done"]
    /\ txPartials' = [txPartials EXCEPT ![r] = IF txPartial[r] THEN @ + 1 ELSE @]
    /\ UNCHANGED <<poolVars, rxVars, txAlloc, txDst, txReady, txTok, txRound, txPartial,
                   ctl, wire, faultsUsed, errors>>

(* A status message arrives at a language rank. *)
DeliverStatus(r, s) ==
    /\ st[r][s] # <<>>
    /\ LET m == Head(st[r][s]) IN
       /\ rxStatus' = [rxStatus EXCEPT ![r][s] = NewStatus(@, m.status)]
       /\ rxInfo' = [rxInfo EXCEPT ![r][s] = IF m.round >= @.round THEN m ELSE @]
    /\ st' = [st EXCEPT ![r][s] = Tail(@)]
    /\ UNCHANGED <<poolVars, rxPhase, rxBlocks, rxCache, rxPSent, rxPTotal, rxFlag,
                   rxLastIdx, rxLastSent, rxRound, rxResumes, handed, txVars, ctl, wire,
                   faultsUsed, errors>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Receiver: the scheduler's poll of one request.  The engine's scheduler  *)
(* runs the same loop on every language rank in lockstep (SPMD), on the   *)
(* MIN of the ranks' statuses, so one step covers all sessions.           *)
(***************************************************************************)

\* Handing over on Success: earlier rounds' cache + this round's blocks.
HandOver(r, s) ==
    LET bs == rxBlocks[r][s] IN
    IF Variant = "corrected"
    THEN rxCache[r][s] \o ReadBuf(s, bs, rxInfo[r][s].total - Len(rxCache[r][s]))
    ELSE IF rxPTotal[r][s] > 0
         THEN rxCache[r][s] \o ReadBuf(s, bs, rxPTotal[r][s] - rxPSent[r][s])
         ELSE ReadBuf(s, bs, AuxOf(s, bs))

PollSuccess(r) ==
    /\ rxPhase[r] = "queued"
    /\ CombinedStatus(r) = Success
    /\ handed' = [handed EXCEPT ![r] = [s \in Sess |-> HandOver(r, s)]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "prefill"]
    /\ errors' = IF \E s \in Sess : WriteInFlight(s, rxBlocks[r][s])
                 THEN errors \cup {"read_during_write"} ELSE errors
    /\ UNCHANGED <<poolVars, rxStatus, rxInfo, rxBlocks, rxCache, rxPSent, rxPTotal,
                   rxFlag, rxLastIdx, rxLastSent, rxRound, rxResumes, txVars, netVars,
                   faultsUsed>>

\* Failed: fail the request and free whatever embedding_indices holds now.
FreeAll(r) == free' = [s \in Sess |-> free[s] \o rxBlocks[r][s]]

PollFailed(r) ==
    /\ rxPhase[r] \in {"queued", "aborting"}
    /\ CombinedStatus(r) = Failed
    /\ FreeAll(r)
    /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> <<>>]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "failed"]
    /\ UNCHANGED <<data, aux, rxStatus, rxInfo, rxCache, rxPSent, rxPTotal, rxFlag,
                   rxLastIdx, rxLastSent, rxRound, rxResumes, handed, txVars, netVars,
                   faultsUsed, errors>>

(***************************************************************************)
(* Transferring, historical designs.  What each session computes:          *)
(*   reads:  does it read the current blocks now?                          *)
(*   total, sent: the total length and the tokens it believes it has.      *)
(*   skip:   the design's "already resumed" test.                          *)
(***************************************************************************)
Got(r, s) == ReadBuf(s, rxBlocks[r][s], AuxOf(s, rxBlocks[r][s]))

\* Does the design read the current blocks on this poll?  (The "already
\* resumed" tests of flag, indices and once come before the read.)
ReadsNow(r, s) ==
    CASE Variant = "flag" -> ~rxFlag[r][s]
      [] Variant = "indices" -> rxLastIdx[r][s] # rxBlocks[r][s]
      [] Variant = "once" -> rxCache[r][s] = <<>>
      [] Variant = "sent_tokens" -> TRUE
      [] Variant = "cached_sent" -> rxPTotal[r][s] = 0

TotalSeen(r, s) ==
    IF Variant \in {"sent_tokens", "cached_sent"} /\ rxPTotal[r][s] > 0
    THEN rxPTotal[r][s] ELSE AuxOf(s, rxBlocks[r][s])

SentSeen(r, s) ==
    LET n == Len(Got(r, s)) IN
    CASE Variant = "sent_tokens" /\ rxPTotal[r][s] > 0 ->
            IF n > 0 THEN rxPSent[r][s] + n ELSE rxPSent[r][s]
      [] Variant = "cached_sent" /\ rxPTotal[r][s] > 0 -> rxPSent[r][s]
      [] OTHER -> n

AlreadyResumed(r, s) ==
    CASE Variant = "flag" -> rxFlag[r][s]
      [] Variant = "indices" -> rxLastIdx[r][s] = rxBlocks[r][s]
      [] Variant = "once" -> rxCache[r][s] # <<>>
      [] Variant \in {"sent_tokens", "cached_sent"} ->
            SentSeen(r, s) = rxLastSent[r][s] /\ SentSeen(r, s) > 0

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
NewPTotal(r, s) == IF rxPTotal[r][s] = 0 THEN TotalSeen(r, s) ELSE rxPTotal[r][s]
NewPSent(r, s) ==
    IF Variant \in {"sent_tokens", "cached_sent"} \/ rxCache[r][s] = <<>>
    THEN SentSeen(r, s) ELSE rxPSent[r][s]

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
    /\ Variant # "corrected"
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
       /\ rxPTotal' = [rxPTotal EXCEPT ![r] = [s \in Sess |->
                        IF acts(s) THEN NewPTotal(r, s) ELSE rxPTotal[r][s]]]
       /\ rxPSent' = [rxPSent EXCEPT ![r] = [s \in Sess |->
                        IF acts(s) THEN NewPSent(r, s) ELSE rxPSent[r][s]]]
       /\ errors' = errors \cup UNION {HazardAt(r, s) : s \in Sess}
       /\ IF fails
          THEN /\ free' = [s \in Sess |-> free[s] \o rxBlocks[r][s]
                              \o (IF o[s].kind = "fail" THEN rxBlocks[r][s] ELSE <<>>)]
               /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> <<>>]]
               /\ rxPhase' = [rxPhase EXCEPT ![r] = "failed"]
               /\ UNCHANGED <<rxFlag, rxLastIdx, rxLastSent, ctl, rxResumes>>
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
               \* the design's record of "already resumed"
               /\ rxFlag' = [rxFlag EXCEPT ![r] = [s \in Sess |->
                               IF acts(s) /\ Variant = "flag" THEN TRUE ELSE rxFlag[r][s]]]
               /\ rxLastIdx' = [rxLastIdx EXCEPT ![r] = [s \in Sess |->
                                  IF acts(s) /\ Variant = "indices" THEN o[s].c[1]
                                  ELSE rxLastIdx[r][s]]]
               /\ rxLastSent' = [rxLastSent EXCEPT ![r] = [s \in Sess |->
                                   IF acts(s) /\ Variant \in {"sent_tokens", "cached_sent"}
                                   THEN SentSeen(r, s) ELSE rxLastSent[r][s]]]
               /\ UNCHANGED rxPhase
    /\ UNCHANGED <<data, aux, rxStatus, rxInfo, rxRound, handed, txVars, st, wire,
                   faultsUsed>>

(***************************************************************************)
(* Transferring, corrected design.  A status names its round k, the        *)
(* session's offset after it and the total.  For each round it sees end    *)
(* partial, a session (1) caches this round's tokens, known exactly from   *)
(* the status, (2) frees the blocks they came from (nothing is in flight:  *)
(* the round has ended), (3) allocates as many blocks as are free, up to   *)
(* what remains (at least one; otherwise it retries on a later poll, with  *)
(* no blocks held), (4) resumes with round k.                              *)
(***************************************************************************)
CorrectedCache(r, s) ==
    LET info == rxInfo[r][s]
        fresh == ReadBuf(s, rxBlocks[r][s], info.sent - Len(rxCache[r][s]))
    IN /\ info.round > rxRound[r][s]
       /\ info.status = Transferring
       /\ rxCache' = [rxCache EXCEPT ![r][s] = @ \o fresh]
       /\ rxRound' = [rxRound EXCEPT ![r][s] = info.round]
       /\ free' = [free EXCEPT ![s] = @ \o rxBlocks[r][s]]
       /\ rxBlocks' = [rxBlocks EXCEPT ![r][s] = <<>>]
       /\ errors' = IF WriteInFlight(s, rxBlocks[r][s])
                    THEN errors \cup {"read_during_write"} ELSE errors
       /\ UNCHANGED <<ctl, rxResumes>>

CorrectedResume(r, s) ==
    LET info == rxInfo[r][s]
        need == ResumeTokens(info.total - info.sent, Len(free[s]))
    IN /\ rxRound[r][s] = info.round
       /\ rxResumes[r][s] < rxRound[r][s]     \* cached round k, resume k not sent yet
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
       /\ UNCHANGED <<rxCache, rxRound, errors>>

PollTransferringCorrected(r, s) ==
    /\ Variant = "corrected"
    /\ rxPhase[r] = "queued"
    /\ CombinedStatus(r) = Transferring
    /\ CorrectedCache(r, s) \/ CorrectedResume(r, s)
    /\ UNCHANGED <<data, aux, rxPhase, rxStatus, rxInfo, rxPSent, rxPTotal, rxFlag,
                   rxLastIdx, rxLastSent, handed, txVars, st, wire, faultsUsed>>

(* A poll that reads the buffer and decides to wait changes nothing, except *)
(* when the read overlaps a write in flight: then the hazard is recorded.   *)
PollReadOnly(r, s) ==
    /\ Variant # "corrected"
    /\ rxPhase[r] = "queued"
    /\ CombinedStatus(r) = Transferring
    /\ ~WantsResume(r, s)
    /\ ReadHazard(r, s) # errors
    /\ errors' = ReadHazard(r, s)
    /\ UNCHANGED <<poolVars, rxPhase, rxStatus, rxInfo, rxBlocks, rxCache, rxPSent,
                   rxPTotal, rxFlag, rxLastIdx, rxLastSent, rxRound, rxResumes, handed,
                   txVars, netVars, faultsUsed>>

ReceiverPoll(r) ==
    \/ PollSuccess(r)
    \/ PollFailed(r)
    \/ PollTransferringHistorical(r)
    \/ \E s \in Sess : PollTransferringCorrected(r, s)
    \/ \E s \in Sess : PollReadOnly(r, s)

(* Prefill finished: the request's blocks go back to the pool. *)
PrefillDone(r) ==
    /\ rxPhase[r] = "prefill"
    /\ FreeAll(r)
    /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> <<>>]]
    /\ rxPhase' = [rxPhase EXCEPT ![r] = "done"]
    /\ UNCHANGED <<data, aux, rxStatus, rxInfo, rxCache, rxPSent, rxPTotal, rxFlag,
                   rxLastIdx, rxLastSent, rxRound, rxResumes, handed, txVars, netVars,
                   faultsUsed, errors>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Faults, each at most once per behaviour.                                *)
(***************************************************************************)
\* A data write fails: the sender fails the room and tells every session.
WriteError(r) ==
    /\ "write_error" \in Faults \ faultsUsed
    /\ txPhase[r] = "writing"
    /\ wire' = [s \in Sess |-> {w \in wire[s] : w.r # r}]
    /\ txPhase' = [txPhase EXCEPT ![r] = "failed"]
    /\ SendStatusAll(r, [s \in Sess |-> StMsg(Failed, txRound[r], txSent[r][s], Total[r])])
    /\ faultsUsed' = faultsUsed \cup {"write_error"}
    /\ UNCHANGED <<poolVars, rxVars, txSent, txAlloc, txDst, txReady, txTok, txRound,
                   txPartials, txPartial, ctl, errors>>

\* The encode side dies: its writes stop; the language side's heartbeat
\* checker sets every room on that peer Failed (we model one room's view).
Heartbeat(r) ==
    /\ "heartbeat" \in Faults \ faultsUsed
    /\ rxPhase[r] \in {"queued", "aborting"}
    /\ SenderAlive(r)
    /\ wire' = [s \in Sess |-> {w \in wire[s] : w.r # r}]
    /\ txPhase' = [txPhase EXCEPT ![r] = "dead"]
    /\ rxStatus' = [rxStatus EXCEPT ![r] = [s \in Sess |-> Failed]]
    /\ faultsUsed' = faultsUsed \cup {"heartbeat"}
    /\ UNCHANGED <<poolVars, rxPhase, rxInfo, rxBlocks, rxCache, rxPSent, rxPTotal, rxFlag,
                   rxLastIdx, rxLastSent, rxRound, rxResumes, handed, txSent, txAlloc,
                   txDst, txReady, txTok, txRound, txPartials, txPartial, ctl, st, errors>>

\* The receiver aborts a request.  Historical designs: fail it locally and
\* free its blocks; nothing is sent.  Corrected: send abort on every
\* session and keep the blocks until the sender's Failed arrives.
Abort(r) ==
    /\ "abort" \in Faults \ faultsUsed
    /\ rxPhase[r] = "queued"
    /\ faultsUsed' = faultsUsed \cup {"abort"}
    /\ IF Variant = "corrected"
       THEN /\ rxPhase' = [rxPhase EXCEPT ![r] = "aborting"]
            /\ ctl' = [ctl EXCEPT ![r] = [s \in Sess |-> Append(ctl[r][s], CtlMsg("abort", <<>>, 0, 0, 0))]]
            /\ UNCHANGED <<free, rxBlocks>>
       ELSE /\ FreeAll(r)
            /\ rxBlocks' = [rxBlocks EXCEPT ![r] = [s \in Sess |-> <<>>]]
            /\ rxPhase' = [rxPhase EXCEPT ![r] = "failed"]
            /\ UNCHANGED ctl
    /\ UNCHANGED <<data, aux, rxStatus, rxInfo, rxCache, rxPSent, rxPTotal, rxFlag,
                   rxLastIdx, rxLastSent, rxRound, rxResumes, handed, txVars, st, wire, errors>>

-----------------------------------------------------------------------------
\* The protocol's own steps: everything but the faults.
ProtocolNext ==
    \/ \E r \in Reqs :
         \/ ReceiverInit(r) \/ ReceiverPoll(r) \/ PrefillDone(r)
         \/ SenderStartRound(r) \/ SenderEndRound(r)
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
         \/ SenderStartRound(r) \/ SenderEndRound(r)
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
(* property that holds under SpecProgress holds under Spec.  TLC checks    *)
(* one fairness condition instead of 5*NReq + 4*NReq*NSess + NSess: that *)
(* and the []<> form below make the deep set's liveness affordable.  Models *)
(* that must show a liveness bug use Spec: under the weaker condition a    *)
(* counterexample could starve one request while another makes progress. *)
(***************************************************************************)
SpecProgress == Init /\ [][Next]_vars /\ WF_vars(ProtocolNext)

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
    \A s \in Sess : \A w \in wire[s] :
        rxPhase[w.r] \in {"queued", "aborting"} /\ w.b \in Range(rxBlocks[w.r][s])

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
(* Measure counts work done (phases reached, rounds started, rounds        *)
(* cached, resumes sent, hazards recorded, faults used), weighted by K,    *)
(* minus work pending (messages and writes in flight, a control message   *)
(* counting twice: consuming one may send one status).  K exceeds what    *)
(* one step can put in flight, so every step that changes the state       *)
(* increases Measure: StepsMakeProgress, an action property TLC checks on *)
(* every transition.  On a finite state graph a behaviour can therefore   *)
(* take only finitely many non-stuttering steps; under SpecProgress it    *)
(* then stutters forever in a state where no protocol step is enabled     *)
(* (AtRest).  So the four liveness properties hold on every behaviour of *)
(* SpecProgress, hence of Spec, exactly when LivenessAtRest holds on every *)
(* reachable state: <>P and []<>P reduce to P in the final state, and      *)
(* P ~> Q to P => Q there (Ended and Freed are stable).  TLC checks this  *)
(* as an invariant: no behaviour graph, no search for cycles.  A liveness *)
(* bug shows as a reachable state at rest that is not a goal (each of the *)
(* six historical hangs of the quick set does: tests/test_models.py).      *)
(***************************************************************************)
RxRank(r) == CASE rxPhase[r] = "new" -> 0 [] rxPhase[r] = "queued" -> 1
               [] rxPhase[r] = "aborting" -> 2 [] rxPhase[r] = "prefill" -> 3
               [] rxPhase[r] \in {"done", "failed"} -> 4
TxRank(r) == 3 * txRound[r] + CASE txPhase[r] = "init" -> 0 [] txPhase[r] = "writing" -> 1
                                [] txPhase[r] = "await" -> 2
                                [] txPhase[r] \in {"done", "failed", "dead"} -> 3
Sum(f, n) == LET S[i \in 0..n] == IF i = 0 THEN 0 ELSE S[i - 1] + f[i] IN S[n]  \* f[1] + ... + f[n]
Done == Sum([r \in Reqs |-> RxRank(r) + TxRank(r)
                            + Sum([s \in Sess |-> rxRound[r][s] + rxResumes[r][s]], NSess)], NReq)
        + Cardinality(errors) + Cardinality(faultsUsed)
Pending == Sum([r \in Reqs |-> Sum([s \in Sess |-> 2 * Len(ctl[r][s]) + Len(st[r][s])], NSess)], NReq)
           + Sum([s \in Sess |-> Cardinality(wire[s])], NSess)
K == 2 * NSess + NSess * NBlocks + 1
Measure == K * Done - Pending
StepsMakeProgress == [][Measure' > Measure]_vars

AtRest == ~ENABLED <<ProtocolNext>>_vars
EveryRequestEndsAtRest == \A r \in Reqs : Ended(r)
BlocksEventuallyFreeAtRest == \A r \in Reqs : Ended(r) => Freed(r)
NoWaitForUnrequestedRoundAtRest == \A r \in Reqs : ~DeadWait(r)
SenderRoomsCloseAtRest == \A r \in Reqs : Closed(r)
\* One invariant, so that TLC evaluates ENABLED once per state; a violation's
\* last state shows which of the four failed.
LivenessAtRest ==
    ENABLED <<ProtocolNext>>_vars
    \/ /\ EveryRequestEndsAtRest /\ BlocksEventuallyFreeAtRest
       /\ NoWaitForUnrequestedRoundAtRest /\ SenderRoomsCloseAtRest
=============================================================================
