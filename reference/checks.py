"""Self-checks every run performs: the spec's safety properties, by name.

``PoolChecker`` watches one rank's pool from the outside: who holds which
block, which blocks have writes in flight. ``World.check_state`` (world.py)
checks what spans the actors after every step. A failed check raises
``Violation`` naming the property; the scheduler stops the run there. A run
may select the properties it checks (``Config.props``, like a TLC cfg's
INVARIANTS): an unselected property's failures are only counted.

| property (docs/model.md)   | where it is checked                      | outcome kind           |
|----------------------------|------------------------------------------|------------------------|
| NoSharedBlock              | ``PoolChecker.on_alloc``                 | ``shared_block``       |
| NoDoubleFree               | ``PoolChecker.on_free``                  | ``double_free``        |
| NoFreeAndHeld              | ``PoolChecker.on_free``                  | ``double_free``        |
| WritesOnlyIntoOwnedBlocks  | ``World.check_state``, ``on_write_land`` | ``write_into_unowned`` |
| NoReadDuringWrite          | ``PoolChecker.on_read``                  | ``read_during_write``  |
| HandedDataIsSource         | ``check_handoff``                        | ``corruption``         |
| AtMostOneResumePerRound    | ``World.check_state``                    | ``double_resume``      |
| BlocksEventuallyFree       | ``PoolChecker.check_no_leak`` (at end)   | ``leak``               |
| EveryRequestEnds, NoWaitForUnrequestedRound, SenderRoomsClose | the scheduler (no progress) | ``hang`` |
| EachFailureHasAFault (only when selected) | ``World.check_state``     | ``fault_spread``       |
"""

from __future__ import annotations

import torch

SAFETY = ("NoSharedBlock", "NoFreeAndHeld", "NoDoubleFree", "WritesOnlyIntoOwnedBlocks",
          "NoReadDuringWrite", "HandedDataIsSource", "AtMostOneResumePerRound")
LIVENESS = ("EveryRequestEnds", "BlocksEventuallyFree", "NoWaitForUnrequestedRound",
            "SenderRoomsClose")
PROPERTIES = SAFETY + LIVENESS
# checked only when a run selects it (Config.props), as a TLC model names it
CONTAINMENT = ("EachFailureHasAFault",)


class Violation(Exception):
    def __init__(self, kind: str, prop: str, where: str) -> None:
        super().__init__(f"{kind}: {where}")
        self.kind = kind
        self.prop = prop
        self.where = where


class PropertyGate:
    """Raises for selected properties, counts the others."""

    def __init__(self, props=None) -> None:
        self.props = set(PROPERTIES if props is None else props)
        self.ignored: dict[str, int] = {}

    def fail(self, kind: str, prop: str, where: str) -> None:
        if prop in self.props:
            raise Violation(kind, prop, where)
        self.ignored[prop] = self.ignored.get(prop, 0) + 1


class PoolChecker:
    def __init__(self, rank: int, num_blocks: int, gate: PropertyGate | None = None) -> None:
        self.rank = rank
        self.num_blocks = num_blocks
        self.gate = gate or PropertyGate()
        self.owner: list[int | None] = [None] * num_blocks
        self.in_flight = [0] * num_blocks

    def on_alloc(self, req: int, blocks: list[int]) -> None:
        for b in blocks:
            if self.owner[b] is not None:
                self.gate.fail("shared_block", "NoSharedBlock",
                               f"rank {self.rank} block {b} given to req {req} while req {self.owner[b]} holds it")
            self.owner[b] = req

    def on_free(self, req: int, blocks: list[int]) -> None:
        if len(set(blocks)) != len(blocks):
            self.gate.fail("double_free", "NoDoubleFree",
                           f"rank {self.rank} req {req} frees a block twice in one call: {blocks}")
        for b in blocks:
            if self.owner[b] is None:
                self.gate.fail("double_free", "NoDoubleFree",
                               f"rank {self.rank} req {req} frees block {b}, which is already free")
            elif self.owner[b] != req:
                self.gate.fail("double_free", "NoFreeAndHeld",
                               f"rank {self.rank} req {req} frees block {b}, which req {self.owner[b]} holds")
            self.owner[b] = None

    def on_write_issue(self, block: int) -> None:
        self.in_flight[block] += 1

    def on_write_gone(self, block: int) -> None:
        self.in_flight[block] -= 1

    def on_write_land(self, req: int, block: int) -> None:
        if self.owner[block] != req:
            holder = "nobody" if self.owner[block] is None else f"req {self.owner[block]}"
            self.gate.fail("write_into_unowned", "WritesOnlyIntoOwnedBlocks",
                           f"rank {self.rank}: a write of req {req} lands in block {block}, held by {holder}")

    def on_read(self, req: int, blocks: list[int]) -> None:
        for b in blocks:
            if self.in_flight[b]:
                self.gate.fail("read_during_write", "NoReadDuringWrite",
                               f"rank {self.rank} req {req} reads block {b} with {self.in_flight[b]} write(s) in flight")
            elif self.owner[b] != req:
                self.gate.fail("read_during_write", "NoReadDuringWrite",
                               f"rank {self.rank} req {req} reads block {b}, which it does not hold")

    def check_no_leak(self, free_list) -> None:
        held = [(b, r) for b, r in enumerate(self.owner) if r is not None]
        if held:
            self.gate.fail("leak", "BlocksEventuallyFree",
                           f"rank {self.rank}: blocks still held at the end: "
                           + ", ".join(f"{b} (req {r})" for b, r in held))
        if sorted(free_list) != list(range(self.num_blocks)):
            self.gate.fail("double_free", "NoDoubleFree",
                           f"rank {self.rank}: free list at the end is {sorted(free_list)}, "
                           f"expected each of 0..{self.num_blocks - 1} once")


def check_handoff(req: int, session: int, handed: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                  source: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                  gate: PropertyGate | None = None) -> None:
    """What prefill gets must equal the source embedding byte for byte."""
    fail = (gate or PropertyGate()).fail
    emb, ids, mrope = handed
    s_emb, s_ids, s_mrope = source
    if ids.shape[0] != s_ids.shape[0]:
        fail("corruption", "HandedDataIsSource",
             f"req {req} session {session}: {ids.shape[0]} tokens handed to prefill, source has {s_ids.shape[0]}")
        return
    bad = (ids != s_ids).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        fail("corruption", "HandedDataIsSource",
             f"req {req} session {session}: token {i + 1} has id {int(ids[i])}, expected {int(s_ids[i])}")
    elif not torch.equal(emb.view(torch.int16), s_emb.view(torch.int16)):
        fail("corruption", "HandedDataIsSource",
             f"req {req} session {session}: embedding bytes differ from the source")
    elif not torch.equal(mrope, s_mrope):
        fail("corruption", "HandedDataIsSource",
             f"req {req} session {session}: mrope positions differ from the source")
