"""The observation both fork adapters share: what they log of the fork's
block pool and buffers, and what a poll of the fork's language queue
decided, read from what the hooks saw during that poll.

Both fork adapters (in process, ``sglang_cluster``; deployed,
``sglang_deployed_hooks``) wrap the same calls of the fork's
``pop_transferred``: the allocator's ``alloc`` and ``free`` and the
buffers' ``get_buf`` (``observe_allocator``, ``observe_buffers``: one
wrapper for both), and collect, per poll, the rooms that resumed, failed,
freed blocks or got no blocks from the allocator.  ``poll_decision`` turns
that into the trace's ``poll`` decision, one rule for both."""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any, Protocol


class PollObserver(Protocol):
    """The rooms one poll touched, as the hooks recorded them."""

    corrected: bool
    pop_resumed: set[int]        # sent a resume
    pop_failed: set[int]         # failed the request
    pop_alloc_none: set[int]     # an allocation returned None
    pop_resume_alloc: set[int]   # allocated for a resume
    pop_freed: set[int]          # freed the request's blocks


class RankObserver(PollObserver, Protocol):
    """A language rank's hooks: its trace and where its poll loop is."""

    rank: int
    in_pop: bool                 # inside the fork's pop_transferred
    pop_current: int | None      # the room the poll loop is handling

    def log(self, event: str, **fields: Any) -> None: ...


def room_of_rid(rid: Any) -> int | None:
    """The room of the adapters' request ids (``req-<room>``)."""
    if isinstance(rid, str) and rid.startswith("req-"):
        return int(rid[4:])
    return None


def ids_of(fill_ids: Any, id_base: int) -> list[list[int]]:
    """Token identities [room, position] of a fill-ids sequence
    (fill id = room * ``id_base`` + position)."""
    vals = fill_ids.tolist() if hasattr(fill_ids, "tolist") else list(fill_ids)
    return [[max(int(v), 0) // id_base, max(int(v), 0) % id_base] for v in vals]


def observe_allocator(obs: RankObserver, allocator: Any, cap_tokens: int = 0,
                      changed: Callable[[], None] | None = None) -> None:
    """Wrap ``allocator.alloc`` and ``allocator.free``: each call is logged
    (``alloc`` with the blocks given or None, ``free`` of a known room's
    blocks) and, inside a poll, noted for ``poll_decision``.  ``cap_tokens``
    (0: none) caps what a poll asks for, the scenarios' resume cap (the
    asked size is logged as ``x_asked``); ``changed`` is called whenever the
    pool changed."""
    real_alloc, real_free = allocator.alloc, allocator.free

    def alloc(num_tokens=None, req_id=None, fake=False):
        asked = num_tokens
        if cap_tokens and obs.in_pop and num_tokens is not None:
            num_tokens = min(num_tokens, cap_tokens)
        blocks = real_alloc(num_tokens=num_tokens, req_id=req_id, fake=fake)
        if blocks is not None and changed is not None:
            changed()
        room = room_of_rid(req_id)
        extra = {"x_asked": asked} if asked != num_tokens else {}
        obs.log("alloc", rank=obs.rank, req=room, tokens=int(num_tokens),
                blocks=None if blocks is None else [int(b) for b in blocks], **extra)
        if obs.in_pop:
            obs.pop_resume_alloc.add(room)
            if blocks is None:
                obs.pop_alloc_none.add(room)
        return blocks

    def free(block_indices=None, req_id=None, fake=False):
        blocks = [int(b) for b in block_indices] if block_indices is not None else None
        real_free(block_indices=block_indices, req_id=req_id, fake=fake)
        if changed is not None:
            changed()
        room = room_of_rid(req_id)
        if obs.in_pop and room is not None:
            obs.pop_freed.add(room)
        if blocks is not None and room is not None:
            obs.log("free", rank=obs.rank, req=room, blocks=blocks)

    allocator.alloc = alloc
    allocator.free = free


def observe_buffers(obs: RankObserver, buffers: Any,
                    ids_field: Callable[[Any, int | None], dict[str, Any]]) -> None:
    """Wrap ``buffers.get_buf``: every read of blocks is logged as
    ``buffer_read`` for the room the poll loop is handling, with the fields
    ``ids_field(fill_ids, room)`` gives (the tokens' identities, where the
    adapter logs them)."""
    real_get_buf = buffers.get_buf

    def get_buf(block_indices=None, **kw):
        out = real_get_buf(block_indices=block_indices, **kw)
        fill_ids = out[1]
        room = obs.pop_current
        obs.log("buffer_read", req=room, session=obs.rank,
                blocks=[int(b) for b in block_indices], aux_total=int(out[3][0]),
                tokens=int(len(fill_ids)), **ids_field(fill_ids, room))
        return out

    buffers.get_buf = get_buf


def poll_decision(obs: PollObserver, room: int, status: str, handed_rooms: Container[int]) -> str:
    """``handoff``, ``resume``, ``retry_alloc``, ``fail`` or ``wait``."""
    if room in handed_rooms:
        return "handoff"
    if status == "Transferring" and (room in obs.pop_resumed or
                                     (room in obs.pop_resume_alloc and room in obs.pop_failed)):
        # free_first: the design decided to resume; its allocation returning
        # None fails the request inside the same poll
        return "resume"
    if (obs.corrected and status == "Transferring" and room in obs.pop_freed
            and room not in obs.pop_failed):
        # corrected: the rank cached the round and freed its blocks (and
        # resumes once a block is free)
        return "resume"
    if status == "Transferring" and room in obs.pop_alloc_none:
        return "retry_alloc"
    if room in obs.pop_failed:
        return "fail"
    return "wait"
