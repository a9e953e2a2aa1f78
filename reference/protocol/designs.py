"""The one table of receiver designs, and the status values.

Every part of resumespec that needs to know "which design is this commit",
"how does this design order its resume", "does its status message carry the
round", "does Failed latch" or "is abort a message" imports it from here:
the model generator (``spec/models/generate.py``), the reference
implementation, the conformance checkers and the engine-fork adapters.

A design is the receiver's answer to "have I already resumed this round?",
plus the few engine facts that travel with it:

============  ===========  ============  =======  ==============  =========  ==========
variant       commit       resume order  barrier  status fields   Failed     abort
============  ===========  ============  =======  ==============  =========  ==========
flag          d1bceb411    free_first    no       status only     overwrite  local
indices       7a7a71977    free_first    no       status only     overwrite  local
sent_tokens   caff70bd5    free_first    no       status only     overwrite  local
cached_sent   2141e0842    free_first    no       status only     overwrite  local
once          cca20b094    alloc_first   yes      status only     overwrite  local
corrected     (ours)       alloc_first   yes      round/sent/tot  latches    message
============  ===========  ============  =======  ==============  =========  ==========

"barrier" is what the engine's sender did at that commit (the spec's models
may combine any design with either ``Barrier``; the corrected design
requires it).  "Failed overwrite" means the status update is
``max(old, new)`` except that a Failed always wins, yet a later non-Failed
status can lift the session out of Failed again (the spec's ``NewStatus``);
"latches" means Failed stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Status(IntEnum):
    """The engine's status values, in the engine's order (MIN is the
    all-reduce the scheduler does over the ranks of a request)."""

    FAILED = 0
    BOOTSTRAPPING = 1
    WAITING_FOR_INPUT = 2
    TRANSFERRING = 3
    SUCCESS = 4

    @property
    def label(self) -> str:
        """The engine's (and the trace format's) name: ``"WaitingForInput"``."""
        return STATUSES[self.value]


# status names as the engine and the trace format spell them, by rank
STATUSES: tuple[str, ...] = ("Failed", "Bootstrapping", "WaitingForInput", "Transferring", "Success")
STATUS_RANK: dict[str, int] = {name: i for i, name in enumerate(STATUSES)}


class ResumeOrder(StrEnum):
    """How a resume orders its allocation and the free of the old blocks."""

    ALLOC_FIRST = "alloc_first"   # allocate; None -> retry on a later poll; then free old
    FREE_FIRST = "free_first"     # free old; allocate; None -> fail the request


class AllocOrder(StrEnum):
    """Which free blocks the allocator hands out (the spec's ``Order``)."""

    FIFO = "fifo"
    LIFO = "lifo"
    ANY = "any"


@dataclass(frozen=True)
class Design:
    """One receiver design and the engine facts that go with it."""

    variant: str                 # the spec's Variant
    commit: str | None           # engine fork commit (short id); None for ours
    resume_order: ResumeOrder    # the engine's order at that commit
    barrier: bool                # the engine's sender waits for every session's resume
    status_carries_round: bool   # status messages carry (round, sent, total)
    failed_latches: bool         # a Failed status stays Failed
    abort_is_message: bool       # abort goes to the sender; blocks freed on its Failed
    summary: str                 # the "have I resumed?" test, in one line

    @property
    def historical(self) -> bool:
        return self.commit is not None


DESIGNS: tuple[Design, ...] = (
    Design("flag", "d1bceb411", ResumeOrder.FREE_FIRST, False, False, False, False,
           "a boolean resume_triggered: resume at most once"),
    Design("indices", "7a7a71977", ResumeOrder.FREE_FIRST, False, False, False, False,
           "current blocks differ from last_resume_indices"),
    Design("sent_tokens", "caff70bd5", ResumeOrder.FREE_FIRST, False, False, False, False,
           "partial_sent + tokens read now differs from last_resume_at_sent_tokens"),
    Design("cached_sent", "2141e0842", ResumeOrder.FREE_FIRST, False, False, False, False,
           "as sent_tokens, but after the first resume the cached partial_sent"),
    Design("once", "cca20b094", ResumeOrder.ALLOC_FIRST, True, False, False, False,
           "resume only if nothing is cached yet (mainline)"),
    Design("corrected", None, ResumeOrder.ALLOC_FIRST, True, True, True, True,
           "resume exactly once per round seen to end partial (status names the round)"),
)

BY_VARIANT: dict[str, Design] = {d.variant: d for d in DESIGNS}
BY_COMMIT: dict[str, Design] = {d.commit: d for d in DESIGNS if d.commit is not None}

VARIANTS: tuple[str, ...] = tuple(d.variant for d in DESIGNS)
HISTORICAL: tuple[str, ...] = tuple(d.variant for d in DESIGNS if d.historical)
RESUME_ORDERS: tuple[str, ...] = tuple(o.value for o in ResumeOrder)
ALLOC_ORDERS: tuple[str, ...] = tuple(o.value for o in AllocOrder)
FAULTS: tuple[str, ...] = ("write_error", "heartbeat", "abort")

# variant -> the engine's resume order, as plain strings
ENGINE_RESUME_ORDER: dict[str, str] = {d.variant: d.resume_order.value for d in DESIGNS}
# variant -> engine commit, as the model notes print it
COMMIT_OF: dict[str, str] = {d.variant: d.commit or "none (our design)" for d in DESIGNS}


def design(variant: str) -> Design:
    """The design of a variant name; ValueError naming the known ones."""
    try:
        return BY_VARIANT[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}") from None


def design_of_commit(commit: str) -> Design:
    """The design of an engine commit id (7+ hex digits, prefix either way); KeyError if none."""
    c = commit.strip().lower()
    for short, d in BY_COMMIT.items():
        if len(c) >= 7 and (short.startswith(c) or c.startswith(short)):
            return d
    raise KeyError(commit)


def merge_status(old: int, new: int, failed_latches: bool = False) -> int:
    """The spec's ``NewStatus``: Failed always wins; otherwise the larger
    status, except that a latched Failed stays Failed."""
    if new == Status.FAILED:
        return Status.FAILED
    if failed_latches and old == Status.FAILED:
        return Status.FAILED
    return max(old, new)
