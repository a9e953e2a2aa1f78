"""What a poll of the fork's language queue decided, read from what the
observation hooks saw during that poll.

Both fork adapters (in process, ``sglang_cluster``; deployed,
``sglang_deployed_hooks``) wrap the same calls of the fork's
``pop_transferred`` and collect, per poll, the rooms that resumed, failed,
freed blocks or got no blocks from the allocator.  This turns that into the
trace's ``poll`` decision, one rule for both."""

from __future__ import annotations

from collections.abc import Container
from typing import Protocol


class PollObserver(Protocol):
    """The rooms one poll touched, as the hooks recorded them."""

    corrected: bool
    pop_resumed: set[int]        # sent a resume
    pop_failed: set[int]         # failed the request
    pop_alloc_none: set[int]     # an allocation returned None
    pop_resume_alloc: set[int]   # allocated for a resume
    pop_freed: set[int]          # freed the request's blocks


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
