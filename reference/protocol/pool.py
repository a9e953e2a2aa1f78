"""A language rank's block pool: the spec's free list and ``AllocChoices``.

The allocator is all or nothing and hands out whole blocks; a free appends
the blocks at the tail of the free list.  ``Order`` says which free blocks an
allocation takes: ``fifo`` the head of the list, ``lifo`` the tail (newest
first), ``any`` any of them in any order.  Nothing here checks for a double
free: the historical designs free blocks twice and the free list then holds
a block twice, exactly as the spec's ``free[s]`` does (``NoDoubleFree``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

from .designs import AllocOrder


def nblk(tokens: int, block_size: int) -> int:
    """The spec's ``NBlk``: blocks needed for ``tokens`` tokens."""
    return (tokens + block_size - 1) // block_size


@dataclass(frozen=True)
class Pool:
    """The free list of one rank (block ids in list order)."""

    free: tuple[int, ...]

    @classmethod
    def of(cls, block_ids: range | tuple[int, ...] | list[int]) -> Pool:
        return cls(tuple(block_ids))

    def alloc_choices(self, tokens: int, block_size: int,
                      order: AllocOrder | str) -> list[tuple[tuple[int, ...], Pool]]:
        """The spec's ``AllocChoices(free, tokens)``: every (blocks, pool
        after) the allocator may return.  Empty: the allocation fails (the
        engine's allocator returns None).  Asking for 0 tokens gives no
        blocks and always succeeds."""
        k = nblk(tokens, block_size)
        fl = self.free
        if k == 0:
            return [((), self)]
        if len(fl) < k:
            return []
        order = AllocOrder(order)
        if order is AllocOrder.FIFO:
            return [(fl[:k], Pool(fl[k:]))]
        if order is AllocOrder.LIFO:
            return [(tuple(reversed(fl[len(fl) - k:])), Pool(fl[:len(fl) - k]))]
        out: list[tuple[tuple[int, ...], Pool]] = []
        for pos in permutations(range(len(fl)), k):
            taken = set(pos)
            out.append((tuple(fl[i] for i in pos),
                        Pool(tuple(b for i, b in enumerate(fl) if i not in taken))))
        return out

    def alloc(self, tokens: int, block_size: int,
              order: AllocOrder | str) -> tuple[tuple[int, ...], Pool] | None:
        """One allocation, for a host that does not care which (the first
        allowed choice); None when the allocation fails."""
        choices = self.alloc_choices(tokens, block_size, order)
        return choices[0] if choices else None

    def free_blocks(self, blocks: tuple[int, ...]) -> Pool:
        """Append ``blocks`` at the tail (no double-free check, on purpose)."""
        return Pool(self.free + tuple(blocks))
