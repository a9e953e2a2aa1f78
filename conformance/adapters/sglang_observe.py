"""The observation both fork adapters share: what they log of the fork's
block pool and buffers, and what a poll of the fork's language queue
decided, read from what the hooks saw during that poll.

Both fork adapters (in process, ``sglang_cluster``; deployed,
``sglang_deployed_hooks``) wrap the same calls of the fork's
``pop_transferred``: the allocator's ``alloc`` and ``free`` and the
buffers' ``get_buf`` (``observe_allocator``, ``observe_buffers``: one
wrapper for both), and collect, per poll, the rooms that resumed, failed,
freed blocks or got no blocks from the allocator.  ``poll_decision`` turns
that into the trace's ``poll`` decision, one rule for both, and
``pop_and_log`` runs one ``pop_transferred`` and logs it request by
request, for both."""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any, Protocol

from resumespec.reference.protocol.designs import STATUSES as STATUS_NAMES


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


class PopObserver(RankObserver, Protocol):
    """What ``pop_and_log`` needs of an adapter's language rank besides its
    hooks: the events ``log`` buffered during the poll (``buffer``), the
    statuses the poll all-reduced (``pop_polls``), the rooms aborted
    locally and the rooms finished, and how the adapter writes a line, a
    handoff, and which repeated polls it leaves out."""

    buffer: list | None
    pop_polls: list | None
    aborted: set[int]
    finished: set[int]

    def write(self, event: str, **fields: Any) -> None: ...

    def poll_times(self) -> tuple[dict[str, float], dict[str, float]]:
        """Extra fields of the poll lines and of the handoff lines ({} or a ``ts``)."""
        ...

    def keep_poll(self, room: int, status: str, decision: str, events: list) -> bool: ...

    def log_handoff(self, room: int, req: Any, extra: dict[str, float]) -> None: ...


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


class _Watched(list):
    """The transfer queue's list while ``pop_transferred`` runs: iterating
    it tells the observer which request the poll loop is handling (the loop
    zips the queue with the polls)."""

    def __init__(self, items: list, obs: RankObserver):
        super().__init__(items)
        self._obs = obs

    def __iter__(self):
        for item in list.__iter__(self):
            self._obs.pop_current = item.req.bootstrap_room
            yield item


def pop_and_log(obs: PopObserver, transfer_queue: Any) -> list[int]:
    """Run the fork's real ``pop_transferred`` once and log what it did,
    request by request; the rooms handed to prefill.

    The loop body's events are buffered (``obs.log``) and written after
    their request's ``poll`` line (docs/trace-format.md: a poll first, then
    the events of its decision).  A request aborted locally whose poll sees
    Failed is logged as the spec's Abort (``abort``, then its ``free`` and
    ``fail``); a poll the adapter does not keep (``keep_poll``) is left out
    with its events, and events of no polled request are written last."""
    queue_before = list(transfer_queue.queue)
    if not queue_before:
        return []
    obs.in_pop = True
    obs.pop_polls = None
    obs.pop_resumed, obs.pop_failed, obs.pop_alloc_none = set(), set(), set()
    obs.pop_resume_alloc = set()
    obs.pop_freed = set()
    obs.buffer = []
    obs.pop_current = None
    transfer_queue.queue = _Watched(queue_before, obs)
    try:
        handed = transfer_queue.pop_transferred()
    finally:
        obs.in_pop = False
        obs.pop_current = None
        buffered, obs.buffer = obs.buffer, None
        if isinstance(transfer_queue.queue, _Watched):
            transfer_queue.queue = list(transfer_queue.queue)
    polls = obs.pop_polls or []
    at_poll, at_handoff = obs.poll_times()
    handed_rooms = [r.bootstrap_room for r in handed]
    by_room: dict[Any, list] = {}
    for room, event, f in buffered:
        by_room.setdefault(room, []).append((event, f))
    for lr, poll in zip(queue_before, polls):
        room = lr.req.bootstrap_room
        status = STATUS_NAMES[int(poll)]
        if status == "Failed" and room in obs.aborted and not obs.corrected:
            # The abort takes effect here: receiver.abort() only marked the
            # request Failed locally; this poll frees its blocks and fails it.
            obs.aborted.discard(room)
            obs.finished.add(room)
            obs.write("abort", req=room, **at_poll)
            for event, f in by_room.pop(room, []):
                obs.write(event, **f)
            continue
        decision = poll_decision(obs, room, status, handed_rooms)
        if room in obs.pop_failed:
            obs.finished.add(room)
        events = by_room.pop(room, [])
        if not obs.keep_poll(room, status, decision, events):
            continue
        obs.write("poll", req=room, status=status, decision=decision, **at_poll)
        for event, f in events:
            obs.write(event, **f)
        if decision == "handoff":
            obs.log_handoff(room, next(r for r in handed if r.bootstrap_room == room),
                            at_handoff)
    for events in by_room.values():   # not attributable to a polled request
        for event, f in events:
            obs.write(event, **f)
    return handed_rooms
