"""Injected faults (docs/model.md: WriteError, Heartbeat, Abort, plus an
allocation failure). Each may happen at most once per run.

* ``write_error(r)``: a data write of room ``r`` fails; the sender's batch
  stops (the room's writes still in flight never land) and it sends Failed.
* ``heartbeat(r)``: the encode side serving ``r`` dies: its writes stop, and
  the language side, after missing heartbeats, marks the room Failed on every
  rank.
* ``abort(r)``: the receiver aborts the request (``Receiver.abort``).
* ``alloc_fail(s)``: the next allocation on rank ``s`` returns None.
"""

from __future__ import annotations

FAULTS = ("write_error", "heartbeat", "abort", "alloc_fail")


def write_error(world, req: int, session: int | None = None) -> None:
    """``session``: the session whose write failed (the fork's sender,
    ``Config.fork_sender``); else the first write still in flight."""
    if session is None:
        session = world.transport.pending_writes(req)[0].session
    world.sender.write_error(req, session)


def heartbeat(world, req: int) -> None:
    world.heartbeat(req)


def abort(world, req: int) -> None:
    world.receiver.abort(req)


def alloc_fail(world, session: int) -> None:
    world.pickers[session].fail_next = True
