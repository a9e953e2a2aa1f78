"""The properties of the spec (spec/ResumeBase.tla), by name: defined once here.

A TLC model selects them in its .cfg (INVARIANT / PROPERTY lines); the
conformance checker judges the same names on traces. tests/test_spec_properties.py
checks that every name here is an operator of the spec and the reverse.
"""

SAFETY = (
    "TypeOK",
    "NoSharedBlock",
    "NoFreeAndHeld",
    "NoDoubleFree",
    "WritesOnlyIntoOwnedBlocks",
    "NoReadDuringWrite",
    "HandedDataIsSource",
    "AtMostOneResumePerRound",
)

LIVENESS = (
    "EveryRequestEnds",
    "BlocksEventuallyFree",
    "NoWaitForUnrequestedRound",
    "SenderRoomsClose",
)

# Invariants a model names itself (not in every model's SAFETY): the fault
# containment of ResumeBase.tla (the historical free_first designs fail a
# request without a fault, so it cannot join SAFETY).
FAULT_CONTAINMENT = (
    "EachFailureHasAFault",
)

# What a model expected to succeed checks instead of the temporal properties
# (liveness as safety, see the end of ResumeBase.tla; LivenessAtRest and
# StepsMakeProgress are in each design's module, as they name that design's
# ProtocolNext and its own receiver state): an invariant and two action
# properties, which together imply LIVENESS under the spec's fairness.
LIVENESS_AS_SAFETY = (
    "LivenessAtRest",
    "StepsMakeProgress",
    "StableOutcomes",
)

# The induction check of the corrected design (ResumeCorrectedInductive.tla):
# the inductive invariant, and the conjunction of SAFETY it implies.
INDUCTIVE = (
    "IndInv",
    "Safety",
)
