"""``Heartbeat(r)``: the one spec action that changes both sides at once.

The encode side dies (its writes stop, the room is dead) and the language
side's heartbeat checker sets every rank's status of the request Failed.
An engine runs the two halves in different processes
(``sender.peer_dies``, ``receiver.heartbeat_lost``); this is the spec's
atomic step, for hosts and checkers that hold both sides.
"""

from __future__ import annotations

from .receiver import ABORTING, QUEUED, RxState, Step, heartbeat_lost
from .sender import TxRoom, TxStep, peer_dies


def heartbeat(rx: RxState, tx: TxRoom, r: int) -> tuple[Step, TxStep] | None:
    """Heartbeat(r): enabled while the request waits (queued or aborting)
    and the room is not dead yet, whatever else the sender did with it (a
    closed room's last status may be lost with the process); None otherwise."""
    if rx.requests[r].phase not in (QUEUED, ABORTING):
        return None
    dies = peer_dies(tx)
    lost = heartbeat_lost(rx, r)
    if dies is None or not lost:
        return None
    return lost[0], dies
