"""Self-checks every run performs (the spec's safety properties, by name).

``PoolChecker`` watches one rank's pool from the outside: who holds which
block, which blocks have writes in flight. Each check raises ``Violation``
with the property's name; the scheduler stops the run there and reports it.

| property (docs/model.md)   | check here                  | outcome kind          |
|----------------------------|-----------------------------|-----------------------|
| NoSharedBlock              | ``on_alloc``                | ``shared_block``      |
| NoDoubleFree/NoFreeAndHeld | ``on_free``                 | ``double_free``       |
| WritesOnlyIntoOwnedBlocks  | ``on_write_land``           | ``write_into_unowned``|
| NoReadDuringWrite          | ``on_read``                 | ``read_during_write`` |
| HandedDataIsSource         | ``check_handoff``           | ``corruption``        |
| BlocksEventuallyFree       | ``check_no_leak``           | ``leak``              |
"""

from __future__ import annotations

import torch


class Violation(Exception):
    def __init__(self, kind: str, prop: str, where: str) -> None:
        super().__init__(f"{kind}: {where}")
        self.kind = kind
        self.prop = prop
        self.where = where


class PoolChecker:
    def __init__(self, rank: int, num_blocks: int) -> None:
        self.rank = rank
        self.num_blocks = num_blocks
        self.owner: list[int | None] = [None] * num_blocks
        self.in_flight = [0] * num_blocks

    def on_alloc(self, req: int, blocks: list[int]) -> None:
        for b in blocks:
            if self.owner[b] is not None:
                raise Violation("shared_block", "NoSharedBlock",
                                f"rank {self.rank} block {b} given to req {req} while req {self.owner[b]} holds it")
            self.owner[b] = req

    def on_free(self, req: int, blocks: list[int]) -> None:
        if len(set(blocks)) != len(blocks):
            raise Violation("double_free", "NoDoubleFree",
                            f"rank {self.rank} req {req} frees a block twice in one call: {blocks}")
        for b in blocks:
            if self.owner[b] is None:
                raise Violation("double_free", "NoDoubleFree",
                                f"rank {self.rank} req {req} frees block {b}, which is already free")
            if self.owner[b] != req:
                raise Violation("double_free", "NoFreeAndHeld",
                                f"rank {self.rank} req {req} frees block {b}, which req {self.owner[b]} holds")
            self.owner[b] = None

    def on_write_issue(self, block: int) -> None:
        self.in_flight[block] += 1

    def on_write_gone(self, block: int) -> None:
        self.in_flight[block] -= 1

    def on_write_land(self, req: int, block: int) -> None:
        if self.owner[block] != req:
            holder = "nobody" if self.owner[block] is None else f"req {self.owner[block]}"
            raise Violation("write_into_unowned", "WritesOnlyIntoOwnedBlocks",
                            f"rank {self.rank}: a write of req {req} lands in block {block}, held by {holder}")

    def on_read(self, req: int, blocks: list[int]) -> None:
        for b in blocks:
            if self.in_flight[b]:
                raise Violation("read_during_write", "NoReadDuringWrite",
                                f"rank {self.rank} req {req} reads block {b} with {self.in_flight[b]} write(s) in flight")
            if self.owner[b] != req:
                raise Violation("read_during_write", "NoReadDuringWrite",
                                f"rank {self.rank} req {req} reads block {b}, which it does not hold")

    def check_no_leak(self, free_list) -> None:
        held = [(b, r) for b, r in enumerate(self.owner) if r is not None]
        if held:
            raise Violation("leak", "BlocksEventuallyFree",
                            f"rank {self.rank}: blocks still held at the end: "
                            + ", ".join(f"{b} (req {r})" for b, r in held))
        if sorted(free_list) != list(range(self.num_blocks)):
            raise Violation("double_free", "NoDoubleFree",
                            f"rank {self.rank}: free list at the end is {sorted(free_list)}, "
                            f"expected each of 0..{self.num_blocks - 1} once")


def check_handoff(req: int, session: int, handed: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                  source: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    """What prefill gets must equal the source embedding byte for byte."""
    emb, ids, mrope = handed
    s_emb, s_ids, s_mrope = source
    if ids.shape[0] != s_ids.shape[0]:
        raise Violation("corruption", "HandedDataIsSource",
                        f"req {req} session {session}: {ids.shape[0]} tokens handed to prefill, source has {s_ids.shape[0]}")
    bad = (ids != s_ids).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        raise Violation("corruption", "HandedDataIsSource",
                        f"req {req} session {session}: token {i + 1} has id {int(ids[i])}, expected {int(s_ids[i])}")
    if not torch.equal(emb.view(torch.int16), s_emb.view(torch.int16)):
        raise Violation("corruption", "HandedDataIsSource",
                        f"req {req} session {session}: embedding bytes differ from the source")
    if not torch.equal(mrope, s_mrope):
        raise Violation("corruption", "HandedDataIsSource",
                        f"req {req} session {session}: mrope positions differ from the source")
