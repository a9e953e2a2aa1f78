"""Messages between the sides and the effects the core asks a host to carry out.

Messages have one shape per channel, as in the spec (``CtlMsg``, ``StMsg``):

* ``Ctl``: language -> encode, ``type`` is ``init``, ``resume`` or ``abort``;
* ``StatusMsg``: encode -> language.  Historical designs send the status
  alone (``round``, ``sent``, ``total`` are 0); the corrected design's
  sender fills them in.  A Failed status (write error, answered abort)
  always carries them.

Effects are what a core function asks its host to do; the core has already
updated its own state (free lists, block lists, counters) when it returns
them.  A host carries them out in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._fastinit import direct_init


@direct_init
@dataclass(frozen=True)
class Ctl:
    """The spec's ``CtlMsg(type, blocks, sent, alloc, round)``."""

    type: str                    # "init", "resume", "abort"
    blocks: tuple[int, ...] = ()
    sent: int = 0                # resume: tokens the receiver holds (sent_tokens)
    alloc: int = 0               # allocated tokens = len(blocks) * block_size
    round: int = 0               # corrected resume: the round it answers


@direct_init
@dataclass(frozen=True)
class StatusMsg:
    """The spec's ``StMsg(status, round, sent, total)``."""

    status: int
    round: int = 0
    sent: int = 0
    total: int = 0


# ---- effects --------------------------------------------------------------

@dataclass(frozen=True)
class Alloc:
    """Blocks taken from rank ``session``'s pool (already removed from the core's free list)."""

    session: int
    blocks: tuple[int, ...]


@dataclass(frozen=True)
class Free:
    """Blocks given back to rank ``session``'s pool (already appended in the core)."""

    session: int
    blocks: tuple[int, ...]


@dataclass(frozen=True)
class Read:
    """Read ``tokens`` tokens from ``blocks`` of rank ``session`` (block by
    block, ``min(block_size, remaining)`` each: the engine's ``get_buf``).

    ``purpose``: ``"cache"`` appends them to the request's cache of earlier
    rounds, ``"handoff"`` appends them to what goes to prefill (after the
    cache), ``"probe"`` is a read the design makes to decide (nothing is
    kept).  Whatever the purpose, a read of a block with a write in flight is
    the hazard ``NoReadDuringWrite`` forbids: hosts that check it check it on
    every ``Read``, even one of 0 tokens."""

    req: int
    session: int
    blocks: tuple[int, ...]
    tokens: int
    purpose: str


@dataclass(frozen=True)
class SendCtl:
    req: int
    session: int
    msg: Ctl


@direct_init
@dataclass(frozen=True)
class SendStatus:
    req: int
    session: int
    msg: StatusMsg


@dataclass(frozen=True)
class WriteBlock:
    """One data write (one-sided, lands at some later time): token positions
    ``first .. first + count - 1`` (1-based) of request ``req``'s embedding
    into block ``block`` of rank ``session``; ``aux`` > 0: also write the
    aux row (the total length) into that block."""

    req: int
    session: int
    block: int
    first: int
    count: int
    aux: int


@direct_init
@dataclass(frozen=True)
class CancelWrites:
    """Every data write of room ``req`` still in flight is dropped (write error, peer death)."""

    req: int


@dataclass(frozen=True)
class HandOff:
    """Hand the request's assembled tokens (cache + the handoff reads) to prefill."""

    req: int


@dataclass(frozen=True)
class FailRequest:
    """The request fails (blocks already freed by ``Free`` effects before it)."""

    req: int
    reason: str


Effect = Alloc | Free | Read | SendCtl | SendStatus | WriteBlock | CancelWrites | HandOff | FailRequest
