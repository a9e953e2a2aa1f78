"""The parameters of one deployment: the spec's constants that the core needs.

``Total`` is per request and known to the sender only (``Sender`` rooms take
it); ``NReq``, ``NBlocks`` and ``Faults`` bound the model, not the protocol:
a host decides which requests exist, how big its pools are and which faults
happen.
"""

from __future__ import annotations

from dataclasses import dataclass

from .designs import AllocOrder, Design, ResumeOrder, design


def resume_tokens(variant: str, cap: int, block_size: int, remaining: int, nfree: int) -> int:
    """The spec's ``ResumeTokens(remaining, nfree)``: all that remains, at most
    ``cap`` blocks (0: no cap); the corrected design asks for no more than
    the ``nfree`` blocks free now."""
    capped = remaining if cap == 0 else min(remaining, cap * block_size)
    return min(capped, nfree * block_size) if variant == "corrected" else capped


@dataclass(frozen=True)
class Params:
    variant: str                 # the design (``designs.VARIANTS``)
    n_sessions: int = 1          # NSess: language ranks per request, numbered 1..n
    block_size: int = 1          # BlockSize: tokens per block
    init_tokens: int = 1         # InitTokens: allocated before the length is known
    cap: int = 0                 # Cap: blocks per resume at most; 0 = all remaining
    order: AllocOrder = AllocOrder.FIFO
    resume_order: ResumeOrder | None = None   # None: the engine's order for the design
    barrier: bool = True         # Barrier: a resumed round waits for every session
    fork_sender: bool = False    # ForkSender: the engine fork's rule for a failed write

    def __post_init__(self) -> None:
        d = design(self.variant)
        object.__setattr__(self, "order", AllocOrder(self.order))
        ro = d.resume_order if self.resume_order is None else ResumeOrder(self.resume_order)
        object.__setattr__(self, "resume_order", ro)
        if self.n_sessions < 1 or self.block_size < 1 or self.init_tokens < 1 or self.cap < 0:
            raise ValueError(f"bad parameters: n_sessions, block_size and init_tokens must be >= 1 "
                             f"and cap >= 0, got {self.n_sessions}, {self.block_size}, "
                             f"{self.init_tokens}, {self.cap}")
        if d.variant == "corrected" and not self.barrier:
            raise ValueError("the corrected design includes the sender's barrier (barrier=True)")

    @property
    def queued_rounds(self) -> bool:
        """The spec's ``QueuedRounds`` (``ForkSender /\\ ~Barrier``): the
        fork's sender without the barrier queues a round per resume and
        writes a round's sessions one after another (``sender.py``)."""
        return self.fork_sender and not self.barrier

    @property
    def design(self) -> Design:
        return design(self.variant)

    @property
    def corrected(self) -> bool:
        return self.variant == "corrected"

    @property
    def sessions(self) -> range:
        return range(1, self.n_sessions + 1)

    @property
    def alloc_first(self) -> bool:
        return self.resume_order is ResumeOrder.ALLOC_FIRST

    def resume_tokens(self, remaining: int, nfree: int) -> int:
        """The spec's ``ResumeTokens``: tokens a resume asks for."""
        return resume_tokens(self.variant, self.cap, self.block_size, remaining, nfree)

    def read_len(self, blocks: tuple[int, ...], tokens: int) -> int:
        """How many tokens ``ReadBuf(blocks, tokens)`` yields: as far as the blocks reach."""
        return max(0, min(tokens, len(blocks) * self.block_size))
