"""A language rank's block pool: the spec's free list and ``AllocChoices``.

The allocator is all or nothing and hands out whole blocks; a free appends
the blocks at the tail of the free list.  ``Order`` says which free blocks an
allocation takes: ``fifo`` the head of the list, ``lifo`` the tail (newest
first), ``any`` any of them in any order.  Nothing here checks for a double
free: the historical designs free blocks twice and the free list then holds
a block twice, exactly as the spec's ``free[s]`` does (``NoDoubleFree``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice, permutations

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

    def allows(self, blocks: tuple[int, ...], tokens: int, block_size: int,
               order: AllocOrder | str) -> Pool | None:
        """Is ``blocks`` one of ``alloc_choices(tokens, ...)``?  The pool after
        it if so, else None; without enumerating the choices (``any``)."""
        k = nblk(tokens, block_size)
        fl = self.free
        if len(blocks) != k or len(fl) < k:
            return None
        order = AllocOrder(order)
        if order is AllocOrder.FIFO:
            return Pool(fl[k:]) if tuple(blocks) == fl[:k] else None
        if order is AllocOrder.LIFO:
            ok = tuple(blocks) == tuple(reversed(fl[len(fl) - k:]))
            return Pool(fl[:len(fl) - k]) if ok else None
        left = list(fl)
        for b in blocks:
            if b not in left:
                return None
            left.remove(b)
        return Pool(tuple(left))


class FreeList:
    """The free list of a ``Pool`` for a host that follows one rank's
    allocations one by one (a streaming checker): the same list, kept as the
    blocks never allocated (``lo .. hi``, the head of the list; a pool of
    millions of blocks costs nothing) followed by the blocks freed since, in
    the order they were freed.  ``take`` and ``give`` cost what the blocks
    they name cost with ``fifo`` and ``lifo`` (``any`` keeps no order, and
    taking a block from the middle of the freed blocks costs their number).
    Like ``Pool``, no double-free check (the properties judge that)."""

    def __init__(self, nblocks: int, order: AllocOrder | str) -> None:
        self.order = AllocOrder(order)
        self.lo, self.hi = 0, nblocks - 1          # never allocated: lo .. hi
        self.freed: deque[int] = deque()           # freed since, oldest first
        self.out: set[int] = set()                 # allocated from lo .. hi, not freed

    def __len__(self) -> int:
        return max(0, self.hi - self.lo + 1) + len(self.freed)

    def as_pool(self) -> Pool:
        """The list as a ``Pool`` (for tests: costs the size of the pool)."""
        fresh = [b for b in range(self.lo, self.hi + 1) if b not in self.out]
        return Pool(tuple(fresh) + tuple(self.freed))

    def expected(self, k: int) -> tuple[int, ...] | None:
        """The blocks an allocation of ``k`` blocks returns (fifo/lifo), or
        None when any ``k`` free blocks may come (``any``) or too few are free."""
        if k > len(self) or self.order is AllocOrder.ANY:
            return None
        out: list[int] = []
        if self.order is AllocOrder.FIFO:
            b = self.lo
            while len(out) < k and b <= self.hi:
                out.append(b)
                b += 1
            out.extend(islice(self.freed, k - len(out)))
        else:
            out.extend(islice(reversed(self.freed), k))
            b = self.hi
            while len(out) < k:
                out.append(b)
                b -= 1
        return tuple(out)

    def is_free(self, b: int) -> bool:
        return (self.lo <= b <= self.hi and b not in self.out) or b in self.freed

    def take(self, blocks: tuple[int, ...], tokens: int, block_size: int) -> str | None:
        """An allocation of ``tokens`` returned ``blocks``: None when the
        allocator may return them (then they leave the list), else why not."""
        k = nblk(tokens, block_size)
        if len(blocks) != k:
            return f"{len(blocks)} block(s) for {tokens} tokens, not {k}"
        if k > len(self):
            return f"{k} block(s) asked for, {len(self)} free"
        want = self.expected(k)
        if want is not None and tuple(blocks) != want:
            return f"the {self.order.value} allocator returns {list(want)}"
        if want is None:
            for b in blocks:
                if not self.is_free(b):
                    return f"block {b} is not free"
            if len(set(blocks)) != k:
                return "a block twice"
        for b in blocks:
            self._remove(b)
        return None

    def _remove(self, b: int) -> None:
        if self.freed and b == self.freed[0]:
            self.freed.popleft()
        elif self.freed and b == self.freed[-1]:
            self.freed.pop()
        elif self.lo <= b <= self.hi and b not in self.out:
            if b == self.lo:
                self.lo += 1
                while self.lo in self.out:
                    self.out.discard(self.lo)
                    self.lo += 1
            elif b == self.hi:
                self.hi -= 1
                while self.hi in self.out:
                    self.out.discard(self.hi)
                    self.hi -= 1
            else:
                self.out.add(b)
        else:
            self.freed.remove(b)       # (any: from the middle)

    def give(self, blocks: tuple[int, ...]) -> None:
        """A free: ``blocks`` go to the tail of the list, in that order."""
        self.freed.extend(blocks)
