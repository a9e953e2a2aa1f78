"""The language side's block allocator, with the engine's semantics.

``BlockAllocator`` is the engine's allocator as a stand-alone object (its
own free list).  The reference runs ``CorePicker``: the same choices made
on the protocol core's free list, asked through the core's ``alloc`` hook
(``tests/test_reference_parts.py`` checks that both take the same blocks).

* block granularity: ``alloc(tokens)`` takes ``ceil(tokens / block_size)``
  blocks;
* all or nothing: when too few blocks are free it returns ``None`` and takes
  nothing;
* ``free(blocks)`` puts the blocks back without clearing them and without
  checking them (like the engine's deque: freeing a block twice puts it on
  the free list twice, and two later allocations can then get the same block;
  the pool checker in ``checks.py`` reports that, the allocator does not).

Reuse orders (``docs/model.md``, ``Order``):

* ``fifo``: take from the head, free to the tail (the engine);
* ``lifo``: take the most recently freed block first;
* ``random``: take any free blocks, chosen by a seeded generator (the spec's
  ``"any"``).
"""

from __future__ import annotations

import random
from collections import deque

ORDERS = ("fifo", "lifo", "random")


def blocks_for(tokens: int, block_size: int) -> int:
    return -(-tokens // block_size)


class BlockAllocator:
    def __init__(self, num_blocks: int, block_size: int, order: str = "fifo",
                 seed: int = 0) -> None:
        if order not in ORDERS:
            raise ValueError(f"unknown allocator order {order!r}; expected one of {', '.join(ORDERS)}")
        self.block_size = block_size
        self.order = order
        self.free_list: deque[int] = deque(range(num_blocks))
        self._rng = random.Random(seed)
        self.fail_next = False  # injected allocation failure (faults.alloc_fail)

    def available(self) -> int:
        return len(self.free_list)

    def can_alloc(self, tokens: int) -> bool:
        return not self.fail_next and blocks_for(tokens, self.block_size) <= len(self.free_list)

    def alloc(self, tokens: int) -> list[int] | None:
        need = blocks_for(tokens, self.block_size)
        if self.fail_next:
            self.fail_next = False
            return None
        if need > len(self.free_list):
            return None
        if self.order == "fifo":
            return [self.free_list.popleft() for _ in range(need)]
        if self.order == "lifo":
            return [self.free_list.pop() for _ in range(need)]
        picked = []
        for _ in range(need):
            i = self._rng.randrange(len(self.free_list))
            self.free_list.rotate(-i)
            picked.append(self.free_list.popleft())
            self.free_list.rotate(i)
        return picked

    def free(self, blocks: list[int]) -> None:
        self.free_list.extend(blocks)


class CorePicker:
    """The allocator as the protocol core's reference host uses it: the free
    list is the core's (``RxState.pools``); this only says which blocks of it
    the engine's allocator would take (``order``; a seeded generator for
    ``random``) or that it fails (too few free, or an injected failure).

    ``pick`` changes nothing (the core may ask for outcomes the host does not
    take); ``took`` and ``failed`` record what the host carried out: the
    random generator moves on, an injected failure is used up."""

    def __init__(self, block_size: int, order: str = "fifo", seed: int = 0) -> None:
        if order not in ORDERS:
            raise ValueError(f"unknown allocator order {order!r}; expected one of {', '.join(ORDERS)}")
        self.block_size, self.order = block_size, order
        self._rng = random.Random(seed)
        self._after: dict[tuple[tuple[int, ...], tuple[int, ...]], object] = {}
        self.fail_next = False  # injected allocation failure (faults.alloc_fail)

    def pick(self, free: tuple[int, ...], tokens: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(blocks taken, free list after) for ``tokens`` tokens, or None
        (the engine's allocator returns None).  Changes nothing."""
        need = blocks_for(tokens, self.block_size)
        if self.fail_next or need > len(free):
            return None
        if self.order == "fifo":
            return tuple(free[:need]), tuple(free[need:])
        if self.order == "lifo":
            return tuple(reversed(free[len(free) - need:])), tuple(free[:len(free) - need])
        rng = random.Random()
        rng.setstate(self._rng.getstate())
        rest, picked = list(free), []
        for _ in range(need):
            picked.append(rest.pop(rng.randrange(len(rest))))
        self._after[(tuple(free), tuple(picked))] = rng.getstate()
        return tuple(picked), tuple(rest)

    def took(self, free: tuple[int, ...], blocks: tuple[int, ...]) -> None:
        state = self._after.pop((tuple(free), tuple(blocks)), None)
        if state is not None:
            self._rng.setstate(state)  # type: ignore[arg-type]
        self._after.clear()

    def failed(self) -> None:
        self.fail_next = False
        self._after.clear()
