"""The resume protocol as a sans-IO core: every design, one function per spec action.

Pure Python (standard library only): no torch, no I/O, no clocks, no
threads, no randomness.  State is immutable; every action function takes a
state and an event (a message, a poll, an observation) and returns the
outcomes the spec allows, each a new state plus the effects the host must
carry out (allocate, free, read, send, write, hand off, fail).  Where the
spec is nondeterministic (allocator order ``any``, which rank of a lockstep
poll acts, whether an allocation fails) there is more than one outcome: a
host picks one, a checker asks whether what it saw is among them.

Modules:

* ``designs``   the one table of designs (variant, engine commit, resume
  order, barrier, status semantics, abort), status names and ranks
* ``params``    the deployment's constants (``Params``)
* ``pool``      a rank's block pool (``AllocChoices``)
* ``messages``  control and status messages, and the effects
* ``receiver``  the language side: ``receiver_init``, ``deliver_status``,
  ``receiver_poll``, ``prefill_done``, ``abort``, ``heartbeat_lost``
* ``sender``    the encode side: ``sender_recv_init``, ``sender_recv_resume``,
  ``sender_recv_abort``, ``sender_start_round``, ``sender_end_round``,
  ``write_error``, ``sender_fail_dead``, ``peer_dies``
* ``heartbeat`` ``Heartbeat(r)``, both halves at once
* ``spechost``  an abstract host holding the rest of the spec's state
  (block contents, channels, writes in flight), enumerating ``Next``
* ``steps``     the spec host's moves with the effects each core function
  returned (what the counterexample stories narrate)

``docs/protocol-core.md`` maps an engine's calls onto these functions.
"""

from .designs import (
    DESIGNS,
    ENGINE_RESUME_ORDER,
    HISTORICAL,
    STATUS_RANK,
    STATUSES,
    VARIANTS,
    AllocOrder,
    Design,
    ResumeOrder,
    Status,
    design,
    design_of_commit,
    merge_status,
)
from .heartbeat import heartbeat
from .messages import (
    Alloc,
    CancelWrites,
    Ctl,
    Effect,
    FailRequest,
    Free,
    HandOff,
    Read,
    SendCtl,
    SendStatus,
    StatusMsg,
    WriteBlock,
)
from .params import Params, resume_tokens
from .pool import FreeList, Pool, nblk
from .receiver import (
    AllocHook,
    HistoricalView,
    RxRequest,
    RxSession,
    RxState,
    Step,
    abort,
    corrected_cache_due,
    corrected_resume_due,
    deliver_status,
    heartbeat_lost,
    historical_view,
    prefill_done,
    receiver_init,
    receiver_poll,
)
from .sender import (
    TxRoom,
    TxSession,
    TxStep,
    peer_dies,
    round_may_start,
    round_tokens,
    round_writes,
    sender_end_round,
    sender_fail_dead,
    sender_recv_abort,
    sender_recv_init,
    sender_recv_resume,
    sender_start_round,
    session_partial,
    session_writes,
    write_error,
)

__all__ = [
    "DESIGNS", "ENGINE_RESUME_ORDER", "HISTORICAL", "STATUS_RANK", "STATUSES", "VARIANTS",
    "AllocOrder", "Design", "ResumeOrder", "Status", "design", "design_of_commit",
    "merge_status", "Alloc", "CancelWrites", "Ctl", "Effect", "FailRequest", "Free", "HandOff",
    "Read", "SendCtl", "SendStatus", "StatusMsg", "WriteBlock", "Params", "Pool", "nblk",
    "resume_tokens", "AllocHook", "HistoricalView", "historical_view", "RxRequest", "RxSession", "RxState",
    "Step", "abort", "corrected_cache_due", "corrected_resume_due", "deliver_status", "heartbeat_lost", "prefill_done", "receiver_init",
    "receiver_poll", "TxRoom", "TxSession", "TxStep", "heartbeat", "peer_dies", "round_may_start", "round_tokens", "round_writes",
    "sender_end_round", "sender_recv_abort", "sender_recv_init", "sender_recv_resume",
    "sender_fail_dead", "sender_start_round", "session_partial", "session_writes", "write_error", "FreeList",
]
