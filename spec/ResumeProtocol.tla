--------------------------- MODULE ResumeProtocol ---------------------------
(***************************************************************************)
(* Either design of the resume protocol, chosen by the constant Variant,   *)
(* under one set of names: for trace validation (TraceResumeProtocol.tla   *)
(* EXTENDS this module; a trace names its design in its cfg) and for any  *)
(* tool that takes a design as a parameter.  Nothing is specified here:    *)
(* each step below is the step of the module of the chosen design,         *)
(* ResumeCorrected.tla or ResumeHistorical.tla (see ResumeBase.tla).  The  *)
(* steps those two share (ReceiverInit, SenderRecvInit, SenderRecvResume,  *)
(* SenderStartRound, SenderFailDead, WriteLand, PollFailed, PrefillDone,  *)
(* WriteError, Heartbeat) come from ResumeBase itself.  The variable       *)
(* rxDesign holds the chosen design's own receiver state, in that design's *)
(* shape (its Init).  The TLC models do not use this module: each EXTENDS  *)
(* the module of the design it checks.                                     *)
(***************************************************************************)
EXTENDS ResumeBase

CONSTANTS
    Variant,     \* "flag", "indices", "sent_tokens", "cached_sent", "once", "corrected"
    ResumeOrder  \* historical designs: "alloc_first" or "free_first"

Variants == {"flag", "indices", "sent_tokens", "cached_sent", "once", "corrected"}

ASSUME /\ Variant \in Variants
       /\ ResumeOrder \in {"alloc_first", "free_first"}
       \* the corrected design includes the sender's barrier
       /\ Variant = "corrected" => Barrier

IsCorrected == Variant = "corrected"

(* The instances' ASSUMEs must hold whatever the design: each is used only *)
(* when Variant names it, so the other gets harmless stand-ins.            *)
C == INSTANCE ResumeCorrected WITH Barrier <- Barrier \/ ~IsCorrected
H == INSTANCE ResumeHistorical WITH Variant <- IF IsCorrected THEN "once" ELSE Variant

Init == IF IsCorrected THEN C!Init ELSE H!Init
NewStatus(old, new) == IF IsCorrected THEN C!NewStatus(old, new) ELSE H!NewStatus(old, new)
SenderEndRound(r) == IF IsCorrected THEN C!SenderEndRound(r) ELSE H!SenderEndRound(r)
DeliverStatus(r, s) == IF IsCorrected THEN C!DeliverStatus(r, s) ELSE H!DeliverStatus(r, s)
PollSuccess(r) == IF IsCorrected THEN C!PollSuccess(r) ELSE H!PollSuccess(r)
Abort(r) == IF IsCorrected THEN C!Abort(r) ELSE H!Abort(r)
ReceiverPoll(r) == IF IsCorrected THEN C!ReceiverPoll(r) ELSE H!ReceiverPoll(r)
\* steps of one design only
SenderRecvAbort(r, s) == IsCorrected /\ C!SenderRecvAbort(r, s)
PollTransferringCorrected(r, s) == IsCorrected /\ C!PollTransferringCorrected(r, s)
PollTransferringHistorical(r) == ~IsCorrected /\ H!PollTransferringHistorical(r)
PollReadOnly(r, s) == ~IsCorrected /\ H!PollReadOnly(r, s)

Next == IF IsCorrected THEN C!Next ELSE H!Next
ProtocolNext == IF IsCorrected THEN C!ProtocolNext ELSE H!ProtocolNext
=============================================================================
